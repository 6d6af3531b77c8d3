"""Database actions: cancel (`pg_cancel_backend`, disruptive) and terminate
(`pg_terminate_backend`, destructive) one or several sessions — the runbook's "kill
long-running queries via SQL Editor (`SELECT pg_terminate_backend(pid) ...`)".

Params: `{"pids": [4242, 4243]}`. The preview reads `pg_stat_activity` for exactly those PIDs and
lists each one's user, application, state, duration and query. Never touched, and listed under
"excluded" with the reason: the console's own connections (application_name "opsconsole…", so
another operator's console too), non-client backends (checkpointer, autovacuum, walsender…),
sessions whose details the role may not see, and PIDs that do not exist.

Execution signals each PID only if it is still the same session that was previewed (same PID
*and* same `backend_start`, checked in the same statement that signals), so a PID reused by a new
connection is never hit. Per PID the result is `signalled`, `already_gone` (ended meanwhile, or
the PID now belongs to another session), `permission_denied` (explained: which role may not
signal which, and what to grant) or `error`. Outcome: ok / partial / failed; never an exception
for an expected failure. Connections go to `supabase.database_url` with
application_name "opsconsole-action".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import DictRow, dict_row

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.adapters.postgres import (
    STATEMENT_TIMEOUT_MS,
    ConfigProblem,
    DbTarget,
    describe_connect_error,
    first_line,
    format_duration,
    parse_target,
    reveal_dsn,
)
from opsconsole.domain.db import CONSOLE_APP_PREFIX
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import printable
from opsconsole.settings import Settings

ACTION_APP_NAME = "opsconsole-action"
MAX_PIDS = 100
QUERY_ITEM_CHARS = 500  # query text kept per item (journal, detail view)
QUERY_LINE_CHARS = 100  # query text in a preview line
TERMINATE_WAIT_S = 2.0  # how long to watch terminated sessions disappear
CANCEL_WAIT_S = 1.0  # how long to watch a cancelled query stop
LOCK_PREFIX = "db.backend:"

SIGNALLED = "signalled"
ALREADY_GONE = "already_gone"
PERMISSION_DENIED = "permission_denied"
ERROR = "error"
GOOD_RESULTS = frozenset({SIGNALLED, ALREADY_GONE})

AsyncConn = psycopg.AsyncConnection[DictRow]

PREVIEW_SQL = """
select a.pid, coalesce(a.usename, '') as usename, coalesce(a.application_name, '') as application_name,
       coalesce(a.datname, '') as datname, coalesce(host(a.client_addr), 'local') as client,
       coalesce(a.state, '') as state, a.backend_type, a.backend_start, a.query_start, a.xact_start,
       extract(epoch from clock_timestamp() - case when a.state = 'active' then a.query_start
                                                   else a.state_change end)::float8 as duration_s,
       left(coalesce(a.query, ''), %(chars)s) as query,
       a.pid = pg_backend_pid() as own,
       case when a.wait_event_type = 'Lock' then pg_blocking_pids(a.pid) else '{}'::int[] end as blocked_by,
       (select count(*) from pg_stat_activity w
         where w.wait_event_type = 'Lock' and a.pid = any(pg_blocking_pids(w.pid)))::int as blocking,
       current_user as me,
       -- PostgreSQL's rule for pg_cancel/terminate_backend, so the preview can say it in advance
       coalesce(not (r.rolsuper and not (select rolsuper from pg_roles where rolname = current_user))
                and (pg_has_role(current_user, a.usesysid, 'USAGE')
                     or pg_has_role(current_user, 'pg_signal_backend', 'USAGE')), false) as may_signal
