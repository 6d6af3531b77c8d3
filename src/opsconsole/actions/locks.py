"""Operator locks: two operators on two bastions cannot run a disruptive or destructive action
on the same target at once.

A lock is a PostgreSQL session-level advisory lock, `pg_try_advisory_lock(hashtextextended(
'opsconsole:' || key, 0))`, taken on a dedicated connection to `supabase.database_url` (direct
or session mode) that stays open while the action runs. Its `application_name` is
"opsconsole-lock <operator label>", so the second operator is told who holds the lock (from
`pg_locks` joined with `pg_stat_activity`) and since when (the holder connection's
`backend_start`: it is opened right before locking). A console that dies releases its locks
with its connection. Never through the transaction pooler (port 6543): Supavisor hands each
transaction to another server connection, so a session lock would be taken and lost at random
(reference/apis.md §7); such a URL is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row

from opsconsole.adapters.postgres import (
    TRANSACTION_PORT,
    ConfigProblem,
    DbTarget,
    describe_connect_error,
    first_line,
    format_duration,
    parse_target,
    reveal_dsn,
)
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import printable
from opsconsole.settings import Secret, Settings

LOCK_APP_PREFIX = "opsconsole-lock "
KEY_NAMESPACE = "opsconsole:"
APPLICATION_NAME_MAX = 63  # NAMEDATALEN - 1 bytes; the server also turns non-ASCII into "?"
STATEMENT_TIMEOUT_MS = 3000

AsyncConn = psycopg.AsyncConnection[DictRow]

TRY_LOCK_SQL = "select pg_try_advisory_lock(hashtextextended(%(key)s, 0)) as got"

# An int8 advisory lock shows in pg_locks as classid = high 32 bits, objid = low 32 bits, objsubid 1.
HOLDER_SQL = """
with k as (select hashtextextended(%(key)s, 0) as h)
select l.pid, coalesce(a.application_name, '') as application_name, a.backend_start,
       coalesce(a.usename, '') as usename, host(a.client_addr) as client_addr
from pg_locks l
cross join k
left join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.objsubid = 1
  and l.database = (select oid from pg_database where datname = current_database())
  and l.classid::int8 = (k.h >> 32) & 4294967295
  and l.objid::int8 = k.h & 4294967295
  and l.pid <> pg_backend_pid()
order by a.backend_start nulls last
limit 1
"""


class OperatorLike(Protocol):
    """What the locks need of `opsconsole.audit.Operator`."""

    @property
    def label(self) -> str: ...


class LockError(Exception):
    """The lock could not be taken or checked at all; the message is safe to show (no DSN)."""


def ascii_app_name(text: str) -> str:
    """`text` as PostgreSQL keeps an application_name: printable ASCII, at most 63 bytes."""
    clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return clean[:APPLICATION_NAME_MAX]


def lock_application_name(operator: OperatorLike) -> str:
    return ascii_app_name(f"{LOCK_APP_PREFIX}{operator.label}")


def transaction_pooler_problem(dsn: str, *, hint: str) -> str | None:
    """Why `dsn` cannot carry session locks (it points at port 6543), or None."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return f"{hint} is not a valid PostgreSQL connection string"
    port_text = str(params.get("port") or os.environ.get("PGPORT") or "")
    ports = {p.strip() for p in port_text.split(",") if p.strip()}
    if str(TRANSACTION_PORT) in ports:
        return (f"{hint} points at port {TRANSACTION_PORT}, the transaction pooler: advisory locks need a "
                "session. Use the direct connection (db.<ref>.supabase.co:5432) or session mode (port 5432)")
    return None


@dataclass(frozen=True, slots=True)
class LockHeld:
    """Another console holds the lock on `key`: who (its operator label), since when, its PID."""

    key: str
    holder: str
    since: datetime | None
    pid: int | None = None
    client_addr: str | None = None

    def message(self, now: datetime | None = None) -> str:
        when = ""
        if self.since is not None:
            age = ((now or utcnow()) - self.since).total_seconds()
            when = f" since {self.since:%H:%M:%S} UTC ({format_duration(age)} ago)"
        return (f"{self.holder} is already acting on this target{when} (operator lock {self.key}); "
                "wait for them to finish, or talk to them first")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "holder": self.holder, "since": self.since.isoformat() if self.since else None,
                "pid": self.pid, "client_addr": self.client_addr}


