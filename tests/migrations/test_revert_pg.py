"""migrations.revert on the embedded PostgreSQL: the dry run counts exactly and changes nothing (checksums
of every table before and after), the real revert, a revert failing half-way changes nothing, a lock
held by another session is reported (not waited on), the manual case, revert files, the kernel path
with its journal, and a restore point through the Supabase simulator."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import psycopg
import pytest

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.locks import OperatorLocks
from opsconsole.actions.migrations import RevertMigration, restore_point_name
from opsconsole.actions.model import Confirmation, Outcome, OutcomeStatus, Preview, Refusal, RefusalReason
from opsconsole.adapters.migrations.check import MigrationsAdapter
from opsconsole.adapters.supabase import SupabaseAdapter
from opsconsole.audit import Journal, Operator
from opsconsole.demo.scenario import DemoSecrets
from opsconsole.demo.sim import FaultPlan
from opsconsole.demo.sims import supabase as supabase_sim
from opsconsole.domain.models import Status
from tests.migrations.conftest import FreshDb

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")

ALICE = Operator(user="alice", ssh_client="203.0.113.7", host="bastion-1")


def _columns(db: FreshDb) -> set[str]:
    with psycopg.connect(db.admin_dsn) as conn:
        return {r[0] for r in conn.execute("select column_name from information_schema.columns "
                                           "where table_schema = 'public' and table_name = 'contacts'").fetchall()}


def _versions(db: FreshDb) -> set[str]:
    with psycopg.connect(db.admin_dsn) as conn:
        return {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations").fetchall()}


async def test_dry_run_counts_exactly_and_leaves_every_table_as_it_was(fresh_db: FreshDb, tmp_path: Path) -> None:
    before = fresh_db.checksums()
    with psycopg.connect(fresh_db.admin_dsn) as conn:
        row = conn.execute("select count(opt_out_reason) from public.contacts").fetchone()
    assert row is not None and row[0] == fresh_db.env.report.opt_out_reasons == 1204
    action = RevertMigration(fresh_db.settings(tmp_path))
    preview = await action.build_preview({"version": fresh_db.version()})
    assert isinstance(preview, Preview), preview
    text = "\n".join(preview.lines)
    assert "drops column contacts.opt_out_reason: 1,204 non-null values lost" in text
    assert "renames column public.contacts.phone_e164 to phone: no data lost" in text
    assert "Data lost in all: 1,204" in text and "rolled back" in text
    assert preview.confirm_text == fresh_db.version() and preview.lock_key == f"migrations:{fresh_db.version()}"
    assert preview.warning.startswith("Data loss possible if reverting destructive schema changes.")
    assert preview.warning_hold_s == 5.0  # data is lost: the warning is held on screen
    assert [it["lost"] for it in preview.items] == ["nothing", "1,204 non-null values"]
    assert fresh_db.checksums() == before  # the dry run changed nothing at all
    again = await action.build_preview({"version": fresh_db.version()})  # and can be repeated
    assert isinstance(again, Preview) and fresh_db.checksums() == before


async def test_the_real_revert_changes_the_schema_and_removes_the_version(fresh_db: FreshDb, tmp_path: Path) -> None:
    version = fresh_db.version()
    settings = fresh_db.settings(tmp_path)
    check = MigrationsAdapter(settings)
    try:
        warned = await check.checks()[0].run()
        assert warned.status is Status.WARN and version in warned.summary and "destructive" in warned.summary
        action = RevertMigration(settings)
        preview = await action.build_preview({"version": version})
        assert isinstance(preview, Preview)
        outcome = await action.execute(preview)
        assert outcome.status is OutcomeStatus.OK, outcome.summary
        assert "lost 1,204 values/rows, as the dry run counted" in outcome.summary
        columns = _columns(fresh_db)
        assert {"phone", "opted_out"} <= columns and not {"phone_e164", "opt_out_reason"} & columns
        assert version not in _versions(fresh_db)
        ok = await check.checks()[0].run()
        assert ok.status is Status.OK and "none destructive in the last 24 h" in ok.summary
        again = await action.build_preview({"version": version})
        assert isinstance(again, Refusal) and "no migration" in again.message
    finally:
        await check.aclose()


async def test_a_revert_failing_half_way_changes_nothing(fresh_db: FreshDb, tmp_path: Path) -> None:
    version = fresh_db.version()
    action = RevertMigration(fresh_db.settings(tmp_path))
    preview = await action.build_preview({"version": version})
    assert isinstance(preview, Preview)
    # Between the dry run and the run, someone adds a column named like the one statement 1 renames to:
    # statement 1 (rename phone_e164 -> phone) then fails, after nothing, and statement 2 never runs.
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:
        conn.execute("alter table public.contacts add column phone text")
    before = fresh_db.checksums()
    outcome = await action.execute(preview)
    assert outcome.status is OutcomeStatus.FAILED and "nothing was reverted" in outcome.summary
    assert "already exists" in outcome.summary
    assert fresh_db.checksums() == before and version in _versions(fresh_db)
    assert "opt_out_reason" in _columns(fresh_db)


async def test_a_failure_in_the_second_statement_rolls_back_the_first(fresh_db: FreshDb, tmp_path: Path) -> None:
    version = fresh_db.version()
    action = RevertMigration(fresh_db.settings(tmp_path))
    preview = await action.build_preview({"version": version})
    assert isinstance(preview, Preview)
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:  # statement 2's column is gone meanwhile
        conn.execute("alter table public.contacts drop column opt_out_reason")
    before = fresh_db.checksums()
    outcome = await action.execute(preview)
    assert outcome.status is OutcomeStatus.FAILED
    report = outcome.items[-1]["report"]
    assert report["failed_at"] == 2 and report["statements"][0]["ran"] is True  # statement 1 had run...
    assert fresh_db.checksums() == before and "phone_e164" in _columns(fresh_db)  # ...and was rolled back
    assert version in _versions(fresh_db)


async def test_more_data_lost_than_confirmed_is_refused(fresh_db: FreshDb, tmp_path: Path) -> None:
    action = RevertMigration(fresh_db.settings(tmp_path))
    preview = await action.build_preview({"version": fresh_db.version()})
    assert isinstance(preview, Preview)
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:
        conn.execute("update public.contacts set opt_out_reason = 'late opt-out' where id in (8, 9, 10)")
    before = fresh_db.checksums()
    outcome = await action.execute(preview)
    assert outcome.status is OutcomeStatus.FAILED and "changed since the dry run" in outcome.summary
    assert "1,207 now, 1,204 then" in outcome.summary
    assert fresh_db.checksums() == before


async def test_a_lock_held_by_another_session_is_reported_not_waited_on(fresh_db: FreshDb, tmp_path: Path) -> None:
    pw = fresh_db.env.secrets.db_password
    from opsconsole.demo.seed import WORKER_ROLE

    blocker = psycopg.connect(fresh_db.env.pg.dsn(WORKER_ROLE, pw, dbname=fresh_db.dbname),
                              application_name="campaign-worker")
    try:
        blocker.execute("select count(*) from public.contacts where id = 42")  # an open transaction: ACCESS SHARE
        before = fresh_db.checksums()
        started = time.monotonic()
        result = await RevertMigration(fresh_db.settings(tmp_path)).build_preview({"version": fresh_db.version()})
        waited = time.monotonic() - started
        assert isinstance(result, Refusal) and result.reason is RefusalReason.UNAVAILABLE
        assert "could not get the lock on contacts within 2 s" in result.message
        assert f"pid {blocker.info.backend_pid}" in result.message and "campaign-worker" in result.message
        assert "select count(*) from public.contacts where id = 42" in result.message
        blocked = result.details["blocked_by"]
        assert blocked and blocked[0]["pid"] == blocker.info.backend_pid and blocked[0]["user"] == WORKER_ROLE
        assert waited < 10  # lock_timeout 2 s: reported, not waited on
        assert fresh_db.checksums() == before
    finally:
        blocker.close()


async def test_without_a_revert_the_step_stays_manual(fresh_db: FreshDb, tmp_path: Path) -> None:
    version = fresh_db.version("contacts_first_name_varchar_and_drop_legacy")
    result = await RevertMigration(fresh_db.settings(tmp_path)).build_preview({"version": version})
    assert isinstance(result, Refusal) and result.reason is RefusalReason.NOTHING_TO_DO
    assert "The step stays manual" in result.message
    assert result.details["manual"] is True
    rows = result.details["statements"]
    assert [r["kind"] for r in rows] == ["destructive", "destructive"]
    assert "ALTER COLUMN first_name TYPE <its old type>" in rows[0]["undo"]
    assert "recreate table public.sms_optouts_legacy" in rows[1]["undo"]


async def test_a_revert_file_is_used_and_must_agree_with_the_rollback_column(fresh_db: FreshDb, tmp_path: Path) -> None:
    revert_dir = tmp_path / "reverts"
    revert_dir.mkdir()
    other = fresh_db.version("contacts_first_name_varchar_and_drop_legacy")
    (revert_dir / f"{other}_contacts_first_name.down.sql").write_text(
        "alter table public.contacts alter column first_name type text;\n", encoding="utf-8")
    action = RevertMigration(fresh_db.settings(tmp_path, revert_dir=str(revert_dir)))
    preview = await action.build_preview({"version": other})
    assert isinstance(preview, Preview), preview
    text = "\n".join(preview.lines)
    assert f"from {other}_contacts_first_name.down.sql" in text
    assert "changes the type of contacts.first_name from character varying(40) to text: 0 values changed" in text
    # The bad migration has a rollback column; a file saying something else is a conflict, not a choice.
    version = fresh_db.version()
    (revert_dir / f"{version}_x.down.sql").write_text("alter table public.contacts drop column opted_out;",
                                                      encoding="utf-8")
    conflict = await action.build_preview({"version": version})
    assert isinstance(conflict, Refusal) and "two different reverts exist" in conflict.message
    (revert_dir / f"{version}_x.down.sql").write_text(
        "ALTER TABLE public.contacts RENAME COLUMN phone_e164 TO phone;\nALTER TABLE public.contacts DROP COLUMN "
        "opt_out_reason;", encoding="utf-8")
    agreed = await action.build_preview({"version": version})
    assert isinstance(agreed, Preview) and any("says the same" in line for line in agreed.lines)
    (revert_dir / f"{version}_y.down.sql").write_text("select 1;", encoding="utf-8")
    ambiguous = await action.build_preview({"version": version})
    assert isinstance(ambiguous, Refusal) and "several revert files" in ambiguous.message


async def test_an_unparsable_revert_is_never_run(fresh_db: FreshDb, tmp_path: Path) -> None:
    revert_dir = tmp_path / "reverts"
    revert_dir.mkdir()
    version = fresh_db.version("contacts_first_name_varchar_and_drop_legacy")
    (revert_dir / f"{version}_x.down.sql").write_text("alter tabel contacts alter column first_name type text;",
                                                      encoding="utf-8")
    result = await RevertMigration(fresh_db.settings(tmp_path, revert_dir=str(revert_dir))).build_preview(
        {"version": version})
    assert isinstance(result, Refusal) and "could not parse" in result.message
    (revert_dir / f"{version}_x.down.sql").write_text("begin; alter table public.contacts alter column first_name "
                                                      "type text; commit;", encoding="utf-8")
    result = await RevertMigration(fresh_db.settings(tmp_path, revert_dir=str(revert_dir))).build_preview(
        {"version": version})
    assert isinstance(result, Refusal) and "transaction control" in result.message


async def test_through_the_kernel_with_a_restore_point_and_the_journal(fresh_db: FreshDb, tmp_path: Path) -> None:
    secrets = DemoSecrets.for_scenario("healthy")
    sim = supabase_sim.build_management(FaultPlan(), "healthy", secrets)  # PITR on: restore points exist
    sim.start()
    try:
        settings = fresh_db.settings(tmp_path, management_url=sim.base_url,
                                     access_token=secrets.supabase_access_token)
        sup = SupabaseAdapter(settings)
        kernel = ActionKernel(settings, Journal.for_settings(settings, ALICE),
                              locks=OperatorLocks.for_settings(settings, ALICE))
        kernel.register(RevertMigration(settings, supabase=sup, restore_point_wait_s=10))
        version = fresh_db.version()
        preview = await kernel.prepare("migrations.revert", {"version": version, "restore_point": "true"},
                                       from_cli=True)
        assert isinstance(preview, Preview), preview
        assert any(f"Restore point {restore_point_name(version)} is taken first" in line for line in preview.lines)
        too_soon = await kernel.run(preview, Confirmation(key="y", start_key="V", elapsed_s=2.0, typed=version))
        assert isinstance(too_soon, Refusal) and too_soon.details["check"] == "warning_hold"
        preview = await kernel.prepare("migrations.revert", {"version": version, "restore_point": True})
        assert isinstance(preview, Preview)
        result = await kernel.run(preview, Confirmation(key="y", start_key="V", elapsed_s=6.0, typed=version))
        assert isinstance(result, Outcome) and result.ok, result
        assert result.items[0] == {"restore_point": restore_point_name(version), "result": "available"}
        assert restore_point_name(version) in sim.project_state.restore_points  # type: ignore[attr-defined]
        text = await asyncio.to_thread(Path(settings.audit.path).read_text)
        events = [json.loads(line) for line in text.splitlines()]
        mine = [e for e in events if e.get("attempt") == events[-1]["attempt"]]
        assert [e["outcome"] for e in mine] == ["started", "ok"]
        final = mine[-1]
        assert final["lock"]["keys"] == [f"migrations:{version}"] and final["typed"] == version
        assert any("1,204 non-null values lost" in line for line in final["preview"]["lines"])  # the dry run
        assert final["result"]["items"][-1]["report"]["committed"] is True
        assert final["params"]["restore_point"] is True
        await sup.aclose()
    finally:
        sim.stop()


async def test_restore_point_requested_where_the_plan_has_none(fresh_db: FreshDb, tmp_path: Path) -> None:
    secrets = DemoSecrets.for_scenario("incident")
    sim = supabase_sim.build_management(FaultPlan(), "incident", secrets)  # backup-failed: PITR off
    sim.start()
    try:
        settings = fresh_db.settings(tmp_path, management_url=sim.base_url, access_token=secrets.supabase_access_token)
        sup = SupabaseAdapter(settings)
        action = RevertMigration(settings, supabase=sup)
        refused = await action.build_preview({"version": fresh_db.version(), "restore_point": True})
        assert isinstance(refused, Refusal) and "point-in-time recovery, which is off" in refused.message
        offered = await action.build_preview({"version": fresh_db.version()})
        assert isinstance(offered, Preview)
        assert any("Restore point: not available" in line for line in offered.lines)
        await sup.aclose()
    finally:
        sim.stop()
