"""Snapshots (fixed clock, fake data): every tab at 100x30 and at 80x24, the main screen in the
contrast theme and without colour, a card's details and `?` at 80x24."""

from __future__ import annotations

from typing import Any

import pytest

from opsconsole.ui.app import OpsApp
from tests.fakes import fake_services


def _on_tab(key: str) -> Any:
    """Show the tab, then wait until every view on it has loaded and been laid out (a tab holds several
    views that load at once; a screenshot taken between them would be a race)."""

    async def run_before(pilot: Any) -> None:
        await pilot.press(key)
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    return run_before


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6"])
def test_tab_snapshot(snap_compare: Any, key: str) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=(100, 30), run_before=_on_tab(key))


@pytest.mark.parametrize("key", ["1", "2", "3", "4", "5", "6"])
def test_tab_snapshot_80x24(snap_compare: Any, key: str) -> None:
    """At 80x24 every tab shows, without scrolling, a status line per check, the tab's keys first in
    the footer and the first rows of its list."""
    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=(80, 24), run_before=_on_tab(key))


def test_main_screen_80x24(snap_compare: Any) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=(80, 24))


def test_contrast_theme_80x24(snap_compare: Any) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False, theme="opsconsole-contrast"),
                        terminal_size=(80, 24))


def test_no_color_80x24(snap_compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR: no colour at all; the status reads from the glyphs and the words."""
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(OpsApp(fake_services(), live=False), press=["2"], terminal_size=(80, 24))


def test_card_details_80x24(snap_compare: Any) -> None:
    """Enter on a status line opens its details: labelled facts with units, tables of records."""
    assert snap_compare(OpsApp(fake_services(), live=False), press=["1", "enter"], terminal_size=(80, 24))


def test_help_80x24(snap_compare: Any) -> None:
    """`?` on the DLQ tab, filtered as you type ("page")."""
    assert snap_compare(OpsApp(fake_services(), live=False), press=["4", "question_mark", *"page"],
                        terminal_size=(80, 24))
