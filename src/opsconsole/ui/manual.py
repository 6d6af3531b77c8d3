"""`m` on a tab: record that one of its manual runbook steps was done or skipped, and why.

Manual steps are the runbook lines the console cannot do itself (open the logs, check n8n's
credentials, start a restore in the dashboard). The record goes into the audit journal, so the
incident timeline shows it beside the actions.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from opsconsole.runbooks.catalog import Step
from opsconsole.settings import Settings


def step_label(step: Step) -> str:
    return f"{step.section} {step.number}. {step.text}"


class ManualStepScreen(ModalScreen[str | None]):
    """Pick a step, press d (done) or s (skipped), give the reason; it is journaled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("d", "mark('done')", "Done"),
        Binding("s", "mark('skipped')", "Skipped"),
    ]
    DEFAULT_CSS = """
    ManualStepScreen { align: center middle; }
    ManualStepScreen > Vertical { width: 100; max-width: 98%; height: auto; max-height: 90%;
        background: $surface; border: round $primary; padding: 0 1; }
    ManualStepScreen .head { text-style: bold; }
    ManualStepScreen .muted { color: $text-muted; }
    ManualStepScreen DataTable { height: auto; max-height: 12; }
    ManualStepScreen Input { display: none; }
    ManualStepScreen Input.-shown { display: block; }
    """

    def __init__(self, settings: Settings, steps: list[Step], links: dict[str, str]) -> None:
        super().__init__()
        self.settings = settings
        self.steps = steps
        self.links = links
        self.outcome: str | None = None
        self.recorded: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content("Manual runbook steps: record what you did"), classes="head")
            table: DataTable[Text] = DataTable(cursor_type="row", id="steps")
            table.add_column(Text("step"), key="step")
            table.add_column(Text("where"), key="where")
            for i, step in enumerate(self.steps):
                table.add_row(Text(step_label(step)), Text(self.links.get(step.link, "–")), key=str(i))
            yield table
            yield Input(placeholder="why (Enter records it, Esc goes back)", id="reason")
            yield Static(Content("d done · s skipped · then the reason and Enter · Esc closes"), classes="muted")

    def action_mark(self, outcome: str) -> None:
        if not self.steps:
            return
        self.outcome = outcome
        box = self.query_one("#reason", Input)
        box.add_class("-shown")
        box.placeholder = f"why was it {outcome}? (Enter records it, Esc goes back)"
        box.focus()

    @on(Input.Submitted, "#reason")
    async def _record(self, event: Input.Submitted) -> None:
        event.stop()
        table: DataTable[Text] = self.query_one("#steps", DataTable)
        if self.outcome is None or not 0 <= table.cursor_row < len(self.steps):
            return
        step = self.steps[table.cursor_row]
        from opsconsole.audit import Journal, JournalError

        journal = Journal.for_settings(self.settings)
        try:
            await asyncio.to_thread(journal.record_manual_step, step=step_label(step),
                                    outcome="done" if self.outcome == "done" else "skipped",
                                    reason=event.value.strip())
        except JournalError as exc:
            self.notify(str(exc), title="Not recorded", severity="error", markup=False, timeout=12)
            return
        self.recorded.append(step_label(step))
        self.notify(f"Recorded: {step_label(step)} — {self.outcome}", title="Journal", markup=False)
        self.dismiss(self.outcome)

    def on_key(self, event: object) -> None:
        box = self.query_one("#reason", Input)
        if getattr(event, "key", "") == "escape" and box.has_focus:
            event.stop()  # type: ignore[attr-defined]
            box.remove_class("-shown")
            self.query_one("#steps").focus()

    def action_close(self) -> None:
        self.dismiss(None)