from pg_stat_activity a
left join pg_roles r on r.oid = a.usesysid
where a.pid = any(%(pids)s)
"""

# Signal only the session that was previewed: same PID and same backend_start, in one statement.
SIGNAL_SQL = {
    "cancel": "select pg_cancel_backend(a.pid) as ok from pg_stat_activity a "
              "where a.pid = %(pid)s and a.backend_start = %(start)s::timestamptz",
    "terminate": "select pg_terminate_backend(a.pid) as ok from pg_stat_activity a "
                 "where a.pid = %(pid)s and a.backend_start = %(start)s::timestamptz",
}
WHO_SQL = "select a.backend_start, coalesce(a.state, '') as state, a.query_start " \
          "from pg_stat_activity a where a.pid = %(pid)s"


class _DbProblem(Exception):
    """A database failure, described safely for the operator."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def parse_pids(params: Mapping[str, Any]) -> list[int] | str:
    """The PIDs in `params["pids"]`, deduplicated and sorted, or why they are unusable."""
    raw = params.get("pids")
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        return "no session selected: params need pids, a list of backend PIDs"
    pids: set[int] = set()
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
            return f"{printable(repr(value), single_line=True, limit=40)} is not a backend PID"
        pids.add(value)
    if len(pids) > MAX_PIDS:
        return f"{len(pids)} sessions selected; at most {MAX_PIDS} per action"
    unknown = set(params) - {"pids"}
    if unknown:
        return f"unexpected parameters: {', '.join(sorted(map(str, unknown)))}"
    return sorted(pids)


def target_for(pids: Sequence[int]) -> str:
    if len(pids) == 1:
        return f"PID {pids[0]}"
    shown = ", ".join(str(p) for p in pids[:8]) + (", …" if len(pids) > 8 else "")
    return f"{len(pids)} sessions ({shown})"


def confirm_text_for(pids: Sequence[int]) -> str:
    return str(pids[0]) if len(pids) == 1 else f"{len(pids)} sessions"


