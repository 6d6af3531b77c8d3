"""Run a migration's revert: as a dry run inside a transaction that is rolled back, or for real in
one transaction that also removes the version from `schema_migrations`.

Both runs do exactly the same, in the same order, in one transaction, with `lock_timeout` and
`statement_timeout` set:

1. Take the locks the revert needs up front (ACCESS EXCLUSIVE on the tables its DDL touches, SHARE
   ROW EXCLUSIVE where it only changes rows), so nobody writes between counting and changing. A lock
   that cannot be had within `lock_timeout` stops the run: a second connection watches
   `pg_blocking_pids` while it waits, and the blocking sessions (pid, user, application, state,
   query) are reported. Nothing is waited on longer.
2. Per statement: count what it will destroy, on the state the earlier statements left
   ("drops column public.contacts.opt_out_reason: 1,204 non-null values lost"; rows of a dropped or
   truncated table; values an ALTER COLUMN TYPE changes; rows an UPDATE or DELETE touches, from its
   row count), then execute it, keeping PostgreSQL's NOTICEs (what a CASCADE took along).
3. Dry run: roll back. Real run: delete the version from `schema_migrations` (exactly one row),
   refuse if any loss is larger than the dry run the operator confirmed, then commit.

Any error rolls everything back: a revert that fails half-way changes nothing. A connection lost
during COMMIT is reported as "outcome unknown" (PostgreSQL may or may not have committed).
Counts are never estimated: what could not be counted says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from opsconsole.adapters.migrations.history import QUALIFIED, SCHEMA, TABLE
from opsconsole.domain.migrations import ClassifiedStatement, DataEffect, StatementKind
from opsconsole.domain.text import printable

AsyncConn = psycopg.AsyncConnection[DictRow]

APP_NAME = "opsconsole-revert"
LOCK_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 0.1
_DDL_OPS = frozenset({"drop_table", "drop_column", "alter_type", "rename", "truncate"})
_DML_OPS = frozenset({"update", "delete"})

BLOCKERS_SQL = """
select a.pid, coalesce(a.usename, '') as usename, coalesce(a.application_name, '') as application_name,
       coalesce(a.state, '') as state, left(coalesce(a.query, ''), 300) as query,
       extract(epoch from clock_timestamp() - coalesce(a.xact_start, a.query_start))::float8 as xact_s
from pg_stat_activity a where a.pid = any(pg_blocking_pids(%(pid)s))
order by a.pid
"""
HOLDERS_SQL = """
select distinct a.pid, coalesce(a.usename, '') as usename, coalesce(a.application_name, '') as application_name,
       coalesce(a.state, '') as state, left(coalesce(a.query, ''), 300) as query,
       extract(epoch from clock_timestamp() - coalesce(a.xact_start, a.query_start))::float8 as xact_s
from pg_locks l join pg_stat_activity a on a.pid = l.pid
where l.relation = to_regclass(%(rel)s) and l.granted and l.pid <> %(pid)s
order by a.pid
"""


@dataclass
class Loss:
    """What one statement destroys, counted (count None: could not be counted, `note` says why)."""

    what: str
    count: int | None
    unit: str
    key: str  # stable id for comparing a real run with its dry run, e.g. "drop_column:public.contacts.x"
    note: str = ""

    @property
    def text(self) -> str:
        if self.count is None:
            return f"{self.what}: NOT COUNTED ({self.note})"
        tail = f" ({self.note})" if self.note else ""
        return f"{self.what}: {self.count:,} {self.unit} lost{tail}"

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "count": self.count, "unit": self.unit, "key": self.key, "note": self.note}


@dataclass
class StatementReport:
    index: int
    sql: str
    kind: str
    summary: str
    losses: list[Loss] = field(default_factory=list)
    rowcount: int | None = None
    ms: float = 0.0
    notices: list[str] = field(default_factory=list)
    error: str = ""
    ran: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "sql": printable(self.sql, limit=2000), "kind": self.kind,
                "summary": self.summary, "losses": [loss.to_json() for loss in self.losses],
                "rowcount": self.rowcount, "ms": round(self.ms, 1), "notices": self.notices[:20],
                "error": self.error, "ran": self.ran}


@dataclass
class RevertReport:
    """What a dry run or a real run did, statement by statement."""

    dry_run: bool
    version: str
    statements: list[StatementReport] = field(default_factory=list)
    ok: bool = False
    error: str = ""
    failed_at: int | None = None  # 1-based index of the statement that failed (0: before the first)
    blocked_by: list[dict[str, Any]] = field(default_factory=list)
    lock_wait_on: str = ""
    committed: bool = False
    outcome_unknown: bool = False
    version_removed: bool = False
    elapsed_ms: float = 0.0
    locks: list[str] = field(default_factory=list)

    @property
    def losses(self) -> list[Loss]:
        return [loss for s in self.statements for loss in s.losses]

    @property
    def counted_loss(self) -> int:
        return sum(loss.count or 0 for loss in self.losses)

    @property
    def uncounted(self) -> list[Loss]:
        return [loss for loss in self.losses if loss.count is None]

    def loss_by_key(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for loss in self.losses:
            prev = out.get(loss.key, 0)
            out[loss.key] = None if loss.count is None or prev is None else prev + loss.count
        return out

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "version": self.version, "ok": self.ok, "error": self.error,
                "failed_at": self.failed_at, "blocked_by": self.blocked_by, "lock_wait_on": self.lock_wait_on,
                "committed": self.committed, "outcome_unknown": self.outcome_unknown,
                "version_removed": self.version_removed, "elapsed_ms": round(self.elapsed_ms, 1),
                "locks": self.locks, "counted_loss": self.counted_loss,
                "statements": [s.to_json() for s in self.statements]}


class RevertProblem(Exception):
    """The run stopped; the message is for the operator (what happened, that nothing changed)."""


# -- identifiers ----------------------------------------------------------------------------------

def _table(effect: DataEffect) -> sql.Identifier:
    return sql.Identifier(effect.schema, effect.name) if effect.schema else sql.Identifier(effect.name)


async def _resolve(conn: AsyncConn, ident: sql.Composable) -> str | None:
    """The table's regclass text (schema-qualified as PostgreSQL prints it) or None when absent."""
    text = ident.as_string(conn)
    row = await (await conn.execute("select to_regclass(%s)::text as rel", [text])).fetchone()
    return str(row["rel"]) if row is not None and row["rel"] is not None else None


