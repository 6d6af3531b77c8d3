"""backups.restore against the demo environment of the `data-corruption` drill (real PostgreSQL, the
Supabase simulator): the preview says exactly what is lost, every refusal, the warning hold, progress
through RESTORING to ACTIVE_HEALTHY with the database really away and back, the checks saying "restore
in progress", a second console seeing who started it, RESTORE_FAILED, and the CLI in a real process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsconsole.actions.locks import OperatorLocks
from opsconsole.actions.model import Confirmation, Outcome, OutcomeStatus, Preview, Refusal, RefusalReason
from opsconsole.audit import Operator
from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.scenario import PROJECT_REF
from opsconsole.demo.seed import CORRUPT_PHONE, OWNER_ROLE
from opsconsole.domain.backups import DOWNTIME_WARNING
from opsconsole.domain.models import Status, utcnow
from opsconsole.domain.restore import RestoreInProgress
from opsconsole.settings import Settings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")

REASON = "a bad UPDATE overwrote 950 phone numbers; the old values exist nowhere else, SQL cannot restore them"
HELD = 6.0  # seconds the warning was on screen in these confirmations (the hold is 5 s)


@pytest.fixture(scope="module")
def corruption_env() -> Iterator[DemoEnvironment]:
    env = DemoEnvironment("data-corruption", sessions=False, messages=200)
    env.restore_s = 2.0  # the simulated project stays RESTORING this long (about 10 s in the demo)
    with env:
        yield env


def _settings(env: DemoEnvironment, tmp_path: Path, *, read_only: bool = False) -> Settings:
    assert env.config_path is not None
    s = load_settings(env.config_path)
    return dataclasses.replace(s, environment=dataclasses.replace(s.environment, read_only=read_only),
                               audit=dataclasses.replace(s.audit, path=str(tmp_path / "journal.jsonl")))


def _newest_backup(env: DemoEnvironment) -> int:
    import httpx

    body = httpx.get(f"{env.sims['supabase-mgmt'].base_url}/v1/projects/{PROJECT_REF}/database/backups",
                     headers={"Authorization": f"Bearer {env.secrets.supabase_access_token}"}).json()
    return int(body["backups"][0]["id"])


def _backup_time(env: DemoEnvironment, backup: int) -> str:
    import httpx

    body = httpx.get(f"{env.sims['supabase-mgmt'].base_url}/v1/projects/{PROJECT_REF}/database/backups",
                     headers={"Authorization": f"Bearer {env.secrets.supabase_access_token}"}).json()
    return str(next(b["inserted_at"] for b in body["backups"] if b["id"] == backup))


def _corrupted(env: DemoEnvironment) -> int:
    with psycopg.connect(env.postgres.dsn(OWNER_ROLE, env.secrets.db_password)) as conn:
        row = conn.execute("select count(*) from public.contacts where phone_e164 = %s", [CORRUPT_PHONE]).fetchone()
    return int(row[0]) if row else -1


def _restores(env: DemoEnvironment) -> list[dict[str, Any]]:
    return list(env.sims["supabase-mgmt"].project_state.restores)  # type: ignore[attr-defined]


def _ok(typed: str = PROJECT_REF, elapsed: float = HELD) -> Confirmation:
    return Confirmation(key="y", start_key="R", elapsed_s=elapsed, typed=typed)


async def test_the_preview_says_exactly_what_is_lost(corruption_env: DemoEnvironment, tmp_path: Path) -> None:
    services = build_services(_settings(corruption_env, tmp_path))
    try:
        kernel = services.kernel
        assert kernel is not None
        backup = _newest_backup(corruption_env)
        preview = await kernel.prepare("backups.restore", {"backup": backup, "reason": REASON})
        assert isinstance(preview, Preview), preview
        text = "\n".join(preview.lines)
        assert f"Restore project {PROJECT_REF}" in text and f"daily backup {backup} taken" in text
        assert "LOST: every write after" in text
        taken = next(line for line in preview.lines if "LOST" in line)
        assert "of writes" in taken
        with psycopg.connect(corruption_env.postgres.admin_dsn) as conn:  # counted independently
            row = conn.execute("select count(*) from public.contacts c join lateral (select inserted_at from "
                               "(values (%s::timestamptz)) v(inserted_at)) b on true "
                               "where c.created_at > b.inserted_at or c.updated_at > b.inserted_at",
                               [_backup_time(corruption_env, backup)]).fetchone()
        assert row is not None and row[0] > 0
        assert f"contacts: {row[0]:,} rows (by created_at, updated_at)" in text
        assert "Database size:" in text and "(pg_database_size)" in text
        assert "Expected downtime:" in text and "basis:" in text and "MB/s" in text
        assert f"Severity check (journaled): {REASON}" in text
        assert preview.warning == f"DOWNTIME WARNING: {DOWNTIME_WARNING}"  # the runbook's words, in full
        assert preview.warning_hold_s == 5.0 and preview.confirm_text == PROJECT_REF
        assert preview.lock_key == f"backups:{PROJECT_REF}"
        # A point in time just before the bad UPDATE loses 30 minutes: the corrupted rows are counted.
        when = (utcnow() - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        pitr = await kernel.prepare("backups.restore", {"pitr": when, "reason": REASON}, from_cli=False)
        assert isinstance(pitr, Preview), pitr
        pitr_text = "\n".join(pitr.lines)
        assert f"the point in time {when.replace('T', ' ').replace('Z', '')} UTC (PITR)" in pitr_text
        assert f"public.contacts: {_corrupted(corruption_env):,} rows" in pitr_text or \
            f"contacts: {_corrupted(corruption_env):,} rows" in pitr_text
        assert _restores(corruption_env) == []  # previews send nothing
    finally:
        await services.aclose()


async def test_every_refusal(corruption_env: DemoEnvironment, tmp_path: Path) -> None:
    settings = _settings(corruption_env, tmp_path)
    services = build_services(settings)
    try:
        kernel = services.kernel
        assert kernel is not None
        backup = _newest_backup(corruption_env)
        missing = await kernel.prepare("backups.restore", {"backup": str(backup)}, from_cli=True)
        assert isinstance(missing, Refusal) and "reason is required" in missing.message
        short = await kernel.prepare("backups.restore", {"backup": backup, "reason": "broken"})
        assert isinstance(short, Refusal) and "cannot be fixed with SQL updates" in short.message
        both = await kernel.prepare("backups.restore", {"backup": backup, "pitr": "2026-01-01T00:00:00Z",
                                                        "reason": REASON})
        assert isinstance(both, Refusal) and "only one of backup or pitr" in both.message
        unknown = await kernel.prepare("backups.restore", {"backup": 1, "reason": REASON})
        assert isinstance(unknown, Refusal) and "no backup 1" in unknown.message
        old = (utcnow() - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        outside = await kernel.prepare("backups.restore", {"pitr": old, "reason": REASON})
        assert isinstance(outside, Refusal) and "before the PITR window" in outside.message

        preview = await kernel.prepare("backups.restore", {"backup": backup, "reason": REASON})
        assert isinstance(preview, Preview)
        wrong = await kernel.run(preview, _ok(typed=PROJECT_REF.upper()))
        assert isinstance(wrong, Refusal) and wrong.details["check"] == "typed_mismatch"
        early = await kernel.run(preview, _ok(elapsed=4.9))
        assert isinstance(early, Refusal) and early.details["check"] == "warning_hold"
        kernel.clock = lambda: utcnow() + timedelta(seconds=120)  # the preview is now 2 min old
        stale = await kernel.run(preview, _ok())
        assert isinstance(stale, Refusal) and stale.reason is RefusalReason.STALE
        kernel.clock = utcnow

        other = OperatorLocks.for_settings(settings, Operator(user="bob", host="bastion-2"))
        assert other is not None
        held = await other.acquire(f"backups:{PROJECT_REF}")
        try:
            fresh = await kernel.prepare("backups.restore", {"backup": backup, "reason": REASON})
            assert isinstance(fresh, Preview)
            locked = await kernel.run(fresh, _ok())
            assert isinstance(locked, Refusal) and locked.reason is RefusalReason.LOCK_HELD
            assert "bob" in locked.message
        finally:
            await held.release()  # type: ignore[union-attr]
    finally:
        await services.aclose()
    ro = build_services(_settings(corruption_env, tmp_path, read_only=True))
    try:
        assert ro.kernel is not None
        refused = await ro.kernel.prepare("backups.restore", {"backup": backup, "reason": REASON})
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.READ_ONLY
    finally:
        await ro.aclose()
    assert _restores(corruption_env) == []
    assert _corrupted(corruption_env) > 0


async def test_a_restore_runs_through_restoring_and_brings_the_data_back(corruption_env: DemoEnvironment,
                                                                         tmp_path: Path) -> None:
    settings = _settings(corruption_env, tmp_path)
    services = build_services(settings)
    second = build_services(settings)  # another console on the same journal (another bastion)
    before = _corrupted(corruption_env)
    assert before > 0 and corruption_env.world.has("data-corruption")
    state_of_sim: Any = corruption_env.sims["supabase-mgmt"].project_state  # type: ignore[attr-defined]
    state_of_sim.restore_s = 10.0  # long enough for two consoles to run their checks meanwhile
    try:
        kernel = services.kernel
        assert kernel is not None
        action: Any = kernel.get("backups.restore")
        action.poll_s = 0.2
        preview = await kernel.prepare("backups.restore", {"backup": _newest_backup(corruption_env),
                                                           "reason": REASON})
        assert isinstance(preview, Preview)
        seen: list[RestoreInProgress] = []
        action.progress_hooks[preview.preview_id] = seen.append
        run = asyncio.create_task(kernel.run(preview, _ok()))
        for _ in range(400):  # until the simulator accepted it and the action published it
            if services.restore_state.current() is not None or run.done():
                break
            await asyncio.sleep(0.05)
        # While it runs: the database checks say so, in this console and (from the project status) in another.
        mine = {r.id: r for r in await services.runner.run_all()}
        for cid in ("db.long_running", "db.migrations", "dlq.depth", "supabase.pooler"):
            assert mine[cid].status is Status.WARN and "restore in progress" in mine[cid].summary, mine[cid]
        theirs = {r.id: r for r in await second.runner.run_all()}
        assert "RESTORING" in theirs["supabase.health"].summary
        assert theirs["db.long_running"].status is Status.WARN and "restore in progress" in theirs[
            "db.long_running"].summary
        state = second.restore_state.current()
        assert state is not None and state.source == "project status"
        assert state.operator.startswith(os.environ.get("USER", "") or "")  # who started it, from the journal
        assert state.attempt  # the write-ahead `started` event of this console's attempt
        snapshot = await services.activity()
        assert snapshot.error is not None and "restore in progress" in snapshot.error
        result = await asyncio.wait_for(run, timeout=60)
        assert isinstance(result, Outcome) and result.status is OutcomeStatus.OK, result
        assert "ACTIVE_HEALTHY" in result.summary and "expected" in result.summary
        assert seen and seen[0].status == "RESTORING"
        assert services.restore_state.current() is None
        assert _corrupted(corruption_env) == 0  # the backup brought the phone numbers back
        assert not corruption_env.world.has("data-corruption")
        after = {r.id: r for r in await second.runner.run_all()}
        assert second.restore_state.current() is None
        assert "restore in progress" not in after["db.long_running"].summary
        text = await asyncio.to_thread(Path(settings.audit.path).read_text)
        events = [json.loads(line) for line in text.splitlines()]
        attempt = [e for e in events if e.get("action") == "backups.restore" and e.get("outcome") in ("started", "ok")]
        assert [e["outcome"] for e in attempt] == ["started", "ok"]
        assert attempt[-1]["params"]["reason"] == REASON and attempt[-1]["typed"] == PROJECT_REF
        assert attempt[-1]["confirmation"]["elapsed_s"] >= 5.0
    finally:
        state_of_sim.restore_s = corruption_env.restore_s
        await services.aclose()
        await second.aclose()


async def test_restore_failed_is_reported(corruption_env: DemoEnvironment, tmp_path: Path) -> None:
    sim = corruption_env.sims["supabase-mgmt"]
    sim.project_state.fail_next_restore = True  # type: ignore[attr-defined]
    services = build_services(_settings(corruption_env, tmp_path))
    try:
        kernel = services.kernel
        assert kernel is not None
        action: Any = kernel.get("backups.restore")
        action.poll_s = 0.2
        preview = await kernel.prepare("backups.restore", {"backup": _newest_backup(corruption_env),
                                                           "reason": REASON})
        assert isinstance(preview, Preview)
        result = await asyncio.wait_for(kernel.run(preview, _ok()), timeout=60)
        assert isinstance(result, Outcome) and result.status is OutcomeStatus.FAILED
        assert "RESTORE_FAILED" in result.summary
        last = services.restore_state.last()
        assert last is not None and last.final_status == "RESTORE_FAILED"
    finally:
        sim.project_state.status = None  # type: ignore[attr-defined]  # the drill's project is healthy again
        await services.aclose()


def test_pitr_off_is_refused_by_the_preview_and_the_simulator(incident_env: DemoEnvironment, tmp_path: Path) -> None:
    import httpx

    mgmt = incident_env.sims["supabase-mgmt"].base_url
    answer = httpx.post(f"{mgmt}/v1/projects/{PROJECT_REF}/database/backups/restore-pitr",
                        headers={"Authorization": f"Bearer {incident_env.secrets.supabase_access_token}"},
                        json={"recovery_time_target_unix": 1_700_000_000})
    assert answer.status_code == 400 and answer.json() == {"message": "PITR is not enabled for this project."}

    async def go() -> Refusal | Preview:
        services = build_services(_settings(incident_env, tmp_path))
        try:
            assert services.kernel is not None
            return await services.kernel.prepare("backups.restore", {"pitr": "2026-01-01T00:00:00Z",
                                                                     "reason": REASON})
        finally:
            await services.aclose()

    refused = asyncio.run(go())
    assert isinstance(refused, Refusal) and "PITR is not enabled for this project" in refused.message


def test_cli_restore_and_revert_in_a_real_process(corruption_env: DemoEnvironment, tmp_path: Path) -> None:
    assert corruption_env.config_path is not None
    base = [sys.executable, "-m", "opsconsole", "--config", str(corruption_env.config_path), "action"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    backup = _newest_backup(corruption_env)
    quick = subprocess.run([*base, "run", "backups.restore", "--param", f"backup={backup}", "--param",
                            "reason=short", "--confirm", PROJECT_REF], capture_output=True, text=True, env=env,
                           timeout=60, stdin=subprocess.DEVNULL)
    assert quick.returncode == 64 and "SQL updates" in quick.stderr
    done = subprocess.run([*base, "run", "backups.restore", "--param", f"backup={backup}", "--param",
                           f"reason={REASON}", "--confirm", PROJECT_REF, "--json"], capture_output=True, text=True,
                          env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert f"WARNING: DOWNTIME WARNING: {DOWNTIME_WARNING}" in done.stderr  # printed before anything ran
    assert "restore in progress: RESTORING" in done.stderr  # progress on stderr
    body = json.loads(done.stdout)
    assert body["status"] == "ok" and "ACTIVE_HEALTHY" in body["outcome"]["summary"]
    with psycopg.connect(corruption_env.postgres.admin_dsn) as conn:
        row = conn.execute("select version from supabase_migrations.schema_migrations where name = "
                           "'campaign_queue_source_and_locking'").fetchone()
    assert row is not None
    version = str(row[0])
    preview = subprocess.run([*base, "preview", "migrations.revert", "--param", f"version={version}"],
                             capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert preview.returncode == 0, preview.stderr
    assert "campaign_queue_source_and_locking.down.sql" in preview.stdout  # the demo's [migrations] revert_dir
    assert "non-null values lost" in preview.stdout or "Data lost in all" in preview.stdout
    refused = subprocess.run([*base, "run", "migrations.revert", "--param", f"version={version}", "--confirm",
                              "20000101000000"], capture_output=True, text=True, env=env, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 4 and "does not match" in refused.stderr
    reverted = subprocess.run([*base, "run", "migrations.revert", "--param", f"version={version}", "--confirm",
                               version], capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert reverted.returncode == 0, reverted.stderr
    assert "OK: reverted migration" in reverted.stdout
    with psycopg.connect(corruption_env.postgres.admin_dsn) as conn:
        gone = conn.execute("select count(*) from supabase_migrations.schema_migrations where version = %s",
                            [version]).fetchone()
        cols = {r[0] for r in conn.execute("select column_name from information_schema.columns "
                                           "where table_name = 'campaign_queue'").fetchall()}
    assert gone == (0,) and "locked_by" not in cols and "source" in cols
