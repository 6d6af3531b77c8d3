"""Status badge (one per system in the strip) and check card (one per check on a tab).

Both repaint only when what they show changes: a badge shows the status glyph and the system,
the latency only when it is slow, and the age of the data only once it is overdue (`Freshness`),
so a healthy strip is still; a card is one status line (glyph, status word, title, summary) and
opens its details (labelled facts with units, tables of records) with Enter or `i`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget

from opsconsole.domain.models import CheckResult, Status
from opsconsole.domain.text import printable
from opsconsole.ui.format import (
    GLYPH,
    LABEL,
    Freshness,
    describe_details,
    facts_text,
    fmt_latency,
    fmt_time,
    latency_line,
    slow_latency,
)
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

_STATUS_CLASSES = tuple(f"-{s.value}" for s in Status)


def set_status_class(widget: Widget, status: Status | None) -> None:
    """Exactly one `-<status>` class (none for None), changed only when it differs (no restyle)."""
    for cls in _STATUS_CLASSES:
        widget.set_class(status is not None and cls == f"-{status.value}", cls)


class StatusBadge(LiveStatic):
    """`✖ api`, `✖ supabase 1.6s`, `▲ n8n 25s old`, `? db STALE 3m`: one system in the strip."""

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
        self._tooltip = ""

    def show_status(self, status: Status | None, latency_ms: float | None, fresh: Freshness | None) -> None:
        set_status_class(self, status)
        self.set_class(fresh is not None and fresh.stale, "-stale")
        if status is None:
            self.show(Content(f"… {self.system}"))
            return
        parts = [GLYPH[status], self.system]
        if status is not Status.OFF:
            parts += [p for p in (slow_latency(latency_ms), fresh.note if fresh else "") if p]
        self.show(Content(" ".join(parts)))
        tooltip = f"{self.system}: {LABEL[status]}, slowest check {fmt_latency(latency_ms)}"
        if tooltip != self._tooltip:
            self._tooltip = self.tooltip = tooltip


class LatencyLine(LiveStatic):
    """One line: the latency of the last polls as bars on a fixed scale, and now/median/max.

    It changes once per poll (one line repainted), where a scaled two-row sparkline in a
    gradient repainted 150 cells of colour codes per poll."""

    DEFAULT_CSS = """
    LatencyLine { height: 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, what: str = "/health", **kwargs: Any) -> None:
        super().__init__(Content(f"{what} latency: no data yet"), **kwargs)
        self.what = what
        self.values: list[float] = []

    def show_values(self, values: list[float]) -> None:
        self.values = list(values)
        self.show(Content(latency_line(self.values, self.size.width or 80, self.what)))

    def on_resize(self) -> None:
        self.show(Content(latency_line(self.values, self.size.width or 80, self.what)))


