"""Changing the dead-letter table: the previews (per code how many go, every refusal with its
reason), the chunked batch mutations (re-queue, discard, undo a discard) and the payload fix.

The preview and the run classify messages with the same SQL (`_classify_sql`), so what the
preview promised is what a chunk does. One chunk is one statement in one transaction; see the
package docstring for its steps and for what happens when the connection dies during COMMIT.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from opsconsole.adapters.dlq.pages import DlqReader
from opsconsole.adapters.dlq.schema import AsyncConn, RequeueTarget
from opsconsole.adapters.dlq.session import CLIENT_GRACE_S
from opsconsole.adapters.dlq.sql import TableSql, as_code
from opsconsole.adapters.pg_connection import ConfigProblem
from opsconsole.domain.dlq import (
    DISCARDED,
    REQUEUED,
    WAITING,
    BatchProgress,
    BatchResult,
    CodeCount,
    DiscardPlan,
    DlqError,
    FixResult,
    Refusal,
    RefusalKind,
    RequeuePlan,
    Selection,
    check_payload_text,
    code_count,
    literal,
)
from opsconsole.domain.models import utcnow

PLAN_TIMEOUT_MS = 30_000  # a preview over a million rows reads every payload once
CHUNK_TIMEOUT_MS = 30_000
DEFAULT_CHUNK = 500
MAX_CHUNK = 5_000
SAMPLE_IDS = 5
REQUEUE_SOURCE = "dlq-requeue"


class CancelFlag(Protocol):
    """asyncio.Event or threading.Event: checked between chunks."""

    def is_set(self) -> bool: ...


ProgressCallback = Callable[[BatchProgress], Awaitable[None] | None]


class _Mismatch(Exception):
    """A chunk's steps disagreed (rolled back); the message is safe to show."""


