"""Status badge (one per system in the strip) and check card (one per check on a tab)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Static

from opsconsole.domain.models import CheckResult, Status
from opsconsole.ui.format import GLYPH, LABEL, age_of, cell, fmt_age, fmt_latency

_STATUS_CLASSES = tuple(f"-{s.value}" for s in Status)


def _set_status_class(widget: Static | Vertical, status: Status | None) -> None:
    widget.remove_class(*_STATUS_CLASSES)
    if status is not None:
        widget.add_class(f"-{status.value}")


class StatusBadge(Static):
    """`✖ api FAIL 212ms 4s`: status, latency and age of the data for one system."""

    DEFAULT_CSS = """
    StatusBadge {
        width: 1fr; height: 1; padding: 0 0 0 1; background: $panel;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    StatusBadge.-ok { color: $success; }
    StatusBadge.-warn { color: $warning; text-style: bold; }
    StatusBadge.-fail { background: $error; color: $text; text-style: bold; }
    StatusBadge.-unknown { color: $warning; text-style: italic; }
    StatusBadge.-off { color: $text-disabled; }
    StatusBadge.-stale { text-style: strike; }
    """

    def __init__(self, system: str, **kwargs: Any) -> None:
        super().__init__(Content(f"… {system}"), **kwargs)
        self.system = system

    def show(self, status: Status | None, latency_ms: float | None, checked_at: datetime | None,
             now: datetime, stale: bool) -> None:
        _set_status_class(self, status)
        self.set_class(stale, "-stale")
        if status is None or checked_at is None:
            self.update(Content(f"… {self.system}"))
            return
        text = f"{GLYPH[status]} {self.system}"
        if status is not Status.OFF:
            text += f" {fmt_latency(latency_ms).replace(' ', '')}·{fmt_age(age_of(checked_at, now))}"
            if stale:
                text += " STALE"
        self.update(Content(text))
        self.tooltip = f"{self.system}: {LABEL[status]}, latency {fmt_latency(latency_ms)}"


class CheckCard(Vertical):
    """One check: status line, summary, scalar details and (if any) a table of items."""

    DEFAULT_CSS = """
    CheckCard { height: auto; padding: 0 1; margin-bottom: 1; border-left: thick $panel; }
    CheckCard.-ok { border-left: thick $success; }
    CheckCard.-warn { border-left: thick $warning; }
    CheckCard.-fail { border-left: thick $error; }
    CheckCard.-unknown { border-left: thick $warning; }
    CheckCard.-off { border-left: thick $panel; color: $text-muted; }
    CheckCard .card-head { text-style: bold; }
    CheckCard .card-summary { color: $text; }
    CheckCard .card-facts { color: $text-muted; }
    CheckCard.-stale .card-head { text-style: bold italic; color: $text-muted; }
    CheckCard DataTable { height: auto; max-height: 12; margin-top: 0; }
    """

    MAX_ROWS = 50

    def __init__(self, check_id: str, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_id = check_id
        self.title = title
        self.result: CheckResult | None = None

    def compose(self) -> ComposeResult:
        yield Static(Content(f"… {self.title}: waiting for the first result"), classes="card-head")
        yield Static(Content(""), classes="card-summary")
        yield Static(Content(""), classes="card-facts")
        # The DataTable is mounted only when a result has records: it is the costliest widget
        # here, and most cards never need one (keeps the first frame fast).

    def show(self, result: CheckResult, now: datetime, stale: bool) -> None:
        first = self.result is None or self.result.checked_at != result.checked_at
        self.result = result
        _set_status_class(self, result.status)
        self.set_class(stale, "-stale")
        self.refresh_head(now, stale)
        if not first:
            return
        self.query_one(".card-summary", Static).update(Content(cell(result.summary, limit=400)))
        scalars, table_items = _split_details(result.details)
        facts = self.query_one(".card-facts", Static)
        facts.update(Content(" · ".join(f"{k}: {cell(v, 60)}" for k, v in scalars)))
        facts.display = bool(scalars)
        self._fill_table(table_items)

    def refresh_head(self, now: datetime, stale: bool) -> None:
        r = self.result
        if r is None:
            return
        age = fmt_age(age_of(r.checked_at, now))
        tail = "" if r.status is Status.OFF else f"   {fmt_latency(r.latency_ms)} · {age} ago"
        if stale:
            tail += " · STALE"
        self.query_one(".card-head", Static).update(
            Content(f"{GLYPH[r.status]} {LABEL[r.status]:<4}  {self.title}{tail}"))

    def _fill_table(self, items: list[dict[str, Any]]) -> None:
        tables = self.query(DataTable)
        if not items:
            for existing in tables:
                existing.display = False
            return
        if tables:
            table: DataTable[Text] = tables.first()
        else:
            table = DataTable(cursor_type="row", zebra_stripes=True, show_cursor=True)
            self.mount(table)
        columns = list(items[0].keys())[:8]
        cursor = table.cursor_row
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            for col in columns:
                table.add_column(Text(col), key=col)
        else:
            table.clear()
        for i, item in enumerate(items[: self.MAX_ROWS]):
            # Text, not str: DataTable parses str cells as markup, and these are untrusted.
            table.add_row(*(Text(cell(item.get(c), 60)) for c in columns), key=str(i))
        table.display = True
        if 0 <= cursor < table.row_count:
            table.move_cursor(row=cursor, animate=False)


def _split_details(details: Any) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """Scalars become a facts line; the first list of records becomes a table."""
    scalars: list[tuple[str, Any]] = []
    table: list[dict[str, Any]] = []
    if not isinstance(details, dict):
        return scalars, table
    for key, value in details.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if not table:
                table = [dict(v) for v in value]
            continue
        if isinstance(value, list) and not value:
            continue
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            if not table:
                table = [{"name": k, **v} for k, v in value.items()]
            continue
        scalars.append((key, value))
    return scalars, table
