"""The dead-letter queue triage store: browse, group, inspect, re-queue, discard and fix
`[dlq] table` on `supabase.database_url`.

Scale (the same at 100 rows and at 1,000,000):

* Lists use keyset pagination on (received_at, id) (the demo's `*_received_idx`/`*_waiting_idx`
  indexes); no OFFSET, nothing but one page ever reaches Python. A page also says exactly
  whether rows exist above and below it (one statement).
* Counts run EXPLAIN first: below `EXACT_COUNT_MAX_ESTIMATE` estimated rows an exact count
  runs with a short statement timeout, otherwise (or when that times out) the planner's
  estimate is returned and labelled as one.
* Filters are SQL. The text filter is an ILIKE over the payload text, the raw body and the
  error message; nothing indexes that in the demo (a trigram GIN index on `payload::text`
  made each insert ~8x slower and every status change rewrite hundreds of index entries), so
  it is a scan bounded by `TEXT_SEARCH_TIMEOUT_MS` (a no-match scan of 1M rows took 0.9-1.5 s
  here); a table that has `gin ((payload::text) gin_trgm_ops)` gets it used automatically.
* Payload validity in lists is computed in SQL per row; the size rule comes first, so a 5 MB
  payload is judged from `payload_bytes` without being unpacked.
* "Everything matching the filter" is resolved in SQL chunk by chunk (ascending id after the
  last chunk), never as a list of ids in Python.

Actions (one transaction per chunk, one statement per chunk):

    cand   the chunk's ids (explicit ids, or the next N waiting ids matching the filter)
    locked SELECT … FOR UPDATE in id order: concurrent consoles queue behind each other instead
           of deadlocking; READ COMMITTED re-reads a row changed meanwhile, so a message another
           console already re-queued is seen as `requeued` and skipped (not luck: row locks)
    ins    INSERT into the target table (or `pgmq.send` per message) for the eligible rows
    upd    UPDATE status = 'requeued' (requeued_at/by, requeue_ref = 'campaign_queue:<id>')
    COMMIT

so a message is in the queue if and only if it is marked re-queued, and a killed connection
rolls back the whole chunk. The store checks that the counts of the three steps agree before
committing. When the connection dies *during* COMMIT, the outcome is looked up after
reconnecting (status + requeued_at = that transaction's timestamp), so the result still
reports exactly how many went where. A unique index on the queue's link column (the demo's
`campaign_queue_dlq_message_key`) makes a second insertion impossible even for a buggy caller.

Refused, never touched: messages not waiting (already handled), codes in
`[dlq] never_requeue_error_codes`, and payloads that are not valid (`domain.dlq.payload_problem`;
the same rules are compiled to SQL here).

Every expected failure is returned as a `DlqError` (kind + a message safe to show); no DSN or
password ever reaches one.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from opsconsole.adapters.postgres import (
    APP_NAME,
    ConfigProblem,
    DbTarget,
    configured,
    describe_connect_error,
    parse_target,
    reusable,
)
from opsconsole.domain import twilio_codes
from opsconsole.domain.dlq import (
    BLANK_CHARS,
    DISCARDED,
    E164_PATTERN,
    LOGICAL_COLUMNS,
    MAX_BODY_CHARS,
    MAX_PAYLOAD_BYTES,
    PROBLEM_BAD_TO,
    PROBLEM_EMPTY,
    PROBLEM_EMPTY_BODY,
    PROBLEM_LONG_BODY,
    PROBLEM_NOT_JSON,
    PROBLEM_NOT_OBJECT,
    PROBLEM_TOO_LARGE,
    REQUEUED,
    REQUIRED_COLUMNS,
    REQUIRED_PAYLOAD_FIELDS,
    WAITING,
    BatchProgress,
    BatchResult,
    CodeCount,
    ColumnMapping,
    CountEstimate,
    Direction,
    DiscardPlan,
    DlqError,
    DlqFilter,
    DlqMessage,
    DlqMessageDetail,
    FixResult,
    GroupBy,
    GroupList,
    GroupRow,
    Page,
    PageCursor,
    PayloadText,
    Refusal,
    RefusalKind,
    RelatedAlert,
    RequeuePlan,
    Selection,
    check_payload_text,
    code_count,
    history_events,
    literal,
    problem_missing,
)
from opsconsole.domain.models import utcnow
from opsconsole.settings import DlqSettings, SecretError, Settings

AsyncConn = psycopg.AsyncConnection[DictRow]
T = TypeVar("T")

READ_TIMEOUT_MS = 5_000  # pages, groups, details
TEXT_SEARCH_TIMEOUT_MS = 5_000  # a text filter scans; this bounds it
COUNT_EXACT_TIMEOUT_MS = 300
EXACT_COUNT_MAX_ESTIMATE = 100_000
PLAN_TIMEOUT_MS = 30_000  # a preview over a million rows reads every payload once
CHUNK_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000  # another console's chunk holds its locks for milliseconds
IDLE_IN_TRANSACTION_MS = 60_000  # never leave a lock behind, whatever happens to the console
CONNECT_TIMEOUT_S = 5.0
CLIENT_GRACE_S = 2.0  # on top of the statement timeout, for the network
ALERT_TIMEOUT_S = 3.0
DEFAULT_CHUNK = 500
MAX_CHUNK = 5_000
DEFAULT_PAGE = 50
MAX_PAGE = 500
PAYLOAD_LIMIT = 65_536  # characters of pretty payload in a detail
MAX_GROUPS = 100
SAMPLE_IDS = 5
LIST_ERROR_CHARS = 300
DETAIL_ERROR_CHARS = 8_000

_INT_TYPES = frozenset({"int2", "int4", "int8"})
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext"})
_TIME_TYPES = frozenset({"timestamptz", "timestamp"})
_JSON_TYPES = frozenset({"jsonb", "json"})
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_]{1,47}$")
# What a re-queue can fill in a target table (anything else NOT NULL needs a default).
_TARGET_FILLS = ("campaign_id", "to_number", "body", "payload", "source", "dlq_message_id")
REQUEUE_SOURCE = "dlq-requeue"


class AlertLookup(Protocol):
    """Finds the Twilio Monitor alert about a MessageSid (wired by the lead to TwilioAdapter)."""

    def __call__(self, message_sid: str) -> Awaitable[RelatedAlert | None]: ...


class CancelFlag(Protocol):
    """asyncio.Event or threading.Event: checked between chunks."""

    def is_set(self) -> bool: ...


ProgressCallback = Callable[[BatchProgress], Awaitable[None] | None]


class _Mismatch(Exception):
    """A chunk's steps disagreed (rolled back); the message is safe to show."""


