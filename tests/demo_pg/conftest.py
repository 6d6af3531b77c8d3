"""Shared demo databases for the demo_pg tests: one `incident` cluster (seeded, with its
long-running sessions and the pooler proxy) and one `healthy` cluster, each started once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil
import pytest

from opsconsole.demo.pooler import PoolerProxy
from opsconsole.demo.postgres import DemoPostgres
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets
from opsconsole.demo.seed import OWNER_ROLE, POOLER_ROLE, SeedReport, seed
from opsconsole.demo.sessions import LongRunningSessions
from opsconsole.settings import (
    ChecksSettings,
    DlqSettings,
    Secret,
    Settings,
    SupabaseSettings,
)


@dataclass
class PgEnv:
    pg: DemoPostgres
    secrets: DemoSecrets
    report: SeedReport
    sessions: LongRunningSessions
    pooler: PoolerProxy
    sessions_started: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.pg.dsn(OWNER_ROLE, self.secrets.db_password)

    def pooler_url(self, password: str | None = None) -> str:
        return self.pg.dsn(POOLER_ROLE, password or self.secrets.db_password, port=self.pooler.port)

    def settings(self, *, long_running_s: float = 1.0, timeout_s: float = 3.0, dlq_table: str | None = None,
                 database_url: Secret | None = None, pooler_url: Secret | None = None) -> Settings:
        supabase = SupabaseSettings(
            project_ref=PROJECT_REF,
            database_url=database_url or Secret.literal(self.database_url),
            pooler_url=pooler_url or Secret.literal(self.pooler_url()),
        )
        dlq = DlqSettings(table=dlq_table) if dlq_table is not None else DlqSettings()
        return Settings(supabase=supabase, dlq=dlq,
                        checks=ChecksSettings(timeout_s=timeout_s, long_running_s=long_running_s))

    def wait_sessions_older_than(self, seconds: float) -> None:
        remaining = self.sessions_started + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)


def _start_env(scenario: str) -> Iterator[PgEnv]:
    secrets = DemoSecrets.for_scenario(scenario)
    pg = DemoPostgres()
    t0 = time.perf_counter()
    pg.start()
    try:
        t1 = time.perf_counter()
        report = seed(pg.admin_dsn, scenario, secrets)
        t2 = time.perf_counter()
        sessions = LongRunningSessions(pg, scenario, secrets, sleep_s=600).start()
        started = time.monotonic()
        t3 = time.perf_counter()
        pooler = PoolerProxy("127.0.0.1", pg.port).start()
        timings = {"postgres": t1 - t0, "seed": t2 - t1, "sessions": t3 - t2,
                   "total": time.perf_counter() - t0}
        print(f"\n[{scenario}] demo database ready: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
        try:
            yield PgEnv(pg, secrets, report, sessions, pooler, started, timings)
        finally:
            pooler.stop()
            sessions.close()
    finally:
        pg.stop()


@pytest.fixture(scope="session")
def incident() -> Iterator[PgEnv]:
    yield from _start_env("incident")


@pytest.fixture(scope="session")
def healthy() -> Iterator[PgEnv]:
    yield from _start_env("healthy")


@pytest.fixture
def pooler(incident: PgEnv) -> Iterator[PoolerProxy]:
    """The incident pooler, back in `ok` mode after each test."""
    yield incident.pooler
    incident.pooler.set_mode("ok")


def live_processes(pids: list[int]) -> list[int]:
    """Those of `pids` that still run (zombies waiting for a reaper do not count)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def cluster_pids(postmaster: int) -> list[int]:
    """The postmaster and all its children (backends, checkpointer, io workers...)."""
    proc = psutil.Process(postmaster)
    return [postmaster, *(c.pid for c in proc.children(recursive=True))]


def processes_mentioning(marker: str) -> list[int]:
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        info: dict[str, Any] = p.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if any(marker in part for part in info.get("cmdline") or []):
            out.append(p.pid)
    return out


def wait_gone(pids: list[int], timeout_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = live_processes(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = live_processes(pids)
    return left
