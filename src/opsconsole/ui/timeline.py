"""The incident timeline in the app (key t on every tab): the audit journal, newest last, and
below it each runbook (wizard) run as one section, step by step with outcome, operator and
duration: the first draft of the postmortem (`opsconsole timeline` prints the same as Markdown)."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from opsconsole.settings import Settings


class TimelineScreen(ModalScreen[None]):
    """Reads the journal in a worker thread (it takes a shared lock) and lists every event."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,t", "close", "Close"),
                                             Binding("r", "reload", "Reload")]
    DEFAULT_CSS = """
    TimelineScreen { align: center middle; }
    TimelineScreen > Vertical { width: 100%; height: 90%; background: $surface; border: round $primary;
        padding: 0 1; }
    TimelineScreen .head { text-style: bold; }
    TimelineScreen .status { color: $text-muted; }
    TimelineScreen DataTable { height: 1fr; }
    TimelineScreen #timeline-runs { height: 1fr; display: none; }
    TimelineScreen #timeline-runs.-shown { display: block; }
    TimelineScreen #runs-head { display: none; text-style: bold; }
    TimelineScreen #runs-head.-shown { display: block; }
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.count = 0
        self.run_count = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Incident timeline · {self.settings.environment.name}"), classes="head")
            yield Static(Content("reading the journal…"), classes="status", id="timeline-status")
            table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="timeline-table")
            for col in ("time (UTC)", "operator", "what", "target", "outcome", "detail"):
                table.add_column(Text(col), key=col)
            yield table
            yield Static(Content("Runbook runs"), id="runs-head")
            runs: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="timeline-runs")
            for col in ("run / step", "outcome", "operator", "started (UTC)", "duration", "detail"):
                runs.add_column(Text(col), key=col)
            yield runs
            yield Static(Content("Esc closes · r reloads · `opsconsole timeline` prints it as Markdown"))

    def on_mount(self) -> None:
        self.run_worker(self._load(), group="timeline", exclusive=True, exit_on_error=False)

    def action_reload(self) -> None:
        self.run_worker(self._load(), group="timeline", exclusive=True, exit_on_error=False)

    def action_close(self) -> None:
        self.dismiss(None)

    async def _load(self) -> None:
        from opsconsole.audit import Journal, JournalError, timeline_entries

        journal = Journal.for_settings(self.settings)
        status = self.query_one("#timeline-status", Static)
        try:
            read = await asyncio.to_thread(journal.read)
        except JournalError as exc:
            status.update(Content(str(exc)))
            return
        entries = timeline_entries(read.events)
        table: DataTable[Text] = self.query_one("#timeline-table", DataTable)
        table.clear()
        for i, e in enumerate(entries):
            when = e.time.strftime("%Y-%m-%d %H:%M:%S") if e.time else "?"
            # Text, not str: DataTable would parse str cells as markup, and journal text is untrusted.
            table.add_row(Text(when), Text(e.operator[:40]), Text(e.what[:60]), Text(e.target[:40]),
                          Text(e.outcome), Text(e.detail[:80]), key=str(i))
        if entries:
            table.move_cursor(row=len(entries) - 1, animate=False)
        self.count = len(entries)
        self._show_runs(read.events)
        note = f"{len(entries)} events in {journal.path}"
        if self.run_count:
            note += f" · {self.run_count} runbook run{'s' if self.run_count != 1 else ''} below"
        if read.malformed:
            note += f" · {read.malformed} malformed lines skipped"
        if not entries:
            note = f"no events yet in {journal.path}: actions and manual steps appear here"
        status.update(Content(note))

    def _show_runs(self, events: list[dict[str, object]]) -> None:
        from opsconsole.audit import duration_text, run_outcome_text, visit_outcome_text, wizard_runs

        runs = wizard_runs(events)
        self.run_count = len(runs)
        table: DataTable[Text] = self.query_one("#timeline-runs", DataTable)
        table.clear()
        for run in runs:
            end = run.closed_at or run.last_at
            total = (end - run.opened_at).total_seconds() if end and run.opened_at else None
            started = run.opened_at.strftime("%Y-%m-%d %H:%M:%S") if run.opened_at else "?"
            table.add_row(Text(f"{run.title} ({run.run})", style="bold"), Text(run_outcome_text(run)[:60]),
                          Text(run.opened_by.label[:40]), Text(started), Text(duration_text(total)), Text(""),
                          key=f"run-{run.run}")
            for n, visit in enumerate(run.visits):
                when = visit.entered_at.strftime("%H:%M:%S") if visit.entered_at else "?"
                label = f"  {visit.index}. {visit.title}" if visit.index else f"  {visit.title}"
                table.add_row(Text(label[:60]), Text(visit_outcome_text(visit)), Text(visit.operator[:40]),
                              Text(when), Text(duration_text(visit.duration_s)), Text(visit.detail[:80]),
                              key=f"run-{run.run}-{n}")
        shown = bool(runs)
        self.query_one("#timeline-runs", DataTable).set_class(shown, "-shown")
        self.query_one("#runs-head", Static).set_class(shown, "-shown")