class DlqStore(DlqReader):
    """Async access to the dead-letter table; one connection, reused, replaced when it dies.

    Reads are serialised on the connection; a bulk action takes the connection one chunk at
    a time, so the list stays usable while a large re-queue runs.
    """

    # -- previews ---------------------------------------------------------------------------
    def _classify_sql(self, q: TableSql, action: str) -> tuple[sql.Composable, sql.Composable]:
        """(kind, reason) CASE expressions over a subquery exposing status, code, problem, never."""
        needed = sql.Literal(DISCARDED if action == "undo_discard" else WAITING)
        if action != "requeue":
            return (sql.SQL("case when status <> {} then 'already_handled' end").format(needed),
                    sql.SQL("case when status <> {} then 'already ' || status end").format(needed))
        kind = sql.SQL("case when status <> {w} then 'already_handled' when never then 'never_requeue' "
                       "when problem is not null then 'invalid_payload' end").format(w=needed)
        reason = sql.SQL("case when status <> {w} then 'already ' || status "
                         "when never then 'error ' || code || ' is never re-queued' "
                         "when problem is not null then problem end").format(w=needed)
        return kind, reason

    async def _plan_rows(self, q: TableSql, selection: Selection, action: str) -> tuple[list[DictRow], Selection]:
        """Aggregate the selection by (code, refusal); a filter selection is first bounded to the
        messages that exist now (`upto_id`), and the bounded selection is returned."""
        kind, reason = self._classify_sql(q, action)

        async def run(conn: AsyncConn) -> tuple[list[DictRow], Selection]:
            bounded = selection
            if selection.ids is None and selection.upto_id is None:
                bounded = replace(selection, upto_id=await self._max_id(conn, q))
            params: dict[str, Any] = {"samples": SAMPLE_IDS}
            query = sql.SQL(
                "select code, kind, reason, count(*) as n, "
                "(array_agg(id order by id) filter (where kind is not null))[1:%(samples)s] as sample "
                "from (select id, code, {kind} as kind, {reason} as reason from ("
                "select {id} as id, ({status})::text as status, {code} as code, {problem} as problem, "
                "{never} as never from {table} as t where {where}) x) y group by 1, 2, 3").format(
                kind=kind, reason=reason, id=q.c("id"), status=q.c("status"), code=q.c("error_code"),
                problem=q.problem() if action == "requeue" else sql.SQL("null::text"),
                never=q.never_expr() if action == "requeue" else sql.SQL("false"), table=q.table,
                where=q.where(q.selection_conds(bounded, params)))
            rows = await (await conn.execute(query, params)).fetchall()
            return rows, bounded

        return await self._read(run, PLAN_TIMEOUT_MS)

    def _summarise(self, q: TableSql, selection: Selection, rows: Sequence[Mapping[str, Any]],
                   ) -> tuple[int, int, tuple[CodeCount, ...], tuple[Refusal, ...]]:
        never = frozenset(q.never)
        per_code: dict[int | None, list[int]] = {}
        refusals: dict[tuple[str, str], list[Any]] = {}
        selected = ok = 0
        for r in rows:
            n = int(r["n"])
            code = as_code(r["code"])
            selected += n
            counts = per_code.setdefault(code, [0, 0, 0])
            counts[0] += n
            if r["kind"] is None:
                ok += n
                counts[1] += n
            else:
                counts[2] += n
                entry = refusals.setdefault((str(r["kind"]), str(r["reason"])), [0, []])
                entry[0] += n
                entry[1].extend(int(i) for i in (r["sample"] or []))
        if selection.ids is not None and len(selection.ids) > selected:
            refusals[("not_found", "no such message")] = [len(selection.ids) - selected, []]
        by_code = tuple(sorted((code_count(c, never, v[0], v[1], v[2]) for c, v in per_code.items()),
                               key=lambda cc: (-cc.selected, cc.error_code is None, cc.error_code or 0)))
        order = {"already_handled": 0, "never_requeue": 1, "invalid_payload": 2, "not_found": 3}
        refused = tuple(sorted((Refusal(kind=_refusal_kind(k), reason=literal(reason, single_line=True, limit=160),
                                        count=v[0], sample_ids=tuple(sorted(v[1])[:SAMPLE_IDS]))
                                for (k, reason), v in refusals.items()),
                               key=lambda rf: (order.get(rf.kind, 9), -rf.count, rf.reason)))
        return selected, ok, by_code, refused

    async def plan_requeue(self, selection: Selection) -> RequeuePlan | DlqError:
        """The preview: per error code how many go and how many are refused, and every refusal
        with its reason (already handled, never-requeue code, invalid payload, not found). The
        returned plan's selection is bounded to the messages that exist now (`upto_id`)."""
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        _mapping, q = prepared
        target = await self._target_or_error()
        if isinstance(target, DlqError):
            return target
        try:
            rows, bounded = await self._plan_rows(q, selection, "requeue")
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "previewing the re-queue", timeout_ms=PLAN_TIMEOUT_MS)
        selected, ok, by_code, refused = self._summarise(q, selection, rows)
        return RequeuePlan(selection=bounded, target=target.describe, selected=selected, will_requeue=ok,
                           by_code=by_code, refused=refused, never_requeue_codes=tuple(sorted(q.never)),
                           planned_at=utcnow())

    async def plan_discard(self, selection: Selection) -> DiscardPlan | DlqError:
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        mapping, q = prepared
        if not mapping.has("discard_reason"):
            return DlqError("config", f"{literal(mapping.table, single_line=True, limit=80)} has no discard_reason "
                                      "column: discarding is off")
        try:
            rows, bounded = await self._plan_rows(q, selection, "discard")
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "previewing the discard", timeout_ms=PLAN_TIMEOUT_MS)
        selected, ok, by_code, refused = self._summarise(q, selection, rows)
        return DiscardPlan(selection=bounded, selected=selected, will_discard=ok, by_code=by_code, refused=refused,
                           planned_at=utcnow())

    # -- actions ----------------------------------------------------------------------------
    async def requeue(self, selection: Selection | RequeuePlan, *, chunk_size: int = DEFAULT_CHUNK,
                      on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> BatchResult:
        """Re-queue the selection into `[dlq] requeue`, chunk by chunk (one transaction each).
        Pass the plan from `plan_requeue` so the run is bounded to what was previewed."""
        expected = selection.will_requeue + selection.refused_count if isinstance(selection, RequeuePlan) else None
        sel = selection.selection if isinstance(selection, RequeuePlan) else selection
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return BatchResult(action="requeue", target=self.target_description, errors=(prepared,))
        mapping, q = prepared
        target = await self._target_or_error()
        if isinstance(target, DlqError):
            return BatchResult(action="requeue", target=self.target_description, errors=(target,))
        if not mapping.can_update:
            return BatchResult(action="requeue", target=target.describe, errors=(DlqError(
                "permission", f"the console's user may not update {literal(mapping.table, single_line=True)}"),))
        return await self._batch("requeue", q, sel, target=target, expected=expected, chunk_size=chunk_size,
                                 on_progress=on_progress, cancel=cancel)

    async def discard(self, selection: Selection | DiscardPlan, reason: str, *, chunk_size: int = DEFAULT_CHUNK,
                      on_progress: ProgressCallback | None = None, cancel: CancelFlag | None = None) -> BatchResult:
        """Mark waiting messages discarded with `reason` (nothing is deleted; undo_discard reverts)."""
        expected = selection.selected if isinstance(selection, DiscardPlan) else None
        sel = selection.selection if isinstance(selection, DiscardPlan) else selection
        reason = reason.strip()
        if not reason:
            return BatchResult(action="discard", target="", errors=(DlqError("invalid", "give a reason to discard"),))
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return BatchResult(action="discard", target="", errors=(prepared,))
        mapping, q = prepared
        if not mapping.has("discard_reason"):
            return BatchResult(action="discard", target="", errors=(DlqError(
                "config", f"{literal(mapping.table, single_line=True, limit=80)} has no discard_reason column: "
                          "discarding is off"),))
        return await self._batch("discard", q, sel, reason=reason, expected=expected, chunk_size=chunk_size,
                                 on_progress=on_progress, cancel=cancel)

    async def undo_discard(self, ids: Selection | Iterable[int], *, chunk_size: int = DEFAULT_CHUNK,
                           on_progress: ProgressCallback | None = None,
                           cancel: CancelFlag | None = None) -> BatchResult:
        """Put discarded messages back to waiting (the discard is kept in their history)."""
        sel = ids if isinstance(ids, Selection) else Selection.of_ids(ids)
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return BatchResult(action="undo_discard", target="", errors=(prepared,))
        _mapping, q = prepared
        return await self._batch("undo_discard", q, sel, expected=len(sel.ids) if sel.ids is not None else None,
                                 chunk_size=chunk_size, on_progress=on_progress, cancel=cancel)

    def _candidates(self, q: TableSql, selection: Selection, action: str, params: dict[str, Any]) -> sql.Composable:
        if selection.ids is not None:
            return sql.SQL("select unnest(%(chunk)s::int8[]) as id")
        conds = q.selection_conds(selection, params)
        params["needed"] = DISCARDED if action == "undo_discard" else WAITING
        conds.append(sql.SQL("{} = %(needed)s").format(q.c("status")))
        conds.append(sql.SQL("{} > %(after)s").format(q.c("id")))
        return sql.SQL("select {id} as id from {table} as t where {where} order by {id} limit %(chunk_size)s").format(
            id=q.c("id"), table=q.table, where=q.where(conds))

    def _chunk_statement(self, q: TableSql, action: str, cand: sql.Composable, target: RequeueTarget | None,
                         ) -> sql.Composed:
        m = q.m
        kind, reason = self._classify_sql(q, action)
        locked = sql.SQL(
            "locked as materialized (select {id} as id, ({status})::text as status, {code} as code, "
            "{problem} as problem, {never} as never, {payload} as payload, {workflow} as workflow "
            "from {table} as t where {id} in (select id from cand) order by {id} for update of t), "
            "cls as (select *, {kind} as kind, {reason} as reason from locked)").format(
            id=q.c("id"), status=q.c("status"), code=q.c("error_code"),
            problem=q.problem() if action == "requeue" else sql.SQL("null::text"),
            never=q.never_expr() if action == "requeue" else sql.SQL("false"),
            payload=q.payload() if action == "requeue" else sql.SQL("null::jsonb"),
            workflow=q.opt("workflow") if action == "requeue" else sql.SQL("null"), table=q.table,
            kind=kind, reason=reason)
        sets: list[sql.Composable] = []

        def set_(logical: str, value: sql.Composable) -> None:
            if m.has(logical):
                sets.append(sql.SQL("{} = {}").format(sql.Identifier(m[logical]), value))

        history_event: sql.Composable | None = None
        step: sql.Composable
        inserted: sql.Composable
        if action == "requeue":
            assert target is not None
            set_("status", sql.Literal(REQUEUED))
            set_("requeued_at", sql.SQL("now()"))
            set_("requeued_by", sql.SQL("%(who)s::text"))
            if target.kind == "pgmq":
                set_("requeue_ref", sql.SQL("%(ref_prefix)s::text || s.msg_id"))
                step = sql.SQL(
                    "sent as (select l.id, pgmq.send(%(queue)s::text, l.payload) as msg_id from cls l "
                    "where l.kind is null), "
                    "upd as (update {table} as t set {sets} from sent s where {id} = s.id returning {id} as id) "
                ).format(table=q.table, sets=sql.SQL(", ").join(sets), id=q.c("id"))
                inserted = sql.SQL("(select count(*) from sent)")
            else:
                assert target.table is not None
                values = {"campaign_id": sql.SQL("coalesce(l.workflow::text, {})").format(sql.Literal(REQUEUE_SOURCE)),
                          "to_number": sql.SQL("l.payload->>'To'"), "body": sql.SQL("l.payload->>'Body'"),
                          "payload": sql.SQL("l.payload") if target.payload_type == "jsonb"
                          else sql.SQL("l.payload::json"),
                          "source": sql.Literal(REQUEUE_SOURCE), "dlq_message_id": sql.SQL("l.id")}
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in target.fills)
                vals = sql.SQL(", ").join(values[c] for c in target.fills)
                if target.link_column is not None:
                    ret: sql.Composable = sql.SQL("{} as link, {} as qid").format(
                        sql.Identifier(target.link_column),
                        sql.Identifier(target.id_column) if target.id_column else sql.SQL("null"))
                    set_("requeue_ref", sql.SQL("%(ref_prefix)s::text || coalesce(s.qid::text, '?')"))
                    source = sql.SQL("ins s where {} = s.link").format(q.c("id"))
                else:
                    ret = sql.SQL("1 as one")
                    set_("requeue_ref", sql.SQL("%(ref_prefix)s::text"))
                    source = sql.SQL("cls s where {} = s.id and s.kind is null").format(q.c("id"))
                step = sql.SQL(
                    "ins as (insert into {target} ({cols}) select {vals} from cls l where l.kind is null "
                    "returning {ret}), "
                    "upd as (update {table} as t set {sets} from {source} returning {id} as id) ").format(
                    target=target.table, cols=cols, vals=vals, ret=ret, table=q.table,
                    sets=sql.SQL(", ").join(sets), source=source, id=q.c("id"))
                inserted = sql.SQL("(select count(*) from ins)")
        elif action == "discard":
            set_("status", sql.Literal(DISCARDED))
            set_("discarded_at", sql.SQL("now()"))
            set_("discarded_by", sql.SQL("%(who)s::text"))
            set_("discard_reason", sql.SQL("%(reason)s::text"))
            history_event = sql.SQL("jsonb_build_object('action', 'discard', 'at', now(), 'by', %(who)s::text, "
                                    "'reason', %(reason)s::text)")
        else:
            set_("status", sql.Literal(WAITING))
            set_("discarded_at", sql.SQL("null"))
            set_("discarded_by", sql.SQL("null"))
            set_("discard_reason", sql.SQL("null"))
            history_event = sql.SQL("jsonb_build_object('action', 'undo_discard', 'at', now(), 'by', %(who)s::text, "
                                    "'previous_reason', {reason}, 'discarded_by', {by}, 'discarded_at', {at})").format(
                reason=q.opt("discard_reason"), by=q.opt("discarded_by"), at=q.opt("discarded_at"))
        if history_event is not None:
            if m.has("history"):
                sets.append(sql.SQL("{h} = (case when jsonb_typeof({th}) = 'array' then {th} else '[]'::jsonb end) "
                                    "|| jsonb_build_array({e})").format(h=sql.Identifier(m["history"]),
                                                                         th=q.c("history"), e=history_event))
            step = sql.SQL("upd as (update {table} as t set {sets} from cls s where {id} = s.id and s.kind is null "
                           "returning {id} as id) ").format(table=q.table, sets=sql.SQL(", ").join(sets),
                                                             id=q.c("id"))
            inserted = sql.SQL("(select count(*) from cls where kind is null)")
        return sql.SQL(
            "with cand as ({cand}), {locked}, {step}"
            "select (select max(id) from cand) as last_id, (select count(*) from cand) as scanned, "
            "(select count(*) from locked) as found, "
            "(select count(*) from cls where kind is null) as eligible, {inserted} as inserted, "
            "coalesce((select array_agg(id order by id) from upd), '{{}}'::int8[]) as done_ids, "
            "coalesce((select jsonb_agg(jsonb_build_array(kind, reason, code::text, id) order by id) from cls "
            "where kind is not null), '[]'::jsonb) as refused, now() as tx_time").format(
            cand=cand, locked=locked, step=step, inserted=inserted)

    async def _batch(self, action: str, q: TableSql, selection: Selection, *, target: RequeueTarget | None = None,
                     reason: str = "", expected: int | None, chunk_size: int, on_progress: ProgressCallback | None,
                     cancel: CancelFlag | None) -> BatchResult:
        started = time.perf_counter()
        chunk_size = max(1, min(MAX_CHUNK, int(chunk_size)))
        described = target.describe if target is not None else ""
        params: dict[str, Any] = {"who": self.operator, "reason": reason, "chunk_size": chunk_size, "after": 0,
                                  "ref_prefix": target.ref_prefix if target else "",
                                  "queue": target.queue if target else ""}
        if selection.by_filter and selection.upto_id is None:
            try:
                top = await self._read(lambda conn: self._max_id(conn, q), self.read_timeout_ms)
            except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
                return BatchResult(action=action, target=described, errors=(self._error(exc, "starting"),))
            selection = replace(selection, upto_id=top)
        statement = self._chunk_statement(q, action, self._candidates(q, selection, action, params), target)
        explicit = sorted(selection.ids) if selection.ids is not None else None
        done: list[int] = []
        refused: dict[tuple[str, str], list[Any]] = {}
        skipped = chunks = uncertain = 0
        errors: list[DlqError] = []
        cancelled = False
        position = 0

        def absorb(row: Mapping[str, Any]) -> list[int]:
            """Count one committed chunk; returns the ids it changed."""
            nonlocal skipped, chunks
            ids = [int(i) for i in row["done_ids"]]
            done.extend(ids)
            vanished = int(row["scanned"]) - int(row["found"])  # explicit: no such id; filter: deleted meanwhile
            if explicit is not None and vanished:
                refused.setdefault(("not_found", "no such message"), [0, []])[0] += vanished
            elif vanished:
                skipped += vanished
            for kind_text, why, _code, rid in row["refused"]:
                if kind_text == "already_handled":
                    skipped += 1
                    continue
                entry = refused.setdefault((str(kind_text), str(why)), [0, []])
                entry[0] += 1
                if len(entry[1]) < SAMPLE_IDS:
                    entry[1].append(int(rid))
            chunks += 1
            return ids

        async def report(ids: list[int]) -> None:
            if on_progress is None:
                return
            progress = BatchProgress(action=action, chunks_done=chunks, changed=len(done),
                                     refused=sum(v[0] for v in refused.values()), skipped=skipped,
                                     expected=expected, chunk_ids=tuple(ids), elapsed_s=time.perf_counter() - started)
            maybe = on_progress(progress)
            if inspect.isawaitable(maybe):
                await maybe

        while True:
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            if explicit is not None:
                if position >= len(explicit):
                    break
                params["chunk"] = explicit[position:position + chunk_size]
                position += chunk_size
            outcome = await self._run_chunk(action, q, statement, params)
            if isinstance(outcome, DlqError):
                errors.append(outcome)
                break
            if isinstance(outcome, _Uncertain):
                errors.append(outcome.error)
                if outcome.committed is True:  # looked up after reconnecting: it did commit
                    await report(absorb(outcome.row))
                elif outcome.committed is None:
                    uncertain += len(outcome.row["done_ids"])
                break
            scanned = int(outcome["scanned"])
            if explicit is None and scanned == 0:
                break
            ids = absorb(outcome)
            if explicit is None:
                params["after"] = int(outcome["last_id"])
            await report(ids)
            if explicit is None and scanned < chunk_size:
                break
        if expected is not None and selection.by_filter and not errors and not cancelled:
            # Messages of the previewed set that someone else handled before this run reached them
            # no longer match "waiting"; the preview's total accounts for them.
            skipped = max(skipped, expected - len(done) - sum(v[0] for v in refused.values()))
        refusals = tuple(Refusal(kind=_refusal_kind(k), reason=literal(why, single_line=True, limit=160), count=v[0],
                                 sample_ids=tuple(v[1])) for (k, why), v in refused.items())
        counts = {"requeued": 0, "discarded": 0, "restored": 0}
        counts[{"requeue": "requeued", "discard": "discarded", "undo_discard": "restored"}[action]] = len(done)
        return BatchResult(action=action, target=described, skipped_already_handled=skipped, refused=refusals,
                           errors=tuple(errors), chunks_done=chunks, cancelled=cancelled, uncertain=uncertain,
                           ids=tuple(sorted(done)), elapsed_s=time.perf_counter() - started, **counts)

    async def _max_id(self, conn: AsyncConn, q: TableSql) -> int:
        row = await (await conn.execute(sql.SQL("select max({}) as m from {} as t").format(q.c("id"), q.table))
                     ).fetchone()
        return int(row["m"] or 0) if row is not None else 0

    async def _run_chunk(self, action: str, q: TableSql, statement: sql.Composed,
                         params: dict[str, Any]) -> DictRow | DlqError | _Uncertain:
        """One chunk in one transaction. A lost connection before COMMIT rolled everything back
        (when it was lost before the chunk was even sent, the chunk is retried once on a new
        connection); during COMMIT the outcome is looked up after reconnecting."""
        what = {"requeue": "re-queue", "discard": "discard", "undo_discard": "undo discard"}[action]
        for attempt in (1, 2):
            phase = "connect"
            fresh = False
            row: DictRow | None = None
            try:
                async with self._loop_lock():
                    conn, fresh = await self._session()
                    async with asyncio.timeout(CHUNK_TIMEOUT_MS / 1000 + CLIENT_GRACE_S):
                        phase = "begin"  # nothing of the chunk has been sent yet
                        await self._set_timeouts(conn, CHUNK_TIMEOUT_MS)
                        async with conn.transaction():
                            phase = "statement"
                            row = await (await conn.execute(statement, params)).fetchone()
                            assert row is not None
                            eligible, inserted, done = int(row["eligible"]), int(row["inserted"]), len(row["done_ids"])
                            if not eligible == inserted == done:
                                raise _Mismatch(f"{what} chunk rolled back: {eligible} eligible, {inserted} sent to "
                                                f"the target, {done} marked — nothing of this chunk was changed")
                            phase = "commit"
                        phase = "done"
                return row
            except _Mismatch as exc:
                return DlqError("conflict", str(exc))
            except (psycopg.OperationalError, TimeoutError) as exc:
                self._drop()
                if phase in ("connect", "begin") and not fresh and attempt == 1 and \
                        isinstance(exc, psycopg.OperationalError):
                    continue  # the reused connection had died while idle: nothing was sent
                error = self._error(exc, f"{what} stopped")
                if phase == "commit" and row is not None:
                    return await self._reconcile(action, q, row, error)
                return error
            except (psycopg.Error, OSError, ConfigProblem) as exc:
                return self._error(exc, f"{what} chunk failed (rolled back)", timeout_ms=CHUNK_TIMEOUT_MS)
        raise AssertionError("unreachable")

    async def _reconcile(self, action: str, q: TableSql, row: Mapping[str, Any], error: DlqError) -> _Uncertain:
        """The connection died during COMMIT: reconnect and look at the chunk's rows to learn
        whether it was committed (status and the transaction's timestamp match) or rolled back."""
        ids = [int(i) for i in row["done_ids"]]
        if not ids:
            return _Uncertain(row=row, committed=True, error=error)
        m = q.m
        status = {"requeue": REQUEUED, "discard": DISCARDED, "undo_discard": WAITING}[action]
        stamp = {"requeue": "requeued_at", "discard": "discarded_at"}.get(action)
        conds = [sql.SQL("{} = any(%(ids)s::int8[])").format(q.c("id")),
                 sql.SQL("{} = %(status)s").format(q.c("status"))]
        if stamp is not None and m.has(stamp):
            conds.append(sql.SQL("{} = %(tx_time)s").format(q.c(stamp)))
        query = sql.SQL("select count(*) as n from {table} as t where {where}").format(
            table=q.table, where=q.where(conds))
        params = {"ids": ids, "status": status, "tx_time": row["tx_time"]}

        async def run(conn: AsyncConn) -> int:
            got = await (await conn.execute(query, params)).fetchone()
            return int(got["n"]) if got is not None else 0

        try:
            found = await self._read(run, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            again = self._error(exc, "checking the interrupted chunk")
            return _Uncertain(row=row, committed=None, error=DlqError(
                error.kind, f"{error.message}; the last chunk ({len(ids)} messages) may or may not have been "
                            f"committed and could not be checked: {again.message}"))
        if found == len(ids):
            return _Uncertain(row=row, committed=True, error=DlqError(
                error.kind, f"{error.message}; the chunk in flight was committed (checked after reconnecting)"))
        if found == 0:
            return _Uncertain(row=row, committed=False, error=DlqError(
                error.kind, f"{error.message}; the chunk in flight was rolled back (checked after reconnecting)"))
        return _Uncertain(row=row, committed=None, error=DlqError(
            error.kind, f"{error.message}; the chunk in flight ({len(ids)} messages) could not be confirmed: "
                        f"{found} of them look changed — check them before acting again"))

    # -- payload fixes ------------------------------------------------------------------------
    async def fix_payload(self, message_id: int, new_json_text: str, *,
                          expected_digest: str | None = None) -> FixResult | DlqError:
        """Replace a waiting message's payload with `new_json_text` after validating it (JSON
        object, the queue's fields). The original payload/raw body goes into the history column;
        `expected_digest` (from the detail the editor started from) refuses a concurrent edit."""
        check = check_payload_text(new_json_text)
        if not check.ok:
            return DlqError("invalid", f"not accepted: {check.problem}")
        prepared = await self._prepared()
        if isinstance(prepared, DlqError):
            return prepared
        mapping, q = prepared
        if not mapping.has("history"):
            return DlqError("config", f"{literal(mapping.table, single_line=True, limit=80)} has no history column, "
                                      "so the original payload could not be kept: add one (alter table … add column "
                                      "history jsonb not null default '[]') or map one with [dlq] columns = "
                                      "{ history = \"<column>\" }")
        mid = int(message_id)
        p, raw = q.payload(), q.raw()
        lock_q = sql.SQL("select ({status})::text as status, md5(coalesce(({p})::text, {raw}, '')) as digest, "
                         "{bytes} as bytes from {table} as t where {id} = %(id)s for update of t").format(
            status=q.c("status"), p=p, raw=raw, bytes=q.payload_bytes(), table=q.table, id=q.c("id"))
        sets = [sql.SQL("{} = %(new)s::{}").format(sql.Identifier(mapping["payload"]),
                                                     sql.SQL(mapping.types["payload"]))]
        if mapping.has("payload_raw"):
            sets.append(sql.SQL("{} = null").format(sql.Identifier(mapping["payload_raw"])))
        if mapping.has("payload_bytes"):
            sets.append(sql.SQL("{} = octet_length(%(new)s::text)").format(sql.Identifier(mapping["payload_bytes"])))
        sets.append(sql.SQL(
            "{h} = (case when jsonb_typeof({th}) = 'array' then {th} else '[]'::jsonb end) || jsonb_build_array("
            "jsonb_build_object('action', 'fix_payload', 'at', now(), 'by', %(who)s::text, 'payload', {p}, "
            "'payload_raw', {raw}, 'bytes_before', %(before)s::int, 'bytes_after', octet_length(%(new)s::text)))"
        ).format(h=sql.Identifier(mapping["history"]), th=q.c("history"), p=p, raw=raw))
        update_q = sql.SQL("update {table} as t set {sets} where {id} = %(id)s").format(
            table=q.table, sets=sql.SQL(", ").join(sets), id=q.c("id"))
        params: dict[str, Any] = {"id": mid, "new": check.canonical, "who": self.operator}

        async def run(conn: AsyncConn) -> DlqError | tuple[int, int]:
            async with conn.transaction():
                cur = await conn.execute(lock_q, params)
                current = await cur.fetchone()
                if current is None:
                    return DlqError("not_found", f"message {mid} does not exist")
                if current["status"] != WAITING:
                    return DlqError("conflict", f"message {mid} is {current['status']}, not waiting: only waiting "
                                                "messages can be fixed")
                if expected_digest is not None and current["digest"] != expected_digest:
                    return DlqError("conflict", f"message {mid} changed since it was opened (someone else edited "
                                                "it); reopen it and edit again")
                params["before"] = int(current["bytes"] or 0)
                await conn.execute(update_q, params)
                return params["before"], len(check.canonical.encode())

        try:
            outcome = await self._read(run, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, f"fixing message {mid}", timeout_ms=self.read_timeout_ms)
        if isinstance(outcome, DlqError):
            return outcome
        detail = await self.get(mid)
        if isinstance(detail, DlqError):
            return detail
        return FixResult(id=mid, bytes_before=outcome[0], bytes_after=outcome[1], detail=detail)


@dataclass(frozen=True, slots=True)
class _Uncertain:
    """A chunk whose COMMIT lost its answer: committed True/False after checking, None unknown."""

    row: Mapping[str, Any]
    committed: bool | None
    error: DlqError


def _refusal_kind(text: str) -> RefusalKind:
    if text == "never_requeue":
        return "never_requeue"
    if text == "invalid_payload":
        return "invalid_payload"
    if text == "not_found":
        return "not_found"
    return "already_handled"
