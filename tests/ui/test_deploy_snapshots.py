"""Snapshots of the Deploy tab with the promote dialog, and of the runtime log view, at 100x30 and 80x24
(fake data, fixed clock; the log view fed fixed entries with markup and escape sequences in them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsconsole.adapters.vercel_logs import StreamEvent
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.logview import LogScreen
from tests.fakes import FAKE_DEPLOYMENTS
from tests.ui.deploy_fakes import deploy_services, log_entries

SIZES = [(100, 30), (80, 24)]


async def _open_deploy_tab(pilot: Any) -> None:
    await pilot.press("5")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=["100x30", "80x24"])
def test_deploy_tab_promote_dialog(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _open_deploy_tab(pilot)
        await pilot.press("P")
        for _ in range(50):
            await pilot.pause(0.02)
            if isinstance(pilot.app.screen, ConfirmScreen):
                break
        await pilot.pause()

    app = OpsApp(deploy_services(tmp_path), live=False)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["100x30", "80x24"])
def test_log_view(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _open_deploy_tab(pilot)
        screen = LogScreen(live=False, capacity=30)
        await pilot.app.push_screen(screen)
        await pilot.pause()
        dep = next(d for d in FAKE_DEPLOYMENTS if d.id == "dpl_7")
        screen.on_stream_event(StreamEvent("connected", deployment=dep))
        screen.on_stream_event(StreamEvent("entries", entries=tuple(log_entries()), deployment=dep))
        screen.repaint(force=True)
        await pilot.pause()

    app = OpsApp(deploy_services(tmp_path), live=False)
    assert snap_compare(app, terminal_size=size, run_before=run_before)
