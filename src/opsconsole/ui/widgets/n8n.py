"""The n8n tab: the watched workflows' failed and crashed executions, and retrying them.

Newest first, a page at a time from n8n's cursors (`]` next, `[` back, `N` the newest): the console
keeps one page of rows and a stack of page starts (a few short strings each), so it behaves the same
at 30 failures and at 30,000. Rows are keyed by execution id and updated cell by cell (a poll sends
only what changed to the terminal); the failing node and the first line of the error arrive after the
row, as n8n answers. `/` filters (words in the id, workflow, status, mode, node or error; `retried`,
`-retried`), Enter shows one execution's error in full, space selects (across pages), `R` retries the
selection (or the row under the cursor) through the guarded-action kernel and shows each new
execution as it is followed; `L` switches the retry to the workflow as saved now. Everything n8n
sent is rendered literally.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import DataTable, Input, ProgressBar, Static

from opsconsole.domain.n8n import (
    Execution,
    ExecutionError,
    ExecutionFilter,
    ExecutionPage,
    PagePosition,
    RetryFamilies,
    id_key,
)
from opsconsole.ui.format import cell, fmt_age
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

if TYPE_CHECKING:
    from opsconsole.actions.model import Outcome, Preview, Refusal
    from opsconsole.services import Services

PAGE_SIZE = 50
MAX_BACK = 10_000  # page starts kept for `[` (each a few short strings)
MAX_SELECTED = 100  # what one n8n.retry takes
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sel", ""), ("id", "id"), ("started", "started"), ("workflow", "workflow"), ("status", "status"),
    ("error", "error"), ("node", "node"), ("took", "took"), ("mode", "mode"))
LOADING = "…"
# Columns whose text arrives after the row get a fixed width: a width change re-lays out the screen.
FIXED_WIDTH = {"error": 60, "node": 30}
ERRORS_BATCH_S = 0.15  # errors arriving within this long are drawn in one update
SLOW_PAGE_MS = 500.0  # a page slower than this says so in the status line


def _started(moment: datetime, now: datetime) -> str:
    """A clock time (UTC) for today's rows, a date for older ones: static, so polls don't redraw it."""
    if (now - moment).total_seconds() < 20 * 3600:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M")


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.1f}s" if seconds < 60 else fmt_age(seconds)


class ExecutionScreen(ModalScreen[str | None]):
    """One execution's error in full: node, message, description, the first lines of the stack.
    Dismisses with "retry" when the operator asks to retry it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("R", "retry", "Retry this execution"),
    ]
    DEFAULT_CSS = """
    ExecutionScreen { align: center middle; }
    ExecutionScreen > Vertical { width: 110; max-width: 98%; height: 90%; background: $surface;
        border: round $primary; padding: 0 1; }
    ExecutionScreen .head { text-style: bold; }
    ExecutionScreen .muted { color: $text-muted; }
    ExecutionScreen .bad { color: $error; text-style: bold; }
    ExecutionScreen .label { text-style: bold; margin-top: 1; }
    """

    def __init__(self, execution_id: str, error: ExecutionError, facts: dict[str, Any], workflow: str,
                 now: datetime, *, can_retry: bool = True) -> None:
        super().__init__()
        self.execution_id = execution_id
        self.error = error
        self.facts = facts
        self.workflow = workflow
        self.now = now
        self.can_retry = can_retry

    def _facts(self) -> list[str]:
        ex: Execution | None = self.facts.get("execution")
        e = self.error
        out: list[str] = []
        if ex is not None:
            stopped = ex.stopped_at.strftime("%Y-%m-%d %H:%M:%S UTC") if ex.stopped_at else "–"
            out.append(f"status {ex.status} · mode {ex.mode} · started {ex.started_at:%Y-%m-%d %H:%M:%S} UTC "
                       f"({fmt_age((self.now - ex.started_at).total_seconds())} ago) · stopped {stopped} · "
                       f"took {_took(ex.duration_s)}")
            links = []
            if ex.retry_of:
                links.append(f"a retry of execution {ex.retry_of}")
            if ex.retry_success_id:
                links.append(f"retried successfully by execution {ex.retry_success_id}: nothing left to retry")
            if links:
                out.append(" · ".join(links))
        if e.node:
            out.append(f"failing node: {e.node}" + (f" ({e.node_type})" if e.node_type else ""))
        for ref in e.credentials:
            out.append(f"credential of that node: {ref.label}" + (f" (id {ref.id})" if ref.id else ""))
        kind = " · ".join(p for p in (e.error_name, f"HTTP {e.http_code}" if e.http_code else "") if p)
        if kind:
            out.append(f"error: {kind}")
        return [cell(line, 400) for line in out]

    def compose(self) -> ComposeResult:
        e = self.error
        url = self.facts.get("url")
        with Vertical():
            yield Static(Content(cell(f"Execution {self.execution_id} · {self.workflow}", 200)), classes="head")
            with VerticalScroll():
                yield Static(Content("\n".join(self._facts())), classes="muted", id="exec-facts")
                if e.message:
                    size = (f" (the first {len(e.message):,} of {e.message_chars:,} characters)"
                            if e.truncated else "")
                    yield Static(Content(f"Message{size}:"), classes="label")
                    yield Static(Content(e.message), id="exec-message")
                else:
                    yield Static(Content(e.problem or "n8n recorded no error message"), classes="bad",
                                 id="exec-message")
                if e.description:
                    yield Static(Content("Description:"), classes="label")
                    yield Static(Content(e.description), id="exec-description")
                if e.stack:
                    yield Static(Content("Stack (first lines):"), classes="label")
                    yield Static(Content("\n".join(e.stack)), classes="muted", id="exec-stack")
                if url:
                    yield Static(Content(f"\nOpen it in n8n: {url}"), classes="muted")
            hint = "R retries this execution · Esc closes" if self.can_retry else "Esc closes"
            yield Static(Content(hint), classes="muted")

    def action_retry(self) -> None:
        if self.can_retry:
            self.dismiss("retry")

    def action_close(self) -> None:
        self.dismiss(None)


