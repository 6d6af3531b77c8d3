"""The incident timeline in the app (key t on every tab): the audit journal, newest last."""

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
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings
        self.count = 0

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Incident timeline · {self.settings.environment.name}"), classes="head")
            yield Static(Content("reading the journal…"), classes="status", id="timeline-status")
            table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="timeline-table")
            for col in ("time (UTC)", "operator", "what", "target", "outcome", "detail"):
                table.add_column(Text(col), key=col)
            yield table
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
        table: DataTable[Text] = self.query_one(DataTable)
        table.clear()
        for i, e in enumerate(entries):
            when = e.time.strftime("%Y-%m-%d %H:%M:%S") if e.time else "?"
            # Text, not str: DataTable would parse str cells as markup, and journal text is untrusted.
            table.add_row(Text(when), Text(e.operator[:40]), Text(e.what[:60]), Text(e.target[:40]),
                          Text(e.outcome), Text(e.detail[:80]), key=str(i))
        if entries:
            table.move_cursor(row=len(entries) - 1, animate=False)
        self.count = len(entries)
        note = f"{len(entries)} events in {journal.path}"
        if read.malformed:
            note += f" · {read.malformed} malformed lines skipped"
        if not entries:
            note = f"no events yet in {journal.path}: actions and manual steps appear here"
        status.update(Content(note))
