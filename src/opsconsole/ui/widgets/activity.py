"""The Database tab's live session list, in the manner of pg_activity.

Sorted by duration, with who blocks whom; `/` filters (user, database, application, query),
`d` cycles a minimum duration, Enter shows the full query. The list freezes while sessions are
selected (or with `f`), so the row acted on cannot change underneath the operator. `c` cancels
and `x` terminates the selection (or the row under the cursor) through the guarded-action kernel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from opsconsole.domain.db import ActivitySnapshot, Backend
from opsconsole.ui.format import cell, fmt_age, fmt_time
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

MIN_DURATIONS: tuple[float, ...] = (0.0, 1.0, 10.0, 60.0, 300.0)


LATE_AFTER_S = 10.0  # the list refreshes every 2 s while shown; older than this, its age is shown
# The duration first: it changes on every refresh, and a cell update costs what lies left of it.
COLUMNS = ("duration", "", "pid", "state", "user", "app", "blocked by", "blocking", "wait", "query")


def _duration(seconds: float) -> str:
    return fmt_age(seconds) if seconds >= 1 else f"{seconds:.1f}s"


def _longest_first(b: Backend) -> tuple[float, int]:
    """Longest first, by the duration as displayed (then PID): rows swap places only when the
    durations they show differ, not when two "20s" sessions are a few milliseconds apart."""
    s = b.duration_s
    shown = s if s < 1 else (int(s) if s < 60 else int(s // 60) * 60)
    return -shown, b.pid


def session_cells(b: Backend, selected: bool) -> list[Text]:
    """One session's row, in COLUMNS order (Text: untrusted, never markup)."""
    return [Text(_duration(b.duration_s)), Text("●" if selected else ""), Text(str(b.pid)),
            Text(cell(b.state, 20)), Text(cell(b.user, 16)), Text(cell(b.application, 16)),
            Text(", ".join(map(str, b.blocked_by))), Text(", ".join(map(str, b.blocking))),
            Text(cell(b.wait, 24)), Text(cell(b.query, 80))]