# -- SQL over a mapped table --------------------------------------------------------------------

def _split_name(name: str) -> list[str] | None:
    parts = [p.strip().strip('"') for p in name.strip().split(".")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        return None
    return parts


@dataclass(frozen=True, slots=True)
class _Target:
    kind: str  # table | pgmq
    describe: str
    table: sql.Identifier | None = None
    ref_prefix: str = ""
    fills: tuple[str, ...] = ()  # target columns the insert fills
    payload_type: str = "jsonb"
    id_column: str | None = None
    link_column: str | None = None
    queue: str = ""


class _Sql:
    """Builds statements for one mapped table. Every identifier is quoted by psycopg; every
    value is a parameter or a psycopg literal."""

    def __init__(self, mapping: ColumnMapping, table: sql.Identifier, never: Sequence[int]) -> None:
        self.m = mapping
        self.table = table
        self.never = tuple(never)
        code_type = mapping.types["error_code"]
        self.code_is_int = code_type in _INT_TYPES
        self.code_array = sql.SQL(f"{code_type}[]" if code_type in _INT_TYPES else "text[]")
        self.id_array = sql.SQL("int8[]")

    # columns
    def c(self, logical: str, alias: str = "t") -> sql.Composable:
        return sql.Identifier(alias, self.m[logical])

    def opt(self, logical: str, alias: str = "t", default: str = "null") -> sql.Composable:
        return self.c(logical, alias) if self.m.has(logical) else sql.SQL(default)

    def payload(self, alias: str = "t") -> sql.Composable:
        col = self.c("payload", alias)
        return col if self.m.types["payload"] == "jsonb" else sql.SQL("({})::jsonb").format(col)

    def raw(self, alias: str = "t") -> sql.Composable:
        return self.opt("payload_raw", alias)

    def code_values(self, codes: Iterable[int | None]) -> list[Any]:
        return [c if self.code_is_int else str(c) for c in codes if c is not None]

    def sid(self, alias: str = "t") -> sql.Composable:
        if self.m.has("message_sid"):
            return self.c("message_sid", alias)
        return sql.SQL("({}->>'MessageSid')").format(self.payload(alias))

    def payload_bytes(self, alias: str = "t") -> sql.Composable:
        if self.m.has("payload_bytes"):
            return sql.SQL("coalesce({}, 0)").format(self.c("payload_bytes", alias))
        return sql.SQL("coalesce(pg_column_size({}), octet_length({}), 0)").format(self.c("payload", alias),
                                                                                  self.raw(alias))

    def problem(self, alias: str = "t") -> sql.Composable:
        """`domain.dlq.payload_problem` as SQL: NULL when the payload can be re-queued."""
        p = self.payload(alias)
        lit = sql.Literal
        blank = lit(BLANK_CHARS)
        whens: list[sql.Composable] = []
        if self.m.has("payload_raw"):
            whens.append(sql.SQL("when {p} is null then case when coalesce({raw}, '') = '' then {empty} "
                                 "else {not_json} end").format(p=p, raw=self.raw(alias), empty=lit(PROBLEM_EMPTY),
                                                               not_json=lit(PROBLEM_NOT_JSON)))
        else:
            whens.append(sql.SQL("when {p} is null then {not_json}").format(p=p, not_json=lit(PROBLEM_NOT_JSON)))
        whens.append(sql.SQL("when {size} > {mx} then {msg}").format(size=self.payload_bytes(alias),
                                                                     mx=lit(MAX_PAYLOAD_BYTES),
                                                                     msg=lit(PROBLEM_TOO_LARGE)))
        whens.append(sql.SQL("when jsonb_typeof({p}) <> 'object' then {msg}").format(p=p,
                                                                                    msg=lit(PROBLEM_NOT_OBJECT)))
        for name in REQUIRED_PAYLOAD_FIELDS:
            key = lit(name)
            if name == "Body":
                whens.append(sql.SQL("when jsonb_typeof({p}->{k}) is distinct from 'string' then {m1} "
                                     "when {p}->>{k} = '' then {m2} "
                                     "when char_length({p}->>{k}) > {mx} then {m3}").format(
                    p=p, k=key, m1=lit(problem_missing(name)), m2=lit(PROBLEM_EMPTY_BODY),
                    mx=lit(MAX_BODY_CHARS), m3=lit(PROBLEM_LONG_BODY)))
                continue
            whens.append(sql.SQL("when jsonb_typeof({p}->{k}) is distinct from 'string' "
                                 "or btrim({p}->>{k}, {blank}) = '' then {m}").format(
                p=p, k=key, blank=blank, m=lit(problem_missing(name))))
            if name == "To":
                whens.append(sql.SQL("when ({p}->>{k}) !~ {rx} then {m}").format(
                    p=p, k=key, rx=lit(f"^{E164_PATTERN}$"), m=lit(PROBLEM_BAD_TO)))
        return sql.SQL("(case {} end)").format(sql.SQL(" ").join(whens))

    def never_expr(self, alias: str = "t") -> sql.Composable:
        if not self.never:
            return sql.SQL("false")
        return sql.SQL("coalesce({} = any({}::{}), false)").format(
            self.c("error_code", alias), sql.Literal(self.code_values(self.never)), self.code_array)

    # filters
    def conds(self, flt: DlqFilter, params: dict[str, Any], alias: str = "t") -> list[sql.Composable]:
        out: list[sql.Composable] = []

        def param(value: Any) -> sql.Placeholder:
            name = f"p{len(params)}"
            params[name] = value
            return sql.Placeholder(name)

        if flt.status is not None:
            out.append(sql.SQL("{} = {}").format(self.c("status", alias), param(flt.status)))
        if flt.error_codes:
            values = self.code_values(flt.error_codes)
            parts: list[sql.Composable] = []
            if len(values) == 1:  # plain equality: the (error_code, received_at, id) index gives the order
                parts.append(sql.SQL("{} = {}::{}").format(self.c("error_code", alias), param(values[0]),
                                                          sql.SQL(self.m.types["error_code"] if self.code_is_int
                                                                  else "text")))
            elif values:
                parts.append(sql.SQL("{} = any({}::{})").format(self.c("error_code", alias), param(values),
                                                               self.code_array))
            if None in flt.error_codes:
                parts.append(sql.SQL("{} is null").format(self.c("error_code", alias)))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        received = self.c("received_at", alias)
        if flt.max_age is not None:
            out.append(sql.SQL("{} >= now() - {}::interval").format(received, param(flt.max_age)))
        if flt.min_age is not None:
            out.append(sql.SQL("{} <= now() - {}::interval").format(received, param(flt.min_age)))
        if flt.since is not None:
            out.append(sql.SQL("{} >= {}").format(received, param(flt.since)))
        if flt.until is not None:
            out.append(sql.SQL("{} < {}").format(received, param(flt.until)))
        if flt.message_sid:
            out.append(sql.SQL("{} = {}::text").format(self.sid(alias), param(flt.message_sid.strip())))
        for logical, keys in (("endpoint", flt.endpoints), ("workflow", flt.workflows)):
            if not keys:
                continue
            if not self.m.has(logical):
                out.append(sql.SQL("false"))
                continue
            col = self.c(logical, alias)
            given = [v for v in keys if v is not None]
            parts = []
            if given:
                parts.append(sql.SQL("{} = any({}::text[])").format(col, param(given)))
            if None in keys:
                parts.append(sql.SQL("{} is null").format(col))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        if flt.text:
            pattern = param("%" + _like_escape(flt.text) + "%")
            parts = [sql.SQL("({})::text ilike {}").format(self.c("payload", alias), pattern)]
            if self.m.has("payload_raw"):
                parts.append(sql.SQL("{} ilike {}").format(self.c("payload_raw", alias), pattern))
            if self.m.has("error_message"):
                parts.append(sql.SQL("{} ilike {}").format(self.c("error_message", alias), pattern))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        return out

    def selection_conds(self, sel: Selection, params: dict[str, Any], alias: str = "t") -> list[sql.Composable]:
        id_col = self.c("id", alias)
        if sel.ids is not None:
            params["sel_ids"] = sorted(sel.ids)
            return [sql.SQL("{} = any(%(sel_ids)s::int8[])").format(id_col)]
        out = self.conds(sel.filter or DlqFilter(), params, alias)
        if sel.excluded:
            params["sel_excluded"] = sorted(sel.excluded)
            out.append(sql.SQL("{} <> all(%(sel_excluded)s::int8[])").format(id_col))
        if sel.upto_id is not None:
            params["sel_upto"] = sel.upto_id
            out.append(sql.SQL("{} <= %(sel_upto)s").format(id_col))
        return out

    @staticmethod
    def where(conds: Sequence[sql.Composable]) -> sql.Composable:
        if not conds:
            return sql.SQL("true")
        return sql.SQL(" and ").join(conds)

    def list_columns(self, alias: str = "t") -> sql.Composable:
        return sql.SQL(", ").join([
            sql.SQL("{} as id").format(self.c("id", alias)),
            sql.SQL("{} as received_at").format(self.c("received_at", alias)),
            sql.SQL("({})::text as status").format(self.c("status", alias)),
            sql.SQL("{} as error_code").format(self.c("error_code", alias)),
            sql.SQL("left({}, {}) as error_message").format(self.opt("error_message", alias),
                                                           sql.Literal(LIST_ERROR_CHARS)),
            sql.SQL("left({}, 64) as message_sid").format(self.sid(alias)),
            sql.SQL("left({}, 300) as endpoint").format(self.opt("endpoint", alias)),
            sql.SQL("left({}, 300) as workflow").format(self.opt("workflow", alias)),
            sql.SQL("{} as attempts").format(self.opt("attempts", alias)),
            sql.SQL("{} as payload_bytes").format(self.payload_bytes(alias)),
            sql.SQL("{} as problem").format(self.problem(alias)),
        ])


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _as_code(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() and len(text) <= 9 else None


def _text(value: Any, limit: int) -> str:
    return "" if value is None else literal(str(value), single_line=True, limit=limit)


def _message(row: Mapping[str, Any]) -> DlqMessage:
    problem = row["problem"]
    return DlqMessage(
        id=int(row["id"]), received_at=row["received_at"], error_code=_as_code(row["error_code"]),
        error_message=_text(row["error_message"], LIST_ERROR_CHARS), message_sid=_text(row["message_sid"], 64),
        endpoint=_text(row["endpoint"], 120), workflow=_text(row["workflow"], 120), status=str(row["status"]),
        attempts=None if row["attempts"] is None else int(row["attempts"]),
        payload_bytes=int(row["payload_bytes"] or 0), payload_valid=problem is None,
        payload_problem=None if problem is None else str(problem))


def _first_line(exc: BaseException, target: DbTarget | None) -> str:
    text = str(exc) or type(exc).__name__
    if target is not None:
        text = target.scrub(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return literal(lines[0] if lines else text, single_line=True, limit=200)


# -- the store ------------------------------------------------------------------------------------

class DlqStore:
    """Async access to the dead-letter table; one connection, reused, replaced when it dies.

    Reads are serialised on the connection; a bulk action takes the connection one chunk at
    a time, so the list stays usable while a large re-queue runs.
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
        self._schema: tuple[ColumnMapping, _Sql] | None = None
        self._target: _Target | DlqError | None = None
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

    async def _prepared(self) -> tuple[ColumnMapping, _Sql] | DlqError:
        if self._schema is not None:
            return self._schema
        problem = self._config_error()
        if problem is not None:
            return problem
        try:
            return await self._read(self._introspect, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "reading the dead-letter table's columns")

    async def _relation(self, conn: AsyncConn, name: str, what: str) -> tuple[dict[str, Any],
                                                                            list[dict[str, Any]]] | DlqError:
        parts = _split_name(name)
        shown = literal(name, single_line=True, limit=80)
        if parts is None:
            return DlqError("config", f"{what} {shown!r} is not a valid table name (expected schema.table)")
        quoted = sql.Identifier(*parts).as_string(conn)
        cur = await conn.execute(
            "select c.oid, n.nspname, c.relname, c.relkind, "
            "has_table_privilege(c.oid, 'SELECT') as can_select, has_table_privilege(c.oid, 'UPDATE') as can_update, "
            "has_table_privilege(c.oid, 'INSERT') as can_insert "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(%s)", [quoted])
        rel = await cur.fetchone()
        if rel is None:
            db = literal(conn.info.dbname, single_line=True, limit=60)
            return DlqError("config", f"{what} {shown} does not exist in database {db} (or the console's user "
                                      "cannot see it)")
        if rel["relkind"] not in ("r", "p", "v", "f"):
            return DlqError("config", f"{what} {shown} is not a table")
        cols = await (await conn.execute(
            "select a.attname as name, t.typname as udt, format_type(a.atttypid, a.atttypmod) as type, "
            "a.attnotnull as not_null, (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '') as has_default, "
            "t.typtype as typtype "
            "from pg_attribute a join pg_type t on t.oid = a.atttypid "
            "where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum", [rel["oid"]])).fetchall()
        return dict(rel), [dict(c) for c in cols]

    async def _introspect(self, conn: AsyncConn) -> tuple[ColumnMapping, _Sql] | DlqError:
        assert self.dlq is not None
        table_name = self.dlq.table
        shown = literal(table_name, single_line=True, limit=80)
        found = await self._relation(conn, table_name, "[dlq] table")
        if isinstance(found, DlqError):
            return found
        rel, cols = found
        if not rel["can_select"]:
            return DlqError("permission", f"the console's user may not read {shown} (grant select)")
        by_name = {c["name"]: c for c in cols}
        unknown = sorted(k for k in self.mapping_config if k not in LOGICAL_COLUMNS)
        if unknown:
            return DlqError("config", "[dlq] columns has unknown key(s) " + ", ".join(
                literal(k, single_line=True, limit=40) for k in unknown) + "; known: " + ", ".join(LOGICAL_COLUMNS))
        columns: dict[str, str] = {}
        types: dict[str, str] = {}
        bad_maps: list[str] = []
        for logical in LOGICAL_COLUMNS:
            physical = self.mapping_config.get(logical, logical)
            col = by_name.get(physical)
            if col is None:
                if logical in self.mapping_config:
                    bad_maps.append(f"{logical} = {literal(physical, single_line=True, limit=40)!r}")
                continue
            columns[logical] = physical
            types[logical] = "enum" if col["typtype"] == "e" else str(col["udt"])
        if bad_maps:
            return DlqError("config", f"[dlq] columns maps {', '.join(bad_maps)}, but {shown} has no such "
                                      "column")
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            return DlqError("config", f"{shown} lacks required column(s) {', '.join(missing)} — map them with "
                                      f"[dlq] columns = {{ {missing[0]} = \"<column>\" }} (required: "
                                      f"{', '.join(REQUIRED_COLUMNS)})")
        wrong: list[str] = []
        allowed = {"id": _INT_TYPES, "received_at": _TIME_TYPES, "error_code": _INT_TYPES | _TEXT_TYPES,
                   "payload": _JSON_TYPES, "status": _TEXT_TYPES | {"enum"}}
        for logical, ok in allowed.items():
            if types[logical] not in ok:
                wrong.append(f"{logical} ({columns[logical]}: {by_name[columns[logical]]['type']}; expected "
                             f"{' or '.join(sorted(ok))})")
        if wrong:
            return DlqError("config", f"{shown}: column type(s) the console cannot use: {'; '.join(wrong)}")
        notes: list[str] = []
        for logical, ok_types in (("payload_raw", _TEXT_TYPES), ("history", {"jsonb"})):
            if logical in columns and types[logical] not in ok_types:
                notes.append(f"{logical} ({columns[logical]}) is {by_name[columns[logical]]['type']}, not "
                             f"{' or '.join(sorted(ok_types))}: ignored")
                del columns[logical]
        if "discard_reason" not in columns:
            notes.append("no discard_reason column: discarding is off")
        if "history" not in columns:
            notes.append("no history column: fixing payloads is off (the original must be kept)")
        if "requeued_at" not in columns:
            notes.append("no requeued_at column: a commit interrupted by a lost connection is verified by "
                         "status only")
        mapping = ColumnMapping(table=table_name, columns=columns, types=types, can_update=bool(rel["can_update"]),
                                notes=tuple(notes))
        table = sql.Identifier(str(rel["nspname"]), str(rel["relname"]))
        schema = (mapping, _Sql(mapping, table, self.dlq.never_requeue_error_codes))
        self._schema = schema
        self._target = None
        return schema

    async def _requeue_target(self, conn: AsyncConn) -> _Target | DlqError:
        if self._target is not None:
            return self._target
        assert self.dlq is not None
        rq = self.dlq.requeue
        result: _Target | DlqError
        if rq.kind == "pgmq":
            result = await self._pgmq_target(conn, rq.queue)
        elif rq.kind == "table":
            result = await self._table_target(conn, rq.target)
        else:
            result = DlqError("config", f"[dlq] requeue kind {literal(rq.kind, single_line=True, limit=20)!r} is "
                                        "not supported (table or pgmq)")
        self._target = result
        return result

    async def _pgmq_target(self, conn: AsyncConn, queue: str) -> _Target | DlqError:
        shown = literal(queue, single_line=True, limit=60)
        if not _QUEUE_NAME.match(queue):
            return DlqError("config", f"[dlq] requeue queue {shown!r} is not a valid queue name (letters, digits, _)")
        row = await (await conn.execute(
            "select exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'pgmq' and p.proname = 'send') as has_send, "
            "to_regclass(%s) is not null as has_queue", [f'pgmq."q_{queue.lower()}"'])).fetchone()
        assert row is not None
        if not row["has_send"]:
            return DlqError("config", "[dlq] requeue kind is pgmq, but this database has no pgmq.send (enable "
                                      "Supabase Queues / create extension pgmq)")
        if not row["has_queue"]:
            return DlqError("config", f"[dlq] requeue queue {shown} does not exist (pgmq.create({shown!r}), or "
                                      "check the name against pgmq.list_queues())")
        return _Target(kind="pgmq", describe=f"Supabase Queue (pgmq) {shown}", queue=queue,
                       ref_prefix=f"pgmq:{queue}:")

    async def _table_target(self, conn: AsyncConn, name: str) -> _Target | DlqError:
        found = await self._relation(conn, name, "[dlq] requeue target")
        if isinstance(found, DlqError):
            return found
        rel, cols = found
        shown = literal(name, single_line=True, limit=80)
        if self._schema is not None and sql.Identifier(str(rel["nspname"]), str(rel["relname"])) == \
                self._schema[1].table:
            return DlqError("config", "[dlq] requeue target is the dead-letter table itself")
        if not rel["can_insert"]:
            return DlqError("permission", f"the console's user may not insert into {shown} (grant insert)")
        by_name = {c["name"]: c for c in cols}
        fills = tuple(c for c in _TARGET_FILLS if c in by_name)
        unfillable = [c["name"] for c in cols if c["not_null"] and not c["has_default"] and c["name"] not in fills]
        if unfillable:
            return DlqError("config", f"[dlq] requeue target {shown} has required column(s) the console cannot "
                                      f"fill: {', '.join(literal(c, single_line=True, limit=40) for c in unfillable)}"
                                      f" (it fills {', '.join(_TARGET_FILLS)})")
        if "payload" in by_name and by_name["payload"]["udt"] not in _JSON_TYPES:
            return DlqError("config", f"[dlq] requeue target {shown}: payload is not json/jsonb")
        id_column = "id" if "id" in by_name else None
        link = "dlq_message_id" if "dlq_message_id" in by_name else None
        return _Target(kind="table", describe=f"table {shown}",
                       table=sql.Identifier(str(rel["nspname"]), str(rel["relname"])), fills=fills,
                       payload_type=str(by_name["payload"]["udt"]) if "payload" in by_name else "jsonb",
                       id_column=id_column, link_column=link, ref_prefix=f"{rel['relname']}:")

    # -- reads ------------------------------------------------------------------------------
    def _filter_timeout(self, flt: DlqFilter | None) -> tuple[int, str]:
        if flt is not None and flt.text:
            return self.text_search_timeout_ms, (
                " — the text filter scans every payload: narrow it with an error code or an age, or index it "
                "(create extension pg_trgm; create index on the table using gin ((payload::text) gin_trgm_ops))")
        return self.read_timeout_ms, ""

    def _page_query(self, q: _Sql, flt: DlqFilter, cursor: PageCursor | None, limit: int, direction: Direction,
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
                code = _as_code(raw_key)
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
        code = _as_code(row["error_code"])
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

    # -- previews ---------------------------------------------------------------------------
    def _classify_sql(self, q: _Sql, action: str) -> tuple[sql.Composable, sql.Composable]:
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

    async def _plan_rows(self, q: _Sql, selection: Selection, action: str) -> tuple[list[DictRow], Selection]:
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

    def _summarise(self, q: _Sql, selection: Selection, rows: Sequence[Mapping[str, Any]],
                   ) -> tuple[int, int, tuple[CodeCount, ...], tuple[Refusal, ...]]:
        never = frozenset(q.never)
        per_code: dict[int | None, list[int]] = {}
        refusals: dict[tuple[str, str], list[Any]] = {}
        selected = ok = 0
        for r in rows:
            n = int(r["n"])
            code = _as_code(r["code"])
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

    async def _target_or_error(self) -> _Target | DlqError:
        if isinstance(self._target, _Target):
            return self._target
        try:
            return await self._read(self._requeue_target, self.read_timeout_ms)
        except (psycopg.Error, OSError, TimeoutError, ConfigProblem) as exc:
            return self._error(exc, "checking the re-queue target")

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

    def _candidates(self, q: _Sql, selection: Selection, action: str, params: dict[str, Any]) -> sql.Composable:
        if selection.ids is not None:
            return sql.SQL("select unnest(%(chunk)s::int8[]) as id")
        conds = q.selection_conds(selection, params)
        params["needed"] = DISCARDED if action == "undo_discard" else WAITING
        conds.append(sql.SQL("{} = %(needed)s").format(q.c("status")))
        conds.append(sql.SQL("{} > %(after)s").format(q.c("id")))
        return sql.SQL("select {id} as id from {table} as t where {where} order by {id} limit %(chunk_size)s").format(
            id=q.c("id"), table=q.table, where=q.where(conds))

    def _chunk_statement(self, q: _Sql, action: str, cand: sql.Composable, target: _Target | None,
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

    async def _batch(self, action: str, q: _Sql, selection: Selection, *, target: _Target | None = None,
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

    async def _max_id(self, conn: AsyncConn, q: _Sql) -> int:
        row = await (await conn.execute(sql.SQL("select max({}) as m from {} as t").format(q.c("id"), q.table))
                     ).fetchone()
        return int(row["m"] or 0) if row is not None else 0

    async def _run_chunk(self, action: str, q: _Sql, statement: sql.Composed,
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

    async def _reconcile(self, action: str, q: _Sql, row: Mapping[str, Any], error: DlqError) -> _Uncertain:
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


def _default_operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"opsconsole:{user}"