class LockHandle:
    """Held locks on one open connection; `release()` unlocks and closes (idempotent, never raises)."""

    def __init__(self, conn: AsyncConn, keys: tuple[str, ...], acquired_at: datetime) -> None:
        self._conn: AsyncConn | None = conn
        self.keys = keys
        self.acquired_at = acquired_at
        self.backend_pid = conn.info.backend_pid

    @property
    def key(self) -> str:
        return ", ".join(self.keys)

    @property
    def released(self) -> bool:
        return self._conn is None

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            async with asyncio.timeout(2.0):
                if not (conn.closed or conn.broken):
                    await conn.execute("select pg_advisory_unlock_all()")
        except (psycopg.Error, OSError, TimeoutError):
            pass  # closing the connection below releases session locks anyway
        finally:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await conn.close()

    async def __aenter__(self) -> LockHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class OperatorLocks:
    """Takes operator locks for `operator` on the database at `dsn` (a string or a Secret,
    revealed on use so a rotated credential is picked up)."""

    def __init__(self, dsn: str | Secret, operator: OperatorLike, *, timeout_s: float = 5.0,
                 hint: str = "supabase.database_url") -> None:
        self._dsn = dsn
        self.operator = operator
        self.timeout_s = timeout_s
        self.hint = dsn.hint if isinstance(dsn, Secret) else hint

    @classmethod
    def for_settings(cls, settings: Settings, operator: OperatorLike) -> OperatorLocks | None:
        """Locks on `supabase.database_url`, or None when it is not configured."""
        sb = settings.supabase
        if sb is None or sb.database_url is None:
            return None
        return cls(sb.database_url, operator, timeout_s=float(settings.checks.timeout_s))

    @property
    def application_name(self) -> str:
        return lock_application_name(self.operator)

    def _target(self) -> tuple[str, DbTarget]:
        try:
            dsn = reveal_dsn(self._dsn) if isinstance(self._dsn, Secret) else self._dsn
            problem = transaction_pooler_problem(dsn, hint=self.hint)
            if problem is not None:
                raise LockError(f"operator locks cannot be taken: {problem}")
            return dsn, parse_target(dsn, hint=self.hint)
        except ConfigProblem as exc:
            raise LockError(f"operator locks cannot be taken: {exc}") from None

    def check(self) -> str | None:
        """Why locks cannot be taken with this configuration (without connecting), or None."""
        try:
            self._target()
        except LockError as exc:
            return str(exc)
        return None

    async def _connect(self) -> tuple[AsyncConn, DbTarget]:
        dsn, target = self._target()
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, prepare_threshold=None, row_factory=dict_row,
                    connect_timeout=max(2, math.ceil(self.timeout_s)), application_name=self.application_name)
        except (TimeoutError, psycopg.OperationalError, OSError) as exc:
            _kind, summary = describe_connect_error(exc, what="database", target=target, hint=self.hint,
                                                    timeout_s=self.timeout_s)
            raise LockError(f"could not take the operator lock: {summary}") from None
        try:
            await conn.execute(f"set statement_timeout = {STATEMENT_TIMEOUT_MS}")
        except BaseException:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
            raise
        return conn, target

    async def acquire(self, *keys: str) -> LockHandle | LockHeld:
        """Take every lock in `keys` (sorted, on one connection) or none of them.

        Returns a LockHandle to `release()` after the action, or LockHeld naming the other
        console holding the first contended key. Raises LockError when the database cannot
        be reached or the URL is unusable (fail closed: the action must not run).
        """
        wanted = tuple(sorted(set(keys)))
        if not wanted:
            raise LockError("no lock key given")
        conn, target = await self._connect()
        handed_over = False
        try:
            async with asyncio.timeout(self.timeout_s):
                for key in wanted:
                    row = await (await conn.execute(TRY_LOCK_SQL, {"key": KEY_NAMESPACE + key})).fetchone()
                    if row is not None and row["got"]:
                        continue
                    held = await self._holder(conn, key)
                    return held if held is not None else LockHeld(
                        key=key, holder="another console (it released the lock just now; try again)", since=None)
                handle = LockHandle(conn, wanted, utcnow())
                handed_over = True
                return handle
        except TimeoutError:
            raise LockError(f"could not take the operator lock: the database at {target.address} did not "
                            f"answer within {self.timeout_s:g} s") from None
        except psycopg.Error as exc:
            raise LockError(f"could not take the operator lock: {first_line(exc, target)}") from None
        finally:
            if not handed_over:
                with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await conn.close()  # releases whatever was taken

    async def holder(self, key: str) -> LockHeld | None:
        """Who holds `key` right now (None: nobody). Raises LockError like `acquire`."""
        conn, target = await self._connect()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._holder(conn, key)
        except TimeoutError:
            raise LockError(f"could not check the operator lock: the database at {target.address} did not "
                            f"answer within {self.timeout_s:g} s") from None
        except psycopg.Error as exc:
            raise LockError(f"could not check the operator lock: {first_line(exc, target)}") from None
        finally:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await conn.close()

    @staticmethod
    async def _holder(conn: AsyncConn, key: str) -> LockHeld | None:
        row = await (await conn.execute(HOLDER_SQL, {"key": KEY_NAMESPACE + key})).fetchone()
        if row is None:
            return None
        return _held_from_row(key, row)


def _held_from_row(key: str, row: Mapping[str, Any]) -> LockHeld:
    app = str(row["application_name"] or "")
    pid = int(row["pid"]) if row["pid"] is not None else None
    if app.startswith(LOCK_APP_PREFIX):
        holder = app[len(LOCK_APP_PREFIX):]
    elif app:
        holder = f"{app} (pid {pid})"
    else:
        holder = f"an unnamed session of role {row['usename'] or '?'} (pid {pid})"
    return LockHeld(key=key, holder=printable(holder, single_line=True, limit=80), since=row["backend_start"],
                    pid=pid, client_addr=row["client_addr"])