async def _scalar(conn: AsyncConn, query: str | sql.Composed, params: Sequence[Any] | None = None) -> Any:
    """One value, inside a savepoint so a failing count never aborts the revert's transaction."""
    async with conn.transaction():
        row = await (await conn.execute(query, params)).fetchone()
    return None if row is None else next(iter(row.values()))


def _err(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc) or type(exc).__name__
    return printable(text, single_line=True, limit=240)


# -- counting --------------------------------------------------------------------------------------

async def _count_losses(conn: AsyncConn, effect: DataEffect) -> list[Loss]:
    """What `effect` will destroy, counted on the current state of the transaction."""
    op = effect.op
    if op in ("rename",):
        return []
    if op in ("update", "delete"):
        return []  # counted exactly from the statement's row count, after it ran
    if op == "drop_schema":
        return await _count_schema(conn, effect)
    if op == "drop_type":
        return await _count_type(conn, effect)
    ident = _table(effect)
    rel = await _resolve(conn, ident)
    shown = rel or effect.qualified
    if rel is None:
        return [Loss(f"{_verb(effect)} {shown}", 0, "rows" if op != "drop_column" else "values",
                     f"{op}:{effect.qualified}", note="it does not exist: nothing to lose")]
    try:
        if op == "drop_column":
            col = sql.Identifier(effect.column or "?")
            n = await _scalar(conn, sql.SQL("select count({}) as n from {}").format(col, ident))
            return [Loss(f"drops column {shown}.{effect.column}", int(n), "non-null values",
                         f"drop_column:{rel}.{effect.column}")]
        if op == "drop_table":
            n = await _scalar(conn, sql.SQL("select count(*) as n from {}").format(ident))
            note = "CASCADE: see the notices for what else goes" if effect.cascade else ""
            return [Loss(f"drops table {shown}", int(n), "rows", f"drop_table:{rel}", note=note)]
        if op == "truncate":
            return await _count_truncate(conn, rel, effect)
        if op == "alter_type":
            return await _count_alter_type(conn, ident, rel, effect)
    except pg_errors.QueryCanceled:
        return [Loss(f"{_verb(effect)} {shown}", None, "rows", f"{op}:{rel}",
                     note="counting exceeded statement_timeout")]
    except psycopg.Error as exc:
        return [Loss(f"{_verb(effect)} {shown}", None, "rows", f"{op}:{rel}", note=_err(exc))]
    return []


def _verb(effect: DataEffect) -> str:
    return {"drop_table": "drops table", "drop_column": "drops column", "truncate": "empties table",
            "alter_type": "rewrites column", "drop_schema": "drops schema", "drop_type": "drops type"}.get(
        effect.op, effect.op)


