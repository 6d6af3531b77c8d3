"""PostgreSQL checks: the Supavisor pooler, long-running queries and the dead-letter queue.

Runbook steps served here: "Verify Supabase connection pooler is active (Transaction Mode on port
6543)", "kill long-running queries" (this check finds them; the action comes later) and "Query
`dead_letter_messages` table for recent failures".

Connections:
* `supabase.pooler` opens a fresh connection through `pooler_url` every round: connecting *is*
  the measurement. Prepared statements are off (`prepare_threshold=None`), as transaction mode
  requires.
* `db.long_running` and `dlq.depth` share one long-lived session on `database_url` (direct or
  session mode), `application_name=opsconsole`, with `statement_timeout` and `lock_timeout` set
  so a sick database cannot make the console hang. A broken connection is replaced, once per
  round, transparently. No pool library: two checks do not need one.

`PostgresAdapter.activity()` (the Database tab's live, pg_activity-like view) reads every client
backend but the console's own session on the same shared session; a failure is an
`ActivitySnapshot` with `error` set, never an exception.

Every expected failure (refused, timeout, wrong password, unknown role/tenant, missing table,
missing privilege, statement timeout) becomes a CheckResult with a summary that says what to do;
no DSN or password ever reaches a summary, a detail or a log line.

Status rules:
* pooler: OK when `select 1` round-trips in under 1 s, WARN when slower (or when the URL uses
  5432, session mode), FAIL when it cannot connect.
* long-running (threshold T = `[checks] long_running_s`): a session counts from `query_start`
  when active and from `xact_start` when idle in transaction. WARN when any session exceeds T;
  FAIL when any exceeds 5×T, or when a session has been blocked by another for longer than T
  (a blocking chain that is not clearing by itself). UNKNOWN when other roles' sessions are
  invisible (no pg_read_all_stats) and nothing else is wrong.
* dlq.depth: WARN above 100 waiting or when any message that arrived in the last 15 minutes is
  still waiting; FAIL above 1000 waiting or more than 50 of those. Recent messages already
  re-queued or discarded do not count: the runbook's "recent failures" are the ones still to
  handle, so the check turns OK once the queue is worked off. Counts stop at 100 000 (bounded cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row

from opsconsole.adapters.pg_connection import (
    APP_NAME,
    SESSION_PORT,
    AsyncConn,
    configured,
    reusable,
)

# Re-exported (`as`): the operator locks and the database actions import these from here.
from opsconsole.adapters.pg_connection import ConfigProblem as ConfigProblem
from opsconsole.adapters.pg_connection import DbTarget as DbTarget
from opsconsole.adapters.pg_connection import describe_connect_error as describe_connect_error
from opsconsole.adapters.pg_connection import first_line as first_line
from opsconsole.adapters.pg_connection import parse_target as parse_target
from opsconsole.adapters.pg_connection import reveal_dsn as reveal_dsn
from opsconsole.domain.db import ActivitySnapshot, Backend
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import Secret, Settings

STATEMENT_TIMEOUT_MS = 3000
LOCK_TIMEOUT_MS = 1000
POOLER_SLOW_MS = 1000.0
TRANSACTION_PORT = 6543
LONG_FAIL_FACTOR = 5
DLQ_WARN_WAITING = 100
DLQ_FAIL_WAITING = 1000
DLQ_FAIL_RECENT = 50
DLQ_RECENT_MINUTES = 15
COUNT_CAP = 100_000
MAX_SESSION_DETAILS = 25
QUERY_PREVIEW = 300


def _dur(seconds: float) -> str:
    """'45 s', '4 min', '2.5 h', '3.1 d' for an 80-column summary."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


format_duration = _dur  # public name for the operator locks and database actions


def _count(n: int) -> str:
    return f"≥{COUNT_CAP:,}" if n >= COUNT_CAP else f"{n:,}"