class RetryProgressScreen(ModalScreen[None]):
    """A retry run as it goes: each execution, the new execution it started and how that ended.
    Esc asks to stop after the execution in progress; once the run is over, Esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop_or_close", "Stop / close")]
    DEFAULT_CSS = """
    RetryProgressScreen { align: center middle; }
    RetryProgressScreen > Vertical { width: 100; max-width: 98%; height: auto; max-height: 90%;
        background: $surface; border: round $primary; padding: 0 1; }
    RetryProgressScreen .head { text-style: bold; }
    RetryProgressScreen #retry-log { height: auto; max-height: 14; }
    RetryProgressScreen .muted { color: $text-muted; }
    RetryProgressScreen.-done .muted { color: $text; text-style: bold; }
    """
    MAX_LINES = 200

    def __init__(self, title: str, total: int, on_stop: Any) -> None:
        super().__init__()
        self.title_text = title
        self.total = total
        self._on_stop = on_stop
        self.lines: list[str] = []
        self.new_ids: list[str] = []
        self.stopping = False
        self.done = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(cell(self.title_text, 200)), classes="head")
            yield ProgressBar(total=self.total, show_eta=False, id="retry-bar")
            with VerticalScroll(id="retry-log"):
                yield Static(Content("starting…"), id="retry-lines")
            yield Static(Content("Esc stops after the execution in progress (a started retry is never cut off)"),
                         classes="muted", id="retry-hint")

    def report(self, progress: Any) -> None:
        """The action's progress hook: one line per step, the bar per finished execution."""
        line = str(getattr(progress, "line", ""))
        if line:
            self.lines.append(cell(line, 300))
            del self.lines[:-self.MAX_LINES]
        new_id = getattr(progress, "new_execution_id", None)
        if new_id and new_id not in self.new_ids:
            self.new_ids.append(str(new_id))
        if not self.is_attached:
            return
        if getattr(progress, "event", "") == "finished":
            self.query_one(ProgressBar).update(progress=int(getattr(progress, "index", 0)))
        self.query_one("#retry-lines", Static).update(Content("\n".join(self.lines)))
        self.query_one("#retry-log", VerticalScroll).scroll_end(animate=False)

    def finish(self, summary: str) -> None:
        self.done = True
        self.add_class("-done")
        self.lines.append(cell(summary, 400))
        if self.is_attached:
            self.query_one("#retry-lines", Static).update(Content("\n".join(self.lines)))
            self.query_one("#retry-hint", Static).update(Content("Done. Esc closes."))
            self.query_one("#retry-log", VerticalScroll).scroll_end(animate=False)

    def action_stop_or_close(self) -> None:
        if self.done:
            self.dismiss(None)
            return
        if not self.stopping:
            self.stopping = True
            if callable(self._on_stop):
                self._on_stop()
            self.query_one("#retry-hint", Static).update(Content("stopping after the execution in progress…"))


