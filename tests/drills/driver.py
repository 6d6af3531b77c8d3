"""Walks a wizard in the console the way an operator would: keys, dialogs, typed confirmations.

`walk` presses what each step asks for (n after a failed check with no branch, x and the
confirmation for an action, d for a manual step, the ack text where there is one) until the run
is closed or stuck. It never reaches into the engine: everything goes through the screen's keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Button, Input

from opsconsole.runbooks.engine import Mode
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.wizard.dialogs import PromptScreen
from opsconsole.ui.wizard.screen import WizardScreen


async def wait_for(pilot: Pilot[Any], condition: Any, *, timeout_s: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for {what or condition}")


def wizard_screen(app: OpsApp) -> WizardScreen | None:
    for screen in reversed(app.screen_stack):
        if isinstance(screen, WizardScreen):
            return screen
    return None


async def settle(pilot: Pilot[Any], screen: WizardScreen, *, patience_s: float = 120.0,
                 timeout_s: float = 180.0) -> None:
    """Until the screen's key is handled and the engine is idle. A re-check that waits longer than
    `patience_s` is stopped with Esc, as an operator would once they have seen enough."""
    waited_since: float | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        wiz = screen.wizard
        if not screen.op_running and not wiz.busy and isinstance(pilot.app.screen, WizardScreen):
            return
        if wiz.t.waiting_until is not None:
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since > patience_s:
                await pilot.press("escape")
                waited_since = None
        await pilot.pause(0.1)
    raise AssertionError(f"timed out waiting for the wizard to settle: on {type(pilot.app.screen).__name__}, "
                         f"op running {screen.op_running}, busy {screen.wizard.busy!r}, at {screen.wizard.current_id}")


async def answer_prompt(pilot: Pilot[Any], text: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="a prompt")
    prompt = app.screen
    await wait_for(pilot, lambda: not prompt.query_one("#prompt", Input).disabled, what="the prompt to arm")
    await pilot.press(*text)
    await pilot.press("enter")


async def confirm_dialog(pilot: Pilot[Any], screen: WizardScreen) -> bool:
    """Confirm the guarded action's dialog like an operator: type what it asks, wait, press the key.
    False when no dialog came (the preview was refused)."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) or not screen.op_running,
                   what="the confirmation dialog")
    dialog = app.screen
    if not isinstance(dialog, ConfirmScreen):
        return False
    req = dialog.requirement
    # The dialog puts the focus on Cancel when it is mounted; type only after that.
    await wait_for(pilot, lambda: isinstance(dialog.focused, Button), what="the dialog's focus on Cancel")
    typed = dialog.query("#typed")
    if typed:
        box = typed.first(Input)
        box.focus()
        await pilot.pause()
        await pilot.press(*req.expected_text)
        dialog.query_one("#cancel", Button).focus()
    await asyncio.sleep(0.5)  # the dialog's arming time: a confirm key sooner than that is refused
    # a warning the operator must read first (a restore's downtime, a revert's data loss) holds the key
    await wait_for(pilot, lambda: dialog.hold_left() <= 0, timeout_s=30, what="the warning hold to end")
    await pilot.press(req.confirm_key)
    return True


async def walk(pilot: Pilot[Any], *, max_steps: int = 40, reasons: dict[str, str] | None = None,
               patience_s: float = 120.0, by_hand: dict[str, Callable[[], Any]] | None = None) -> list[str]:
    """Walk the open wizard to its end; returns what was pressed per step (for failure messages).

    `by_hand[step_id]` is what the operator does outside the console at that manual step (e.g. fix
    a credential in n8n's own UI), called before d is pressed."""
    app = pilot.app
    assert isinstance(app, OpsApp)
    log: list[str] = []
    reasons = reasons or {}
    await wait_for(pilot, lambda: wizard_screen(app) is not None, what="the wizard screen")
    screen = wizard_screen(app)
    assert screen is not None
    wiz = screen.wizard
    await wait_for(pilot, lambda: wiz.visit is not None, what="the run to open")
    for _ in range(max_steps):
        await settle(pilot, screen, patience_s=patience_s)
        if wiz.closed:
            return log
        step = wiz.step
        mode = wiz.mode()
        state = wiz.visit.state if wiz.visit is not None else ""
        here = f"{wiz.current_id}:{mode.value}:{state}"
        if mode is Mode.END:
            log.append(f"{here}: stuck at the end: {wiz.message}")
            return log
        if step is not None and wiz.needs_ack(step):
            log.append(f"{here}: ack")
            ack = screen.query_one("#wiz-ack", Input)
            ack.focus()
            await pilot.pause()
            await pilot.press(*step.ack)
            await pilot.press("enter")
            continue
        if state in ("refused", "unknown"):
            log.append(f"{here}: stuck: {wiz.visit.detail if wiz.visit else ''}")
            return log
        if mode is Mode.CHECK:
            if state == "failed":
                log.append(f"{here}: n")
                await pilot.press("n")
            else:
                log.append(f"{here}: r")
                await pilot.press("r")
            continue
        if mode is Mode.ACTION:
            if state == "failed":  # the action did not fully work and has no branch: go on
                log.append(f"{here}: n")
                await pilot.press("n")
                continue
            log.append(f"{here}: x")
            missing = [p.name for p in wiz.missing_params()]
            await pilot.press("x")
            for name in missing:
                await answer_prompt(pilot, reasons.get(name, f"drill: {name} for {wiz.current_id}"))
            await confirm_dialog(pilot, screen)
            continue
        if by_hand and wiz.current_id in by_hand:
            log.append(f"{here}: by hand")
            by_hand[wiz.current_id]()
        log.append(f"{here}: d")
        await pilot.press("d")
    log.append("too many steps")
    return log
