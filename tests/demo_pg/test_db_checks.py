"""The database checks against the real demo PostgreSQL: pooler faults, long-running sessions,
blocking chains and the dead-letter queue, for both scenarios. No check may raise."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time

import psycopg
import pytest

from opsconsole.adapters.postgres import (
    DlqDepthCheck,
    LongRunningCheck,
    PoolerCheck,
    PostgresAdapter,
    describe_connect_error,
    parse_target,
)
from opsconsole.demo.pooler import PoolerProxy
from opsconsole.demo.seed import READER_ROLE, WORKER_ROLE
from opsconsole.domain.models import CheckResult, Status
from opsconsole.settings import Secret, Settings

from .conftest import PgEnv

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")


async def run_check(settings: Settings, check_id: str) -> CheckResult:
    adapter = PostgresAdapter(settings)
    try:
        check = next(c for c in adapter.checks() if c.id == check_id)
        return await check.run()
    finally:
        await adapter.aclose()


def assert_no_secret(result: CheckResult, *secrets: str) -> None:
    blob = json.dumps(result.to_json(), default=str)
    for secret in secrets:
        assert secret not in blob


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- supabase.pooler ---------------------------------------------------------------------------

async def test_pooler_ok(incident: PgEnv, pooler: PoolerProxy) -> None:
    res = await run_check(incident.settings(), "supabase.pooler")
    assert res.status is Status.OK, res.summary
    assert res.system == "supabase" and res.title == "Connection pooler (6543)"
    assert res.summary.startswith("select 1 in ")
    assert res.summary.endswith(f"ms via 127.0.0.1:{pooler.port} (transaction mode, prepared statements off)")
    assert res.latency_ms is not None and res.latency_ms < 1000
    assert res.details["url"] == f"postgresql://postgres.opsdemoprojectrefabc:***@127.0.0.1:{pooler.port}/postgres"
    assert_no_secret(res, incident.secrets.db_password)


async def test_pooler_refused(incident: PgEnv, pooler: PoolerProxy) -> None:
    pooler.set_mode("refuse")
    res = await run_check(incident.settings(), "supabase.pooler")
    assert res.status is Status.FAIL
    assert res.summary == (f"pooler refused the connection at 127.0.0.1:{pooler.port} — "
                           "is Supavisor up / the port right?")
    assert res.details["kind"] == "refused"


async def test_pooler_hang_times_out(incident: PgEnv, pooler: PoolerProxy) -> None:
    pooler.set_mode("hang")
    started = time.perf_counter()
    res = await run_check(incident.settings(timeout_s=1.5), "supabase.pooler")
    elapsed = time.perf_counter() - started
    assert res.status is Status.FAIL
    assert res.details["kind"] == "timeout"
    assert res.summary.startswith(f"no answer from the pooler at 127.0.0.1:{pooler.port} within 1.5 s")
    assert elapsed < 3.5


async def test_pooler_slow_is_a_warning(incident: PgEnv, pooler: PoolerProxy) -> None:
    pooler.set_mode("slow", delay_s=1.1)
    res = await run_check(incident.settings(timeout_s=5), "supabase.pooler")
    assert res.status is Status.WARN, res.summary
    assert res.summary.startswith("slow: select 1 took 1.")
    assert res.latency_ms is not None and res.latency_ms >= 1000


async def test_pooler_wrong_password(incident: PgEnv, pooler: PoolerProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "Wrong-Pa55word-xyz"
    monkeypatch.setenv("SUPABASE_POOLER_URL", incident.pooler_url(password=bad))
    res = await run_check(incident.settings(pooler_url=Secret.env("SUPABASE_POOLER_URL")), "supabase.pooler")
    assert res.status is Status.FAIL
    assert res.summary == ("password authentication failed for user postgres.opsdemoprojectrefabc — "
                           "check SUPABASE_POOLER_URL")
    assert_no_secret(res, bad, incident.secrets.db_password)


async def test_pooler_unset_env_and_garbage_url(incident: PgEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_POOLER_URL", raising=False)
    res = await run_check(incident.settings(pooler_url=Secret.env("SUPABASE_POOLER_URL")), "supabase.pooler")
    assert res.status is Status.FAIL and "SUPABASE_POOLER_URL is not set" in res.summary
    garbage = "host=db password=s3cr3t-value sslmode"  # libpq would quote this back
    res = await run_check(incident.settings(pooler_url=Secret.literal(garbage)), "supabase.pooler")
    assert res.status is Status.FAIL and "not a valid PostgreSQL connection string" in res.summary
    assert_no_secret(res, "s3cr3t-value")
    bad_port = "postgresql://u:s3cr3t-value@host:notaport/db"
    res = await run_check(incident.settings(pooler_url=Secret.literal(bad_port)), "supabase.pooler")
    assert res.status is Status.FAIL and "invalid port" in res.summary
    assert_no_secret(res, "s3cr3t-value")


def test_pooler_proxy_stops_its_threads(incident: PgEnv) -> None:
    before = set(threading.enumerate())
    proxy = PoolerProxy("127.0.0.1", incident.pg.port, mode="hang").start()
    with socket.create_connection(("127.0.0.1", proxy.port)) as hung:
        hung.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest, never answered
        time.sleep(0.2)
        assert proxy.accepted == 1
        started = time.perf_counter()
        proxy.stop()
        assert time.perf_counter() - started < 1.5
    assert [t for t in set(threading.enumerate()) - before if t.is_alive()] == []
    proxy.stop()  # idempotent


def test_connect_error_summaries_are_distinct() -> None:
    target = parse_target("postgresql://postgres.ref:pw@aws-0-eu.pooler.supabase.com:6543/postgres", hint="X")
    cases = {
        "tenant": psycopg.OperationalError("connection failed: FATAL:  Tenant or user not found"),
        "role": psycopg.OperationalError('connection failed: FATAL:  role "x" does not exist'),
        "db": psycopg.OperationalError('connection failed: FATAL:  database "nope" does not exist'),
        "dns": psycopg.OperationalError("could not translate host name \"aws-0-eu\" to address"),
        "full": psycopg.OperationalError("FATAL:  sorry, too many connections"),
        "closed": psycopg.OperationalError("server closed the connection unexpectedly"),
        "timeout": TimeoutError(),
    }
    summaries = {k: describe_connect_error(e, what="pooler", target=target, hint="X", timeout_s=2)[1]
                 for k, e in cases.items()}
    assert len(set(summaries.values())) == len(cases)
    assert "postgres.<project_ref>" in summaries["tenant"]
    assert all("pw@" not in s for s in summaries.values())


# -- db.long_running ---------------------------------------------------------------------------

async def test_long_running_sessions_and_blocking_chain(incident: PgEnv) -> None:
    incident.wait_sessions_older_than(1.2)
    res = await run_check(incident.settings(long_running_s=1.0), "db.long_running")
    assert res.status is Status.FAIL, res.summary
    assert res.system == "db" and res.title == "Long-running queries"
    pids = incident.sessions.pids()
    sessions = {s["pid"]: s for s in res.details["sessions"]}
    for app in ("metabase", "n8n-sync"):
        long_pid = next(p for p in pids[app] if p in sessions)
        s = sessions[long_pid]
        assert s["state"] == "active" and s["duration_s"] >= 1.0 and "pg_sleep" in s["query"]
    waiting = [s for s in sessions.values() if s["blocked_by"]]
    assert len(waiting) == 1
    holder = sessions[waiting[0]["blocked_by"][0]]
    assert holder["application"] == "campaign-worker" and holder["state"] == "idle in transaction"
    assert holder["blocking"] == [waiting[0]["pid"]]
    assert waiting[0]["wait_event"].startswith("Lock:")
    assert res.details["blocking_chains"] == [{"holder": holder["pid"], "waiting": [waiting[0]["pid"]]}]
    assert f"blocking chain: pid {holder['pid']} (campaign-worker, idle in transaction" in res.summary
    assert {s["user"] for s in sessions.values()} == {WORKER_ROLE, READER_ROLE}
    assert all("\x1b" not in s["query"] and "\n" not in s["query"] for s in sessions.values())


async def test_long_running_excludes_its_own_backend(incident: PgEnv) -> None:
    res = await run_check(incident.settings(long_running_s=0.0), "db.long_running")
    apps = {s["application"] for s in res.details["sessions"]}
    assert "opsconsole" not in apps
    assert "metabase" in apps


async def test_long_running_threshold_rules(healthy: PgEnv) -> None:
    """healthy: OK; one query over T: WARN; over 5×T: FAIL."""
    res = await run_check(healthy.settings(long_running_s=1.0), "db.long_running")
    assert res.status is Status.OK, res.summary
    assert res.summary.startswith("no query running longer than 1 s")
    conn = psycopg.connect(healthy.pg.dsn(WORKER_ROLE, healthy.secrets.db_password),
                           application_name="report-job", autocommit=True)
    conn.pgconn.send_query(b"select pg_sleep(30)")  # runs on without blocking this test
    try:
        await asyncio.sleep(1.1)
        res = await run_check(healthy.settings(long_running_s=1.0), "db.long_running")
        assert res.status is Status.WARN, res.summary
        assert "1 session over 1 s" in res.summary and "report-job" in res.summary
        res = await run_check(healthy.settings(long_running_s=0.2), "db.long_running")
        assert res.status is Status.FAIL, res.summary  # 1.1 s > 5 × 0.2 s
    finally:
        conn.cancel_safe()
        conn.close()


async def test_long_running_without_pg_read_all_stats_says_so(healthy: PgEnv) -> None:
    """A console user that cannot see other roles' sessions must not report 'all fine'."""
    url = healthy.pg.dsn(WORKER_ROLE, healthy.secrets.db_password)
    res = await run_check(healthy.settings(database_url=Secret.literal(url)), "db.long_running")
    assert res.status is Status.UNKNOWN, res.summary
    assert "grant pg_read_all_stats" in res.summary and res.details["hidden_sessions"] >= 1


