"""A tab's detail view: a titled list refreshed only while its tab is visible.

Rows are keyed (`DetailRows.key`, e.g. a deployment's id), so a refresh that changes nothing
writes nothing to the terminal and a changed age repaints one cell. A failed refresh keeps the
rows last shown and says since when they are (an operator mid-incident keeps their place).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from opsconsole.domain.models import Status
from opsconsole.services import DetailRows
from opsconsole.ui.format import cell, fmt_time
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic


def detail_rows(data: DetailRows, limit: int = 60) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """Columns ((key, label)) and keyed rows ((key, cells)) of a detail view (pure, for tests)."""
    columns = list(data.rows[0].keys()) if data.rows else []
    keyed: list[tuple[str, list[str]]] = []
    for i, row in enumerate(data.rows):
        ident = row.get(data.key) if data.key else None
        key = f"{data.key}:{ident}" if ident not in (None, "") else f"#{i}"
        keyed.append((key, [cell(row.get(c), limit) for c in columns]))
    return [(c or "_mark", c) for c in columns], keyed


class DetailView(Vertical):
    DEFAULT_CSS = """
    DetailView { height: auto; margin-bottom: 1; }
    DetailView .detail-title { text-style: bold; }
    DetailView .detail-status { color: $text-muted; }
    DetailView.-fail .detail-status { color: $error; text-style: bold; }
    DetailView KeyedTable { height: 1fr; }
    """

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.data: DetailRows | None = None
        self.shown_at: datetime | None = None  # when the rows on screen were fetched

    def compose(self) -> ComposeResult:
        yield LiveStatic(Content(self.title), classes="detail-title")
        yield LiveStatic(Content("loading…"), classes="detail-status")
        table = KeyedTable(cursor_type="row", zebra_stripes=True)
        table.display = False
        yield table

    def show(self, data: DetailRows, now: datetime, interval_s: float) -> None:
        self.data = data
        self.set_class(data.problem is not None and data.status is Status.FAIL, "-fail")
        table = self.query_one(KeyedTable)
        status = self.query_one(".detail-status", LiveStatic)
        if data.problem is not None:
            keep = data.status is Status.FAIL and table.display and self.shown_at is not None
            if keep and self.shown_at is not None:
                status.show(Content(f"{cell(data.problem, 200)} · showing the list as of {fmt_time(self.shown_at)}"))
            else:
                status.show(Content(cell(data.problem, 300)))
                table.display = False
            return
        self.query_one(".detail-title", LiveStatic).show(Content(f"{self.title} · every {interval_s:g} s while shown"))
        status.show(Content(data.note))
        status.display = bool(data.note)
        columns, rows = detail_rows(data)
        table.set_columns(columns)
        table.sync(rows)
        table.display = bool(rows)
        self.shown_at = data.fetched_at or now
