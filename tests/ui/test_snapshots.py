"""Snapshots of every tab at 100x30 and the main screen at 80x24 (fixed clock, fake data)."""

from __future__ import annotations

from typing import Any

import pytest

from opsconsole.ui.app import OpsApp
from tests.fakes import fake_services


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6"])
def test_tab_snapshot(snap_compare: Any, key: str) -> None:
    async def show(pilot: Any) -> None:  # a tab's detail view loads in a worker: wait for it, not for luck
        await pilot.press(key)
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    assert snap_compare(OpsApp(fake_services(), live=False), run_before=show, terminal_size=(100, 30))


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=(80, 24))


def test_contrast_theme_80x24(snap_compare: Any) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False, theme="opsconsole-contrast"),
                        terminal_size=(80, 24))
