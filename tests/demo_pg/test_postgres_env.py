"""The embedded PostgreSQL: fast start, nothing left behind on any exit path, realistic roles and data."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsconsole.demo import postgres as demo_postgres
from opsconsole.demo.postgres import (
    DemoPostgres,
    DemoPostgresError,
    pginstall_dir,
    stage_install,
    sweep_stale,
)
from opsconsole.demo.seed import ERROR_CODES, OWNER_ROLE, READER_ROLE, WORKER_ROLE

from .conftest import PgEnv, cluster_pids, processes_mentioning, wait_gone

posix_only = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
pytestmark = posix_only


@contextlib.contextmanager
def _run_child(code: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running `code`; killed (if still running) and reaped on exit."""
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                child.kill()


def _read_ready(child: subprocess.Popen[str], timeout_s: float = 20.0) -> tuple[int, Path]:
    """The child prints 'READY <postmaster pid> <base dir>' once the database runs."""
    assert child.stdout is not None
    ready, _, _ = select.select([child.stdout], [], [], timeout_s)
    assert ready, f"child printed nothing within {timeout_s} s"
    line = child.stdout.readline()
    assert line.startswith("READY "), f"child did not start: {line!r} {child.stderr.read() if child.stderr else ''}"
    _, pid, base = line.split()
    return int(pid), Path(base)


# -- lifecycle ---------------------------------------------------------------------------------

def test_start_and_stop_leave_nothing_behind() -> None:
    pg = DemoPostgres()
    started = time.perf_counter()
    pg.start()
    ready_s = time.perf_counter() - started
    print(f"\nDemoPostgres ready in {ready_s:.2f} s (initdb {pg.timings['initdb']:.2f} s, "
          f"start {pg.timings['start']:.2f} s)")
    try:
        assert ready_s < 10
        base, pids = pg.base_dir, cluster_pids(pg.pid)
        assert len(pids) > 1  # postmaster + auxiliary processes
        with psycopg.connect(pg.admin_dsn) as conn:
            row = conn.execute("select current_setting('server_version_num')::int, current_setting('fsync'), "
                               "current_setting('listen_addresses')").fetchone()
        assert row is not None and row[0] >= 180000 and row[1] == "off" and row[2] == "127.0.0.1"
        if os.geteuid() == 0:  # PostgreSQL refuses root: it runs as the dedicated system user
            assert Path(f"/proc/{pg.pid}").stat().st_uid != 0
    finally:
        pg.stop()
    assert wait_gone(pids) == []
    assert not base.exists()
    assert not pg.running
    pg.stop()  # idempotent


def test_context_manager_stops_on_exception() -> None:
    with pytest.raises(KeyboardInterrupt), DemoPostgres() as pg:
        pids, base = cluster_pids(pg.pid), pg.base_dir
        raise KeyboardInterrupt
    assert wait_gone(pids) == []
    assert not base.exists()


def test_exception_during_start_kills_the_spawned_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def broken_wait(self: DemoPostgres) -> tuple[bool, str]:
        assert self._proc is not None
        seen["pid"], seen["base"] = self._proc.pid, self.base_dir
        raise RuntimeError("simulated failure after spawning postgres")

    monkeypatch.setattr(DemoPostgres, "_wait_ready", broken_wait)
    pg = DemoPostgres()
    with pytest.raises(RuntimeError, match="simulated"):
        pg.start()
    assert isinstance(seen["pid"], int)
    assert wait_gone([seen["pid"]]) == []
    assert isinstance(seen["base"], Path) and not seen["base"].exists()
    assert not pg.running


def test_server_that_cannot_start_is_reported_and_cleaned_up() -> None:
    pg = DemoPostgres(server_settings={"shared_buffers": "not-a-size"})
    with pytest.raises(DemoPostgresError) as info:
        pg.start()
    assert "shared_buffers" in str(info.value)
    assert not pg.running
    assert processes_mentioning("not-a-size") == []


@linux_only
def test_sigkilled_parent_leaves_no_postgres() -> None:
    with _run_child("""
        import sys, time
        from opsconsole.demo.postgres import DemoPostgres
        pg = DemoPostgres().start()
        print("READY", pg.pid, pg.base_dir, flush=True)
        time.sleep(120)
    """) as child:
        pid, base = _read_ready(child)
        pids = cluster_pids(pid)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        left = wait_gone(pids, timeout_s=5)
        assert left == [], f"postgres processes survived the parent's SIGKILL: {left}"
        assert processes_mentioning(str(base)) == []
        # Nobody was left to remove the temp dir; the next start sweeps it.
        assert base in sweep_stale(base.parent)
        assert not base.exists()