async def test_database_unreachable_is_a_result(incident: PgEnv) -> None:
    url = f"postgresql://ops:{incident.secrets.db_password}@127.0.0.1:{closed_port()}/postgres"
    settings = incident.settings(database_url=Secret.literal(url))
    for check_id in ("db.long_running", "dlq.depth"):
        res = await run_check(settings, check_id)
        assert res.status is Status.FAIL
        assert "database refused the connection at 127.0.0.1:" in res.summary
        assert_no_secret(res, incident.secrets.db_password)


async def test_adapter_reconnects_after_its_session_is_killed(incident: PgEnv) -> None:
    adapter = PostgresAdapter(incident.settings())
    check = next(c for c in adapter.checks() if c.id == "dlq.depth")
    try:
        first = await check.run()
        assert first.status is Status.FAIL
        with psycopg.connect(incident.pg.admin_dsn, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                          "where application_name = 'opsconsole'")
        second = await check.run()
        assert second.status is Status.FAIL and second.details["waiting"] == first.details["waiting"]
    finally:
        await adapter.aclose()


# -- dlq.depth ---------------------------------------------------------------------------------

async def test_dlq_depth_incident(incident: PgEnv) -> None:
    res = await run_check(incident.settings(), "dlq.depth")
    report = incident.report
    assert res.status is Status.FAIL, res.summary
    assert res.system == "dlq" and res.title == "Dead-letter queue"
    assert res.details["waiting"] == report.waiting
    assert res.details["recent_15m"] == report.recent_15m
    assert res.summary == f"{report.waiting:,} waiting, {report.recent_15m} arrived in the last 15 min (mostly 30008)"
    assert res.details["recent_by_error_code"][0]["error_code"] == 30008