async def _count_truncate(conn: AsyncConn, rel: str, effect: DataEffect) -> list[Loss]:
    rels = [rel]
    if effect.cascade:  # every table that references it, recursively, is emptied too
        rows = await (await conn.execute(
            "with recursive refs(oid) as (select to_regclass(%s)::oid union "
            "select c.conrelid from pg_constraint c join refs r on c.confrelid = r.oid where c.contype = 'f') "
            "select oid::regclass::text as rel from refs", [rel])).fetchall()
        rels = [str(r["rel"]) for r in rows]
    out = []
    for name in rels:
        n = await _scalar(conn, sql.SQL("select count(*) as n from {}").format(sql.SQL(name)))
        out.append(Loss(f"empties table {name}", int(n), "rows", f"truncate:{name}",
                        note="CASCADE" if name != rel else ""))
    return out


async def _count_alter_type(conn: AsyncConn, ident: sql.Identifier, rel: str, effect: DataEffect) -> list[Loss]:
    col = effect.column or "?"
    old = await _scalar(conn, "select format_type(atttypid, atttypmod) as t from pg_attribute "
                              "where attrelid = to_regclass(%s) and attname = %s and not attisdropped", [rel, col])
    values = await _scalar(conn, sql.SQL("select count({}) as n from {}").format(sql.Identifier(col), ident))
    what = f"changes the type of {rel}.{col} from {old or '?'} to {effect.new_type}"
    if effect.using or not effect.new_type or old is None:
        return [Loss(what, None, "values", f"alter_type:{rel}.{col}",
                     note=f"{int(values):,} non-null values are rewritten by a USING expression; how many change "
                          "is not counted" if effect.using else "the old or new type is unknown")]
    try:
        changed = await _scalar(conn, sql.SQL(
            "select count(*) as n from {t} where {c} is not null and ({c}::{new})::{old} is distinct from {c}").format(
            t=ident, c=sql.Identifier(col), new=sql.SQL(effect.new_type), old=sql.SQL(str(old))))
    except psycopg.Error as exc:
        return [Loss(what, None, "values", f"alter_type:{rel}.{col}",
                     note=f"some of its {int(values):,} values do not convert ({_err(exc)}): the revert fails")]
    return [Loss(what, int(changed), "values changed by the conversion", f"alter_type:{rel}.{col}",
                 note=f"of {int(values):,} non-null values rewritten")]


async def _count_schema(conn: AsyncConn, effect: DataEffect) -> list[Loss]:
    rows = await (await conn.execute(
        "select c.oid::regclass::text as rel from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'p', 'm') order by 1", [effect.name])).fetchall()
    if not rows:
        return [Loss(f"drops schema {effect.name}", 0, "rows", f"drop_schema:{effect.name}",
                     note="it holds no table")]
    out = []
    for r in rows:
        n = await _scalar(conn, sql.SQL("select count(*) as n from {}").format(sql.SQL(str(r["rel"]))))
        out.append(Loss(f"drops schema {effect.name}: table {r['rel']}", int(n), "rows", f"drop_table:{r['rel']}",
                        note="" if effect.cascade else "without CASCADE the drop fails while it holds tables"))
    return out


async def _count_type(conn: AsyncConn, effect: DataEffect) -> list[Loss]:
    name = sql.Identifier(effect.schema, effect.name) if effect.schema else sql.Identifier(effect.name)
    rows = await (await conn.execute(
        "select a.attrelid::regclass::text as rel, a.attname as col from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid and c.relkind in ('r', 'p') "
        "where a.atttypid = to_regtype(%s) and a.attnum > 0 and not a.attisdropped order by 1, 2",
        [name.as_string(conn)])).fetchall()
    out = []
    for r in rows:
        n = await _scalar(conn, sql.SQL("select count({}) as n from {}").format(
            sql.Identifier(str(r["col"])), sql.SQL(str(r["rel"]))))
        note = "CASCADE drops this column" if effect.cascade else "without CASCADE the drop fails while it is used"
        out.append(Loss(f"drops type {effect.qualified}: column {r['rel']}.{r['col']}",
                        int(n) if effect.cascade else 0, "non-null values", f"drop_column:{r['rel']}.{r['col']}",
                        note=note))
    return out


def _dml_loss(effect: DataEffect, rel: str, rowcount: int) -> Loss:
    if effect.op == "delete":
        return Loss(f"deletes rows of {rel}", rowcount, "rows", f"delete:{rel}")
    cols = ", ".join(effect.columns) or "?"
    return Loss(f"updates {rel} ({cols})", rowcount, "rows whose old values are", f"update:{rel}")


# -- the run ----------------------------------------------------------------------------------------

