"""The Deploy tab and the log view with Pilot, on fakes: rows keyed by deployment id and updated cell by
cell, a redeploy's new deployment at the top with its live state, the keys hidden in read-only mode,
and the log view's filters, pause, bound and literal rendering of hostile text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from opsconsole.adapters.vercel_logs import StreamEvent
from opsconsole.domain.logs import LogEntry
from opsconsole.services import DeployListing
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.logview import LogLines, LogScreen
from opsconsole.ui.widgets.deploys import DeploymentsView
from tests.fakes import FAKE_DEPLOYMENTS, NOW
from tests.ui.deploy_fakes import deploy_services, log_entries


async def _deploy_tab(app: OpsApp, pilot: Any) -> DeploymentsView:
    await pilot.press("5")
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.query_one(DeploymentsView)


async def _wait(pilot: Any, cond: Any, limit: int = 200) -> None:
    for _ in range(limit):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not met")


async def test_rows_are_keyed_and_updated_cell_by_cell(tmp_path: Path) -> None:
    app = OpsApp(deploy_services(tmp_path), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _deploy_tab(app, pilot)
        table: DataTable[Any] = view.table
        assert [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(table.row_count)] == \
            [d.id for d in FAKE_DEPLOYMENTS]
        assert str(table.get_cell("dpl_7", "mark")) == "▶"
        assert view.cursor_deployment() is not None and view.cursor_deployment().id == "dpl_6"  # previous working
        assert str(table.get_cell("dpl_8", "message")) == "fix: pool size [/x]"  # literal, not markup
        calls: list[tuple[str, str]] = []
        adds: list[str] = []
        original_update, original_add = table.update_cell, table.add_row

        def spy_update(row: Any, col: Any, value: Any, **kw: Any) -> None:
            calls.append((str(row), str(col)))
            original_update(row, col, value, **kw)

        def spy_add(*cells: Any, key: Any = None, **kw: Any) -> Any:
            adds.append(str(key))
            return original_add(*cells, key=key, **kw)

        table.update_cell = spy_update  # type: ignore[method-assign]
        table.add_row = spy_add  # type: ignore[method-assign]
        same = DeployListing(deployments=FAKE_DEPLOYMENTS, current_id="dpl_7", fetched_at=NOW)
        view.show(same, NOW)
        assert calls == [] and adds == []  # nothing changed: nothing sent
        building = replace(FAKE_DEPLOYMENTS[1], state="BUILDING", ready_at=None)
        newest = replace(FAKE_DEPLOYMENTS[0], id="dpl_10", created_at=NOW, state="QUEUED", building_at=None,
                         ready_at=None)
        view.show(DeployListing(deployments=(newest, FAKE_DEPLOYMENTS[0], building, *FAKE_DEPLOYMENTS[2:]),
                                current_id="dpl_7", fetched_at=NOW), NOW)
        assert adds == ["dpl_10"]
        assert {c for r, c in calls if r == "dpl_9"} == {"state", "build"}
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == "dpl_10"  # the new one at the top
        assert view.cursor_deployment().id == "dpl_6"  # the cursor stays on its deployment


async def test_redeploy_shows_the_new_deployment_live_and_journals_it(tmp_path: Path) -> None:
    services = deploy_services(tmp_path)
    app = OpsApp(services, live=False)
    states: list[str] = []
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _deploy_tab(app, pilot)
        original = view.on_progress

        def record(progress: Any) -> None:
            original(progress)
            states.append(progress.state)

        view.on_progress = record  # type: ignore[method-assign]
        await pilot.press("R")
        await _wait(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.pause(0.5)  # the dialog arms after MIN_ARM_S
        await pilot.press("y")
        await _wait(pilot, lambda: view.running is None and "READY" in states)
        await app.workers.wait_for_complete()
        assert states[0] == "QUEUED" and "BUILDING" in states and states[-1] == "READY"
        table: DataTable[Any] = view.table
        assert table.coordinate_to_cell_key((0, 0)).row_key.value == "dpl_new"
        assert str(table.get_cell("dpl_new", "state")) == "READY"
        assert str(table.get_cell("dpl_new", "build")) == "1m"
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    final = [e for e in events if e["action"] == "vercel.redeploy" and e["outcome"] == "ok"]
    assert final and final[0]["result"]["items"][0]["new_deployment"] == "dpl_new"
    assert final[0]["result"]["items"][0]["final_state"] == "READY"
    assert [e["outcome"] for e in events] == ["started", "ok"]


async def test_read_only_hides_the_deploy_actions_but_not_the_logs(tmp_path: Path) -> None:
    for read_only, expected in ((False, {"R", "P", "u", "l"}), (True, {"l"})):
        app = OpsApp(deploy_services(tmp_path, read_only=read_only), live=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await _deploy_tab(app, pilot)
            keys = set(app.active_bindings)
            assert {"R", "P", "u", "l"} & keys == expected, (read_only, keys)
            assert "s" not in keys  # stop following: only while an action runs


async def test_log_view_filters_pause_and_bound(tmp_path: Path) -> None:
    app = OpsApp(deploy_services(tmp_path), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await _deploy_tab(app, pilot)
        screen = LogScreen(live=False, capacity=30)
        await app.push_screen(screen)
        await pilot.pause()
        entries = log_entries()
        screen.on_stream_event(StreamEvent("entries", entries=tuple(entries)))
        screen.repaint(force=True)
        assert len(screen.buffer) == 30 and screen.buffer.dropped == 10
        await pilot.press("5")
        assert {e.status for e in screen.buffer.shown} == {500}
        await pilot.press("5")
        await pilot.press("l")  # level: warning and above
        assert list(screen.buffer.shown) == [e for e in screen.buffer.entries if e.level in ("warning", "error")]
        assert screen.buffer.shown
        await pilot.press("l", "l", "l")  # back to all
        assert screen.buffer.filter.min_level == ""
        await pilot.press("slash")
        await pilot.press(*"!ok in")
        await pilot.press("enter")
        assert all("ok in" not in e.message for e in screen.buffer.shown) and screen.buffer.shown
        await pilot.press("slash", "ctrl+u", *"([", "enter")  # not a regex: kept, filter unchanged
        assert screen.buffer.filter.text == "!ok in"
        await pilot.press("escape")
        await pilot.press("space")  # pause: the view freezes, arrivals are counted
        shown = len(screen.query_one(LogLines).entries)
        more = [replace(e, row_id=f"late{i}", message="late error [b]x[/b]") for i, e in enumerate(entries[:5])]
        screen.on_stream_event(StreamEvent("entries", entries=tuple(more)))
        screen.repaint()
        assert len(screen.query_one(LogLines).entries) == shown
        assert "PAUSED (5 new" in str(screen.query_one("#log-state").render())
        await pilot.press("space")
        screen.repaint()
        assert any(e.message.startswith("late error") for e in screen.query_one(LogLines).entries)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, LogScreen)


async def test_log_lines_render_hostile_text_literally(tmp_path: Path) -> None:
    app = OpsApp(deploy_services(tmp_path), live=False)
    async with app.run_test(size=(120, 20)) as pilot:
        screen = LogScreen(live=False, capacity=10)
        await app.push_screen(screen)
        await pilot.pause()
        hostile = LogEntry(timestamp_ms=NOW.timestamp() * 1000, level="error", status=500, method="GET",
                           path="/x[/b]", message="[bold red]boom[/] \x1b[2J\x1b]0;title\x07 \x9b31m end",
                           row_id="h1")
        screen.on_stream_event(StreamEvent("entries", entries=(hostile,)))
        screen.repaint(force=True)
        await pilot.pause()
        text = screen.query_one(LogLines).render_line(0).text
        assert "[bold red]boom[/]" in text and "/x[/b]" in text
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
        assert "␛[2J" in text