def test_ctrl_c_in_the_parent_stops_everything() -> None:
    with _run_child("""
        import time
        from opsconsole.demo.postgres import DemoPostgres
        with DemoPostgres() as pg:
            print("READY", pg.pid, pg.base_dir, flush=True)
            time.sleep(120)
    """) as child:
        pid, base = _read_ready(child)
        pids = cluster_pids(pid)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=10)
        assert wait_gone(pids) == []
        assert not base.exists()


def test_atexit_stops_a_forgotten_server() -> None:
    with _run_child("""
        from opsconsole.demo.postgres import DemoPostgres
        pg = DemoPostgres().start()
        print("READY", pg.pid, pg.base_dir, flush=True)
        # no stop(): interpreter exit must do it
    """) as child:
        pid, base = _read_ready(child)
        child.wait(timeout=15)
        assert wait_gone([pid]) == []
        assert not base.exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() != 0, reason="only root stages the binaries")
def test_staged_install_runs_as_the_unprivileged_user() -> None:
    """As root with the venv below e.g. /root (0700), the binaries are staged where the postgres
    user can reach them; initdb must still find its bundled libpq."""
    run_as = demo_postgres._ensure_system_user()
    dest = Path(tempfile.mkdtemp(prefix="opsconsole-stage-test-"))
    try:
        os.chmod(dest, 0o755)
        staged = stage_install(pginstall_dir(), dest)
        for binary in ("postgres", "initdb"):
            done = subprocess.run([str(staged / "bin" / binary), "--version"], capture_output=True, text=True,
                                  user=run_as.uid, group=run_as.gid, extra_groups=[], check=False, cwd="/")
            assert done.returncode == 0, done.stderr
            assert "18." in done.stdout
    finally:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)


# -- schema, data, roles -----------------------------------------------------------------------

def test_seed_counts_by_error_code(incident: PgEnv) -> None:
    report = incident.report
    print(f"\nseeded {report.messages} messages in {report.elapsed_s:.2f} s")
    assert report.elapsed_s < 5  # measured ~0.3 s; generous for loaded CI machines
    with psycopg.connect(incident.pg.admin_dsn) as conn:
        rows = conn.execute("select error_code, count(*) from public.dead_letter_messages group by 1").fetchall()
        counts = {code: n for code, n in rows}
        total = conn.execute("select count(*) from public.dead_letter_messages").fetchone()
    assert total is not None and total[0] == report.messages == 3000
    assert counts == dict(report.by_error_code)
    assert set(ERROR_CODES) <= set(counts)
    top = max((c for c in counts if c is not None), key=lambda c: counts[c])
    assert top == 30008
    assert report.migrations == 9  # six for the DLQ and queue, three for contacts (the migration drills)


def test_malformed_hostile_and_huge_payloads_are_present(incident: PgEnv) -> None:
    with psycopg.connect(incident.pg.admin_dsn) as conn:
        def one(q: str) -> int:
            row = conn.execute(q).fetchone()
            assert row is not None
            return int(row[0])

        unparsed = one("select count(*) from dead_letter_messages where payload is null")
        no_sid = one("select count(*) from dead_letter_messages where message_sid is null")
        assert unparsed > 0 and no_sid > unparsed  # plus JSON missing its fields
        assert 0.01 * 3000 <= incident.report.malformed <= 0.03 * 3000
        assert one("select count(*) from dead_letter_messages where payload_raw = ''") > 0
        bodies = [r[0] for r in conn.execute("select payload->>'Body' from dead_letter_messages "
                                             "where payload_bytes < 100000").fetchall() if r[0]]
        joined = "\n".join(bodies)
        for needle in ("[bold]", "[/x]", "\x1b[31m", "\x1b]0;", "\x07", "\u202e"):
            assert needle in joined, needle
        assert any(len(b) > 40_000 for b in bodies)
        assert one("select count(*) from dead_letter_messages where error_message like '%[bold red]%'") > 0
        huge = one("select max(octet_length(payload::text)) from dead_letter_messages")
        assert huge >= 5 * 1024 * 1024
        assert one("select max(payload_bytes) from dead_letter_messages") >= 5 * 1024 * 1024
        # Message SIDs look like Twilio's.
        assert one("select count(*) from dead_letter_messages where message_sid !~ '^SM[0-9a-f]{32}$'") == 0