class _BackendSignal:
    """Shared by cancel and terminate: preview from pg_stat_activity, signal per PID."""

    id = ""
    title = ""
    tier = RiskTier.DISRUPTIVE
    start_key = ""
    tab = "database"  # where the console serves it (the palette shows that tab)
    description = ""
    kind = ""  # "cancel" | "terminate"
    verb = ""  # "Cancel the running query of" | "Terminate"
    warning = ""
    needs = "[supabase] database_url"
    params = (ParamSpec("pids", ParamType.INT_LIST, "the backend PIDs of the sessions (Database tab, or "
                        "pg_stat_activity)", required=True),)

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.timeout_s = float(settings.checks.timeout_s)

    # -- connection ------------------------------------------------------------------------
    def _dsn(self) -> tuple[str, DbTarget, str]:
        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            raise _DbProblem("not configured: supabase.database_url")
        secret = sb.database_url
        try:
            dsn = reveal_dsn(secret)
            return dsn, parse_target(dsn, hint=secret.hint), secret.hint
        except ConfigProblem as exc:
            raise _DbProblem(f"database URL unusable: {exc}") from None

    async def _connect(self) -> tuple[AsyncConn, DbTarget]:
        dsn, target, hint = self._dsn()
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, prepare_threshold=None, row_factory=dict_row,
                    connect_timeout=max(2, math.ceil(self.timeout_s)), application_name=ACTION_APP_NAME)
                await conn.execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
        except (TimeoutError, psycopg.OperationalError, OSError) as exc:
            raise _DbProblem(describe_connect_error(exc, what="database", target=target, hint=hint,
                                                    timeout_s=self.timeout_s)[1]) from None
        return conn, target

    @staticmethod
    async def _close(conn: AsyncConn) -> None:
        with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
            async with asyncio.timeout(2.0):
                await conn.close()

    # -- preview ---------------------------------------------------------------------------
    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        pids = parse_pids(params)
        if isinstance(pids, str):
            return Refusal(RefusalReason.INVALID, pids)
        as_of = self.clock()  # before reading: the data is at least this fresh
        try:
            conn, target = await self._connect()
        except _DbProblem as exc:
            return Refusal(RefusalReason.UNAVAILABLE, f"cannot read the sessions: {exc}")
        try:
            async with asyncio.timeout(self.timeout_s):
                rows = await (await conn.execute(PREVIEW_SQL, {"pids": pids, "chars": QUERY_ITEM_CHARS})).fetchall()
        except TimeoutError:
            return Refusal(RefusalReason.UNAVAILABLE, f"pg_stat_activity did not answer within {self.timeout_s:g} s")
        except psycopg.Error as exc:
            return Refusal(RefusalReason.UNAVAILABLE, f"cannot read the sessions: {first_line(exc, target)}")
        finally:
            await self._close(conn)
        return self._preview(pids, {int(r["pid"]): r for r in rows}, as_of)

    def _preview(self, pids: list[int], rows: Mapping[int, Mapping[str, Any]], as_of: datetime) -> Preview | Refusal:
        items: list[dict[str, Any]] = []
        excluded: list[dict[str, Any]] = []
        for pid in pids:
            r = rows.get(pid)
            reason = self._exclusion(r)
            if reason is not None:
                excluded.append(self._excluded_item(pid, r, reason))
                continue
            assert r is not None
            items.append({
                "pid": pid,
                "user": printable(str(r["usename"]), single_line=True, limit=64),
                "application": printable(str(r["application_name"]), single_line=True, limit=64),
                "database": printable(str(r["datname"]), single_line=True, limit=64),
                "client": printable(str(r["client"]), single_line=True, limit=64),
                "state": str(r["state"]),
                "backend_start": r["backend_start"].isoformat(),  # identity check at execute (full precision)
                "duration_s": round(max(0.0, float(r["duration_s"] or 0.0)), 1),
                "blocked_by": [int(p) for p in (r["blocked_by"] or [])],
                "blocking": int(r["blocking"] or 0),
                "may_signal": bool(r["may_signal"]),
                "query": printable(str(r["query"]), single_line=True, limit=QUERY_ITEM_CHARS),
            })
        if not items:
            why = "; ".join(f"PID {e['pid']}: {e['reason']}" for e in excluded)
            return Refusal(RefusalReason.NOTHING_TO_DO, f"nothing to {self.kind}: {why}",
                           {"excluded": excluded})
        chosen = [int(it["pid"]) for it in items]
        lines = [f"{self.verb} {target_for(chosen)}:"]
        for it in items:
            app = f" {it['application']}" if it["application"] else ""
            block = f", blocks {it['blocking']}" if it["blocking"] else ""
            lines.append(f"PID {it['pid']}  {it['user']}{app}  {it['state'] or '?'} "
                         f"{format_duration(float(it['duration_s']))}{block}")
            lines.append(f"    {printable(str(it['query']), single_line=True, limit=QUERY_LINE_CHARS) or '(no query)'}")
            if not it["may_signal"]:
                me = printable(str(rows[int(it["pid"])]["me"]), single_line=True, limit=64)
                lines.append(f"    ! role {me} may not signal role {it['user']}'s sessions: expect "
                             "\"permission denied\" for this one (grant pg_signal_backend)")
        for ex in excluded:
            lines.append(f"Not touched: PID {ex['pid']} — {ex['reason']}")
        return Preview(
            action_id=self.id, title=self.title, tier=self.tier, target=target_for(chosen),
            confirm_text=confirm_text_for(chosen), data_as_of=as_of, lines=tuple(lines), items=tuple(items),
            excluded=tuple(excluded), warning=self.warning, params={"pids": chosen},
            lock_key=LOCK_PREFIX + ",".join(str(p) for p in chosen),
            lock_keys=tuple(f"{LOCK_PREFIX}{p}" for p in chosen))

    @staticmethod
    def _exclusion(r: Mapping[str, Any] | None) -> str | None:
        if r is None:
            return "no such session (it ended already?)"
        if r["own"]:
            return "the console's own connection"
        if str(r["application_name"]).startswith(CONSOLE_APP_PREFIX):
            return "an opsconsole connection (this or another operator's console)"
        if r["backend_type"] is None:
            return ("its details are hidden from this role (grant pg_read_all_stats to see them); "
                    "not signalled blind")
        if r["backend_type"] != "client backend":
            return f"not a client session ({printable(str(r['backend_type']), single_line=True, limit=40)})"
        if r["backend_start"] is None:
            return "its start time is not visible, so it cannot be told from a reused PID"
        return None

    @staticmethod
    def _excluded_item(pid: int, r: Mapping[str, Any] | None, reason: str) -> dict[str, Any]:
        item: dict[str, Any] = {"pid": pid, "reason": reason}
        if r is not None:
            item["user"] = printable(str(r["usename"]), single_line=True, limit=64)
            item["application"] = printable(str(r["application_name"]), single_line=True, limit=64)
            item["backend_type"] = str(r["backend_type"] or "")
        return item

    # -- execute ---------------------------------------------------------------------------
    async def execute(self, preview: Preview) -> Outcome:
        items = [dict(it) for it in preview.items]
        try:
            conn, target = await self._connect()
        except _DbProblem as exc:
            for it in items:
                it.update(result=ERROR, detail="not attempted: no database connection")
            return Outcome(OutcomeStatus.FAILED, f"nothing was {self.done_word}: {exc}", tuple(items), error=str(exc))
        try:
            me = await self._current_user(conn)
            for it in items:
                it.update(await self._signal_one(conn, target, it, me))
            await self._watch(conn, [it for it in items if it["result"] == SIGNALLED])
        finally:
            await self._close(conn)
        return Outcome.from_items(items, good=GOOD_RESULTS, summary=self._summary(items))

    done_word = "signalled"

    async def _current_user(self, conn: AsyncConn) -> str:
        try:
            async with asyncio.timeout(self.timeout_s):
                row = await (await conn.execute("select current_user as u")).fetchone()
        except (TimeoutError, psycopg.Error):
            return "the console's role"
        return str(row["u"]) if row is not None else "the console's role"

    async def _signal_one(self, conn: AsyncConn, target: DbTarget, it: Mapping[str, Any], me: str) -> dict[str, Any]:
        pid = int(it["pid"])
        params = {"pid": pid, "start": it["backend_start"]}
        try:
            async with asyncio.timeout(self.timeout_s):
                row = await (await conn.execute(SIGNAL_SQL[self.kind], params)).fetchone()
                if row is not None and row["ok"]:
                    return {"result": SIGNALLED, "detail": f"{self.kind} signal sent"}
                now = await (await conn.execute(WHO_SQL, {"pid": pid})).fetchone()
        except pg_errors.InsufficientPrivilege as exc:
            return {"result": PERMISSION_DENIED, "detail": self._explain_denied(exc, me, str(it.get("user") or "?"))}
        except TimeoutError:
            return {"result": ERROR, "detail": f"no answer within {self.timeout_s:g} s; state unknown"}
        except psycopg.Error as exc:
            if conn.broken:
                return {"result": ERROR, "detail": f"connection lost: {first_line(exc, target)}"}
            return {"result": ERROR, "detail": first_line(exc, target)}
        if now is None:
            return {"result": ALREADY_GONE, "detail": "the session had ended before it was signalled"}
        if now["backend_start"] is not None and now["backend_start"].isoformat() != it["backend_start"]:
            return {"result": ALREADY_GONE,
                    "detail": "the session ended; its PID now belongs to a newer session, which was not touched"}
        return {"result": ERROR, "detail": f"{self.kind} signal not delivered (the server returned false)"}

    @staticmethod
    def _explain_denied(exc: psycopg.Error, me: str, owner: str) -> str:
        detail = (exc.diag.message_detail or "") if exc.diag is not None else ""
        if "SUPERUSER" in detail:
            return (f"permission denied: role {me} may not signal backends of the superuser role {owner}; "
                    "only a superuser can")
        return (f"permission denied: role {me} may not signal backends of role {owner}: grant "
                f"pg_signal_backend to {me}, or membership in role {owner}")

    async def _watch(self, conn: AsyncConn, signalled: list[dict[str, Any]]) -> None:
        """Briefly watch the signalled sessions; notes whether the signal took effect."""

    def _summary(self, items: Sequence[Mapping[str, Any]]) -> str:
        counts: dict[str, int] = {}
        for it in items:
            counts[str(it["result"])] = counts.get(str(it["result"]), 0) + 1
        parts = []
        if counts.get(SIGNALLED):
            parts.append(f"{self.done_word} {counts[SIGNALLED]} of {_plural(len(items), 'session')}")
        if counts.get(ALREADY_GONE):
            parts.append(f"{counts[ALREADY_GONE]} had ended already")
        denied = [it for it in items if it["result"] == PERMISSION_DENIED]
        if denied:
            why = str(denied[0]["detail"]).removeprefix("permission denied: ")
            parts.append(f"{len(denied)} permission denied ({why})")
        errors = [it for it in items if it["result"] == ERROR]
        if errors:
            parts.append(f"{len(errors)} failed (PID {errors[0]['pid']}: {errors[0]['detail']})")
        return "; ".join(parts) or "nothing done"


