"""Reading the dead-letter table: keyset pages, counts (exact when cheap, else the planner's
labelled estimate), groups, one message in full, its payload and the related Twilio alert.
Nothing but one page ever reaches Python.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import DictRow

from opsconsole.adapters.dlq.schema import AsyncConn
from opsconsole.adapters.dlq.session import DlqSession
from opsconsole.adapters.dlq.sql import LIST_ERROR_CHARS, TableSql, as_code
from opsconsole.adapters.pg_connection import ConfigProblem
from opsconsole.domain import twilio_codes
from opsconsole.domain.dlq import (
    CountEstimate,
    Direction,
    DlqError,
    DlqFilter,
    DlqMessage,
    DlqMessageDetail,
    GroupBy,
    GroupList,
    GroupRow,
    Page,
    PageCursor,
    PayloadText,
    RelatedAlert,
    Selection,
    history_events,
    literal,
)

COUNT_EXACT_TIMEOUT_MS = 300
EXACT_COUNT_MAX_ESTIMATE = 100_000
DEFAULT_PAGE = 50
MAX_PAGE = 500
PAYLOAD_LIMIT = 65_536  # characters of pretty payload in a detail
MAX_GROUPS = 100
DETAIL_ERROR_CHARS = 8_000


def _text(value: Any, limit: int) -> str:
    return "" if value is None else literal(str(value), single_line=True, limit=limit)


def _message(row: Mapping[str, Any]) -> DlqMessage:
    problem = row["problem"]
    return DlqMessage(
        id=int(row["id"]), received_at=row["received_at"], error_code=as_code(row["error_code"]),
        error_message=_text(row["error_message"], LIST_ERROR_CHARS), message_sid=_text(row["message_sid"], 64),
        endpoint=_text(row["endpoint"], 120), workflow=_text(row["workflow"], 120), status=str(row["status"]),
        attempts=None if row["attempts"] is None else int(row["attempts"]),
        payload_bytes=int(row["payload_bytes"] or 0), payload_valid=problem is None,
        payload_problem=None if problem is None else str(problem))


class DlqReader(DlqSession):
    """The read side of the store: everything the DLQ tab shows, none of it changes a row."""

    # -- reads ------------------------------------------------------------------------------
    def _filter_timeout(self, flt: DlqFilter | None) -> tuple[int, str]:
        if flt is not None and flt.text:
            return self.text_search_timeout_ms, (
                " — the text filter scans every payload: narrow it with an error code or an age, or index it "
                "(create extension pg_trgm; create index on the table using gin ((payload::text) gin_trgm_ops))")
        return self.read_timeout_ms, ""

    def _page_query(self, q: TableSql, flt: DlqFilter, cursor: PageCursor | None, limit: int, direction: Direction,
                    include_cursor: bool) -> tuple[sql.Composed, dict[str, Any]]:
        params: dict[str, Any] = {"n": limit + 1}
        conds = q.conds(flt, params, "t")
        other = q.conds(flt, params, "o")
        older = direction == "older"
        order = sql.SQL("desc" if older else "asc")
        key_t = sql.SQL("({}, {})").format(q.c("received_at", "t"), q.c("id", "t"))
        key_o = sql.SQL("({}, {})").format(q.c("received_at", "o"), q.c("id", "o"))
        if cursor is not None:
            params["c_at"], params["c_id"] = cursor.received_at, cursor.id
            op = ("<=" if include_cursor else "<") if older else (">=" if include_cursor else ">")
            back = (">" if include_cursor else ">=") if older else ("<" if include_cursor else "<=")
            conds.append(sql.SQL("{} {} (%(c_at)s, %(c_id)s)").format(key_t, sql.SQL(op)))
            other.append(sql.SQL("{} {} (%(c_at)s, %(c_id)s)").format(key_o, sql.SQL(back)))
            # Whether rows exist on the other side of the cursor: one index probe from the cursor, in
            # the same statement. Not EXISTS: PostgreSQL drops ORDER BY/LIMIT inside EXISTS and may
            # pick a sequential scan; a scalar subquery keeps the planner on the keyset index.
            other_side: sql.Composable = sql.SQL(
                "coalesce((select true from {} as o where {} order by {} {}, {} {} limit 1), false)").format(
                q.table, q.where(other), q.c("received_at", "o"), sql.SQL("asc" if older else "desc"),
                q.c("id", "o"), sql.SQL("asc" if older else "desc"))
        else:
            other_side = sql.SQL("false")
        query = sql.SQL(
            "select s.other_side, p.* from (select {other_side} as other_side) s left join lateral ("
            "select {cols} from {table} as t where {where} "
            "order by {rcv} {order}, {id} {order} limit %(n)s) p on true").format(
            other_side=other_side, cols=q.list_columns("t"), table=q.table, where=q.where(conds),
            rcv=q.c("received_at", "t"), id=q.c("id", "t"), order=order)
        return query, params

    async def page(self, flt: DlqFilter | None = None, cursor: PageCursor | None = None, limit: int = DEFAULT_PAGE,
                   direction: Direction = "older", *, include_cursor: bool = False) -> Page | DlqError:
        """One page, newest first. From the top: no cursor. Down: `page.next_cursor`, "older".
        Up: `page.prev_cursor`, "newer". Bottom: no cursor, "newer". `include_cursor` keeps the
        cursor's own row (to reload the page that starts at it)."""
        flt = flt if flt is not None else DlqFilter()
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        limit = max(1, min(MAX_PAGE, int(limit)))
        older = direction == "older"
        query, params = self._page_query(q, flt, cursor, limit, direction, include_cursor)
        timeout_ms, hint = self._filter_timeout(flt)
        started = time.perf_counter()

        async def run(conn: AsyncConn) -> list[DictRow]:
            return await (await conn.execute(query, params)).fetchall()

        try:
            rows = await self._read(run, timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "loading the page", timeout_ms=timeout_ms, timeout_hint=hint)
        other_flag = bool(rows[0]["other_side"]) if rows else cursor is not None
        found = [r for r in rows if r["id"] is not None]
        extra = len(found) > limit
        found = found[:limit]
        messages = [_message(r) for r in found]
        if not older:
            messages.reverse()
        elapsed = (time.perf_counter() - started) * 1000
        if older:
            return Page(rows=tuple(messages), has_more=extra, has_newer=other_flag, filter=flt, elapsed_ms=elapsed)
        return Page(rows=tuple(messages), has_more=other_flag, has_newer=extra, filter=flt, elapsed_ms=elapsed)

    async def explain_page(self, flt: DlqFilter | None = None, cursor: PageCursor | None = None,
                           limit: int = DEFAULT_PAGE, direction: Direction = "older", *,
                           analyze: bool = True) -> str | DlqError:
        """EXPLAIN (ANALYZE) of exactly the statement `page` runs: for "why is this slow" and the
        scale tests (index scans, no sequential scan, no OFFSET)."""
        flt = flt if flt is not None else DlqFilter()
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        query, params = self._page_query(q, flt, cursor, max(1, min(MAX_PAGE, int(limit))), direction, False)
        explain = sql.SQL("explain (analyze, costs off, timing off, summary off) {}" if analyze
                          else "explain (costs off) {}").format(query)
        timeout_ms, hint = self._filter_timeout(flt)

        async def run(conn: AsyncConn) -> str:
            rows = await (await conn.execute(explain, params)).fetchall()
            return "\n".join(str(r["QUERY PLAN"]) for r in rows)

        try:
            return await self._read(run, timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "explaining the page", timeout_ms=timeout_ms, timeout_hint=hint)

    async def count(self, flt: DlqFilter | None = None) -> CountEstimate | DlqError:
        """Exact when cheap, the planner's estimate (labelled) when counting would be slow."""
        flt = flt if flt is not None else DlqFilter()
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        params: dict[str, Any] = {}
        where = q.where(q.conds(flt, params))
        explain = sql.SQL("explain (format json) select 1 from {} as t where {}").format(q.table, where)
        exact_q = sql.SQL("select count(*) as n from {} as t where {}").format(q.table, where)

        async def run(conn: AsyncConn) -> CountEstimate:
            row = await (await conn.execute(explain, params)).fetchone()
            assert row is not None
            plan = row["QUERY PLAN"]
            estimate = int(plan[0]["Plan"]["Plan Rows"]) if plan else 0
            if estimate > EXACT_COUNT_MAX_ESTIMATE:
                return CountEstimate(estimate, False, "planner estimate")
            await self._set_timeouts(conn, COUNT_EXACT_TIMEOUT_MS)
            try:
                got = await (await conn.execute(exact_q, params)).fetchone()
            except pg_errors.QueryCanceled:
                return CountEstimate(estimate, False, "planner estimate (exact count timed out)")
            assert got is not None
            return CountEstimate(int(got["n"]), True)

        try:
            return await self._read(run, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "counting", timeout_ms=self.read_timeout_ms)

    async def selection_count(self, selection: Selection) -> CountEstimate | DlqError:
        """How many a selection holds (explicit ids: exact without a query)."""
        if selection.ids is not None:
            return CountEstimate(len(selection.ids), True)
        flt = selection.filter or DlqFilter()
        counted = await self.count(flt)
        if isinstance(counted, DlqError) or not selection.excluded:
            return counted
        return replace(counted, value=max(0, counted.value - len(selection.excluded)))

    async def groups(self, flt: DlqFilter | None = None, by: GroupBy = "error_code") -> GroupList | DlqError:
        """Counts and newest arrival per error code / endpoint / workflow, largest first."""
        flt = flt if flt is not None else DlqFilter()
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        mapping, q = prepared
        if by not in ("error_code", "endpoint", "workflow"):
            return DlqError("invalid", f"cannot group by {literal(str(by), single_line=True, limit=30)!r}")
        if not mapping.has(by):
            return DlqError("config", f"{literal(mapping.table, single_line=True, limit=80)} has no {by} column "
                                      f"(map one with [dlq] columns = {{ {by} = \"<column>\" }})")
        params: dict[str, Any] = {"limit": MAX_GROUPS + 1}
        key = q.c(by)
        query = sql.SQL("select {key} as key, count(*) as n, max({rcv}) as newest from {table} as t where {where} "
                        "group by 1 order by n desc, 1 nulls last limit %(limit)s").format(
            key=key if by == "error_code" else sql.SQL("left({}, 300)").format(key), rcv=q.c("received_at"),
            table=q.table, where=q.where(q.conds(flt, params)))
        timeout_ms, hint = self._filter_timeout(flt)

        async def run(conn: AsyncConn) -> list[DictRow]:
            return await (await conn.execute(query, params)).fetchall()

        try:
            rows = await self._read(run, timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "grouping", timeout_ms=timeout_ms, timeout_hint=hint)
        never = frozenset(q.never)
        out: list[GroupRow] = []
        for r in rows[:MAX_GROUPS]:
            raw_key = r["key"]
            if by == "error_code":
                code = as_code(raw_key)
                key_value: int | str | None = code if code is not None or raw_key is None else str(raw_key)
                out.append(GroupRow(by=by, key=key_value, count=int(r["n"]), newest_at=r["newest"],
                                    meaning=(twilio_codes.meaning(code) if raw_key is not None
                                             else "no error code (malformed body)"),
                                    transient=twilio_codes.is_transient(code),
                                    never_requeue=code is not None and code in never))
            else:
                out.append(GroupRow(by=by, key=None if raw_key is None else str(raw_key), count=int(r["n"]),
                                    newest_at=r["newest"], meaning="", transient=None))
        return GroupList(by=by, rows=tuple(out), more=len(rows) > MAX_GROUPS, total=sum(g.count for g in out))

    async def get(self, message_id: int, *, payload_limit: int = PAYLOAD_LIMIT,
                  include_alert: bool = False) -> DlqMessageDetail | DlqError:
        """One message in full; the payload text is cut at `payload_limit` characters (the whole
        of it: `get_full_payload`). `include_alert` also asks `alert_lookup` (bounded by
        `alert_timeout_s`) for the related Twilio alert; otherwise call `related_alert` later."""
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        p, raw = q.payload(), q.raw()
        history = (sql.SQL("(select jsonb_agg(case when jsonb_typeof(e) = 'object' then e - 'payload' - 'payload_raw' "
                           "end) from jsonb_array_elements(case when jsonb_typeof({h}) = 'array' then {h} "
                           "else '[]'::jsonb end) e)").format(h=q.c("history"))
                   if q.m.has("history") else sql.SQL("null::jsonb"))
        query = sql.SQL(
            "select {id} as id, {rcv} as received_at, ({status})::text as status, {code} as error_code, "
            "left({err}, {err_max}) as error_message, left({sid}, 64) as message_sid, "
            "left({account}, 64) as account_sid, left({endpoint}, 1000) as endpoint, "
            "left({workflow}, 1000) as workflow, {attempts} as attempts, {last} as last_attempt_at, "
            "{rq_at} as requeued_at, left({rq_by}, 200) as requeued_by, left({rq_ref}, 200) as requeue_ref, "
            "{ds_at} as discarded_at, left({ds_by}, 200) as discarded_by, left({ds_reason}, 2000) as discard_reason, "
            "{p} is not null as parsed, left(pp.pretty, %(limit)s) as head, char_length(pp.pretty) as chars, "
            "{bytes} as payload_bytes, md5(coalesce(({p})::text, {raw}, '')) as digest, {problem} as problem, "
            "{never} as never, {history} as history "
            "from {table} as t cross join lateral (select case when {p} is not null then jsonb_pretty({p}) "
            "else {raw} end as pretty) pp where {id} = %(id)s").format(
            id=q.c("id"), rcv=q.c("received_at"), status=q.c("status"), code=q.c("error_code"),
            err=q.opt("error_message"), err_max=sql.Literal(DETAIL_ERROR_CHARS), sid=q.sid(),
            account=q.opt("account_sid"), endpoint=q.opt("endpoint"), workflow=q.opt("workflow"),
            attempts=q.opt("attempts"), last=q.opt("last_attempt_at"), rq_at=q.opt("requeued_at"),
            rq_by=q.opt("requeued_by"), rq_ref=q.opt("requeue_ref"), ds_at=q.opt("discarded_at"),
            ds_by=q.opt("discarded_by"), ds_reason=q.opt("discard_reason"), p=p, raw=raw,
            bytes=q.payload_bytes(), problem=q.problem(), never=q.never_expr(), history=history, table=q.table)
        params = {"id": int(message_id), "limit": max(1, int(payload_limit))}

        async def run(conn: AsyncConn) -> DictRow | None:
            return await (await conn.execute(query, params)).fetchone()

        try:
            row = await self._read(run, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, f"loading message {int(message_id)}", timeout_ms=self.read_timeout_ms)
        if row is None:
            return DlqError("not_found", f"message {int(message_id)} does not exist")
        code = as_code(row["error_code"])
        chars = int(row["chars"] or 0)
        head = str(row["head"] or "")
        detail = DlqMessageDetail(
            id=int(row["id"]), received_at=row["received_at"], status=str(row["status"]), error_code=code,
            meaning=twilio_codes.meaning(code) if row["error_code"] is not None else "no error code recorded",
            transient=twilio_codes.is_transient(code), never_requeue=bool(row["never"]),
            error_message=literal(str(row["error_message"] or "")), message_sid=_text(row["message_sid"], 64),
            account_sid=_text(row["account_sid"], 64), endpoint=_text(row["endpoint"], 1000),
            workflow=_text(row["workflow"], 1000),
            attempts=None if row["attempts"] is None else int(row["attempts"]),
            last_attempt_at=row["last_attempt_at"], payload_parsed=bool(row["parsed"]),
            payload_text=literal(head), payload_chars=chars, payload_bytes=int(row["payload_bytes"] or 0),
            truncated=chars > len(head), payload_problem=row["problem"], payload_digest=str(row["digest"]),
            requeued_at=row["requeued_at"], requeued_by=_text(row["requeued_by"], 200),
            requeue_ref=_text(row["requeue_ref"], 200), discarded_at=row["discarded_at"],
            discarded_by=_text(row["discarded_by"], 200), discard_reason=literal(str(row["discard_reason"] or "")),
            history=history_events(row["history"]),
            alert_note="not looked up" if self.alert_lookup is not None else "Twilio alerts not configured")
        if include_alert and detail.message_sid:
            alert = await self.related_alert(detail.message_sid)
            if isinstance(alert, DlqError):
                detail = replace(detail, alert_note=alert.message)
            else:
                detail = replace(detail, related_alert=alert,
                                 alert_note="" if alert is not None else "no Twilio alert mentions this message")
        return detail

    async def related_alert(self, message_sid: str) -> RelatedAlert | DlqError | None:
        """The Twilio alert whose resource is this MessageSid, via the configured lookup."""
        lookup = self.alert_lookup
        if lookup is None:
            return DlqError("config", "Twilio alerts not configured")
        try:
            async with asyncio.timeout(self.alert_timeout_s):
                alert = await lookup(message_sid)
        except TimeoutError:
            return DlqError("timeout", f"Twilio alert lookup gave no answer within {self.alert_timeout_s:g} s")
        except Exception as exc:  # an external service behind a callback: any failure is data
            return DlqError("query", f"Twilio alert lookup failed: {literal(str(exc), single_line=True, limit=160)}")
        if alert is None:
            return None
        return replace(alert, sid=_text(alert.sid, 40), error_code=_text(alert.error_code, 12),
                       text=literal(alert.text, single_line=True, limit=400),
                       request_url=_text(alert.request_url, 300))

    async def get_full_payload(self, message_id: int, *, exact: bool = False) -> PayloadText | DlqError:
        """The whole payload: pretty JSON, or the raw body of a malformed one. `exact=True` gives the
        stored text untouched (for the editor, which must still render it without markup);
        otherwise it is made `literal` for display."""
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        query = sql.SQL("select {p} is not null as parsed, case when {p} is not null then jsonb_pretty({p}) "
                        "else {raw} end as text, {bytes} as bytes from {table} as t where {id} = %(id)s").format(
            p=q.payload(), raw=q.raw(), bytes=q.payload_bytes(), table=q.table, id=q.c("id"))

        async def run(conn: AsyncConn) -> DictRow | None:
            return await (await conn.execute(query, {"id": int(message_id)})).fetchone()

        try:
            row = await self._read(run, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, f"loading the payload of message {int(message_id)}",
                               timeout_ms=self.read_timeout_ms)
        if row is None:
            return DlqError("not_found", f"message {int(message_id)} does not exist")
        text = str(row["text"] or "")
        return PayloadText(id=int(message_id), text=text if exact else literal(text), parsed=bool(row["parsed"]),
                           bytes=int(row["bytes"] or 0), exact=exact)
