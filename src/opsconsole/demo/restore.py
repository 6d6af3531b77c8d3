"""What a restore does to the demo database, and the database problems the demo API reports.

`DemoRestorer` keeps a copy of the demo database as it was seeded ("the backup": taken by
`take_backup` before anything else connects, so in `data-corruption` it holds the rows as they were
before the bad UPDATE). The Supabase simulator calls `begin_restore` when a restore is accepted: the
pooler proxy refuses connections, every session of the database is closed, and the database is
replaced by a copy of the backup that accepts no connection yet (PostgreSQL answers "database is not
currently accepting connections", as a real restore leaves the project unreachable). `end_restore`
opens it again and puts the pooler back as it was. Whatever the backup or time asked for, the demo
restores this one copy (it is the only one the demo has).

`missing_column_probe` is a "database problem" for the demo API's /health: the API still reads
`contacts.phone`, so after the bad migration renamed it the API fails, and it recovers when the
revert renames it back (which resolves the world's `bad-migration`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

BACKUP_DB = "opsdemo_daily_backup"
PROBE_CACHE_S = 1.0
RESTORING_PROBLEM = "database offline: a restore is in progress (the project is RESTORING)"


class DemoRestorer:
    """Takes the demo database offline, replaces it with the backup copy, brings it back."""

    def __init__(self) -> None:
        self.postgres: Any = None
        self.pooler: Any = None
        self.world: Any = None
        self.has_backup = False
        self.restoring = threading.Event()
        self.restored = 0  # completed restores (tests, drills)
        self._pooler_mode: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def attach(self, postgres: Any, pooler: Any, world: Any = None) -> None:
        self.postgres, self.pooler, self.world = postgres, pooler, world
        if world is not None and hasattr(world, "add_database_probe"):
            world.add_database_probe(lambda: RESTORING_PROBLEM if self.restoring.is_set() else None)

    @property
    def dbname(self) -> str:
        from opsconsole.demo.postgres import DATABASE

        return DATABASE

    def _admin(self) -> psycopg.Connection[Any]:
        """A superuser session on template1 (the demo database itself is dropped and recreated)."""
        assert self.postgres is not None
        return psycopg.connect(self.postgres.admin_dsn_for("template1"), autocommit=True)

    def take_backup(self) -> None:
        """Copy the demo database as it is now (call before any other session connects to it)."""
        with self._admin() as conn:
            conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(BACKUP_DB)))
            conn.execute(sql.SQL("create database {} template {} strategy file_copy").format(
                sql.Identifier(BACKUP_DB), sql.Identifier(self.dbname)))
        self.has_backup = True

    def begin_restore(self) -> None:
        """Offline: the pooler refuses, direct connections are closed, the backup copy replaces the data."""
        from opsconsole.demo.seed import OWNER_ROLE

        with self._lock:
            self.restoring.set()
            if self.pooler is not None:
                self._pooler_mode = (self.pooler.mode, self.pooler.delay_s)
                self.pooler.set_mode("refuse")
            if self.postgres is None:
                return
            db = sql.Identifier(self.dbname)
            with self._admin() as conn:
                if self.has_backup:
                    conn.execute(sql.SQL("drop database {} with (force)").format(db))
                    conn.execute(sql.SQL("create database {} template {} owner {} strategy file_copy").format(
                        db, sql.Identifier(BACKUP_DB), sql.Identifier(OWNER_ROLE)))
                    conn.execute(sql.SQL("alter database {} allow_connections false").format(db))
                else:
                    conn.execute(sql.SQL("alter database {} allow_connections false").format(db))
                    conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                                 "where datname = %s and pid <> pg_backend_pid()", [self.dbname])

    def end_restore(self, *, failed: bool = False) -> None:
        """Online again (also after a failed restore: the demo never leaves its database away)."""
        with self._lock:
            try:
                if self.postgres is not None:
                    with self._admin() as conn:
                        conn.execute(sql.SQL("alter database {} allow_connections true").format(
                            sql.Identifier(self.dbname)))
            finally:
                if self.pooler is not None and self._pooler_mode is not None:
                    mode, delay = self._pooler_mode
                    self.pooler.set_mode(mode, delay_s=delay)
                self.restoring.clear()
                if not failed:
                    self.restored += 1


def missing_column_probe(admin_dsn: Callable[[], str | None], table: str, column: str, *,
                         world: Any = None, resolves: str = "") -> Callable[[], str | None]:
    """A probe for `world.add_database_probe`: the API's error while `table.column` is missing
    (checked at most once a second); once it is back, `resolves` is resolved in `world`."""
    cache: dict[str, Any] = {"at": 0.0, "answer": None}

    def probe() -> str | None:
        now = time.monotonic()
        if now - cache["at"] < PROBE_CACHE_S:
            return cache["answer"]  # type: ignore[no-any-return]
        dsn = admin_dsn()
        answer: str | None = None
        if dsn:
            with contextlib.suppress(psycopg.Error, OSError), psycopg.connect(dsn, connect_timeout=2) as conn:
                row = conn.execute("select 1 from information_schema.columns where table_schema = 'public' "
                                   "and table_name = %s and column_name = %s", [table, column]).fetchone()
                if row is None:
                    answer = f'column {table}.{column} does not exist (SQLSTATE 42703)'
        cache.update(at=now, answer=answer)
        if answer is None and world is not None and resolves and world.has(resolves):
            world.resolve(resolves)
        return answer

    return probe