class CancelBackends(_BackendSignal):
    """Cancel the running statement of the selected sessions (`pg_cancel_backend`)."""

    id = "db.cancel"
    title = "Cancel query"
    tier = RiskTier.DISRUPTIVE
    start_key = "c"
    description = ("Cancel the running query of the selected sessions (pg_cancel_backend); their "
                   "connections stay open, an open transaction is aborted")
    kind = "cancel"
    verb = "Cancel the running query of"
    done_word = "cancelled"

    async def _watch(self, conn: AsyncConn, signalled: list[dict[str, Any]]) -> None:
        pending = {int(it["pid"]): it for it in signalled}
        deadline = asyncio.get_running_loop().time() + CANCEL_WAIT_S
        while pending:
            for pid, it in list(pending.items()):
                try:
                    row = await (await conn.execute(WHO_SQL, {"pid": pid})).fetchone()
                except psycopg.Error:
                    return
                if row is None:
                    it["detail"] = "cancel signal sent; the session has ended"
                elif row["state"] != "active":
                    it["detail"] = f"query cancelled; the session is now {row['state']}"
                else:
                    continue
                del pending[pid]
            if not pending or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for it in pending.values():
            it["detail"] = (f"cancel signal sent; still active after {CANCEL_WAIT_S:g} s (a query can take a "
                            "moment to notice; refresh to check)")


