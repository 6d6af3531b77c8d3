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
from opsconsole.ui.format import cell, fmt_age

MIN_DURATIONS: tuple[float, ...] = (0.0, 1.0, 10.0, 60.0, 300.0)


def _duration(seconds: float) -> str:
    return fmt_age(seconds) if seconds >= 1 else f"{seconds:.1f}s"


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

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_select", "Select"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("d", "cycle_min_duration", "Min duration"),
        Binding("f", "toggle_freeze", "Freeze"),
        Binding("escape", "clear", "Clear selection", show=False),
        Binding("c", "act('db.cancel', 'c')", "Cancel query", id="db.cancel"),
        Binding("x", "act('db.terminate', 'x')", "Terminate", id="db.terminate"),
    ]

    DEFAULT_CSS = """
    ActivityView { height: auto; margin-bottom: 1; }
    ActivityView .activity-title { text-style: bold; }
    ActivityView .activity-status { color: $text-muted; }
    ActivityView.-frozen .activity-status { color: $warning; text-style: bold; }
    ActivityView.-error .activity-status { color: $error; text-style: bold; }
    ActivityView DataTable { height: auto; max-height: 14; }
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

    def compose(self) -> ComposeResult:
        yield Static(Content("Sessions (pg_stat_activity)"), classes="activity-title")
        yield Static(Content("loading…"), classes="activity-status")
        yield Input(placeholder="filter: user, database, application or query text (Enter keeps, Esc clears)",
                    id="activity-filter")
        table: DataTable[Text] = DataTable(cursor_type="row", zebra_stripes=True, id="activity-table")
        for col in ("", "pid", "user", "app", "state", "duration", "wait", "blocked by", "blocking", "query"):
            table.add_column(Text(col), key=col or "sel")
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
        table: DataTable[Text] = self.query_one(DataTable)
        snap = self.snapshot
        rows = [] if snap is None else sorted((b for b in snap.backends if self._matches(b)),
                                              key=lambda b: b.duration_s, reverse=True)
        self.shown = rows
        under_cursor = self.cursor_backend()
        cursor_pid = under_cursor.pid if under_cursor is not None else None
        table.clear()
        for b in rows:
            mark = "●" if b.pid in self.selected else ""
            table.add_row(Text(mark), Text(str(b.pid)), Text(cell(b.user, 20)), Text(cell(b.application, 18)),
                          Text(cell(b.state, 20)), Text(_duration(b.duration_s)), Text(cell(b.wait, 24)),
                          Text(", ".join(map(str, b.blocked_by))), Text(", ".join(map(str, b.blocking))),
                          Text(cell(b.query, 80)), key=str(b.pid))
        if cursor_pid is not None:
            for i, b in enumerate(rows):
                if b.pid == cursor_pid:
                    table.move_cursor(row=i, animate=False)
                    break

    def _status(self, now: datetime) -> None:
        snap = self.snapshot
        status = self.query_one(".activity-status", Static)
        self.set_class(self.frozen, "-frozen")
        self.set_class(snap is not None and snap.error is not None, "-error")
        if snap is None:
            status.update(Content("loading…"))
            return
        if snap.error is not None:
            status.update(Content(cell(snap.error, 300)))
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
        parts.append(f"as of {fmt_age((now - snap.taken_at).total_seconds())} ago")
        if self.frozen:
            parts.append("FROZEN: updates paused while you select (Esc clears, f unfreezes)")
        status.update(Content(" · ".join(parts)))

    def _now(self) -> datetime:
        return self.app.services.clock()  # type: ignore[attr-defined, no-any-return]

    def cursor_backend(self) -> Backend | None:
        table: DataTable[Text] = self.query_one(DataTable)
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
        self.query_one(DataTable).action_cursor_down()

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
        self.query_one(DataTable).focus()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#activity-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            box.remove_class("-shown")
            self.query_one(DataTable).focus()

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
