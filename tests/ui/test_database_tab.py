"""The Database tab end to end: live sessions, cancel through the dialog, read-only hiding."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.settings import Settings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.commands import OpsCommands
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.help import HelpScreen
from opsconsole.ui.widgets.activity import ActivityView


@pytest.fixture(scope="module")
def db_env() -> Iterator[DemoEnvironment]:
    """A private incident environment: these tests really cancel sessions."""
    with DemoEnvironment("incident", messages=200) as env:
        yield env


def _settings(env: DemoEnvironment, tmp_path: Path, *, read_only: bool = False) -> Settings:
    assert env.config_path is not None
    s = load_settings(env.config_path)
    return dataclasses.replace(s, environment=dataclasses.replace(s.environment, read_only=read_only),
                               audit=dataclasses.replace(s.audit, path=str(tmp_path / "journal.jsonl")))


async def _wait_for_sessions(app: OpsApp, pilot: object) -> ActivityView:
    for _ in range(100):
        await pilot.pause(0.1)  # type: ignore[attr-defined]
        views = list(app.query(ActivityView))
        if views and views[0].shown:
            return views[0]
    raise AssertionError("no sessions shown")


async def test_cancel_a_query_through_the_dialog(db_env: DemoEnvironment, tmp_path: Path) -> None:
    settings = _settings(db_env, tmp_path)
    app = OpsApp(build_services(settings))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        view = await _wait_for_sessions(app, pilot)
        target = next(b for b in view.shown if b.application == "n8n-sync" and b.state == "active")
        others = {b.pid for b in view.shown if b.state == "active"} - {target.pid}
        table = view.query_one("#activity-table")
        table.move_cursor(row=view.shown.index(target))  # type: ignore[attr-defined]
        await pilot.press("space")  # select it: the list freezes
        assert view.frozen and view.selected == {target.pid}
        await pilot.press("c")
        for _ in range(50):
            await pilot.pause(0.1)
            if isinstance(app.screen, ConfirmScreen):
                break
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.preview.target == f"PID {target.pid}"
        await pilot.press("enter")  # focus is on Cancel: Enter cancels, never confirms
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        view.selected = {target.pid}
        await pilot.press("c")
        for _ in range(50):
            await pilot.pause(0.1)
            if isinstance(app.screen, ConfirmScreen):
                break
        await asyncio.sleep(0.6)  # read the preview (the dialog refuses a press within 0.4 s)
        await pilot.press("y")
        # The action's worker only: the session list's exclusive refreshes replace (cancel) each other meanwhile.
        await app.workers.wait_for_complete([w for w in app.workers if w.group == "db-action"])
        await pilot.pause(0.2)
    assert settings.supabase is not None and settings.supabase.database_url is not None
    with psycopg.connect(db_env.postgres.admin_dsn) as conn:
        rows = dict(conn.execute("select pid, state from pg_stat_activity where pid = any(%s)",
                                 [[target.pid, *others]]).fetchall())
    assert rows.get(target.pid) != "active"  # its query was cancelled
    assert all(rows.get(pid) == "active" for pid in others)  # nothing else was touched
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [e["outcome"] for e in events] == ["cancelled", "started", "ok"]
    assert events[1]["attempt"] == events[2]["attempt"]
    assert events[-1]["action"] == "db.cancel" and str(target.pid) in json.dumps(events[-1]["preview"])
    assert db_env.secrets.db_password not in (tmp_path / "journal.jsonl").read_text()


async def test_timeline_view_lists_the_journal(db_env: DemoEnvironment, tmp_path: Path) -> None:
    from opsconsole.audit import Journal
    from opsconsole.ui.timeline import TimelineScreen

    settings = _settings(db_env, tmp_path)
    journal = Journal.for_settings(settings)
    journal.record_note("paged: API 500s [bold]x[/] \x1b[31m")
    journal.record_manual_step(step="Backups & Restore Plan 1", outcome="skipped", reason="corruption fixable")
    app = OpsApp(build_services(settings), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.press("t")
        for _ in range(30):
            await pilot.pause(0.1)
            if isinstance(app.screen, TimelineScreen) and app.screen.count:
                break
        assert isinstance(app.screen, TimelineScreen) and app.screen.count == 2
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TimelineScreen)


async def test_read_only_hides_and_refuses_every_mutating_action(db_env: DemoEnvironment, tmp_path: Path) -> None:
    settings = _settings(db_env, tmp_path, read_only=True)
    app = OpsApp(build_services(settings))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        await _wait_for_sessions(app, pilot)
        assert "READ-ONLY" in str(app.query_one("#env-header").render())
        keys = {key for key, active in app.active_bindings.items()}
        assert "c" not in keys and "x" not in keys  # not in the footer
        await pilot.press("c")  # refused: no dialog opens
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        assert not {"c", "x"} & {k for k, _ in app.screen.entries}
        await pilot.press("escape")
        provider = OpsCommands(app.screen)
        names = [name for name, _help, _cb in provider._commands()]
        assert not any("Cancel query" in n or "Terminate" in n for n in names)
    kernel = app.services.kernel
    assert kernel is not None and kernel.actions()
    for action in kernel.actions():  # every registered action is refused, whatever the way in
        refusal = await kernel.prepare(action.id, {"pids": [1]})
        assert getattr(refusal, "reason", None) is not None and refusal.reason.value == "read_only"  # type: ignore[union-attr]


async def test_a_manual_step_is_journaled_and_shown_in_the_timeline(db_env: DemoEnvironment, tmp_path: Path) -> None:
    from opsconsole.ui.manual import ManualStepScreen
    from opsconsole.ui.timeline import TimelineScreen

    settings = _settings(db_env, tmp_path)
    app = OpsApp(build_services(settings), live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")  # API: "check logs" is a manual step (the restore steps became guarded actions)
        await pilot.press("m")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ManualStepScreen)
        await pilot.press("s")
        await pilot.press(*"corruption fixable with SQL [bold]")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ManualStepScreen)
        await pilot.press("t")
        for _ in range(30):
            await pilot.pause(0.1)
            if isinstance(app.screen, TimelineScreen) and app.screen.count:
                break
        assert isinstance(app.screen, TimelineScreen) and app.screen.count == 1
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert events[0]["kind"] == "manual_step" and events[0]["outcome"] == "skipped"
    assert events[0]["reason"] == "corruption fixable with SQL [bold]" and "API Down" in events[0]["step"]