class TerminateBackends(_BackendSignal):
    """End the selected sessions (`pg_terminate_backend`): their transactions roll back."""

    id = "db.terminate"
    title = "Terminate session"
    tier = RiskTier.DESTRUCTIVE
    start_key = "x"
    description = ("Terminate the selected sessions (pg_terminate_backend): each connection is closed and "
                   "its open transaction rolled back")
    kind = "terminate"
    verb = "Terminate"
    done_word = "terminated"
    warning = ("Terminating closes each session's connection and rolls back its open transaction; the "
               "application has to reconnect and retry. This cannot be undone.")

    async def _watch(self, conn: AsyncConn, signalled: list[dict[str, Any]]) -> None:
        pending = {int(it["pid"]): it for it in signalled}
        deadline = asyncio.get_running_loop().time() + TERMINATE_WAIT_S
        while pending:
            try:
                rows = await (await conn.execute(
                    "select pid from pg_stat_activity where pid = any(%(pids)s)", {"pids": list(pending)})).fetchall()
            except psycopg.Error:
                return
            alive = {int(r["pid"]) for r in rows}
            for pid in list(pending):
                if pid not in alive:
                    pending.pop(pid)["detail"] = "terminated: the session has ended"
            if not pending or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for it in pending.values():
            it["detail"] = f"terminate signal sent; still present after {TERMINATE_WAIT_S:g} s (refresh to check)"


def database_actions(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> list[GuardedAction]:
    """The database actions, or none when `supabase.database_url` is not configured."""
    sb = settings.supabase
    if sb is None or sb.database_url is None:
        return []
    return [CancelBackends(settings, clock=clock), TerminateBackends(settings, clock=clock)]
