"""Snapshots of the wizard screen at 100x30 and 80x24: a check step, an action step with its preview
(the confirmation dialog over the wizard), and the restore's DOWNTIME WARNING waiting for its ack.
Fakes with a fixed clock and operator (tests/ui/wizard_harness.py)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import Button, Input

from opsconsole.ui.confirm import ConfirmScreen
from tests.drills.driver import settle, wait_for, wizard_screen
from tests.ui.wizard_harness import terminate_stand_in, wizard_app, wizard_services

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((80, 24), id="80x24")]


async def _ready(pilot: Any) -> Any:
    app = pilot.app
    await wait_for(pilot, lambda: wizard_screen(app) is not None and wizard_screen(app).wizard.visit is not None)
    screen = wizard_screen(app)
    await settle(pilot, screen)
    return screen


@pytest.mark.parametrize("size", SIZES)
def test_wizard_at_a_check_step(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await _ready(pilot)
        await pilot.pause(0.2)

    assert snap_compare(wizard_app("api-down"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_wizard_action_step_with_its_preview(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await _ready(pilot)
        await pilot.press("n")  # status WARNs on the incident fakes: on to the resources, which fail -> kill
        await wait_for(pilot, lambda: screen.wizard.current_id == "kill")
        await settle(pilot, screen)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
        await wait_for(pilot, lambda: isinstance(pilot.app.screen.focused, Button))
        await pilot.pause(0.2)

    app = wizard_app("supabase-queries", services=wizard_services(actions=(terminate_stand_in(),)))
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_wizard_downtime_warning(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        screen = await _ready(pilot)
        await pilot.press("d")  # severity: the corruption is unfixable via SQL
        await wait_for(pilot, lambda: screen.wizard.current_id == "restore")
        await settle(pilot, screen)
        ack = screen.query_one("#wiz-ack", Input)
        await wait_for(pilot, lambda: ack.has_focus)
        ack.cursor_blink = False  # a blinking cursor would make the snapshot flicker
        await pilot.pause(0.2)

    assert snap_compare(wizard_app("backup-restore"), terminal_size=size, run_before=run_before)
