"""The dead-letter store's connection: one psycopg connection, reused and replaced when it dies,
with the statement and lock timeouts each call needs; every expected failure mapped to a
`DlqError` whose message is safe to show; and the table's shape and re-queue target, read once
and cached (schema.py does the reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import dict_row

from opsconsole.adapters.dlq.schema import AsyncConn, RequeueTarget, pgmq_target, read_mapping, table_target
from opsconsole.adapters.dlq.sql import TableSql
from opsconsole.adapters.pg_connection import (
    APP_NAME,
    ConfigProblem,
    DbTarget,
    configured,
    describe_connect_error,
    parse_target,
    reusable,
)
from opsconsole.domain.dlq import ColumnMapping, DlqError, RelatedAlert, literal
from opsconsole.settings import DlqSettings, SecretError, Settings

T = TypeVar("T")

READ_TIMEOUT_MS = 5_000  # pages, groups, details
TEXT_SEARCH_TIMEOUT_MS = 5_000  # a text filter scans; this bounds it
LOCK_TIMEOUT_MS = 5_000  # another console's chunk holds its locks for milliseconds
IDLE_IN_TRANSACTION_MS = 60_000  # never leave a lock behind, whatever happens to the console
CONNECT_TIMEOUT_S = 5.0
CLIENT_GRACE_S = 2.0  # on top of the statement timeout, for the network
ALERT_TIMEOUT_S = 3.0


class AlertLookup(Protocol):
    """Finds the Twilio Monitor alert about a MessageSid (wired by the lead to TwilioAdapter)."""

    def __call__(self, message_sid: str) -> Awaitable[RelatedAlert | None]: ...


def _first_line(exc: BaseException, target: DbTarget | None) -> str:
    text = str(exc) or type(exc).__name__
    if target is not None:
        text = target.scrub(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return literal(lines[0] if lines else text, single_line=True, limit=200)


class DlqSession:
    """The connection, error mapping and cached table shape that every store operation runs on.

    Reads are serialised on the connection (`_read` holds a lock for one call); DlqReader
    (pages.py) and DlqStore (batch.py) add the operations.
    """

    def __init__(self, settings: Settings, *, mapping: Mapping[str, str] | None = None,
                 operator: str | None = None, alert_lookup: AlertLookup | None = None,
                 read_timeout_ms: int = READ_TIMEOUT_MS, text_search_timeout_ms: int = TEXT_SEARCH_TIMEOUT_MS,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, alert_timeout_s: float = ALERT_TIMEOUT_S) -> None:
        self.settings = settings
        self.dlq: DlqSettings | None = settings.dlq
        configured = getattr(self.dlq, "columns", None)  # `[dlq] columns`, when the settings carry it
        self.mapping_config: dict[str, str] = dict(mapping if mapping is not None else configured or {})
        self.operator = operator or _default_operator()
        self.alert_lookup = alert_lookup
        self.read_timeout_ms = read_timeout_ms
        self.text_search_timeout_ms = text_search_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.alert_timeout_s = alert_timeout_s
        self._conn: AsyncConn | None = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: tuple[int, int] | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._schema: tuple[ColumnMapping, TableSql] | None = None
        self._target: RequeueTarget | DlqError | None = None
        self._db_target: DbTarget | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._conn_loop is asyncio.get_running_loop():
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
        else:  # opened on another (finished) event loop: close the socket directly
            with contextlib.suppress(Exception):
                conn.pgconn.finish()

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (None when not connected)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return None
        return int(conn.info.backend_pid)

    @property
    def target_description(self) -> str:
        if self.dlq is None:
            return "(not configured)"
        rq = self.dlq.requeue
        return f"Supabase Queue (pgmq) {rq.queue}" if rq.kind == "pgmq" else f"table {rq.target}"

    # -- connection ---------------------------------------------------------------------------
    def _config_error(self) -> DlqError | None:
        if self.dlq is None:
            return DlqError("config", "not configured: [dlq]")
        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            return DlqError("config", "not configured: supabase.database_url (the dead-letter table is read "
                                      "through it)")
        return None

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _dsn(self) -> tuple[str, DbTarget, str]:
        sb = self.settings.supabase
        assert sb is not None and sb.database_url is not None
        secret = sb.database_url
        try:
            dsn = secret.reveal()
        except SecretError as exc:
            raise ConfigProblem(str(exc)) from None
        if not dsn.strip():
            raise ConfigProblem(f"{secret.source} is empty")
        target = parse_target(dsn, hint=secret.hint)
        self._db_target = target
        return dsn, target, secret.hint

    async def _session(self) -> tuple[AsyncConn, bool]:
        loop = asyncio.get_running_loop()
        conn = self._conn = await reusable(self._conn, self._conn_loop, loop)
        if conn is not None:
            return conn, False
        dsn, _target, _hint = self._dsn()
        async with asyncio.timeout(self.connect_timeout_s + CLIENT_GRACE_S):
            conn = await psycopg.AsyncConnection.connect(
                dsn, autocommit=True, prepare_threshold=None, connect_timeout=max(2, int(self.connect_timeout_s)),
                application_name=APP_NAME, row_factory=dict_row)
        conn = await configured(conn, [sql.SQL("set idle_in_transaction_session_timeout = {}").format(
            sql.Literal(IDLE_IN_TRANSACTION_MS))])
        self._conn, self._conn_loop, self._timeouts = conn, loop, None
        return conn, True

    async def _set_timeouts(self, conn: AsyncConn, statement_ms: int, lock_ms: int = LOCK_TIMEOUT_MS) -> None:
        if self._timeouts != (statement_ms, lock_ms):
            await conn.execute(sql.SQL("set statement_timeout = {}; set lock_timeout = {}").format(
                sql.Literal(statement_ms), sql.Literal(lock_ms)))
            self._timeouts = (statement_ms, lock_ms)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()

    async def _read(self, fn: Callable[[AsyncConn], Awaitable[T]], timeout_ms: int) -> T:
        """Run `fn` on the session with `timeout_ms` as statement timeout; one retry when a
        reused connection turns out dead (server restart, idle kill)."""
        async with self._loop_lock():
            for attempt in (1, 2):
                conn, fresh = await self._session()
                try:
                    async with asyncio.timeout(timeout_ms / 1000 + CLIENT_GRACE_S):
                        await self._set_timeouts(conn, timeout_ms)
                        return await fn(conn)
                except TimeoutError:
                    self._drop()
                    raise
                except psycopg.OperationalError:
                    if attempt == 2 or fresh or not (conn.broken or conn.closed):
                        raise
                    self._drop()
        raise AssertionError("unreachable")

    def _error(self, exc: BaseException, what: str, *, timeout_ms: int | None = None,
               timeout_hint: str = "") -> DlqError:
        target = self._db_target
        if isinstance(exc, ConfigProblem):
            return DlqError("config", f"database URL unusable: {exc}")
        if isinstance(exc, TimeoutError):
            return DlqError("timeout", f"{what}: no answer from the database in time — overloaded, or the "
                                       "network is down?")
        if isinstance(exc, pg_errors.QueryCanceled):
            secs = f" within {timeout_ms / 1000:g} s" if timeout_ms else ""
            return DlqError("timeout", f"{what} did not finish{secs} (statement timeout){timeout_hint}")
        if isinstance(exc, pg_errors.LockNotAvailable):
            return DlqError("locked", f"{what}: rows are locked by another session for more than "
                                      f"{LOCK_TIMEOUT_MS / 1000:g} s (a worker or another console in a long "
                                      "transaction?) — nothing was changed by this step")
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            user = literal(target.user, single_line=True, limit=60) if target else "the console's user"
            return DlqError("permission", f"{what}: {user} lacks a privilege: {_first_line(exc, target)}")
        if isinstance(exc, (pg_errors.UndefinedTable, pg_errors.UndefinedColumn, pg_errors.UndefinedFunction,
                            pg_errors.InvalidSchemaName, pg_errors.UndefinedObject)):
            self._schema, self._target = None, None  # read the table's shape again next time
            return DlqError("config", f"{what}: {_first_line(exc, target)} — did the table change? "
                                      "(it is introspected again on the next try)")
        if isinstance(exc, psycopg.IntegrityError):
            return DlqError("conflict", f"{what}: {_first_line(exc, target)} — nothing was changed by this step")
        if isinstance(exc, psycopg.OperationalError):
            if target is None:
                return DlqError("connection", f"{what}: {_first_line(exc, None)}")
            sb = self.settings.supabase
            hint = sb.database_url.hint if sb is not None and sb.database_url is not None else "database_url"
            kind, summary = describe_connect_error(exc, what="database", target=target, hint=hint,
                                                   timeout_s=self.connect_timeout_s)
            if kind == "other":
                summary = f"connection to the database at {target.address} lost: {_first_line(exc, target)}"
            return DlqError("connection", f"{what}: {summary}")
        if isinstance(exc, psycopg.Error):
            state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
            return DlqError("query", f"{what} failed{state}: {_first_line(exc, target)}")
        if isinstance(exc, OSError):
            return DlqError("connection", f"{what}: {literal(str(exc), single_line=True, limit=160)}")
        raise exc

    # -- introspection ------------------------------------------------------------------------
    async def introspect(self) -> ColumnMapping | DlqError:
        """Read the table's columns (pg_attribute, like information_schema.columns but independent
        of search_path quirks), apply the configured mapping and check the required columns."""
        problem = self._config_error()
        if problem is not None:
            return problem
        try:
            schema = await self._read(self._introspect, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "reading the dead-letter table's columns")
        if isinstance(schema, DlqError):
            return schema
        return schema[0]

    async def _prepared(self) -> tuple[ColumnMapping, TableSql] | DlqError:
        if self._schema is not None:
            return self._schema
        problem = self._config_error()
        if problem is not None:
            return problem
        try:
            return await self._read(self._introspect, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "reading the dead-letter table's columns")

    async def _introspect(self, conn: AsyncConn) -> tuple[ColumnMapping, TableSql] | DlqError:
        assert self.dlq is not None
        schema = await read_mapping(conn, self.dlq.table, self.mapping_config, self.dlq.never_requeue_error_codes)
        if isinstance(schema, DlqError):
            return schema
        self._schema = schema
        self._target = None
        return schema

    async def _requeue_target(self, conn: AsyncConn) -> RequeueTarget | DlqError:
        if self._target is not None:
            return self._target
        assert self.dlq is not None
        rq = self.dlq.requeue
        result: RequeueTarget | DlqError
        if rq.kind == "pgmq":
            result = await pgmq_target(conn, rq.queue)
        elif rq.kind == "table":
            result = await table_target(conn, rq.target, self._schema[1].table if self._schema is not None else None)
        else:
            result = DlqError("config", f"[dlq] requeue kind {literal(rq.kind, single_line=True, limit=20)!r} is "
                                        "not supported (table or pgmq)")
        self._target = result
        return result

    async def _target_or_error(self) -> RequeueTarget | DlqError:
        if isinstance(self._target, RequeueTarget):
            return self._target
        try:
            return await self._read(self._requeue_target, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "checking the re-queue target")


def _default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"opsconsole:{user}"