class ExecutionsView(Vertical):
    """Failed executions, page by page; selection and the retry action."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("right_square_bracket", "page('next')", "Next page", key_display="]"),
        Binding("left_square_bracket", "page('prev')", "Prev page", key_display="[", show=False),
        Binding("N", "first_page", "Newest page", show=False),  # Home belongs to the table
        Binding("space", "toggle_select", "Select"),
        Binding("escape", "clear", "Clear selection", show=False),
        Binding("L", "toggle_load_workflow", "Retry saved workflow", show=False),
        Binding("R", "retry", "Retry", id="n8n.retry"),
    ]

    DEFAULT_CSS = """
    ExecutionsView { height: auto; margin-bottom: 1; }
    ExecutionsView .n8n-title { text-style: bold; }
    ExecutionsView .n8n-status { color: $text-muted; }
    ExecutionsView .n8n-selection { color: $accent; text-style: bold; }
    ExecutionsView.-error .n8n-status { color: $error; text-style: bold; }
    ExecutionsView KeyedTable { height: 1fr; }
    ExecutionsView Input { display: none; }
    ExecutionsView Input.-shown { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.page: ExecutionPage | None = None
        self.position: PagePosition | None = None  # where the shown page starts (None: the newest)
        self.back: list[PagePosition | None] = []
        self.flt = ExecutionFilter()
        self.rows: list[Execution] = []
        self.errors: dict[str, ExecutionError] = {}
        self.selected: set[str] = set()
        self.load_workflow = False
        self.error: str | None = None
        self.loads = 0
        self.cell_updates = 0  # cells changed in place (rows are never cleared and re-added)
        self._families = RetryFamilies()
        self._arrived: list[str] = []  # errors read but not drawn yet
        self._flush_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield LiveStatic(Content("Failed executions"), classes="n8n-title", id="n8n-title")
        yield LiveStatic(Content("loading…"), classes="n8n-status", id="n8n-status")
        yield LiveStatic(Content(self.selection_text()), classes="n8n-selection", id="n8n-selection")
        yield Input(placeholder="filter: words in id, workflow, status, mode, node or error; retried / -retried "
                                "(Enter applies, Esc closes)", id="n8n-filter")
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="n8n-table")
        table.set_columns(COLUMNS, widths=FIXED_WIDTH)
        yield table

    @property
    def services(self) -> Services:
        return self.app.services  # type: ignore[attr-defined, no-any-return]

    # -- data -------------------------------------------------------------------------------
    def reload(self) -> None:
        """Refresh the shown page (same start, same filter); rows change in place."""
        self.run_worker(self._load(), group="n8n-load", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        self.loads += 1
        page = await self.services.n8n_failed_page(self.position, PAGE_SIZE, self.flt)
        if page.problem is not None:
            self.error = page.problem
            self._status()
            return
        self.error = None
        self.page = page
        self.rows = list(page.rows)
        self._families = RetryFamilies(page.rows)
        keep = {r.id for r in self.rows}
        self.errors = {k: v for k, v in self.errors.items() if k in keep}
        self._render_rows()
        self._status()
        missing = [r.id for r in self.rows if r.id not in self.errors]
        if missing:
            self.run_worker(self._load_errors(missing), group="n8n-errors", exclusive=True, exit_on_error=False)

    async def _load_errors(self, ids: list[str]) -> None:
        """Each row's node and error as n8n answers, drawn in small batches (one repaint per batch,
        at most `ERRORS_BATCH_S` after the first of them arrived)."""
        try:
            async for error in self.services.n8n_errors(ids):
                self.errors[error.execution_id] = error
                self._arrived.append(error.execution_id)
                if self._flush_timer is None:
                    self._flush_timer = self.set_timer(ERRORS_BATCH_S, self._flush_errors)
        finally:
            self._flush_errors()

    def _flush_errors(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.stop()
            self._flush_timer = None
        arrived, self._arrived = self._arrived, []
        if not arrived or not self.is_attached:
            return
        self._render_rows()  # one sync for the batch: only the cells that changed repaint

    def _cells(self, ex: Execution, now: datetime) -> list[Text]:
        names = self.page.names if self.page else {}
        error = self.errors.get(ex.id)
        if error is None:
            node, text = LOADING, LOADING
        else:
            node, text = error.node or "–", error.first_line or error.problem or "–"
        status = "retried" if self._families.resolved(ex.id) else ex.status
        # Text, not str: DataTable parses str as markup, and these are what n8n (and its workflows) sent
        return [Text("●" if ex.id in self.selected else ""), Text(ex.id), Text(_started(ex.started_at, now)),
                Text(cell(names.get(ex.workflow_id) or ex.workflow_id, 20)), Text(cell(status, 10)),
                Text(cell(text, 120)), Text(cell(node, 30)), Text(_took(ex.duration_s)), Text(cell(ex.mode, 10))]

    def _render_rows(self) -> None:
        """Make the table show `self.rows` in order, keyed by execution id (KeyedTable): only what
        changed repaints, and the cursor stays on its execution."""
        table = self.query_one(KeyedTable)
        now = self.services.clock()
        self.cell_updates += table.sync([(ex.id, self._cells(ex, now)) for ex in self.rows])

    def _status(self) -> None:
        self.set_class(self.error is not None, "-error")
        status = self.query_one("#n8n-status", LiveStatic)
        if self.error is not None:
            status.show(Content(cell(self.error, 300)))
            return
        page = self.page
        if page is None:
            status.show(Content("loading…"))
            return
        depth = len(self.back)
        first = depth * PAGE_SIZE + 1
        parts = [f"page {depth + 1}: " + (f"{first:,}–{first + len(self.rows) - 1:,}" if self.rows else "none")
                 + (", newest first" if depth == 0 else "")]
        parts.append("more: ]" if page.next is not None else "the end")
        if not self.flt.empty:
            parts.append(f"filter {self.flt.describe()!r} ({page.scanned:,} looked at)")
        if page.note:
            parts.append(page.note)
        if page.latency_ms >= SLOW_PAGE_MS:  # only when it says something (a slow n8n), as on the DLQ tab
            parts.append(f"page took {page.latency_ms:.0f} ms")
        status.show(Content(" · ".join(parts)))
        self._show_selection()
        scope = self.services.settings.n8n
        watched = len(scope.workflows) if scope is not None else 0
        title = f"Failed executions ({watched} watched workflow{'s' if watched != 1 else ''})" if watched \
            else "Failed executions (all workflows)"
        self.query_one("#n8n-title", LiveStatic).show(Content(title))

    def _show_selection(self, text: str | None = None) -> None:
        self.query_one("#n8n-selection", LiveStatic).show(Content(self.selection_text() if text is None else text))

    def selection_text(self) -> str:
        runs = "L saved workflow: " + ("ON" if self.load_workflow else "off")
        if self.selected:
            return f"{len(self.selected)} selected · R retries them · Esc clears · {runs}"
        return f"space selects · R retries selection or row · {runs}"

    def current(self) -> Execution | None:
        key = self.query_one(KeyedTable).cursor_key()
        return next((r for r in self.rows if r.id == key), None) if key is not None else None

    # -- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("retry", "toggle_load_workflow"):
            kernel = self.services.kernel if hasattr(self.app, "services") else None
            if kernel is None or kernel.read_only:
                return False
            return "n8n.retry" in {a.id for a in kernel.visible_actions()}
        return True

    def action_filter(self) -> None:
        box = self.query_one("#n8n-filter", Input)
        box.value = self.flt.text
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#n8n-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.flt = ExecutionFilter(event.value.strip())
        self.position, self.back = None, []
        event.input.remove_class("-shown")
        self.query_one(KeyedTable).focus()
        self.reload()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#n8n-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.remove_class("-shown")
            self.query_one(KeyedTable).focus()

    def action_page(self, direction: str) -> None:
        if self.page is None:
            return
        if direction == "next":
            if self.page.next is None:
                self.app.notify("This is the oldest page.", title="n8n", timeout=3)
                return
            self.back.append(self.position)
            del self.back[:-MAX_BACK]
            self.position = self.page.next
        else:
            if not self.back:
                self.app.notify("This is the newest page.", title="n8n", timeout=3)
                return
            self.position = self.back.pop()
        self.query_one(KeyedTable).move_cursor(row=0, animate=False)
        self.reload()

    def action_first_page(self) -> None:
        self.position, self.back = None, []
        self.reload()

    def action_toggle_select(self) -> None:
        ex = self.current()
        if ex is None:
            return
        if ex.id in self.selected:
            self.selected.discard(ex.id)
        elif len(self.selected) >= MAX_SELECTED:
            self.app.notify(f"At most {MAX_SELECTED} executions per retry.", title="n8n", severity="warning")
            return
        else:
            self.selected.add(ex.id)
        self._render_rows()
        self._show_selection()
        self.query_one(KeyedTable).action_cursor_down()

    def action_clear(self) -> None:
        cleared, self.selected = self.selected, set()
        if cleared:
            self._render_rows()
        self._show_selection()

    def action_toggle_load_workflow(self) -> None:
        self.load_workflow = not self.load_workflow
        self._show_selection()
        self.app.notify("Retries run the workflow as saved now (load_workflow=true)." if self.load_workflow else
                        "Retries run the snapshot each execution ran (load_workflow=false).", title="n8n retry",
                        timeout=4)

    @on(DataTable.RowSelected, "#n8n-table")
    def _inspect(self, event: DataTable.RowSelected) -> None:
        event.stop()
        ex = self.current()
        if ex is not None:
            self._open(ex)

    @work(group="n8n-inspect", exclusive=True, exit_on_error=False)
    async def _open(self, ex: Execution) -> None:
        error, facts = await self.services.n8n_inspect(ex.id)
        names = self.page.names if self.page else {}
        workflow = names.get(ex.workflow_id) or error.workflow_name or f"workflow {ex.workflow_id}"
        can_retry = self.check_action("retry", ()) is True
        choice = await self.app.push_screen_wait(ExecutionScreen(ex.id, error, facts, workflow,
                                                                 self.services.clock(), can_retry=can_retry))
        if choice == "retry":
            await self._guarded([ex.id])

    def targets(self) -> list[str]:
        if self.selected:
            return sorted(self.selected, key=id_key, reverse=True)
        ex = self.current()
        return [ex.id] if ex is not None else []

    def action_retry(self) -> None:
        self._retry()

    @work(group="n8n-action", exclusive=True, exit_on_error=False)
    async def _retry(self) -> None:
        ids = self.targets()
        if not ids:
            self.app.notify("No execution under the cursor or selected.", title="n8n", severity="warning")
            return
        await self._guarded(ids)

    async def _guarded(self, ids: list[str]) -> None:
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.actions.n8n import RetryHooks
        from opsconsole.ui.confirm import ConfirmScreen

        kernel = self.services.kernel
        if kernel is None:
            return
        noun = "execution" if len(ids) == 1 else f"{len(ids)} executions"
        self._show_selection(f"reading {noun} and testing their credentials for the retry preview…")
        try:
            preview: Preview | Refusal = await kernel.prepare("n8n.retry", {"execution": ids,
                                                                             "load_workflow": self.load_workflow})
        finally:
            self._show_selection()
        if isinstance(preview, Refusal):
            self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=15)
            return
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, kernel.requirement(preview, "R")))
        if confirmation is None:
            await kernel.cancelled(preview)
            self.app.notify(f"{preview.title}: cancelled, nothing was done.", title="Cancelled", markup=False)
            return
        hooks = RetryHooks()
        progress = RetryProgressScreen(f"{preview.title}: {preview.target}", len(preview.items), hooks.cancel.set)
        hooks.progress = progress.report
        action_hooks = getattr(kernel.get("n8n.retry"), "hooks", None)
        if isinstance(action_hooks, dict):
            action_hooks[preview.preview_id] = hooks
        await self.app.push_screen(progress)
        result: Outcome | Refusal = await kernel.run(preview, confirmation)
        if isinstance(result, Refusal):
            progress.finish(f"Refused: {result.message}")
            self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=15)
            return
        assert isinstance(result, Outcome)
        lines = [result.summary]
        if result.journal_error:
            lines.append(f"JOURNAL: {result.journal_error}")
        progress.finish("\n".join(lines))
        severity: Literal["information", "warning", "error"] = (
            "information" if result.ok else ("warning" if result.status.value == "partial" else "error"))
        self.app.notify("\n".join(cell(line, 300) for line in lines), title=preview.title, severity=severity,
                        markup=False, timeout=20)
        self.action_clear()
        self.reload()