class CheckCard(Vertical, can_focus=True):
    """One check: a status line; Enter (or `i` for the whole tab) shows its details."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "toggle_details", "Details")]

    DEFAULT_CSS = """
    CheckCard { height: auto; padding: 0 1; border-left: thick $panel; }
    CheckCard.-ok { border-left: thick $success; }
    CheckCard.-warn { border-left: thick $warning; }
    CheckCard.-fail { border-left: thick $error; }
    CheckCard.-unknown { border-left: thick $warning; }
    CheckCard.-off { border-left: thick $panel; color: $text-muted; }
    CheckCard:focus > .card-line { background: $primary 25%; text-style: underline; }
    CheckCard .card-line { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    CheckCard.-stale .card-line { text-style: italic; color: $text-muted; }
    CheckCard .card-more { display: none; height: auto; padding: 0 0 1 2; }
    CheckCard.-open .card-more { display: block; }
    CheckCard .card-meta { color: $text-muted; }
    CheckCard .card-facts { color: $text-muted; margin-top: 1; }
    CheckCard .card-table-title { margin-top: 1; text-style: bold; }
    CheckCard KeyedTable { height: auto; max-height: 10; }
    """

    MAX_ROWS = 50

    def __init__(self, check_id: str, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_id = check_id
        self.title = title
        self.result: CheckResult | None = None
        self.fresh: Freshness | None = None
        self.interval_s: float | None = None
        self._tables: list[str] = []

    def compose(self) -> ComposeResult:
        yield LiveStatic(Content(f"… {self.title}: waiting for the first result"), classes="card-line")
        with Vertical(classes="card-more"):
            yield LiveStatic(Content(""), classes="card-summary")
            yield LiveStatic(Content(""), classes="card-meta")
            yield LiveStatic(Content(""), classes="card-facts")
            # Tables are mounted only when a result has records (most cards never need one).

    @property
    def expanded(self) -> bool:
        return self.has_class("-open")

    def action_toggle_details(self) -> None:
        self.set_expanded(not self.expanded)

    def set_expanded(self, expanded: bool) -> None:
        self.set_class(expanded, "-open")
        if expanded and self.result is not None:
            self._fill_details(self.result)
        fit = getattr(self.parent, "fit_list", None)  # the tab gives its list the room that is left
        if fit is not None:
            self.call_after_refresh(fit)

    def show(self, result: CheckResult, fresh: Freshness, interval_s: float | None = None) -> None:
        """A result (new or replayed) and how fresh it is; repaints only what changed."""
        new = self.result is None or self.result != result
        self.result, self.fresh, self.interval_s = result, fresh, interval_s
        set_status_class(self, result.status)
        self.set_class(fresh.stale, "-stale")
        if not self._composed():
            return  # a pane replaying results while this card builds its lines: on_mount paints them
        self.query_one(".card-line", LiveStatic).show(self.line())
        self.query_one(".card-summary", LiveStatic).show(Content(printable(result.summary, limit=2000)))
        if new and self.expanded:
            self._fill_details(result)
        elif self.expanded:
            self.query_one(".card-meta", LiveStatic).show(self.meta())

    def refresh_age(self, fresh: Freshness) -> None:
        """Called every second: repaints only when the displayed age or staleness changes."""
        if self.result is None:
            return
        self.fresh = fresh
        self.set_class(fresh.stale, "-stale")
        if not self._composed():
            return
        self.query_one(".card-line", LiveStatic).show(self.line())
        if self.expanded:
            self.query_one(".card-meta", LiveStatic).show(self.meta())

    def _composed(self) -> bool:
        return bool(self.query(".card-line"))

    def on_mount(self) -> None:
        """What arrived before the lines existed (a tab replaying the board as it mounts)."""
        if self.result is not None and self.fresh is not None:
            self.show(self.result, self.fresh, self.interval_s)

    def line(self) -> Content:
        """`✖ FAIL  API /health  HTTP 500 in 212 ms`; the age appears once the result is overdue."""
        r = self.result
        if r is None:
            return Content(f"… {self.title}: waiting for the first result")
        head = f"{GLYPH[r.status]} {LABEL[r.status]:<4}  {self.title}"
        note = self.fresh.note if self.fresh is not None and r.status is not Status.OFF else ""
        summary = printable(r.summary, single_line=True, limit=300)
        parts: list[str | tuple[str, str]] = [(head, "bold")]
        if note:
            parts += [" · ", (note, "bold")]
        parts += ["  ", summary]
        return Content.assemble(*parts)

    def meta(self) -> Content:
        r = self.result
        if r is None:
            return Content("")
        parts = [f"checked {fmt_time(r.checked_at)}"]
        if r.latency_ms is not None:
            parts.append(f"took {fmt_latency(r.latency_ms)}")
        if self.interval_s is not None:
            parts.append(f"polled every {self.interval_s:g} s")
        if self.fresh is not None and self.fresh.note:
            parts.append(self.fresh.note)
        return Content(" · ".join(parts))

    def _fill_details(self, result: CheckResult) -> None:
        facts, tables = describe_details(result.details)
        self.query_one(".card-meta", LiveStatic).show(self.meta())
        facts_widget = self.query_one(".card-facts", LiveStatic)
        facts_widget.show(Content(facts_text(facts)))
        facts_widget.display = bool(facts)
        more = self.query_one(".card-more", Vertical)
        titles = [t.title for t in tables]
        if titles != self._tables:
            for old in list(more.query(".card-table-title")) + list(more.query(KeyedTable)):
                old.remove()
            new_widgets: list[Widget] = []
            for i, table in enumerate(tables):
                new_widgets.append(LiveStatic(Content(f"{table.title} ({len(table.rows)})"),
                                              classes="card-table-title"))
                widget = KeyedTable(cursor_type="row", zebra_stripes=True, id=f"{self.id or 'card'}-table-{i}")
                widget.set_columns(table.columns)
                new_widgets.append(widget)
            if new_widgets:
                more.mount_all(new_widgets)
            self._tables = titles
        widgets = list(more.query(KeyedTable))
        heads = list(more.query(".card-table-title").results(LiveStatic))
        for table, widget, head in zip(tables, widgets, heads, strict=False):
            head.show(Content(f"{table.title} ({len(table.rows)})"))
            widget.set_columns(table.columns)
            widget.sync([(_row_key(row, i), table.cells(row)) for i, row in enumerate(table.rows[: self.MAX_ROWS])])


def _row_key(row: Any, index: int) -> str:
    """A record's identity for keyed updates: its id-like field, else its position."""
    for field in ("id", "pid", "sid", "execution_id", "workflow_id", "name", "code", "error_code"):
        value = row.get(field) if isinstance(row, dict) else None
        if value not in (None, ""):
            return f"{field}:{value}"
    return f"#{index}"
