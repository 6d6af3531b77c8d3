"""`db.migrations`: the newest migrations, flagged when one applied in the last 24 h is destructive.

Rule: WARN when a migration applied in the last `RECENT_H` hours holds a destructive statement, or a
statement PostgreSQL's parser could not analyse (never assumed safe); UNKNOWN when the table is
missing or unreadable, or when a destructive migration's time cannot be told; FAIL when the
database cannot be reached; OK otherwise. "Applied" is the table's applied-at column where it has
one, else the version (the CLI's UTC timestamp); the result says which (`details.applied_basis`).

`MigrationsAdapter` owns one reusable session on `supabase.database_url` (application_name
"opsconsole-migrations", statement_timeout and lock_timeout set) for the check and the Deploy
tab's migrations view.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import DictRow, dict_row

from opsconsole.adapters.migrations.history import MissingTable, find_revert, read_history
from opsconsole.adapters.pg_connection import configured, reusable
from opsconsole.adapters.postgres import (
    LOCK_TIMEOUT_MS,
    STATEMENT_TIMEOUT_MS,
    ConfigProblem,
    describe_connect_error,
    first_line,
    parse_target,
    reveal_dsn,
)
from opsconsole.domain.migrations import Migration, MigrationListing, StatementKind
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import format_age, printable
from opsconsole.settings import Settings

APP_NAME = "opsconsole-migrations"
RECENT_H = 24.0
DETAILS_MAX = 20

AsyncConn = psycopg.AsyncConnection[DictRow]


def revert_label(migration: Migration, revert_dir: str) -> str:
    """'rollback', 'file', 'ambiguous' or 'manual' (no revert): for the listing."""
    source = find_revert(migration, revert_dir)
    if source.problem:
        return "problem"
    if not source.statements:
        return "manual"
    return "rollback" if source.origin == "schema_migrations.rollback" else "file"


class MigrationsAdapter:
    """The migration history of the configured database (check + listing)."""

    system = "migrations"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout_s = float(settings.checks.timeout_s)
        self._conn: AsyncConn | None = None
        self._conn_loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._check = MigrationsCheck(self)

    def checks(self) -> list[Check]:
        return [self._check]

    @property
    def revert_dir(self) -> str:
        return self.settings.migrations.revert_dir

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._conn_loop is asyncio.get_running_loop():
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _dsn(self) -> tuple[str, Any, str]:
        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            raise ConfigProblem("not configured: supabase.database_url")
        dsn = reveal_dsn(sb.database_url)
        return dsn, parse_target(dsn, hint=sb.database_url.hint), sb.database_url.hint

    async def _session(self) -> AsyncConn:
        loop = asyncio.get_running_loop()
        conn = self._conn = await reusable(self._conn, self._conn_loop, loop)
        if conn is not None:
            return conn
        dsn, _target, _hint = self._dsn()
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, prepare_threshold=None, row_factory=dict_row, application_name=APP_NAME,
            connect_timeout=max(2, math.ceil(self.timeout_s)))
        conn = await configured(conn, [f"set statement_timeout = {STATEMENT_TIMEOUT_MS}",
                                       f"set lock_timeout = {LOCK_TIMEOUT_MS}"])
        self._conn, self._conn_loop = conn, loop
        return conn

    async def listing(self) -> MigrationListing:
        """The history, newest first; failures come back as `problem` (never raised)."""
        started = time.perf_counter()
        try:
            _dsn, target, hint = self._dsn()
        except ConfigProblem as exc:
            return MigrationListing(problem=str(exc), details={"status": "off" if "not configured" in str(exc)
                                                                else "fail"})
        try:
            async with asyncio.timeout(self.timeout_s), self._loop_lock():
                conn = await self._session()
                try:
                    listing = await read_history(conn)
                except psycopg.OperationalError:
                    if not (conn.broken or conn.closed):
                        raise
                    self._conn = None
                    listing = await read_history(await self._session())
        except MissingTable as exc:
            return MigrationListing(problem=str(exc), details={"status": "unknown"})
        except TimeoutError:
            self._conn = None
            return MigrationListing(problem=describe_connect_error(TimeoutError(), what="database", target=target,
                                                                   hint=hint, timeout_s=self.timeout_s)[1],
                                    details={"status": "fail"})
        except ConfigProblem as exc:
            return MigrationListing(problem=f"database URL unusable: {exc}", details={"status": "fail"})
        except pg_errors.InsufficientPrivilege as exc:
            return MigrationListing(problem=f"user {printable(target.user, limit=60)} may not read the migration "
                                            f"history: {first_line(exc, target)}", details={"status": "unknown"})
        except psycopg.OperationalError as exc:
            return MigrationListing(problem=describe_connect_error(exc, what="database", target=target, hint=hint,
                                                                   timeout_s=self.timeout_s)[1],
                                    details={"status": "fail"})
        except psycopg.Error as exc:
            return MigrationListing(problem=f"reading the migration history failed: {first_line(exc, target)}",
                                    details={"status": "unknown"})
        except OSError as exc:
            return MigrationListing(problem=f"cannot reach the database at {target.address}: "
                                            f"{printable(str(exc), single_line=True, limit=120)}",
                                    details={"status": "fail"})
        reverts = {m.version: revert_label(m, self.revert_dir) for m in listing.migrations}
        return replace(listing, details={"latency_ms": (time.perf_counter() - started) * 1000, "reverts": reverts})


def _destructive_summary(m: Migration) -> str:
    first = next((c for c in m.flat if c.kind is StatementKind.DESTRUCTIVE), None)
    return first.summary if first is not None else ""


class MigrationsCheck:
    id = "db.migrations"
    system = "db"
    title = "Recent migrations"

    def __init__(self, adapter: MigrationsAdapter, *, recent_h: float = RECENT_H) -> None:
        self.adapter = adapter
        self.recent_h = recent_h

    def result(self, status: Status, summary: str, *, latency_ms: float | None = None,
               details: dict[str, Any] | None = None) -> CheckResult:
        return CheckResult(self.id, self.system, self.title, status, summary, latency_ms=latency_ms,
                           details=details or {})

    async def run(self) -> CheckResult:
        listing = await self.adapter.listing()
        if listing.problem is not None:
            kind = str(listing.details.get("status", "fail"))
            status = {"off": Status.OFF, "unknown": Status.UNKNOWN}.get(kind, Status.FAIL)
            return self.result(status, listing.problem)
        return evaluate(self, listing, utcnow())


def evaluate(check: MigrationsCheck, listing: MigrationListing, now: datetime) -> CheckResult:
    migrations = listing.migrations
    latency = listing.details.get("latency_ms")
    reverts = listing.details.get("reverts", {})
    window = timedelta(hours=check.recent_h)
    details: dict[str, Any] = {
        "applied_basis": listing.applied_basis, "recent_hours": check.recent_h, "count": len(migrations),
        "rollback_column": listing.has_rollback_column,
        "migrations": [{"version": m.version, "name": m.name,
                        "applied_at": m.applied_at.isoformat() if m.applied_at else None,
                        "kind": m.kind.value, "destructive": m.count(StatementKind.DESTRUCTIVE),
                        "unknown": m.count(StatementKind.UNKNOWN), "statements": len(m.flat),
                        "revert": reverts.get(m.version, "manual")} for m in migrations[:DETAILS_MAX]],
    }
    if not migrations:
        return check.result(Status.OK, "no migrations recorded", latency_ms=latency, details=details)
    recent = [m for m in migrations if m.applied_at is not None and now - m.applied_at <= window]
    undated = [m for m in migrations if m.applied_at is None and m.kind is StatementKind.DESTRUCTIVE]
    bad = [m for m in recent if m.kind is StatementKind.DESTRUCTIVE]
    opaque = [m for m in recent if m.count(StatementKind.UNKNOWN) and m not in bad]
    details["recent_destructive"] = [m.version for m in bad]
    details["recent_unanalysed"] = [m.version for m in opaque]
    if bad:
        m = bad[0]
        assert m.applied_at is not None
        age = format_age((now - m.applied_at).total_seconds())
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        how = "V reverts it (dry run first)" if reverts.get(m.version) in ("rollback", "file") else \
            "no revert recorded: manual"
        summary = (f"destructive migration {age} ago: {m.version} {m.name}: {_destructive_summary(m)}{more} — "
                   f"{how}")
        return check.result(Status.WARN, printable(summary, single_line=True, limit=240), latency_ms=latency,
                            details=details)
    if opaque:
        m = opaque[0]
        return check.result(Status.WARN, printable(f"migration {m.version} {m.name} (last {check.recent_h:g} h) has "
                                                   f"{m.count(StatementKind.UNKNOWN)} statement(s) the parser could "
                                                   "not analyse: review them", single_line=True, limit=240),
                            latency_ms=latency, details=details)
    if undated:
        m = undated[0]
        return check.result(Status.UNKNOWN, printable(f"cannot tell when destructive migration {m.version} {m.name} "
                                                      "was applied (the version is not a timestamp and the table has "
                                                      "no applied-at column)", single_line=True, limit=240),
                            latency_ms=latency, details=details)
    newest = migrations[0]
    when = f"{format_age((now - newest.applied_at).total_seconds())} ago" if newest.applied_at else "at an unknown time"
    return check.result(Status.OK, printable(f"{len(migrations)} migrations; none destructive in the last "
                                             f"{check.recent_h:g} h; newest {newest.version} {newest.name} ({when}, "
                                             f"{newest.kind.value})", single_line=True, limit=240),
                        latency_ms=latency, details=details)
