"""The confirmation dialog every guarded action goes through.

The policy (which key, what must be typed, what counts as a press) lives in
`opsconsole.actions.policy`; this screen only shows the preview and collects key presses.
The focus starts on Cancel; Enter or Space on it cancel. The confirm key is handled here,
never by a button, so Enter can never confirm; every key event is fed to the KeyTracker so a
held-down key (auto-repeat) is recognised. The preview's warning is always shown in full.
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
from opsconsole.actions.policy import KeyTracker, check_confirmation
from opsconsole.ui.format import cell

_PREFERRED_COLUMNS = ("pid", "id", "user", "application", "state", "duration", "error_code", "count",
                      "query", "reason")
_TIER_LABEL = {"reversible": "REVERSIBLE", "disruptive": "DISRUPTIVE", "destructive": "DESTRUCTIVE"}


class ConfirmScreen(ModalScreen[Confirmation | None]):
    """Shows a preview; dismisses with the Confirmation the policy accepted, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=True)]

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 96; max-width: 98%; height: auto; max-height: 95%;
        background: $surface; border: thick $warning; padding: 0 1; }
    ConfirmScreen VerticalScroll { height: auto; max-height: 70vh; }  /* the buttons stay on a 24-line screen */
    ConfirmScreen.-destructive > Vertical { border: thick $error; }
    ConfirmScreen .tier { text-style: bold; color: $warning; }
    ConfirmScreen.-destructive .tier { color: $error; }
    ConfirmScreen .warning { background: $error; color: $text; text-style: bold; padding: 0 1; margin: 1 0; }
    ConfirmScreen .lines { color: $text; }
    ConfirmScreen .excluded { color: $text-muted; }
    ConfirmScreen .prompt { text-style: bold; margin-top: 1; }
    ConfirmScreen .refusal { color: $error; text-style: bold; height: auto; }
    ConfirmScreen DataTable { height: auto; max-height: 10; }
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Horizontal Static { width: 1fr; content-align: right middle; color: $text-muted; }
    ConfirmScreen Input { margin-top: 1; }
    """

    def __init__(self, preview: Preview, requirement: ConfirmationRequirement, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(classes=f"-{preview.tier.value}")
        self.preview = preview
        self.requirement = requirement
        self.tracker = KeyTracker(requirement.start_key, clock=clock)
        self.refusals: list[str] = []

    def compose(self) -> ComposeResult:
        p, req = self.preview, self.requirement
        with Vertical():
            with VerticalScroll():
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
                if req.warning or p.warning:
                    yield Static(Content(f"⚠ {req.warning or p.warning}"), classes="warning")
                yield Static(Content(req.prompt), classes="prompt")
                if req.kind is ConfirmationKind.TYPED:
                    yield Input(placeholder=f"type {req.expected_text}, then Tab and {req.confirm_key}",
                                id="typed")
                yield Static(Content(""), classes="refusal", id="refusal")
            with Horizontal():
                yield Button("Cancel", id="cancel", variant="primary")
                yield Static(Content(f"{req.confirm_key} confirms · n / Esc cancels"))

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # the focus starts on Cancel

    def _typed(self) -> str:
        found = self.query("#typed")
        return found.first(Input).value if found else ""

    def on_key(self, event: events.Key) -> None:
        key = event.key
        focused_input = isinstance(self.focused, Input)
        attempt = self.tracker.press(key, typed=self._typed())
        if focused_input:
            return  # typing: keys belong to the input (the confirm key is pressed outside it)
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

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _typed_submitted(self, event: Input.Submitted) -> None:
        event.stop()  # Enter in the box never confirms: it moves the focus out, to Cancel
        self.query_one("#cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
