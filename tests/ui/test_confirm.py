"""The confirmation dialog: Enter, the start key and a held key never confirm."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from textual.app import App
from textual.widgets import Input

from opsconsole.actions.model import Confirmation, Preview, RiskTier
from opsconsole.actions.policy import requirement_for
from opsconsole.ui.confirm import ConfirmScreen


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _preview(tier: RiskTier, warning: str = "") -> Preview:
    return Preview(action_id="db.cancel", title="Cancel query", tier=tier, target="PID 4242", confirm_text="4242",
                   data_as_of=datetime(2026, 11, 27, tzinfo=UTC), lines=("PID 4242 [bold]x[/] \x1b[31m",),
                   items=({"pid": 4242, "user": "metabase", "query": "select [/x]"},), warning=warning)


class Harness(App[None]):
    def __init__(self, screen: ConfirmScreen) -> None:
        super().__init__()
        self.dialog = screen
        self.results: list[Confirmation | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


async def _open(tier: RiskTier, start_key: str = "c", warning: str = "") -> tuple[Harness, FakeClock, Any]:
    clock = FakeClock()
    preview = _preview(tier, warning)
    screen = ConfirmScreen(preview, requirement_for(preview, start_key), clock=clock)
    return Harness(screen), clock, screen


async def test_enter_on_the_focused_cancel_button_cancels() -> None:
    app, clock, screen = await _open(RiskTier.DISRUPTIVE)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert screen.focused is not None and screen.focused.id == "cancel"  # focus starts on Cancel
        clock.t += 5
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [None]


async def test_enter_without_focus_never_confirms() -> None:
    app, clock, screen = await _open(RiskTier.DISRUPTIVE)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        screen.set_focus(None)
        clock.t += 5
        await pilot.press("enter")
        await pilot.pause()
        assert app.results == [] and "Enter never confirms" in screen.refusals[-1]


async def test_the_start_key_never_confirms() -> None:
    app, clock, screen = await _open(RiskTier.DISRUPTIVE, start_key="c")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        clock.t += 5
        await pilot.press("c")
        await pilot.pause()
        assert app.results == []
        assert "started the action" in screen.refusals[-1]


async def test_a_held_key_cannot_confirm_but_a_deliberate_press_can() -> None:
    app, clock, screen = await _open(RiskTier.DISRUPTIVE)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        for _ in range(8):  # auto-repeat: a press every 30 ms from the moment the dialog opened
            clock.t += 0.03
            await pilot.press("y")
        await pilot.pause()
        assert app.results == []
        assert any("too fast" in r or "minimum" in r for r in screen.refusals)
        assert any("held-down" in r for r in screen.refusals)
        clock.t += 1.0  # released, read the preview, pressed once
        await pilot.press("y")
        await pilot.pause()
        assert len(app.results) == 1 and isinstance(app.results[0], Confirmation)


async def test_destructive_needs_the_target_typed() -> None:
    app, clock, screen = await _open(RiskTier.DESTRUCTIVE, start_key="x")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        clock.t += 5
        await pilot.press("y")
        await pilot.pause()
        assert app.results == [] and "type 4242" in screen.refusals[-1]
        box = screen.query_one("#typed", Input)
        box.focus()
        await pilot.press(*"4243")
        await pilot.press("enter")  # Enter in the box moves the focus out; it never confirms
        await pilot.pause()
        assert app.results == []
        clock.t += 1
        await pilot.press("y")
        await pilot.pause()
        assert app.results == [] and "does not match" in screen.refusals[-1]
        box.focus()
        box.value = ""
        await pilot.press(*"4242")
        await pilot.press("tab")
        clock.t += 1
        await pilot.press("y")
        await pilot.pause()
        assert len(app.results) == 1
        result = app.results[0]
        assert result is not None and result.typed == "4242"


async def test_warning_and_hostile_text_are_shown_literally() -> None:
    app, _clock, screen = await _open(RiskTier.DESTRUCTIVE, warning="DOWNTIME: the database goes OFFLINE")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        warning = str(screen.query_one(".warning").render())
        assert "DOWNTIME: the database goes OFFLINE" in warning
        lines = str(screen.query_one(".lines").render())
        assert "[bold]x[/]" in lines and "\x1b" not in lines


async def test_typing_the_confirm_text_on_cancel_goes_into_the_box() -> None:
    """The dialog opens on Cancel; an operator who types the text straight away must not lose it
    (the first character moves the focus into the box), and Tab then y confirms."""
    app, clock, screen = await _open(RiskTier.DESTRUCTIVE, start_key="x")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        assert screen.focused is not None and screen.focused.id == "cancel"
        await pilot.press(*"4242")
        await pilot.pause()
        assert screen.query_one("#typed", Input).value == "4242"
        await pilot.press("tab")
        clock.t += 5
        await pilot.press("y")
        await pilot.pause()
        assert len(app.results) == 1 and app.results[0] is not None and app.results[0].typed == "4242"


async def test_n_on_cancel_still_cancels_a_typed_confirmation() -> None:
    app, _clock, _screen = await _open(RiskTier.DESTRUCTIVE, start_key="x")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert app.results == [None]
