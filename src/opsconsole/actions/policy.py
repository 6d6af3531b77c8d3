"""The confirmation policy: which confirmation a risk tier demands, and whether a key press
counts as one. Pure functions (plus a tiny key-timing tracker), no Textual.

Rules (design.md "Guarded actions"):

* reversible:  y/n, the focus on Cancel.
* disruptive:  y/n, the prompt names the target ("Cancel the query of PID 4242?").
* destructive: the operator types `preview.confirm_text` exactly, then presses the confirm key.
* The confirm key is never Enter (nor any key a terminal sends for it, nor space: the keys
  that press a focused button), and never the key that started the action. Rule: the confirm
  key is "y"; when the action was started with "y" it is "Y" (shift+y), so a start key held
  down (auto-repeat) can never confirm.
* A press counts only when the dialog has been open for at least `MIN_ARM_S` (a key pressed
  "too fast" was meant for the screen below), and not when it is an auto-repeat: the same key
  seen again within `REPEAT_WINDOW_S` (terminals repeat every ~30-50 ms once the key is held).
  `KeyTracker` computes both from key-event timestamps for the UI.
* Warnings (downtime) are part of the requirement and must be shown; no key skips them.
* A preview may demand that its warning stays on screen for `warning_hold_s` seconds
  (`WARNING_HOLD_S` for the runbook's DOWNTIME WARNING) before anything confirms: the confirm
  key does nothing until then, whatever was typed. The dialog shows the countdown; the kernel
  checks it again from the confirmation's `elapsed_s`. On the command line the hold applies to
  the interactive prompt (the answer must come at least that long after the warning was
  printed); `--confirm TEXT` given up front is a non-interactive, typed-in-advance confirmation
  and is not held (the warning is printed to stderr before anything runs; on a terminal the CLI
  also counts down before running, so a command recalled from the shell history can be stopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opsconsole.actions.model import (
    Confirmation,
    ConfirmationKind,
    ConfirmationRequirement,
    Preview,
    Refusal,
    RefusalReason,
    RiskTier,
)

MIN_ARM_S = 0.4
"""A confirm key pressed sooner than this after the dialog opened is refused."""

REPEAT_WINDOW_S = 0.2
"""The same key seen again within this many seconds is an auto-repeat, not a press."""

WARNING_HOLD_S = 5.0
"""How long a downtime or data-loss warning must be on screen before a confirmation counts."""

CONFIRM_KEY_CHOICES: tuple[str, ...] = ("y", "Y")
"""The confirm key is the first of these that is not the start key."""

# Textual key names (and raw characters) that mean Enter, plus those that activate a focused button.
ENTER_KEYS = frozenset({"enter", "return", "ctrl+m", "ctrl+j", "\r", "\n", "kp_enter", "newline"})
FORBIDDEN_CONFIRM_KEYS = ENTER_KEYS | {"space", " ", "tab", "escape"}


def is_enter(key: str) -> bool:
    """Whether `key` (a Textual key name or a raw character) is Enter in any spelling."""
    return key.lower() in ENTER_KEYS


def confirm_key_for(start_key: str, *other_start_keys: str) -> str:
    """The confirm key for an action started with `start_key` (case-sensitive: "y" != "Y").

    `other_start_keys`: keys that also start this action (its binding, when it was started some
    other way, e.g. from the command palette); the confirm key avoids them all."""
    avoid = {start_key, *other_start_keys}
    return next(key for key in CONFIRM_KEY_CHOICES if key not in avoid)


def requirement_for(preview: Preview, start_key: str, *, action_key: str = "") -> ConfirmationRequirement:
    """The confirmation `preview`'s tier demands, for an action started with `start_key`
    (`action_key`: the action's own binding, when it differs; it never confirms either)."""
    key = confirm_key_for(start_key, action_key)
    start_keys = tuple(k for k in dict.fromkeys((start_key, action_key)) if k)
    shown_key = "shift+y" if key == "Y" else key
    tier = preview.tier
    hold = max(0.0, float(preview.warning_hold_s or 0.0))
    held = (f" The warning must stay on screen {hold:g} s before {shown_key} does anything."
            if hold else "")
    if tier is RiskTier.DESTRUCTIVE:
        return ConfirmationRequirement(
            kind=ConfirmationKind.TYPED, confirm_key=key, start_key=start_key, start_keys=start_keys,
            expected_text=preview.confirm_text, warning=preview.warning, warning_hold_s=hold,
            prompt=(f"{preview.title}: {preview.target}. This cannot be undone. "
                    f"Type {preview.confirm_text} exactly, then press {shown_key} to confirm "
                    f"(n or Escape cancels).{held}"))
    if tier is RiskTier.DISRUPTIVE:
        return ConfirmationRequirement(
            kind=ConfirmationKind.YES_NO_NAMED, confirm_key=key, start_key=start_key, start_keys=start_keys,
            warning=preview.warning, warning_hold_s=hold,
            prompt=f"{preview.title}: {preview.target}? Press {shown_key} to confirm, n or Escape to cancel.{held}")
    return ConfirmationRequirement(
        kind=ConfirmationKind.YES_NO, confirm_key=key, start_key=start_key, start_keys=start_keys,
        warning=preview.warning, warning_hold_s=hold,
        prompt=f"{preview.title}? Press {shown_key} to confirm, n or Escape to cancel.{held}")


def hold_remaining(requirement: ConfirmationRequirement, elapsed_s: float) -> float:
    """Seconds until the warning hold is over (0 when there is none or it is over)."""
    return max(0.0, requirement.warning_hold_s - max(0.0, elapsed_s))


def _refuse(check: str, message: str) -> Refusal:
    return Refusal(RefusalReason.CONFIRMATION, message, {"check": check})


def check_confirmation(requirement: ConfirmationRequirement, confirmation: Confirmation) -> Refusal | None:
    """None when `confirmation` satisfies `requirement`; else why not (reason `confirmation`,
    `details["check"]` one of: empty, enter, start_key, forbidden_key, wrong_key, repeat,
    too_fast, warning_hold, typed_empty, typed_mismatch)."""
    if confirmation.via == "cli":
        return _check_cli(requirement, confirmation)
    key = confirmation.key
    if not key:
        return _refuse("empty", "no key was pressed: nothing confirmed")
    if is_enter(key):
        return _refuse("enter", f"Enter never confirms an action: press {requirement.confirm_key}")
    if key in (requirement.start_key, confirmation.start_key, *requirement.start_keys):
        return _refuse("start_key", f"the key that started the action ({key}) cannot confirm it: "
                                    f"press {requirement.confirm_key}")
    if key.lower() in FORBIDDEN_CONFIRM_KEYS or requirement.confirm_key.lower() in FORBIDDEN_CONFIRM_KEYS:
        return _refuse("forbidden_key", f"{key} cannot confirm an action")
    if key != requirement.confirm_key:
        return _refuse("wrong_key", f"{key} does not confirm this action: press {requirement.confirm_key}")
    if confirmation.repeat:
        return _refuse("repeat", "a held-down key (auto-repeat) cannot confirm: release it and press "
                                 f"{requirement.confirm_key} once")
    if confirmation.elapsed_s < MIN_ARM_S:
        return _refuse("too_fast", f"confirmed {confirmation.elapsed_s:.2f} s after the dialog opened "
                                   f"(minimum {MIN_ARM_S:g} s): read the preview, then press "
                                   f"{requirement.confirm_key}")
    held = _held(requirement, confirmation)
    if held is not None:
        return held
    if requirement.kind is ConfirmationKind.TYPED:
        if not requirement.expected_text:
            return _refuse("typed_empty", "this action has no confirmation text to type: refusing")
        if not confirmation.typed:
            return _refuse("typed_empty", f"type {requirement.expected_text} to confirm")
        if confirmation.typed != requirement.expected_text:
            return _refuse("typed_mismatch", f"typed text does not match: expected {requirement.expected_text} "
                                             "exactly")
    return None


def _held(requirement: ConfirmationRequirement, confirmation: Confirmation) -> Refusal | None:
    """The warning hold: refused while the warning has been shown for less than `warning_hold_s`."""
    left = hold_remaining(requirement, confirmation.elapsed_s)
    if left <= 0:
        return None
    return _refuse("warning_hold", f"the warning must stay on screen {requirement.warning_hold_s:g} s before "
                                   f"anything confirms ({left:.1f} s left): read it, then press "
                                   f"{requirement.confirm_key}")


CLI_CONFIRMATIONS = ("--yes", "--confirm", "prompt")


def _check_cli(requirement: ConfirmationRequirement, confirmation: Confirmation) -> Refusal | None:
    """`action run`: --yes or a y answer for reversible/disruptive; the typed text for destructive.
    The warning hold applies to the interactive prompt, not to `--confirm`/`--yes` given up front."""
    if not confirmation.key:
        return _refuse("empty", "not confirmed: there is no terminal to ask on and neither --yes nor --confirm "
                                "was given; nothing was done")
    if confirmation.key not in CLI_CONFIRMATIONS:
        return _refuse("wrong_key", f"{confirmation.key or 'nothing'} does not confirm an action: use --yes, "
                                    "--confirm TEXT or answer the prompt")
    if confirmation.key == "prompt":
        held = _held(requirement, confirmation)
        if held is not None:
            return held
    if requirement.kind is ConfirmationKind.TYPED:
        if not requirement.expected_text:
            return _refuse("typed_empty", "this action has no confirmation text to type: refusing")
        if not confirmation.typed:
            return _refuse("typed_empty", f"this action is destructive: --yes is not enough; pass --confirm "
                                          f"{requirement.expected_text!r} (the preview's confirm text)")
        if confirmation.typed != requirement.expected_text:
            return _refuse("typed_mismatch", f"typed text does not match: expected {requirement.expected_text} "
                                             "exactly")
    return None


class KeyTracker:
    """Key-event timing for one confirmation dialog, for `Confirmation.repeat`/`elapsed_s`.

    Create it when the dialog opens, passing the start key (it was just pressed, so its
    auto-repeats are recognised); call `press(key)` for EVERY key event the dialog sees
    (refused ones too: a held key keeps repeating) and build the Confirmation from the answer.
    `clock` is monotonic seconds (injectable for tests).
    """

    def __init__(self, start_key: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.start_key = start_key
        self._clock = clock
        self.opened_at = clock()
        self._last_seen: dict[str, float] = {start_key: self.opened_at}

    def elapsed(self) -> float:
        return self._clock() - self.opened_at

    def press(self, key: str, *, typed: str = "") -> Confirmation:
        now = self._clock()
        last = self._last_seen.get(key)
        self._last_seen[key] = now
        repeat = last is not None and now - last < REPEAT_WINDOW_S
        return Confirmation(key=key, start_key=self.start_key, elapsed_s=now - self.opened_at,
                            repeat=repeat, typed=typed)
