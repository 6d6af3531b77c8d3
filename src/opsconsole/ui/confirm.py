"""The confirmation dialog every guarded action goes through.

The policy (which key, what must be typed, what counts as a press, how long a warning must be
on screen) lives in `opsconsole.actions.policy`; this screen only shows the preview and collects
key presses. The focus starts on Cancel; Enter or Space on it cancel. The confirm key is handled
here, never by a button, so Enter can never confirm; every key event is fed to the KeyTracker so
a held-down key (auto-repeat) is recognised.

The preview's warning is always shown in full and pinned below the scrolling preview, so it is on
screen from the moment the dialog opens whatever the terminal size (at 80x24 the preview scrolls,
the warning does not). With a warning hold (`warning_hold_s`, e.g. 5 s for the runbook's DOWNTIME
WARNING) the confirm key does nothing until the warning has been on screen that long: the hint
line counts down, and the policy refuses any earlier press (the kernel checks it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Static

from opsconsole.actions.model import Confirmation, ConfirmationKind, ConfirmationRequirement, Preview
from opsconsole.actions.policy import KeyTracker, check_confirmation, hold_remaining
from opsconsole.ui.format import cell

_PREFERRED_COLUMNS = ("pid", "id", "user", "application", "state", "duration", "error_code", "count",
                      "query", "reason")
_TIER_LABEL = {"reversible": "REVERSIBLE", "disruptive": "DISRUPTIVE", "destructive": "DESTRUCTIVE"}
_COMPACT_BELOW_ROWS = 30  # on a short terminal the button and the input take one row each


class ConfirmScreen(ModalScreen[Confirmation | None]):
    """Shows a preview; dismisses with the Confirmation the policy accepted, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=True)]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 96; max-width: 98%; height: auto; max-height: 95%;
        background: $surface; border: thick $warning; padding: 0 1; }
    ConfirmScreen VerticalScroll { height: auto; max-height: 70vh;  /* the buttons stay on a 24-line screen */ }
    ConfirmScreen.-tall > Vertical { height: 95%; }
    ConfirmScreen.-tall VerticalScroll { height: 1fr; max-height: 100%; }
    ConfirmScreen.-destructive > Vertical { border: thick $error; }
    ConfirmScreen .tier { text-style: bold; color: $warning; }
    ConfirmScreen.-destructive .tier { color: $error; }
    ConfirmScreen .warning { background: $error; color: $text; text-style: bold; padding: 0 1; margin: 1 0; }
    ConfirmScreen.-compact .warning { margin: 0; }
    ConfirmScreen .lines { color: $text; }
    ConfirmScreen .excluded { color: $text-muted; }
    ConfirmScreen .prompt { text-style: bold; margin-top: 1; }
    ConfirmScreen.-compact .prompt { margin-top: 0; }
    ConfirmScreen .refusal { color: $error; text-style: bold; height: auto; }
    ConfirmScreen DataTable { height: auto; max-height: 10; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen.-compact Horizontal { margin-top: 0; }
    ConfirmScreen Horizontal Static { width: 1fr; content-align: right middle; color: $text-muted; }
    ConfirmScreen Horizontal Static.-holding { color: $warning; text-style: bold; }
    ConfirmScreen Input { margin-top: 1; }
    ConfirmScreen.-compact Input { margin-top: 0; }
    """

    def __init__(self, preview: Preview, requirement: ConfirmationRequirement, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(classes=f"-{preview.tier.value}")
        self.preview = preview
        self.requirement = requirement
        self.tracker = KeyTracker(requirement.start_key, clock=clock)
        self.refusals: list[str] = []

    @property
    def warning(self) -> str:
        return self.requirement.warning or self.preview.warning

    def compose(self) -> ComposeResult:
        p, req = self.preview, self.requirement
        with Vertical(id="dialog"):
            with VerticalScroll(id="preview-body"):
                yield Static(Content(f"{_TIER_LABEL[p.tier.value]} · {p.title}"), classes="tier")
                yield Static(Content(f"Target: {p.target}"))
                if p.lines:
                    yield Static(Content("\n".join(cell(line, 200) for line in p.lines)), classes="lines")
                if p.items:
                    table: DataTable[Text] = DataTable(cursor_type="none", zebra_stripes=True)
                    preferred = [c for c in _PREFERRED_COLUMNS if c in p.items[0]]
                    columns = preferred or list(p.items[0].keys())[:7]
                    for col in columns:
                        table.add_column(Text(col), key=col)
                    for i, item in enumerate(p.items[:200]):
                        table.add_row(*(Text(cell(item.get(c), 60)) for c in columns), key=str(i))
                    yield table
                if p.excluded:
                    excluded = [f"not affected: {cell(item.get('pid', item.get('id', '?')))} — "
                                f"{cell(item.get('reason', ''), 120)}" for item in p.excluded]
                    yield Static(Content("\n".join(excluded)), classes="excluded")
            # Pinned: on screen from the first frame, never scrolled away.
            if self.warning:
                yield Static(Content(f"⚠ {self.warning}"), classes="warning", id="warning")
            yield Static(Content(req.prompt), classes="prompt")
            if req.kind is ConfirmationKind.TYPED:
                yield Input(placeholder=f"type {req.expected_text}, then Tab and {req.confirm_key}", id="typed",
                            select_on_focus=False)
            yield Static(Content(""), classes="refusal", id="refusal")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Static(Content(self._hint_text()), id="hint")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the focus starts on Cancel
        self._fit()
        self.call_after_refresh(self._fit)
        if self.requirement.warning_hold_s > 0:
            self._hold_timer = self.set_interval(0.25, self._refresh_hint)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Keep the pinned part (warning, prompt, input, buttons) on screen: on a short terminal the
        controls go compact, and a preview too long to fit scrolls inside the dialog."""
        compact = self.app.size.height < _COMPACT_BELOW_ROWS
        self.set_class(compact, "-compact")
        for button in self.query(Button):
            button.compact = compact
        for box in self.query(Input):
            box.compact = compact
        dialog, buttons = self.query_one("#dialog"), self.query_one("#buttons")
        if not self.has_class("-tall") and buttons.region.bottom > dialog.region.bottom - 1:
            self.add_class("-tall")

    # -- the hold -------------------------------------------------------------------------
    def hold_left(self) -> float:
        """Seconds until the confirm key can do anything (the warning hold)."""
        return hold_remaining(self.requirement, self.tracker.elapsed())

    def _hint_text(self) -> str:
        key = self.requirement.confirm_key
        left = hold_remaining(self.requirement, self.tracker.elapsed()) if self.requirement.warning_hold_s else 0.0
        if left > 0:
            return f"read the warning: {key} works in {left:.0f} s · n / Esc cancels"
        if self.requirement.kind is ConfirmationKind.TYPED:
            return f"type the text, Tab, then {key} confirms · n / Esc cancels"
        return f"{key} confirms · n / Esc cancels"

    def _refresh_hint(self) -> None:
        hint = self.query_one("#hint", Static)
        hint.update(Content(self._hint_text()))
        holding = self.hold_left() > 0
        hint.set_class(holding, "-holding")
        if not holding:
            timer = getattr(self, "_hold_timer", None)
            if timer is not None:
                timer.stop()

    # -- keys -----------------------------------------------------------------------------
    def _typed(self) -> str:
        found = self.query("#typed")
        return found.first(Input).value if found else ""

    def on_key(self, event: events.Key) -> None:
        key = event.key
        focused_input = isinstance(self.focused, Input)
        attempt = self.tracker.press(key, typed=self._typed())
        if focused_input:
            return  # typing: keys belong to the input (the confirm key is pressed outside it)
        if self._type_ahead(event):
            return
        if key == "n":
            event.stop()
            self.dismiss(None)
            return
        if key != self.requirement.confirm_key and key not in ("enter", "space", self.requirement.start_key):
            return
        event.stop()
        if key in ("enter", "space") and self.focused is self.query_one("#cancel", Button):
            self.dismiss(None)  # Enter/Space press the focused Cancel button: they cancel
            return
        refusal = check_confirmation(self.requirement, attempt)
        if refusal is None:
            self.dismiss(attempt)
            return
        self.refusals.append(refusal.message)
        self.query_one("#refusal", Static).update(Content(f"Not confirmed: {refusal.message}"))

    def _type_ahead(self, event: events.Key) -> bool:
        """Typing the confirm text while the focus is still on Cancel: the first character moves the
        focus into the box and goes there, so what was typed is not lost. Never n (it cancels), the
        confirm key, Enter or Space; only while the box is empty."""
        found = self.query("#typed")
        char = event.character
        if (not found or self._typed() or char is None or not char.isprintable() or char.isspace()
                or event.key in ("n", self.requirement.confirm_key, self.requirement.start_key)):
            return False
        box = found.first(Input)
        event.stop()
        box.focus()
        box.insert_text_at_cursor(char)
        return True

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _typed_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in the box never confirms: it moves the focus out, to Cancel
        self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