class QueryScreen(ModalScreen[None]):
    """The full text of one session's query (rendered literally)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close")]
    DEFAULT_CSS = """
    QueryScreen { align: center middle; }
    QueryScreen > VerticalScroll { width: 100; max-width: 98%; height: auto; max-height: 90%;
        background: $surface; border: round $primary; padding: 0 1; }
    QueryScreen .head { text-style: bold; margin-bottom: 1; }
    """

    def __init__(self, backend: Backend) -> None:
        super().__init__()
        self.backend = backend

    def compose(self) -> ComposeResult:
        b = self.backend
        head = (f"PID {b.pid} · {b.user}@{b.database} · {b.application or '-'} · {b.state or '?'} · "
                f"{_duration(b.duration_s)}")
        if b.blocked_by:
            head += f" · waiting for {', '.join(map(str, b.blocked_by))}"
        if b.blocking:
            head += f" · blocking {', '.join(map(str, b.blocking))}"
        with VerticalScroll():
            yield Static(Content(cell(head, 300)), classes="head")
            yield Static(Content(b.query or "(no query text visible to this role)"), id="query-text")
            yield Static(Content("\nEsc closes."))

    def action_close(self) -> None:
        self.dismiss(None)


class ActivityView(Vertical):
    """Live sessions; selection and the cancel/terminate actions."""

    # Guarded actions first: at 80 columns the footer shows the tab's actions before anything else.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "act('db.cancel', 'c')", "Cancel query", id="db.cancel"),
        Binding("x", "act('db.terminate', 'x')", "Terminate", id="db.terminate"),
        Binding("space", "toggle_select", "Select"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "cycle_min_duration", "Min duration"),
        Binding("f", "toggle_freeze", "Freeze"),
        Binding("escape", "clear", "Clear selection", show=False),
    ]

    DEFAULT_CSS = """
    ActivityView { height: auto; margin-bottom: 1; }
    ActivityView .activity-title { text-style: bold; }
    ActivityView .activity-status { color: $text-muted; }
    ActivityView.-frozen .activity-status { color: $warning; text-style: bold; }
    ActivityView.-error .activity-status { color: $error; text-style: bold; }
    ActivityView KeyedTable { height: 1fr; }
    ActivityView Input { display: none; }
    ActivityView Input.-shown { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot: ActivitySnapshot | None = None
        self.shown: list[Backend] = []
        self.selected: set[int] = set()
        self.frozen_by_user = False
        self.filter_text = ""
        self.min_duration_s = 0.0
        self.frozen_at: datetime | None = None  # when the rows on screen stopped updating

    def compose(self) -> ComposeResult:
        yield Static(Content("Sessions (pg_stat_activity)"), classes="activity-title")
        yield LiveStatic(Content("loading…"), classes="activity-status")
        yield Input(placeholder="filter: user, database, application or query text (Enter keeps, Esc clears)",
                    id="activity-filter")
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="activity-table")
        # What decides a cancel or terminate first (duration, state, who blocks whom); the query last
        # (Enter shows it in full): at 80 columns the first seven columns fit.
        table.set_columns([(key or "sel", key) for key in COLUMNS])
        yield table

    @property
    def frozen(self) -> bool:
        return self.frozen_by_user or bool(self.selected)

    # -- data -------------------------------------------------------------------------------
    def show(self, snapshot: ActivitySnapshot, now: datetime) -> None:
        """A new snapshot; ignored while frozen (the rows acted on must not change)."""
        if self.frozen and self.snapshot is not None:
            self._status(now)
            return
        self.snapshot = snapshot
        self._render_rows()
        self._status(now)

    def _matches(self, b: Backend) -> bool:
        if b.duration_s < self.min_duration_s:
            return False
        if not self.filter_text:
            return True
        needle = self.filter_text.lower()
        return any(needle in field.lower() for field in (b.user, b.database, b.application, b.query))

    def _render_rows(self) -> None:
        """Keyed by PID: a refresh repaints only the cells that changed (durations, states)."""
        table = self.query_one(KeyedTable)
        snap = self.snapshot
        rows = [] if snap is None else sorted((b for b in snap.backends if self._matches(b)), key=_longest_first)
        self.shown = rows
        table.sync([(str(b.pid), session_cells(b, b.pid in self.selected)) for b in rows])

    def _status(self, now: datetime) -> None:
        snap = self.snapshot
        status = self.query_one(".activity-status", LiveStatic)
        self.set_class(self.frozen, "-frozen")
        self.set_class(snap is not None and snap.error is not None, "-error")
        if snap is None:
            status.show(Content("loading…"))
            return
        if snap.error is not None:
            status.show(Content(cell(snap.error, 300)))
            return
        parts = [f"{len(self.shown)} of {len(snap.backends)} sessions"]
        if snap.hidden:
            parts.append(f"{snap.hidden} hidden from this role")
        chains = snap.blocking_chains()
        if chains:
            parts.append("blocking: " + "; ".join(f"{h} blocks {', '.join(map(str, w))}" for h, w in chains.items()))
        if self.min_duration_s:
            parts.append(f"≥ {_duration(self.min_duration_s)}")
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r}")
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        if self.frozen:
            # a fixed time, not a ticking age: the frozen screen stays still on the wire
            self.frozen_at = self.frozen_at or snap.taken_at
            parts.append(f"FROZEN at {fmt_time(self.frozen_at)} while you select (Esc clears, f unfreezes)")
        else:
            self.frozen_at = None
            age = (now - snap.taken_at).total_seconds()
            if age > LATE_AFTER_S:  # the list stopped refreshing (a hung query, a paused poll)
                parts.append(f"as of {fmt_age(age)} ago")
        status.show(Content(" · ".join(parts)))

    def _now(self) -> datetime:
        return self.app.services.clock()  # type: ignore[attr-defined, no-any-return]

    def cursor_backend(self) -> Backend | None:
        table = self.query_one(KeyedTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row]

    def targets(self) -> list[int]:
        """The selection, or the session under the cursor."""
        if self.selected:
            return sorted(self.selected)
        b = self.cursor_backend()
        return [b.pid] if b is not None else []

    # -- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            kernel = getattr(self.app, "services", None) and self.app.services.kernel  # type: ignore[attr-defined]
            if kernel is None or kernel.read_only:
                return False  # hidden from footer, help and palette; the kernel refuses anyway
            action_id = str(parameters[0]) if parameters else ""
            if action_id not in {a.id for a in kernel.visible_actions()}:
                return False
        return True

    def action_toggle_select(self) -> None:
        b = self.cursor_backend()
        if b is None:
            return
        self.selected.symmetric_difference_update({b.pid})
        self._render_rows()
        self._status(self._now())
        self.query_one(KeyedTable).action_cursor_down()

    def action_clear(self) -> None:
        self.selected.clear()
        self.frozen_by_user = False
        self._render_rows()
        self._status(self._now())

    def action_toggle_freeze(self) -> None:
        self.frozen_by_user = not self.frozen_by_user
        self._status(self._now())

    def action_cycle_min_duration(self) -> None:
        i = MIN_DURATIONS.index(self.min_duration_s) if self.min_duration_s in MIN_DURATIONS else 0
        self.min_duration_s = MIN_DURATIONS[(i + 1) % len(MIN_DURATIONS)]
        self._render_rows()
        self._status(self._now())

    def action_filter(self) -> None:
        box = self.query_one("#activity-filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#activity-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._render_rows()
        self._status(self._now())

    @on(Input.Submitted, "#activity-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(KeyedTable).focus()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#activity-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.remove_class("-shown")
            self.query_one(KeyedTable).focus()

    @on(DataTable.RowSelected, "#activity-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        b = self.cursor_backend()
        if b is not None:
            self.app.push_screen(QueryScreen(b))

    def action_act(self, action_id: str, start_key: str) -> None:
        self._run_action(action_id, start_key)

    @work(group="db-action", exclusive=True, exit_on_error=False)
    async def _run_action(self, action_id: str, start_key: str) -> None:
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.ui.confirm import ConfirmScreen

        kernel = self.app.services.kernel  # type: ignore[attr-defined]
        pids = self.targets()
        if kernel is None:
            return
        if not pids:
            self.app.notify("No session under the cursor or selected.", title="Nothing to do", severity="warning")
            return
        self.frozen_by_user = True  # keep the rows still while the operator reads the preview
        self._status(self._now())
        try:
            preview = await kernel.prepare(action_id, {"pids": pids})
            if isinstance(preview, Refusal):
                self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=12)
                return
            requirement = kernel.requirement(preview, start_key)
            confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, requirement))
            if confirmation is None:
                await kernel.cancelled(preview)
                self.app.notify(f"{preview.title}: cancelled, nothing was done.", title="Cancelled", markup=False)
                return
            result = await kernel.run(preview, confirmation)
            if isinstance(result, Refusal):
                self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=12)
                return
            assert isinstance(result, Outcome)
            lines = [result.summary]
            if len(result.items) > 1:
                lines += [f"PID {it.get('pid')}: {it.get('result')}" for it in result.items]
            if result.journal_error:
                lines.append(f"JOURNAL: {result.journal_error}")
            severity: Literal["information", "warning", "error"] = (
                "information" if result.ok else ("warning" if result.status.value == "partial" else "error"))
            self.app.notify("\n".join(cell(line, 200) for line in lines), title=preview.title,
                            severity=severity, markup=False, timeout=15)
            self.selected.clear()
        finally:
            self.frozen_by_user = False
            self._status(self._now())
            pane = self.parent
            refresh = getattr(pane, "refresh_detail", None)
            if refresh is not None:
                refresh()