async def test_dlq_depth_healthy(healthy: PgEnv) -> None:
    res = await run_check(healthy.settings(), "dlq.depth")
    assert res.status is Status.OK, res.summary
    assert res.details["waiting"] == healthy.report.waiting < 100
    assert res.details["recent_15m"] == 0
    assert res.summary.startswith(f"{healthy.report.waiting} waiting, none in the last 15 min, newest ")


async def test_dlq_missing_table_is_a_configuration_error(incident: PgEnv) -> None:
    res = await run_check(incident.settings(dlq_table="public.no_such_table"), "dlq.depth")
    assert res.status is Status.UNKNOWN
    assert res.summary == ("configuration error: table public.no_such_table does not exist in database "
                           "postgres — check [dlq] table")
    res = await run_check(incident.settings(dlq_table="a.b.c"), "dlq.depth")
    assert res.status is Status.UNKNOWN and "not a valid table name" in res.summary
    # A hostile name is quoted, never executed.
    res = await run_check(incident.settings(dlq_table='public."x; drop table campaign_queue; --"'), "dlq.depth")
    assert res.status is Status.UNKNOWN and "does not exist" in res.summary
    with psycopg.connect(incident.pg.admin_dsn) as conn:
        assert conn.execute("select to_regclass('public.campaign_queue')").fetchone() != (None,)


async def test_dlq_table_with_other_shape(incident: PgEnv) -> None:
    res = await run_check(incident.settings(dlq_table="supabase_migrations.schema_migrations"), "dlq.depth")
    assert res.status is Status.UNKNOWN
    assert "is not a dead-letter table as expected" in res.summary


async def test_unconfigured_checks_are_off() -> None:
    results = [await c.run() for c in PostgresAdapter(Settings()).checks()]
    assert [r.id for r in results] == ["supabase.pooler", "db.long_running", "dlq.depth"]
    assert all(r.status is Status.OFF and r.summary.startswith("not configured") for r in results)
    assert isinstance(PostgresAdapter(Settings()).checks()[0], PoolerCheck)
    assert isinstance(PostgresAdapter(Settings()).checks()[1], LongRunningCheck)
    assert isinstance(PostgresAdapter(Settings()).checks()[2], DlqDepthCheck)
