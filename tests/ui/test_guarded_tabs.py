"""The console end to end on the two drills: revert the bad migration from the Deploy tab (M, V, the
restore-point offer, the dry-run dialog) and the API recovers; restore the corrupted database from the
Backups tab (R, the severity check, the held warning) while the console stays usable, and the rows come
back. The 5 s hold itself is tested in test_restore_hold.py: here the dialog is told it opened earlier."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from textual.widgets import Input

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.scenario import PROJECT_REF
from opsconsole.demo.seed import CORRUPT_PHONE, OWNER_ROLE
from opsconsole.settings import Settings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.widgets.activity import ActivityView
from opsconsole.ui.widgets.migrations import MigrationsView, RestorePointScreen
from opsconsole.ui.widgets.restore import RestoreRequestScreen, RestoreView

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")


def _settings(env: DemoEnvironment, tmp_path: Path) -> Settings:
    assert env.config_path is not None
    s = load_settings(env.config_path)
    return dataclasses.replace(s, audit=dataclasses.replace(s.audit, path=str(tmp_path / "journal.jsonl")))


async def _until(pilot: Any, ok: Any, what: str, tries: int = 600) -> None:
    """Poll `ok` (plain sleeps: on a loaded machine Pilot's wait for an idle screen can time out while the
    console is busy following the restore, which is not what is being tested)."""
    for _ in range(tries):
        if ok():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _confirm(pilot: Any, app: OpsApp, text: str) -> None:
    """Type the confirm text in the dialog, leave the box, and press y (the hold counted as over)."""
    await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation dialog")
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    await pilot.pause()
    screen.query_one("#typed", Input).focus()
    await pilot.press(*text)
    await pilot.press("tab")
    screen.tracker.opened_at -= 10  # as if the warning had been read for 10 s (the hold: test_restore_hold.py)
    await pilot.press("y")


@pytest.fixture(scope="module")
def migration_env() -> Iterator[DemoEnvironment]:
    with DemoEnvironment("bad-migration", sessions=False, messages=200) as env:
        yield env


@pytest.fixture(scope="module")
def restore_env() -> Iterator[DemoEnvironment]:
    env = DemoEnvironment("data-corruption", sessions=False, messages=200)
    env.restore_s = 4.0
    with env:
        yield env


async def test_revert_the_bad_migration_from_the_deploy_tab(migration_env: DemoEnvironment, tmp_path: Path) -> None:
    health = f"{migration_env.sims['api'].base_url}/health"
    broken = await asyncio.to_thread(httpx.get, health)
    assert broken.status_code == 500 and "contacts.phone does not exist" in broken.text
    app = OpsApp(build_services(_settings(migration_env, tmp_path)))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("M")
        view = app.query_one(MigrationsView)
        await _until(pilot, lambda: view.listing is not None and bool(view.listing.migrations), "the migrations")
        assert view.listing is not None
        newest = view.listing.migrations[0]
        assert newest.name == "contacts_opt_out_reason_and_e164" and newest.kind.value == "destructive"
        view.focus_table()
        await pilot.press("V")
        await _until(pilot, lambda: isinstance(app.screen, RestorePointScreen), "the restore-point offer")
        await pilot.press("s")  # skip the restore point (tested with the kernel in tests/migrations)
        await _confirm(pilot, app, newest.version)
        await _until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog to close")
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "migrations-action"])
        assert migration_env.postgres is not None
        admin = migration_env.postgres.admin_dsn

        def columns() -> set[str]:
            with psycopg.connect(admin) as conn:
                return {r[0] for r in conn.execute("select column_name from information_schema.columns "
                                                   "where table_name = 'contacts'").fetchall()}

        cols = await asyncio.to_thread(columns)
        assert "phone" in cols and "opt_out_reason" not in cols
        for _ in range(20):  # the demo API looks at the database at most once a second
            recovered = await asyncio.to_thread(httpx.get, health)
            if recovered.status_code == 200:
                break
            await asyncio.sleep(0.3)
        assert recovered.status_code == 200, recovered.text  # the API's column is back
        assert not migration_env.world.has("bad-migration")


async def test_restore_from_the_backups_tab_while_the_console_stays_usable(restore_env: DemoEnvironment,
                                                                         tmp_path: Path) -> None:
    assert restore_env.postgres is not None
    dsn = restore_env.postgres.dsn(OWNER_ROLE, restore_env.secrets.db_password)

    def corrupted() -> int:
        with psycopg.connect(dsn) as conn:
            row = conn.execute("select count(*) from contacts where phone_e164 = %s", [CORRUPT_PHONE]).fetchone()
        return int(row[0]) if row else -1

    assert corrupted() > 0
    services = build_services(_settings(restore_env, tmp_path))
    app = OpsApp(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("6")
        view = app.query_one(RestoreView)
        await _until(pilot, lambda: view.listing is not None and view.listing.inventory is not None, "the backups")
        kernel: Any = services.kernel
        kernel.get("backups.restore").poll_s = 0.3
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, RestoreRequestScreen), "the severity check")
        await pilot.press(*"the bad UPDATE overwrote the phone numbers; no copy exists")
        await pilot.press("enter")
        await _confirm(pilot, app, PROJECT_REF)
        await _until(pilot, lambda: services.restore_state.current() is not None, "the restore to start")
        # The database is away; the console is not: tabs switch, keys work, the checks say why.
        await pilot.press("2")
        await _until(pilot, lambda: app.is_tab_active("database"), "the Database tab")
        activity = app.query_one(ActivityView)
        await _until(pilot, lambda: activity.snapshot is not None and activity.snapshot.error is not None
                     and "restore in progress" in activity.snapshot.error, "the sessions view to say why")
        await pilot.press("6")
        await _until(pilot, lambda: view.has_class("-restoring") or view.has_class("-restored"), "the progress line")
        if services.restore_state.current() is not None:  # on a slow machine it may be over already
            assert "RESTORING" in str(view.query_one("#restore-progress").render())
        await _until(pilot, lambda: services.restore_state.current() is None, "the restore to end", tries=1200)
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "restore-action"])
        await _until(pilot, lambda: view.has_class("-restored"), "the end of the restore to be shown")
        assert view.has_class("-restored") and "ACTIVE_HEALTHY" in str(view.query_one("#restore-progress").render())
    assert corrupted() == 0
