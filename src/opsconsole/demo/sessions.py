"""Database sessions that make `db.long_running` and the terminate/cancel actions worth a drill.

PostgreSQL cannot be told a query started an hour ago, so the queries really run: they are sent
with libpq's asynchronous `send_query` and never waited for, so no thread is tied up and
`close()` can cancel them. Sessions log in over TCP as the app roles (scram), with the
application names the operator would see in production.

incident:
  * metabase (authenticator): a long analytics query;
  * n8n-sync (service_worker): a long reconciliation query;
  * campaign-worker (service_worker): idle in transaction, holding a row lock on campaign_queue;
  * campaign-worker (service_worker): the same UPDATE, waiting for that lock (a blocking chain);
  * a few short idle connections.
healthy: only the short idle connections.

`ops` (the owner role) may terminate the service_worker backends (it is a member) but not the
authenticator one: see `opsconsole.demo.seed`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from opsconsole.demo.scenario import DemoSecrets, has
from opsconsole.demo.seed import READER_ROLE, WORKER_ROLE

ANALYTICS_SQL = (
    "/* metabase: DLQ failures per hour and error code, last 30 days */\n"
    "with slow as materialized (select pg_sleep({sleep}))\n"
    "select date_trunc('hour', d.received_at) as hour, d.error_code, count(*)\n"
    "from public.dead_letter_messages d, slow\n"
    "where d.received_at > now() - interval '30 days'\n"
    "group by 1, 2 order by 1 desc"
)
SYNC_SQL = (
    "/* n8n-sync: reconcile campaign_queue with delivery receipts */\n"
    "select q.id, q.status, q.to_number from public.campaign_queue q\n"
    "cross join lateral (select pg_sleep({sleep})) s\n"
    "where q.id = (select min(id) from public.campaign_queue)"
)
LOCK_SQL = ("update public.campaign_queue set locked_by = %s, locked_at = now(), status = 'processing' "
            "where id = %s")


@dataclass
class _Session:
    name: str
    role: str
    conn: psycopg.Connection[TupleRow]
    busy: bool = False  # a query was sent and never read


class _Dsn(Protocol):
    def dsn(self, user: str, password: str) -> str: ...


class LongRunningSessions:
    """Open the scenario's sessions with `start()`; `close()` cancels and closes them all.

    `pg` is the running `DemoPostgres` (anything with `dsn(user, password)`); sessions log in
    with `secrets.db_password`. `sleep_s` is how long the long queries run.
    """

    def __init__(self, pg: _Dsn, scenario: str, secrets: DemoSecrets, *, sleep_s: int = 86400,
                 ready_timeout_s: float = 5.0) -> None:
        self.pg = pg
        self.scenario = scenario
        self.password = secrets.db_password
        self.sleep_s = sleep_s
        self.ready_timeout_s = ready_timeout_s
        self.locked_row: int | None = None
        self._sessions: list[_Session] = []

    def dsn(self, role: str) -> str:
        return self.pg.dsn(role, self.password)

    def start(self) -> LongRunningSessions:
        """Open every session; returns when the long queries run and the waiter is waiting."""
        try:
            for app in ("campaign-worker", "n8n-sync", "postgrest"):
                self._open(app, WORKER_ROLE if app != "postgrest" else READER_ROLE)
            if has(self.scenario, "db-load"):
                self._incident()
        except BaseException:
            self.close()
            raise
        return self

    def _incident(self) -> None:
        metabase = self._open("metabase", READER_ROLE)
        self._send(metabase, ANALYTICS_SQL.format(sleep=int(self.sleep_s)))
        sync = self._open("n8n-sync", WORKER_ROLE)
        self._send(sync, SYNC_SQL.format(sleep=int(self.sleep_s)))

        holder = self._open("campaign-worker", WORKER_ROLE, autocommit=False)
        row = holder.conn.execute("select id from public.campaign_queue where status = 'pending' "
                                  "order by available_at, id limit 1 for update").fetchone()
        if row is None:
            raise RuntimeError("campaign_queue has no pending row to lock; seed the database first")
        self.locked_row = int(row[0])
        holder.conn.execute(LOCK_SQL, ["campaign-worker-1", self.locked_row])  # stays idle in transaction
        waiter = self._open("campaign-worker", WORKER_ROLE)
        query = sql.SQL(LOCK_SQL.replace("%s", "{}")).format(
            sql.Literal("campaign-worker-2"), sql.Literal(self.locked_row))
        self._send(waiter, query.as_string(waiter.conn))
        self._wait_until_running(holder, waiter)

    def _open(self, app: str, role: str, *, autocommit: bool = True) -> _Session:
        conn = psycopg.connect(self.dsn(role), application_name=app, autocommit=autocommit, connect_timeout=5)
        session = _Session(name=app, role=role, conn=conn)
        self._sessions.append(session)
        return session

    @staticmethod
    def _send(session: _Session, query: str) -> None:
        session.conn.pgconn.send_query(query.encode())
        session.busy = True

    def _wait_until_running(self, holder: _Session, waiter: _Session) -> None:
        """Block until the waiter shows up as blocked by the holder (from the holder's view)."""
        check = self._sessions[0].conn  # an idle autocommit session
        holder_pid = holder.conn.info.backend_pid
        waiter_pid = waiter.conn.info.backend_pid
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            row = check.execute("select %s = any(pg_blocking_pids(%s))", [holder_pid, waiter_pid]).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.02)
        raise RuntimeError("the demo blocking chain did not form in time")

    def pids(self) -> dict[str, list[int]]:
        """Backend pids per application name (tests and the drill use them)."""
        out: dict[str, list[int]] = {}
        for s in self._sessions:
            if not s.conn.closed:
                out.setdefault(s.name, []).append(s.conn.info.backend_pid)
        return out

    def close(self) -> None:
        """Cancel running queries, roll back, close. Safe to call twice and after a terminate."""
        sessions, self._sessions = self._sessions, []
        # Newest first: the lock waiter is cancelled before the holder's transaction ends, so
        # closing never lets the waiter's UPDATE go through.
        for s in reversed(sessions):
            if s.conn.closed:
                continue
            if s.busy:
                with contextlib.suppress(psycopg.Error, OSError):
                    s.conn.cancel_safe(timeout=2.0)
            with contextlib.suppress(psycopg.Error, OSError):
                s.conn.close()

    def __enter__(self) -> LongRunningSessions:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