def parse_table_name(name: str) -> sql.Identifier:
    """'schema.table' or 'table' as a safely quoted identifier (no SQL is built from raw text)."""
    parts = [p.strip().strip('"') for p in name.strip().split(".")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigProblem(f"[dlq] table {printable(name, single_line=True, limit=80)!r} is not a valid "
                             "table name (expected schema.table)")
    return sql.Identifier(*parts)


# -- sessions (also the data of the later cancel/terminate action) -----------------------------

@dataclass(frozen=True, slots=True)
class DbSession:
    """A client backend as `pg_stat_activity` shows it, with its blocking relations."""

    pid: int
    user: str
    application: str
    database: str
    client: str
    state: str
    duration_s: float
    state_s: float
    wait_event_type: str
    wait_event: str
    blocked_by: tuple[int, ...]
    query: str
    xact_start: datetime | None
    query_start: datetime | None

    def to_details(self, blocking: Sequence[int] = ()) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "user": printable(self.user, single_line=True, limit=64),
            "application": printable(self.application, single_line=True, limit=64),
            "database": printable(self.database, single_line=True, limit=64),
            "state": self.state,
            "duration_s": round(self.duration_s, 1),
            "wait_event": f"{self.wait_event_type}:{self.wait_event}" if self.wait_event_type else "",
            "blocked_by": list(self.blocked_by),
            "blocking": list(blocking),
            "query": printable(self.query, single_line=True, limit=QUERY_PREVIEW),
        }


SESSIONS_SQL = """
select a.pid, coalesce(a.usename, '') as usename, coalesce(a.application_name, '') as application_name,
       coalesce(a.datname, '') as datname, coalesce(host(a.client_addr), 'local') as client,
       a.state, a.xact_start, a.query_start,
       extract(epoch from clock_timestamp() - case
           when a.state like 'idle in transaction%%' then coalesce(a.xact_start, a.state_change)
           else a.query_start end)::float8 as duration_s,
       extract(epoch from clock_timestamp() - a.state_change)::float8 as state_s,
       coalesce(a.wait_event_type, '') as wait_event_type, coalesce(a.wait_event, '') as wait_event,
       case when a.wait_event_type = 'Lock' then pg_blocking_pids(a.pid) else '{}'::int[] end as blocked_by,
       left(coalesce(a.query, ''), %(preview)s) as query
from pg_stat_activity a
where a.backend_type = 'client backend' and a.pid <> pg_backend_pid()
  and a.state is not null and a.state <> 'idle'
order by duration_s desc nulls last
limit 500
"""

# Without pg_read_all_stats, other roles' rows keep only pid, datid, usename and application_name
# (backend_type and state are NULL too); a datid tells a database session from a launcher process.
HIDDEN_SQL = """
select count(*) as hidden from pg_stat_activity
where backend_type is null and usename is not null and datid is not null and pid <> pg_backend_pid()
"""


# -- activity (the Database tab) --------------------------------------------------------------

ACTIVITY_QUERY_LIMIT = 2000
ACTIVITY_MAX_ROWS = 1000

# Every visible client backend but our own session. Duration: from query_start when active,
# else from the last state change (how long it has been idle / idle in transaction).
ACTIVITY_SQL = """
select a.pid, coalesce(a.usename, '') as usename, coalesce(a.datname, '') as datname,
       coalesce(a.application_name, '') as application_name,
       coalesce(host(a.client_addr), 'local') as client,
       coalesce(a.state, '') as state, a.backend_type, a.backend_start, a.xact_start, a.query_start,
       a.state_change,
       extract(epoch from clock_timestamp() - case when a.state = 'active' then a.query_start
                                                   else a.state_change end)::float8 as duration_s,
       coalesce(a.wait_event_type, '') as wait_event_type, coalesce(a.wait_event, '') as wait_event,
       case when a.wait_event_type = 'Lock' then pg_blocking_pids(a.pid) else '{}'::int[] end as blocked_by,
       left(coalesce(a.query, ''), %(limit)s) as query
from pg_stat_activity a
where a.backend_type = 'client backend' and a.pid <> pg_backend_pid()
order by (a.state = 'active') desc, duration_s desc nulls last, a.pid
limit %(rows)s
"""


