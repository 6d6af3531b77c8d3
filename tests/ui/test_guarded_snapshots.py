"""Snapshots of the migrations view, the revert dry-run dialog and the restore dialog with its held
DOWNTIME WARNING, at 100x30 and 80x24. The dialogs' previews are built by the actions' own preview code
from fixed reports (no database), so what is pictured is what the operator is shown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from textual.app import App

from opsconsole.actions.backups import RestoreBackup, _Plan, estimate_downtime
from opsconsole.actions.migrations import RevertMigration
from opsconsole.actions.model import Preview
from opsconsole.actions.policy import requirement_for
from opsconsole.adapters.migrations.classify import classify_entries, classify_sql
from opsconsole.adapters.migrations.revert import Loss, RevertReport, StatementReport
from opsconsole.adapters.restore_impact import RestoreImpact, TableSince
from opsconsole.demo.scenario import PROJECT_REF
from opsconsole.domain.backups import Backup, BackupInventory, PitrWindow
from opsconsole.domain.migrations import Migration
from opsconsole.domain.restore import RestoreState
from opsconsole.settings import Settings, SupabaseSettings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from tests.fakes import NOW, fake_services

VERSION = "20261127023209"
ROLLBACK = ("alter table public.contacts rename column phone_e164 to phone",
            "alter table public.contacts drop column opt_out_reason")


def revert_preview() -> Preview:
    statements = ("alter table public.contacts add column opt_out_reason text",
                  "alter table public.contacts rename column phone to phone_e164")
    migration = Migration(VERSION, "contacts_opt_out_reason_and_e164", statements, ROLLBACK,
                          NOW - timedelta(minutes=40), "version", classified=classify_entries(statements))
    classified = tuple(c for s in ROLLBACK for c in classify_sql(s))
    report = RevertReport(dry_run=True, version=VERSION, ok=True, elapsed_ms=48.0,
                          locks=["contacts (ACCESS EXCLUSIVE)"], statements=[
                              StatementReport(1, ROLLBACK[0], "destructive", classified[0].summary, ran=True, ms=1.2),
                              StatementReport(2, ROLLBACK[1], "destructive", classified[1].summary, ran=True, ms=0.9,
                                              losses=[Loss("drops column contacts.opt_out_reason", 1204,
                                                           "non-null values", "drop_column:contacts.opt_out_reason")])])
    action = RevertMigration(Settings(supabase=SupabaseSettings(project_ref=PROJECT_REF)))
    return action._preview(migration, "schema_migrations.rollback", (), classified, report, NOW, dry_only=False,
                           want_point=True, points=(True, "available (point-in-time recovery is on)"))


def restore_preview() -> Preview:
    inv = BackupInventory(region="eu-central-1", walg_enabled=True, pitr_enabled=True,
                          backups=(Backup(900, "COMPLETED", NOW - timedelta(hours=5), True),),
                          pitr_window=PitrWindow(NOW - timedelta(days=7), NOW - timedelta(minutes=2)))
    impact = RestoreImpact(size_bytes=2_700_000_000, uncountable=["supabase_migrations.schema_migrations"], tables=[
        TableSince("contacts", ("created_at", "updated_at"), 950),
        TableSince("dead_letter_messages", ("received_at", "last_attempt_at", "requeued_at", "discarded_at"), 214),
        TableSince("campaign_queue", ("enqueued_at", "available_at", "locked_at"), 38)])
    target = NOW - timedelta(minutes=30)
    estimate, basis = estimate_downtime(impact.size_bytes, pitr=True)
    plan = _Plan("pitr", None, target, f"the point in time {target:%Y-%m-%d %H:%M:%S} UTC (PITR)", estimate, basis)
    action = RestoreBackup(Settings(supabase=SupabaseSettings(project_ref=PROJECT_REF)), None,  # type: ignore[arg-type]
                           RestoreState())
    return action._preview(plan, inv, impact, "a bad UPDATE overwrote 950 phone numbers; no copy of the old ones",
                           "ACTIVE_HEALTHY", NOW)


class DialogHarness(App[None]):
    def __init__(self, preview: Preview, start_key: str) -> None:
        super().__init__()
        self.preview = preview
        self.start_key = start_key

    def on_mount(self) -> None:
        req = requirement_for(self.preview, self.start_key)
        self.push_screen(ConfirmScreen(self.preview, req, clock=lambda: 100.0))  # the clock stands still: 5 s left


async def _settle(pilot: Any) -> None:
    """The dialog fits itself after its first refresh (`call_after_refresh`, maybe twice): let both
    rounds happen, also on a loaded machine, before the picture is taken."""
    for _ in range(4):
        await pilot.pause(0.05)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_revert_dry_run_dialog(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(DialogHarness(revert_preview(), "V"), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_restore_dialog_with_its_warning(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(DialogHarness(restore_preview(), "R"), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_migrations_view(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await pilot.press("5")
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.press("M")  # the migrations view, by its key
        await pilot.pause()

    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=size, run_before=run_before)