class _Watcher:
    """Polls pg_blocking_pids(pid) from a second connection while the revert waits for locks."""

    def __init__(self, dsn: str, pid: int) -> None:
        self.dsn = dsn
        self.pid = pid
        self.seen: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConn | None = None

    async def start(self) -> None:
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, row_factory=dict_row, prepare_threshold=None,
                application_name=APP_NAME + "-watch", connect_timeout=5)
        except (psycopg.Error, OSError):
            self._conn = None  # without a watcher the fallback query still names the lock holders
            return
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        assert self._conn is not None
        while True:
            try:
                rows = await (await self._conn.execute(BLOCKERS_SQL, {"pid": self.pid})).fetchall()
            except (psycopg.Error, OSError):
                return
            if rows:
                self.seen = [dict(r) for r in rows]
            await asyncio.sleep(WATCH_INTERVAL_S)

    async def holders(self, rel: str) -> list[dict[str, Any]]:
        if self._conn is None:
            return []
        with contextlib.suppress(psycopg.Error, OSError):
            return [dict(r) for r in await (await self._conn.execute(
                HOLDERS_SQL, {"rel": rel, "pid": self.pid})).fetchall()]
        return []

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await self._conn.close()


def _blocker_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"pid": int(row["pid"]), "user": printable(str(row["usename"]), single_line=True, limit=64),
            "application": printable(str(row["application_name"]), single_line=True, limit=64),
            "state": printable(str(row["state"]), single_line=True, limit=40),
            "query": printable(str(row["query"]), single_line=True, limit=300),
            "xact_s": round(float(row["xact_s"] or 0.0), 1)}