async def fetch_activity(conn: AsyncConn, *, taken_at: datetime | None = None) -> ActivitySnapshot:
    """The ActivitySnapshot from `conn` (errors propagate; `PostgresAdapter.activity` maps them)."""
    taken = taken_at or utcnow()
    cur = await conn.execute(ACTIVITY_SQL, {"limit": ACTIVITY_QUERY_LIMIT, "rows": ACTIVITY_MAX_ROWS})
    rows = await cur.fetchall()
    hidden_row = await (await conn.execute(HIDDEN_SQL)).fetchone()
    blocking: dict[int, list[int]] = {}
    for r in rows:
        for holder in r["blocked_by"] or ():
            blocking.setdefault(int(holder), []).append(int(r["pid"]))

    def text(value: object, limit: int = 200) -> str:
        return printable(str(value or ""), single_line=True, limit=limit)

    backends = tuple(Backend(
        pid=int(r["pid"]), user=text(r["usename"], 64), database=text(r["datname"], 64),
        application=text(r["application_name"], 64), client_addr=text(r["client"], 64), state=text(r["state"], 40),
        backend_type=text(r["backend_type"], 40), backend_start=r["backend_start"], xact_start=r["xact_start"],
        query_start=r["query_start"], state_change=r["state_change"], duration_s=max(0.0, float(r["duration_s"] or 0)),
        wait_event_type=text(r["wait_event_type"], 40), wait_event=text(r["wait_event"], 64),
        blocked_by=tuple(int(p) for p in (r["blocked_by"] or ())),
        blocking=tuple(sorted(blocking.get(int(r["pid"]), ()))),
        query=printable(str(r["query"] or ""), limit=ACTIVITY_QUERY_LIMIT)) for r in rows)
    return ActivitySnapshot(taken_at=taken, backends=backends, hidden=int(hidden_row["hidden"]) if hidden_row else 0)


# -- the adapter -------------------------------------------------------------------------------

class PostgresAdapter:
    """Owns the console's database session(s) and offers the three database checks."""

    system = "db"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout_s = float(settings.checks.timeout_s)
        self._conn: AsyncConn | None = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._checks: list[Check] = [PoolerCheck(self), LongRunningCheck(self), DlqDepthCheck(self)]

    def checks(self) -> list[Check]:
        return list(self._checks)

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._conn_loop is asyncio.get_running_loop():
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    # -- connections ---------------------------------------------------------------------
    @property
    def database_secret(self) -> Secret | None:
        return self.settings.supabase.database_url if self.settings.supabase is not None else None

    def database_target(self) -> tuple[str, DbTarget, str]:
        """(dsn, target, hint) for `database_url`; raises ConfigProblem."""
        secret = self.database_secret
        assert secret is not None
        dsn = reveal_dsn(secret)
        return dsn, parse_target(dsn, hint=secret.hint), secret.hint

    def connect_timeout(self) -> int:
        # libpq's connect_timeout is whole seconds and at least 2; asyncio.timeout is the real bound.
        return max(2, math.ceil(self.timeout_s))

    async def connect(self, dsn: str, **kwargs: Any) -> AsyncConn:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, prepare_threshold=None, connect_timeout=self.connect_timeout(),
            application_name=APP_NAME, row_factory=dict_row, **kwargs)

    async def _session(self) -> tuple[AsyncConn, bool]:
        """The shared session on database_url (fresh=True when just opened)."""
        loop = asyncio.get_running_loop()
        conn = self._conn = await reusable(self._conn, self._conn_loop, loop)
        if conn is not None:
            return conn, False
        dsn, _target, _hint = self.database_target()
        conn = await configured(await self.connect(dsn), [f"set statement_timeout = {STATEMENT_TIMEOUT_MS}",
                                                          f"set lock_timeout = {LOCK_TIMEOUT_MS}"])
        self._conn, self._conn_loop = conn, loop
        return conn, True

    def _loop_lock(self) -> asyncio.Lock:
        """One lock per event loop (asyncio.Lock binds to the loop it first waits on)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def run_on_session(self, fn: Callable[[AsyncConn], Awaitable[Any]]) -> Any:
        """Run `fn` on the shared session, serialised; one retry when a reused session had died
        (server restart, idle-session kill), so a stale connection never shows up as a failure."""
        async with self._loop_lock():
            conn, fresh = await self._session()
            try:
                return await fn(conn)
            except psycopg.OperationalError:
                if fresh or not (conn.broken or conn.closed):
                    raise
                self._conn = None
            conn, _fresh = await self._session()
            return await fn(conn)

    async def drop_session(self) -> None:
        """Close the shared session after a timeout left it mid-query; the next round reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await conn.close()


    async def activity(self) -> ActivitySnapshot:
        """Every client backend except the console's own session (for the Database tab).

        Never raises for an expected failure: the snapshot then has `error` set (what to do)."""
        taken = utcnow()

        def failed(message: str) -> ActivitySnapshot:
            return ActivitySnapshot(taken_at=taken, error=message)

        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            return failed("not configured: supabase.database_url")
        try:
            _dsn, target, hint = self.database_target()
        except ConfigProblem as exc:
            return failed(f"database URL unusable: {exc}")
        try:
            async with asyncio.timeout(self.timeout_s):
                snapshot: ActivitySnapshot = await self.run_on_session(
                    lambda conn: fetch_activity(conn, taken_at=taken))
                return snapshot
        except TimeoutError:
            await self.drop_session()
            return failed(describe_connect_error(TimeoutError(), what="database", target=target, hint=hint,
                                                 timeout_s=self.timeout_s)[1])
        except ConfigProblem as exc:
            return failed(f"database URL unusable: {exc}")
        except pg_errors.QueryCanceled:
            return failed(f"pg_stat_activity did not answer within {STATEMENT_TIMEOUT_MS / 1000:g} s "
                          "(statement_timeout) — database overloaded?")
        except pg_errors.InsufficientPrivilege as exc:
            return failed(f"user {printable(target.user, limit=60)} lacks a privilege: {first_line(exc, target)}")
        except psycopg.OperationalError as exc:
            return failed(describe_connect_error(exc, what="database", target=target, hint=hint,
                                                 timeout_s=self.timeout_s)[1])
        except psycopg.Error as exc:
            state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
            return failed(f"reading pg_stat_activity failed{state}: {first_line(exc, target)}")
        except OSError as exc:
            return failed(f"cannot reach the database at {target.address}: "
                          f"{printable(str(exc), single_line=True, limit=120)}")