def test_schema_supports_triage(incident: PgEnv) -> None:
    with psycopg.connect(incident.pg.admin_dsn) as conn:
        indexes = {r[0]: r[1] for r in conn.execute(
            "select indexname, indexdef from pg_indexes where tablename = 'dead_letter_messages'").fetchall()}
        assert "(received_at DESC, id DESC)" in indexes["dead_letter_messages_received_idx"]
        assert "WHERE (status = 'waiting'::text)" in indexes["dead_letter_messages_waiting_idx"]
        assert "error_code" in indexes["dead_letter_messages_error_code_idx"]
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("update dead_letter_messages set status = 'bogus' where id = 1")
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():  # discard needs a reason
            conn.execute("update dead_letter_messages set status = 'discarded', discarded_at = now() "
                         "where id = 1")
        rows = conn.execute("select status, count(*) from dead_letter_messages group by 1").fetchall()
        statuses: dict[str, int] = dict(rows)
        assert statuses == dict(incident.report.statuses)
        linked = conn.execute("select count(*) from dead_letter_messages d join campaign_queue q "
                              "on q.dlq_message_id = d.id and d.requeue_ref = 'campaign_queue:' || q.id "
                              "where d.status = 'requeued'").fetchone()
        assert linked is not None and linked[0] == statuses["requeued"]
        migrations = conn.execute("select version, name, statements from supabase_migrations.schema_migrations "
                                  "order by version").fetchall()
        assert len(migrations) == 9 and all(m[2] for m in migrations)
        assert [m[0] for m in migrations] == sorted(m[0] for m in migrations)


def test_owner_role_is_not_superuser_and_uses_scram_over_tcp(incident: PgEnv) -> None:
    pw = incident.secrets.db_password
    with psycopg.connect(incident.pg.dsn(OWNER_ROLE, pw)) as conn:
        row = conn.execute("select current_setting('is_superuser'), "
                           "pg_has_role('pg_signal_backend', 'member')").fetchone()
        assert row == ("off", False)
        owner = conn.execute("select tableowner from pg_tables where tablename = 'dead_letter_messages'").fetchone()
        assert owner == (OWNER_ROLE,)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(incident.pg.dsn(OWNER_ROLE, "wrong-password"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(incident.pg.dsn("postgres", pw))  # the superuser has no TCP login


def test_owner_cannot_terminate_other_roles_backend(incident: PgEnv) -> None:
    """Like Supabase's `postgres`: it may end its app workers' sessions, not other roles'."""
    metabase_pid = incident.sessions.pids()["metabase"][0]
    pw = incident.secrets.db_password
    with psycopg.connect(incident.pg.dsn(OWNER_ROLE, pw), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute("select pg_terminate_backend(%s)", [metabase_pid])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select pg_cancel_backend(%s)", [metabase_pid])
        # A service_worker session (not one of the fixture's) can be terminated: ops is a member.
        with psycopg.connect(incident.pg.dsn(WORKER_ROLE, pw), autocommit=True) as victim:
            row = conn.execute("select pg_terminate_backend(%s)", [victim.info.backend_pid]).fetchone()
            assert row == (True,)
    with psycopg.connect(incident.pg.dsn(READER_ROLE, pw)) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):  # the BI role only reads
        conn.execute("delete from public.dead_letter_messages")


def test_incident_sessions_are_running(incident: PgEnv) -> None:
    pids = incident.sessions.pids()
    assert {"metabase", "n8n-sync", "campaign-worker", "postgrest"} <= set(pids)
    with psycopg.connect(incident.pg.admin_dsn) as conn:
        rows = conn.execute("select application_name, state, wait_event_type, pg_blocking_pids(pid) "
                            "from pg_stat_activity where backend_type = 'client backend' "
                            "and pid <> pg_backend_pid()").fetchall()
    states = {(r[0], r[1]) for r in rows}
    assert ("metabase", "active") in states and ("n8n-sync", "active") in states
    assert ("campaign-worker", "idle in transaction") in states
    assert any(r[0] == "campaign-worker" and r[2] == "Lock" and r[3] for r in rows)
