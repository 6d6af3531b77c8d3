"""A tab's detail view: a titled table refreshed only while its tab is visible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from opsconsole.services import DetailRows
from opsconsole.ui.format import cell, fmt_age, fmt_latency


class DetailView(Vertical):
    DEFAULT_CSS = """
    DetailView { height: auto; margin-bottom: 1; }
    DetailView .detail-title { text-style: bold; }
    DetailView .detail-status { color: $text-muted; }
    DetailView.-fail .detail-status { color: $error; text-style: bold; }
    DetailView DataTable { height: auto; max-height: 16; }
    """

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.data: DetailRows | None = None

    def compose(self) -> ComposeResult:
        yield Static(Content(self.title), classes="detail-title")
        yield Static(Content("loading…"), classes="detail-status")
        table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True)
        table.display = False
        yield table

    def show(self, data: DetailRows, now: datetime, interval_s: float) -> None:
        self.data = data
        self.set_class(data.problem is not None and data.status.value == "fail", "-fail")
        table: DataTable[Text] = self.query_one(DataTable)
        if data.problem is not None:
            self.status_line(f"{data.problem}", now)
            table.display = False
            return
        self.status_line(data.note, now, interval_s)
        columns = list(data.rows[0].keys()) if data.rows else []
        cursor = table.cursor_row
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            for col in columns:
                table.add_column(Text(col), key=col or "_mark")
        else:
            table.clear()
        for i, row in enumerate(data.rows):
            # Text, not str: DataTable would parse str cells as markup.
            table.add_row(*(Text(cell(row.get(c), 60)) for c in columns), key=str(i))
        table.display = bool(data.rows)
        if 0 <= cursor < table.row_count:
            table.move_cursor(row=cursor, animate=False)

    def status_line(self, text: str, now: datetime, interval_s: float | None = None) -> None:
        parts = [text] if text else []
        if self.data is not None and self.data.fetched_at is not None:
            parts.append(f"as of {fmt_age((now - self.data.fetched_at).total_seconds())} ago")
            if self.data.latency_ms is not None:
                parts.append(fmt_latency(self.data.latency_ms))
        if interval_s is not None:
            parts.append(f"refreshed every {interval_s:g} s while this tab is shown")
        self.query_one(".detail-status", Static).update(Content(" · ".join(parts)))