class _BaseCheck:
    id = ""
    system = ""
    title = ""

    def __init__(self, adapter: PostgresAdapter) -> None:
        self.adapter = adapter

    def result(self, status: Status, summary: str, *, latency_ms: float | None = None,
               details: Mapping[str, Any] | None = None) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status, summary=summary,
                           latency_ms=latency_ms, checked_at=utcnow(), details=dict(details or {}))

    def off(self, what: str) -> CheckResult:
        return self.result(Status.OFF, f"not configured: {what}")

    async def on_session(self, fn: Callable[[AsyncConn], Awaitable[CheckResult]]) -> CheckResult:
        """Run a database-session check with a hard deadline; every failure becomes a result."""
        started = time.perf_counter()
        adapter = self.adapter
        target: DbTarget | None = None
        hint = "supabase.database_url"
        try:
            _dsn, target, hint = adapter.database_target()
        except ConfigProblem as exc:
            return self.result(Status.FAIL, f"database URL unusable: {exc}")
        try:
            async with asyncio.timeout(adapter.timeout_s):
                res: CheckResult = await adapter.run_on_session(fn)
                return res
        except TimeoutError:
            await adapter.drop_session()
            kind, summary = describe_connect_error(TimeoutError(), what="database", target=target, hint=hint,
                                                   timeout_s=adapter.timeout_s)
            return self.result(Status.FAIL, summary, latency_ms=_ms(started), details={"kind": kind})
        except ConfigProblem as exc:
            return self.result(Status.FAIL, f"database URL unusable: {exc}")
        except pg_errors.QueryCanceled:
            return self.result(Status.FAIL, f"the database at {target.address} did not answer a simple query "
                                            f"within {STATEMENT_TIMEOUT_MS / 1000:g} s (statement_timeout) — "
                                            "overloaded?", latency_ms=_ms(started))
        except pg_errors.InsufficientPrivilege as exc:
            return self.result(Status.UNKNOWN, f"user {printable(target.user, limit=60)} lacks a privilege: "
                                               f"{first_line(exc, target)}", latency_ms=_ms(started))
        except psycopg.OperationalError as exc:
            kind, summary = describe_connect_error(exc, what="database", target=target, hint=hint,
                                                   timeout_s=adapter.timeout_s)
            return self.result(Status.FAIL, summary, latency_ms=_ms(started),
                               details={"kind": kind, "url": target.masked})
        except psycopg.Error as exc:
            state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
            return self.result(Status.UNKNOWN, f"query failed{state}: {first_line(exc, target)}",
                               latency_ms=_ms(started))
        except OSError as exc:
            return self.result(Status.FAIL, f"cannot reach the database at {target.address}: "
                                            f"{printable(str(exc), single_line=True, limit=120)}",
                               latency_ms=_ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# -- supabase.pooler ---------------------------------------------------------------------------

class PoolerCheck(_BaseCheck):
    """Connect through Supavisor's transaction-mode port and run `select 1`."""

    id = "supabase.pooler"
    system = "supabase"
    title = "Connection pooler (6543)"

    async def run(self) -> CheckResult:
        sb = self.adapter.settings.supabase
        if sb is None:
            return self.off("[supabase]")
        if sb.pooler_url is None:
            return self.off("supabase.pooler_url")
        hint = sb.pooler_url.hint
        try:
            dsn = reveal_dsn(sb.pooler_url)
            target = parse_target(dsn, hint=hint)
        except ConfigProblem as exc:
            return self.result(Status.FAIL, f"pooler URL unusable: {exc}")
        timeout_s = self.adapter.timeout_s
        started = time.perf_counter()
        conn: AsyncConn | None = None
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self.adapter.connect(dsn)
                connected = time.perf_counter()
                await conn.execute("select 1")
                done = time.perf_counter()
                version = conn.info.server_version
        except (TimeoutError, psycopg.OperationalError, OSError) as exc:
            kind, summary = describe_connect_error(exc, what="pooler", target=target, hint=hint,
                                                   timeout_s=timeout_s)
            return self.result(Status.FAIL, summary, latency_ms=_ms(started),
                               details={"kind": kind, "url": target.masked})
        except psycopg.Error as exc:
            return self.result(Status.FAIL, f"select 1 via the pooler at {target.address} failed: "
                                            f"{first_line(exc, target)}", latency_ms=_ms(started),
                               details={"kind": "query", "url": target.masked})
        finally:
            if conn is not None:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()
        total_ms = (done - started) * 1000
        details = {"url": target.masked, "host": target.host, "port": target.port, "user": target.user,
                   "connect_ms": round((connected - started) * 1000, 1),
                   "query_ms": round((done - connected) * 1000, 1),
                   "server_version": f"{version // 10000}.{version % 10000}", "prepared_statements": False}
        if target.port == SESSION_PORT:
            return self.result(Status.WARN, f"select 1 in {total_ms:.0f} ms via {target.address}, but that "
                                            f"is session mode (5432); the runbook expects transaction mode "
                                            f"on {TRANSACTION_PORT}", latency_ms=total_ms, details=details)
        via = f"via {target.address} (transaction mode, prepared statements off)"
        if total_ms >= POOLER_SLOW_MS:
            return self.result(Status.WARN, f"slow: select 1 took {total_ms / 1000:.1f} s {via} — pool "
                                            "saturated or Supavisor overloaded?", latency_ms=total_ms,
                               details=details)
        return self.result(Status.OK, f"select 1 in {total_ms:.0f} ms {via}", latency_ms=total_ms,
                           details=details)


# -- db.long_running ---------------------------------------------------------------------------

async def fetch_sessions(conn: AsyncConn) -> tuple[list[DbSession], int]:
    """Non-idle client backends except our own, longest first, and how many are invisible to us."""
    cur = await conn.execute(SESSIONS_SQL, {"preview": 2000})
    rows = await cur.fetchall()
    hidden_row = await (await conn.execute(HIDDEN_SQL)).fetchone()
    sessions = [DbSession(
        pid=int(r["pid"]), user=str(r["usename"]), application=str(r["application_name"]),
        database=str(r["datname"]), client=str(r["client"]), state=str(r["state"]),
        duration_s=float(r["duration_s"] or 0.0), state_s=float(r["state_s"] or 0.0),
        wait_event_type=str(r["wait_event_type"]), wait_event=str(r["wait_event"]),
        blocked_by=tuple(int(p) for p in (r["blocked_by"] or [])), query=str(r["query"]),
        xact_start=r["xact_start"], query_start=r["query_start"]) for r in rows]
    return sessions, int(hidden_row["hidden"]) if hidden_row else 0


def _label(s: DbSession) -> str:
    app = printable(s.application or s.user or "?", single_line=True, limit=30)
    return f"pid {s.pid} {app}"


class LongRunningCheck(_BaseCheck):
    """Sessions over the configured threshold and blocking chains, from pg_stat_activity."""

    id = "db.long_running"
    system = "db"
    title = "Long-running queries"

    async def run(self) -> CheckResult:
        sb = self.adapter.settings.supabase
        if sb is None:
            return self.off("[supabase]")
        if sb.database_url is None:
            return self.off("supabase.database_url")
        return await self.on_session(self._measure)

    async def _measure(self, conn: AsyncConn) -> CheckResult:
        started = time.perf_counter()
        sessions, hidden = await fetch_sessions(conn)
        latency = _ms(started)
        threshold = float(self.adapter.settings.checks.long_running_s)
        fail_at = threshold * LONG_FAIL_FACTOR
        blockers: dict[int, list[int]] = {}
        for s in sessions:
            for holder_pid in s.blocked_by:
                blockers.setdefault(holder_pid, []).append(s.pid)
        long = [s for s in sessions if s.duration_s >= threshold]
        stuck = [s for s in sessions if s.blocked_by and s.duration_s >= threshold]
        listed = [s for s in sessions if s.duration_s >= threshold or s.blocked_by or s.pid in blockers]
        by_pid = {s.pid: s for s in sessions}
        details: dict[str, Any] = {
            "threshold_s": threshold, "fail_threshold_s": fail_at, "active": len(sessions),
            "over_threshold": len(long), "hidden_sessions": hidden,
            "sessions": [s.to_details(blockers.get(s.pid, ())) for s in listed[:MAX_SESSION_DETAILS]],
            "blocking_chains": [{"holder": h, "waiting": w} for h, w in sorted(blockers.items())],
        }
        problems: list[str] = []
        if stuck:
            first = stuck[0].blocked_by[0]
            holder = by_pid.get(first)
            what = f"pid {first}"
            if holder is not None:
                app = printable(holder.application or holder.user, single_line=True, limit=30)
                what += f" ({app}, {holder.state} {_dur(holder.duration_s)})"
            n_wait = len(blockers.get(first, []))
            problems.append(f"blocking chain: {what} blocks {n_wait} session{'s' if n_wait != 1 else ''}")
        if long:
            top = long[0]
            problems.append(f"{len(long)} session{'s' if len(long) != 1 else ''} over {_dur(threshold)} — "
                            f"longest {_dur(top.duration_s)}: {_label(top)} ({top.state})")
        if stuck or any(s.duration_s >= fail_at for s in sessions):
            return self.result(Status.FAIL, "; ".join(problems), latency_ms=latency, details=details)
        if long:
            return self.result(Status.WARN, problems[0], latency_ms=latency, details=details)
        if hidden:
            plural = "s" if hidden != 1 else ""
            return self.result(Status.UNKNOWN, f"cannot see {hidden} session{plural} of other roles — grant "
                                               "pg_read_all_stats to the console's user",
                               latency_ms=latency, details=details)
        idle_tx = sum(1 for s in sessions if s.state.startswith("idle in transaction"))
        return self.result(Status.OK, f"no query running longer than {_dur(threshold)} "
                                      f"({len(sessions)} active, {idle_tx} idle in transaction)",
                           latency_ms=latency, details=details)


# -- dlq.depth ---------------------------------------------------------------------------------

DLQ_SQL = """
select
  (select count(*) from (select 1 from {table} where status = 'waiting' limit {cap}) w) as waiting,
  (select count(*) from (select 1 from {table} where status = 'waiting' and received_at > now() - {window}
                         limit {cap}) r) as recent,
  (select min(received_at) from {table} where status = 'waiting') as oldest_waiting,
  (select max(received_at) from {table}) as newest
"""

DLQ_CODES_SQL = """
select error_code, count(*) as n
from (select error_code from {table} where status = 'waiting' and received_at > now() - {window} limit {cap}) r
group by error_code order by n desc, error_code limit 5
"""


class DlqDepthCheck(_BaseCheck):
    """How many dead letters wait, and how many arrived in the last 15 minutes."""

    id = "dlq.depth"
    system = "dlq"
    title = "Dead-letter queue"

    async def run(self) -> CheckResult:
        dlq = self.adapter.settings.dlq
        sb = self.adapter.settings.supabase
        if dlq is None:
            return self.off("[dlq]")
        if sb is None or sb.database_url is None:
            return self.off("supabase.database_url (the DLQ is read through it)")
        try:
            table = parse_table_name(dlq.table)
        except ConfigProblem as exc:
            return self.result(Status.UNKNOWN, f"configuration error: {exc}")
        shown = printable(dlq.table, single_line=True, limit=80)
        try:
            return await self.on_session(lambda conn: self._measure(conn, table, shown))
        except _MissingTable as exc:
            return self.result(Status.UNKNOWN, str(exc))

    async def _measure(self, conn: AsyncConn, table: sql.Identifier, shown: str) -> CheckResult:
        started = time.perf_counter()
        params = {"table": table, "cap": sql.Literal(COUNT_CAP),
                  "window": sql.SQL("interval {}").format(sql.Literal(f"{DLQ_RECENT_MINUTES} minutes"))}
        try:
            row = await (await conn.execute(sql.SQL(DLQ_SQL).format(**params))).fetchone()
            codes = await (await conn.execute(sql.SQL(DLQ_CODES_SQL).format(**params))).fetchall()
        except pg_errors.UndefinedTable:
            raise _MissingTable(f"configuration error: table {shown} does not exist in database "
                                f"{printable(conn.info.dbname, limit=60)} — check [dlq] table") from None
        except pg_errors.UndefinedColumn as exc:
            raise _MissingTable(f"configuration error: {shown} is not a dead-letter table as expected "
                                f"(needs status, received_at, error_code): {first_line(exc, None)}",
                                ) from None
        except pg_errors.LockNotAvailable:
            raise _MissingTable(f"{shown} is locked by another session (a migration or VACUUM FULL?); "
                                "could not count within the lock timeout") from None
        latency = _ms(started)
        assert row is not None
        waiting, recent = int(row["waiting"]), int(row["recent"])
        now = utcnow()
        oldest: datetime | None = row["oldest_waiting"]
        newest: datetime | None = row["newest"]
        top = [{"error_code": r["error_code"], "count": int(r["n"])} for r in codes]
        details: dict[str, Any] = {
            "table": shown, "waiting": waiting, "recent_15m": recent, "capped_at": COUNT_CAP,
            "oldest_waiting_at": oldest.isoformat() if oldest else None,
            "newest_at": newest.isoformat() if newest else None,
            "recent_by_error_code": top,
            "rules": {"warn_waiting": DLQ_WARN_WAITING, "fail_waiting": DLQ_FAIL_WAITING,
                      "warn_recent": 1, "fail_recent": DLQ_FAIL_RECENT + 1},
        }
        if recent:
            main = top[0]["error_code"] if top else None
            mostly = f" (mostly {main})" if main is not None and top[0]["count"] * 2 >= recent else ""
            recent_txt = f"{_count(recent)} arrived in the last {DLQ_RECENT_MINUTES} min{mostly}"
        else:
            ago = f", newest {_dur((now - newest).total_seconds())} ago" if newest else ""
            recent_txt = f"none in the last {DLQ_RECENT_MINUTES} min{ago}"
        summary = f"{_count(waiting)} waiting, {recent_txt}"
        if waiting > DLQ_FAIL_WAITING or recent > DLQ_FAIL_RECENT:
            status = Status.FAIL
        elif waiting > DLQ_WARN_WAITING or recent > 0:
            status = Status.WARN
        else:
            status = Status.OK
        return self.result(status, summary, latency_ms=latency, details=details)


class _MissingTable(Exception):
    """The configured DLQ table is missing or shaped differently; the message is safe to show."""