def describe_blockers(blockers: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for b in blockers[:5]:
        app = f" {b['application']}" if b.get("application") else ""
        parts.append(f"pid {b['pid']} ({b['user']}{app}, {b['state'] or '?'} for {b['xact_s']:.0f} s: "
                     f"{printable(str(b['query']), single_line=True, limit=80) or '(no query)'})")
    return "; ".join(parts) or "a session the console could not identify"


def _lock_plan(statements: Sequence[ClassifiedStatement]) -> list[tuple[sql.Identifier, str]]:
    """Tables to lock up front and in which mode (the strongest any statement needs)."""
    plan: dict[tuple[str | None, str], str] = {}
    for stmt in statements:
        for effect in stmt.effects:
            if effect.op not in _DDL_OPS | _DML_OPS:
                continue
            key = (effect.schema, effect.name)
            mode = "access exclusive" if effect.op in _DDL_OPS else "share row exclusive"
            if plan.get(key) != "access exclusive":
                plan[key] = mode
    return [(sql.Identifier(schema, name) if schema else sql.Identifier(name), mode)
            for (schema, name), mode in plan.items()]


async def run_revert(dsn: str, version: str, statements: Sequence[ClassifiedStatement], *, dry_run: bool,
                     confirmed: Mapping[str, int | None] | None = None, lock_timeout_s: float = LOCK_TIMEOUT_S,
                     statement_timeout_s: float = STATEMENT_TIMEOUT_S, connect_timeout_s: float = 5.0) -> RevertReport:
    """Run the revert (see the module docstring). Never raises for a database failure: the report says."""
    report = RevertReport(dry_run=dry_run, version=version)
    started = time.perf_counter()
    bad = [s for s in statements if s.kind is StatementKind.UNKNOWN or s.transaction_control
           or s.needs_no_transaction]
    if bad:
        report.error = f"statement {statements.index(bad[0]) + 1} cannot be part of a one-transaction revert"
        report.failed_at = 0
        return report
    try:
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(
            dsn, autocommit=True, row_factory=dict_row, prepare_threshold=None, application_name=APP_NAME,
            connect_timeout=max(2, math.ceil(connect_timeout_s))), timeout=connect_timeout_s + 1)
    except (TimeoutError, psycopg.Error, OSError) as exc:
        report.error = f"cannot connect to the database: {_err(exc)}; nothing was changed"
        report.failed_at = 0
        return report
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(printable(diag.message_primary or "", single_line=True,
                                                                  limit=200)))
    watcher = _Watcher(dsn, conn.info.backend_pid)
    await watcher.start()
    current: StatementReport | None = None
    waiting_on = ""
    try:
        try:
            async with conn.transaction(force_rollback=dry_run):
                await conn.execute(sql.SQL("set local lock_timeout = {}").format(
                    sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
                await conn.execute(sql.SQL("set local statement_timeout = {}").format(
                    sql.Literal(f"{int(statement_timeout_s * 1000)}ms")))
                for ident, mode in _lock_plan(statements):
                    rel = await _resolve(conn, ident)
                    if rel is None:
                        continue  # created by an earlier statement of the revert, or absent: the statement says
                    waiting_on = rel
                    await conn.execute(sql.SQL("lock table {} in {} mode").format(sql.SQL(rel), sql.SQL(mode)))
                    report.locks.append(f"{rel} ({mode.upper()})")
                waiting_on = ""
                for i, stmt in enumerate(statements, start=1):
                    current = StatementReport(index=i, sql=stmt.sql, kind=stmt.kind.value, summary=stmt.summary)
                    report.statements.append(current)
                    for effect in stmt.effects:
                        current.losses.extend(await _count_losses(conn, effect))
                    notices.clear()
                    t0 = time.perf_counter()
                    cur = await conn.execute(stmt.sql)
                    current.ms = (time.perf_counter() - t0) * 1000
                    current.ran = True
                    current.notices = list(notices)
                    current.rowcount = cur.rowcount if cur.rowcount is not None and cur.rowcount >= 0 else None
                    for effect in stmt.effects:
                        if effect.op in _DML_OPS and current.rowcount is not None:
                            rel = await _resolve(conn, _table(effect)) or effect.qualified
                            current.losses.append(_dml_loss(effect, rel, current.rowcount))
                current = None
                if not dry_run:
                    await _finish_real(conn, report, confirmed)
        except RevertProblem as exc:
            report.error = str(exc)
            report.failed_at = len(report.statements) + 1
        except pg_errors.LockNotAvailable as exc:
            rel = waiting_on
            blockers = watcher.seen or (await watcher.holders(rel) if rel else [])
            report.blocked_by = [_blocker_json(b) for b in blockers]
            report.lock_wait_on = rel
            where = f"on {rel} " if rel else ""
            report.error = (f"could not get the lock {where}within {lock_timeout_s:g} s (lock_timeout): held by "
                            f"{describe_blockers(report.blocked_by)}. Nothing was changed; end that session "
                            "(Database tab) or wait for it, then preview again")
            report.failed_at = current.index if current is not None else 0
            if current is not None:
                current.error = _err(exc)
        except pg_errors.QueryCanceled as exc:
            report.error = (f"statement {current.index if current else '?'} exceeded statement_timeout "
                            f"({statement_timeout_s:g} s): {_err(exc)}. Nothing was changed; a change this slow "
                            "needs a maintenance window and a manual run")
            report.failed_at = current.index if current is not None else 0
            if current is not None:
                current.error = _err(exc)
        except psycopg.OperationalError as exc:
            if conn.broken or conn.closed:
                if not dry_run and current is None and report.version_removed:
                    report.outcome_unknown = True
                    report.error = (f"the connection was lost while committing ({_err(exc)}): whether the revert "
                                    f"was applied is UNKNOWN; check {QUALIFIED} for version {version}")
                else:
                    report.error = f"the connection was lost ({_err(exc)}): the transaction was rolled back"
            else:
                report.error = _err(exc)
            report.failed_at = current.index if current is not None else len(report.statements) + 1
            if current is not None:
                current.error = _err(exc)
        except psycopg.Error as exc:
            state = f" [{exc.sqlstate}]" if exc.sqlstate else ""
            report.error = f"statement {current.index if current else '?'} failed{state}: {_err(exc)}"
            report.failed_at = current.index if current is not None else 0
            if current is not None:
                current.error = _err(exc)
        else:
            report.ok = True
            report.committed = not dry_run
    finally:
        await watcher.stop()
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()
        report.elapsed_ms = (time.perf_counter() - started) * 1000
    if not report.ok and not report.outcome_unknown:
        report.version_removed = False
    return report


async def _finish_real(conn: AsyncConn, report: RevertReport, confirmed: Mapping[str, int | None] | None) -> None:
    """Inside the real run's transaction: check the losses against the dry run, drop the version."""
    if confirmed is not None:
        for key, count in report.loss_by_key().items():
            agreed = confirmed.get(key)
            if count is None or (agreed is not None and count > agreed) or (agreed is None and count):
                shown = "not countable now" if count is None else f"{count:,}"
                raise RevertProblem(
                    f"the data lost changed since the dry run you confirmed ({key}: {shown} now, "
                    f"{'uncounted' if agreed is None else f'{agreed:,}'} then): nothing was reverted; preview "
                    "again to see the new counts")
    cur = await conn.execute(sql.SQL("delete from {} where version::text = %s").format(
        sql.Identifier(SCHEMA, TABLE)), [report.version])
    if cur.rowcount != 1:
        raise RevertProblem(f"version {report.version} is no longer in {QUALIFIED} (reverted by someone else?): "
                            "nothing was reverted")
    report.version_removed = True
