"""The Twilio DLQ tab: keyboard-driven triage of dead-letter messages at any table size.

Pages come from SQL by keyset (never OFFSET, never the whole table in memory); the count is
exact when cheap and an estimate (labelled) otherwise. `/` filters in SQL, `g` groups by
error code (with each code's meaning and whether it is transient), Enter inspects a message.
Selection: space toggles, `v` selects the range from the last toggled row, `A` selects every
message matching the filter (the whole set, resolved in SQL at action time). `R` re-queues,
`D` discards (with a reason), `U` undoes a discard, `e` fixes a payload: all through the
guarded-action kernel, with a progress bar for chunked runs.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Input, Static

from opsconsole.domain.dlq import (
    CountEstimate,
    DlqError,
    DlqFilter,
    DlqMessage,
    GroupList,
    Page,
    PageCursor,
    parse_filter,
)
from opsconsole.ui.format import cell, fmt_age
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

if TYPE_CHECKING:
    from opsconsole.adapters.dlq import DlqStore
    from opsconsole.services import Services

PAGE_SIZE = 50
SLOW_PAGE_MS = 500.0
GROUP_BYS = ("error_code", "endpoint", "workflow")


class DlqView(Vertical):
    # Guarded actions first: at 80 columns the footer shows the tab's actions before anything else.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "act('dlq.requeue')", "Re-queue", id="dlq.requeue"),
        Binding("D", "act('dlq.discard')", "Discard", id="dlq.discard"),
        Binding("U", "act('dlq.undo_discard')", "Undo discard", id="dlq.undo_discard"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("g", "toggle_groups", "Groups"),
        Binding("b", "cycle_group_by", "Group by", show=False),
        Binding("right_square_bracket", "page('older')", "Next page", key_display="]"),
        Binding("left_square_bracket", "page('newer')", "Prev page", key_display="["),
        Binding("home", "first_page", "First page", show=False),
        Binding("space", "toggle_select", "Select"),
        Binding("v", "select_range", "Range"),
        Binding("A", "select_all", "All matching"),
        Binding("escape", "clear", "Clear", show=False),
    ]

    DEFAULT_CSS = """
    DlqView { height: auto; margin-bottom: 1; }
    DlqView .dlq-title { text-style: bold; }
    DlqView .dlq-status { color: $text-muted; }
    DlqView .dlq-selection { color: $accent; text-style: bold; }
    DlqView.-error .dlq-status { color: $error; text-style: bold; }
    DlqView KeyedTable { height: 1fr; }
    DlqView #dlq-groups { display: none; }
    DlqView.-groups #dlq-groups { display: block; }
    DlqView.-groups #dlq-table { display: none; }
    DlqView Input { display: none; }
    DlqView Input.-shown { display: block; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filter_text = ""
        self.flt = DlqFilter()
        self.page: Page | None = None
        self.cursor: PageCursor | None = None  # where the shown page starts (None: the top)
        self.count: CountEstimate | None = None
        self.groups: GroupList | None = None
        self.group_by = "error_code"
        self.selected: set[int] = set()
        self.all_matching = False
        self.excluded: set[int] = set()
        self.range_anchor: int | None = None
        self.error: str | None = None
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Static(Content("Dead-letter messages"), classes="dlq-title")
        yield LiveStatic(Content("loading…"), classes="dlq-status", id="dlq-status")
        yield LiveStatic(Content("nothing selected"), classes="dlq-selection", id="dlq-selection")
        yield Input(placeholder="filter: 30008 code:21610,none age<15m age>2d sid:SM… status:all endpoint:/x text…",
                    id="dlq-filter")
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="dlq-table")
        # The age first: it is what changes between reloads (a cell update costs what lies left of it).
        table.set_columns([(col or "sel", col) for col in ("age", "", "id", "code", "error", "sid", "endpoint",
                                                           "tries", "size", "ok")])
        yield table
        groups = KeyedTable(cursor_type="row", zebra_stripes=True, id="dlq-groups")
        groups.set_columns([(col, col) for col in ("group", "count", "newest", "meaning", "transient")])
        yield groups

    # -- data -------------------------------------------------------------------------------
    @property
    def services(self) -> Services:
        return self.app.services  # type: ignore[attr-defined, no-any-return]

    @property
    def store(self) -> DlqStore | None:
        return self.services.dlq_store

    def reload(self) -> None:
        """Refresh the shown page (and the count/groups); skipped while messages are selected."""
        if self.selected or self.all_matching:
            return
        self.run_worker(self._load(), group="dlq-load", exclusive=True, exit_on_error=False)

    async def _load(self, direction: Literal["older", "newer"] = "older", cursor: PageCursor | None = None,
                    *, keep_cursor: bool = True) -> None:
        store = self.store
        if store is None:
            self._set_error("not configured: [dlq] and [supabase] database_url")
            return
        self.loads += 1
        start_at = self.cursor if keep_cursor else cursor
        page = await store.page(self.flt, start_at, PAGE_SIZE, direction if not keep_cursor else "older",
                                include_cursor=keep_cursor and start_at is not None)
        if isinstance(page, DlqError):
            self._set_error(page.message)
            return
        if not page.rows and not keep_cursor:
            return  # already at the end: stay on this page
        self.error = None
        self.page = page
        self.cursor = page.first if (keep_cursor and start_at is not None) or not keep_cursor else None
        self._render_page()
        self._status()
        count = await store.count(self.flt)
        self.count = None if isinstance(count, DlqError) else count
        if self.has_class("-groups"):
            await self._load_groups()
        self._status()

    async def _load_groups(self) -> None:
        store = self.store
        if store is None:
            return
        groups = await store.groups(self.flt, self.group_by)  # type: ignore[arg-type]
        if isinstance(groups, DlqError):
            self._set_error(groups.message)
            return
        self.groups = groups
        table = self.query_one("#dlq-groups", KeyedTable)
        now = self.services.clock()
        rows: list[tuple[str, list[Text]]] = []
        for g in groups.rows:
            key = "none" if g.key is None else str(g.key)
            newest = fmt_age((now - g.newest_at).total_seconds()) if g.newest_at else "–"
            transient = {True: "yes", False: "no", None: "?"}[g.transient] + (" · never re-queued"
                                                                             if g.never_requeue else "")
            rows.append((f"{self.group_by}:{key}", [Text(cell(key, 40)), Text(f"{g.count:,}"), Text(newest),
                                                    Text(cell(g.meaning, 60)), Text(transient)]))
        table.sync(rows)

    def _set_error(self, message: str) -> None:
        self.error = message
        self.set_class(True, "-error")
        self.query_one("#dlq-status", LiveStatic).show(Content(cell(message, 300)))

    def _is_selected(self, message_id: int) -> bool:
        if self.all_matching:
            return message_id not in self.excluded
        return message_id in self.selected

    def _render_page(self) -> None:
        """Keyed by message id: a reload repaints only what changed (an age, a new message)."""
        table = self.query_one("#dlq-table", KeyedTable)
        now = self.services.clock()
        table.sync([(str(m.id), self._cells(m, now)) for m in (self.page.rows if self.page else ())])

    def _cells(self, m: DlqMessage, now: datetime) -> list[Text]:
        # Text, not str: DataTable parses str cells as markup, and these come from webhooks.
        return [Text(fmt_age((now - m.received_at).total_seconds())), Text("●" if self._is_selected(m.id) else ""),
                Text(str(m.id)),
                Text("none" if m.error_code is None else str(m.error_code)), Text(cell(m.error_message, 40)),
                Text(cell(m.message_sid, 14)), Text(cell(m.endpoint, 24)),
                Text("–" if m.attempts is None else str(m.attempts)), Text(_size(m.payload_bytes)),
                Text("✔" if m.payload_valid else "✖ " + cell(m.payload_problem or "", 24))]

    def _status(self) -> None:
        self.set_class(self.error is not None, "-error")
        if self.error is not None:
            return
        parts = [f"filter: {self.flt.describe()}"]
        if self.count is not None:
            parts.insert(0, f"{self.count.value:,} messages" + ("" if self.count.exact else
                                                                f" (estimate: {self.count.method})"))
        if self.page is not None:
            first = "top" if not self.page.has_newer else "…"
            parts.append(f"page of {len(self.page.rows)} from the {first}" + (" · more: ]"
                                                                                if self.page.has_more else ""))
            if self.page.elapsed_ms >= SLOW_PAGE_MS:  # only when it says something: a slow table
                parts.append(f"page took {self.page.elapsed_ms:.0f} ms")
        self.query_one("#dlq-status", LiveStatic).show(Content(" · ".join(parts)))
        self.query_one("#dlq-selection", LiveStatic).show(Content(self.selection_text()))

    def selection_text(self) -> str:
        if self.all_matching:
            total = f"{self.count.value:,}" if self.count else "?"
            approx = "" if self.count is None or self.count.exact else " (estimate)"
            less = f" minus {len(self.excluded):,} unticked" if self.excluded else ""
            return f"ALL {total}{approx} messages matching the filter selected{less} · Esc clears"
        if self.selected:
            return f"{len(self.selected):,} selected · Esc clears · R re-queue · D discard"
        return "nothing selected (space, v range, A all matching)"

    def current(self) -> DlqMessage | None:
        table: DataTable[Text] = self.query_one("#dlq-table", DataTable)
        rows = self.page.rows if self.page else ()
        if 0 <= table.cursor_row < len(rows):
            return rows[table.cursor_row]
        return None

    # -- keys -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            kernel = self.services.kernel if hasattr(self.app, "services") else None
            if kernel is None or kernel.read_only:
                return False
            return str(parameters[0]) in {a.id for a in kernel.visible_actions()}
        return True

    def action_filter(self) -> None:
        box = self.query_one("#dlq-filter", Input)
        box.value = self.filter_text
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#dlq-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        parsed = parse_filter(event.value)
        if isinstance(parsed, DlqError):
            self.app.notify(f"{parsed.message} — the filter is unchanged", title="Filter", severity="error",
                            markup=False)
            return  # keep the text so the operator can fix it: nothing is lost
        self.apply_filter(event.value, parsed)
        event.input.remove_class("-shown")
        self.query_one("#dlq-table").focus()

    def apply_filter(self, text: str, flt: DlqFilter) -> None:
        self.filter_text, self.flt = text, flt
        self.cursor = None
        self.action_clear()
        self.run_worker(self._load(), group="dlq-load", exclusive=True, exit_on_error=False)

    def on_key(self, event: Any) -> None:
        box = self.query_one("#dlq-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.remove_class("-shown")
            self.query_one("#dlq-table").focus()

    def action_toggle_groups(self) -> None:
        self.toggle_class("-groups")
        if self.has_class("-groups"):
            self.query_one("#dlq-groups").focus()
            self.run_worker(self._load_groups(), group="dlq-groups", exclusive=True, exit_on_error=False)
        else:
            self.query_one("#dlq-table").focus()

    def action_cycle_group_by(self) -> None:
        self.group_by = GROUP_BYS[(GROUP_BYS.index(self.group_by) + 1) % len(GROUP_BYS)]
        if self.has_class("-groups"):
            self.run_worker(self._load_groups(), group="dlq-groups", exclusive=True, exit_on_error=False)

    @on(DataTable.RowSelected, "#dlq-groups")
    def _group_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.groups is None or not 0 <= event.cursor_row < len(self.groups.rows):
            return
        g = self.groups.rows[event.cursor_row]
        value = "none" if g.key is None else str(g.key)
        token = {"error_code": "code", "endpoint": "endpoint", "workflow": "workflow"}[self.group_by]
        text = f"{self.filter_text} {token}:{value}".strip()
        parsed = parse_filter(text)
        if isinstance(parsed, DlqError):
            self.app.notify(parsed.message, title="Filter", severity="error", markup=False)
            return
        self.remove_class("-groups")
        self.apply_filter(text, parsed)
        self.query_one("#dlq-table").focus()

    def action_page(self, direction: str) -> None:
        if self.page is None:
            return
        cursor = self.page.next_cursor if direction == "older" else self.page.prev_cursor
        if cursor is None:
            self.app.notify("No more pages that way.", title="DLQ", timeout=2)
            return
        self.run_worker(self._load("older" if direction == "older" else "newer", cursor, keep_cursor=False),
                        group="dlq-load", exclusive=True, exit_on_error=False)

    def action_first_page(self) -> None:
        self.cursor = None
        self.run_worker(self._load(), group="dlq-load", exclusive=True, exit_on_error=False)

    def _toggle(self, message_id: int, on_: bool | None = None) -> None:
        if self.all_matching:
            now_on = message_id in self.excluded if on_ is None else on_
            (self.excluded.discard if now_on else self.excluded.add)(message_id)
        else:
            now_on = message_id not in self.selected if on_ is None else on_
            (self.selected.add if now_on else self.selected.discard)(message_id)

    def action_toggle_select(self) -> None:
        m = self.current()
        if m is None:
            return
        self._toggle(m.id)
        self.range_anchor = self.query_one("#dlq-table", DataTable).cursor_row
        self._render_page()
        self._status()
        self.query_one("#dlq-table", DataTable).action_cursor_down()

    def action_select_range(self) -> None:
        table: DataTable[Text] = self.query_one("#dlq-table", DataTable)
        if self.page is None or self.range_anchor is None:
            self.action_toggle_select()
            return
        lo, hi = sorted((self.range_anchor, table.cursor_row))
        for m in self.page.rows[lo:hi + 1]:
            self._toggle(m.id, True)
        self._render_page()
        self._status()

    def action_select_all(self) -> None:
        self.all_matching, self.excluded, self.selected = True, set(), set()
        self._render_page()
        self._status()

    def action_clear(self) -> None:
        self.selected.clear()
        self.excluded.clear()
        self.all_matching = False
        self.range_anchor = None
        if self.page is not None:
            self._render_page()
        self._status()

    @on(DataTable.RowSelected, "#dlq-table")
    def _inspect(self, event: DataTable.RowSelected) -> None:
        event.stop()
        m = self.current()
        if m is not None:
            self._open_message(m.id)

    @work(group="dlq-inspect", exclusive=True, exit_on_error=False)
    async def _open_message(self, message_id: int) -> None:
        from opsconsole.ui.widgets.dlq_screens import EditPayloadScreen, MessageScreen

        store = self.store
        if store is None:
            return
        detail = await store.get(message_id, include_alert=True)
        if isinstance(detail, DlqError):
            self.app.notify(detail.message, title="Message", severity="error", markup=False)
            return
        choice = await self.app.push_screen_wait(MessageScreen(detail, store))
        if choice != "edit":
            return
        full = await store.get_full_payload(message_id, exact=True)
        if isinstance(full, DlqError):
            self.app.notify(full.message, title="Fix payload", severity="error", markup=False)
            return
        new_text = await self.app.push_screen_wait(EditPayloadScreen(message_id, full.text))
        if new_text is None:
            return
        await self._guarded("dlq.fix_payload", "e", {"id": message_id, "payload": new_text,
                                                      "expected_digest": detail.payload_digest})

    # -- actions ------------------------------------------------------------------------------
    def selection_params(self) -> dict[str, Any] | None:
        if self.all_matching:
            return {"filter": self.filter_text, "excluded": sorted(self.excluded)}
        ids = sorted(self.selected)
        if not ids:
            m = self.current()
            ids = [m.id] if m is not None else []
        return {"ids": ids} if ids else None

    def action_act(self, action_id: str) -> None:
        self._act(action_id)

    @work(group="dlq-action", exclusive=True, exit_on_error=False)
    async def _act(self, action_id: str) -> None:
        from opsconsole.ui.widgets.dlq_screens import ReasonScreen

        params = self.selection_params()
        if params is None:
            self.app.notify("Nothing under the cursor or selected.", title="DLQ", severity="warning")
            return
        start_key = {"dlq.requeue": "R", "dlq.discard": "D", "dlq.undo_discard": "U"}[action_id]
        if action_id == "dlq.undo_discard" and "ids" not in params:
            self.app.notify("Undo works on explicitly selected messages: filter status:discarded and select them.",
                            title="Undo discard", severity="warning")
            return
        if action_id == "dlq.discard":
            what = "the selection" if "filter" in params else f"{len(params['ids']):,} messages"
            reason = await self.app.push_screen_wait(ReasonScreen(what))
            if reason is None:
                return
            params["reason"] = reason
        await self._guarded(action_id, start_key, params)

    async def _guarded(self, action_id: str, start_key: str, params: dict[str, Any]) -> None:
        from opsconsole.actions.dlq import RunHooks
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.ui.confirm import ConfirmScreen
        from opsconsole.ui.widgets.dlq_screens import ProgressScreen

        kernel = self.services.kernel
        if kernel is None:
            return
        preview = await kernel.prepare(action_id, params)
        if isinstance(preview, Refusal):
            self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=12)
            return
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, kernel.requirement(preview,
                                                                                                 start_key)))
        if confirmation is None:
            await kernel.cancelled(preview)
            self.app.notify(f"{preview.title}: cancelled, nothing was done.", title="Cancelled", markup=False)
            return
        action = kernel.get(action_id)
        expected = sum(int(item.get("will_requeue", 0)) for item in preview.items) or None
        hooks = RunHooks()
        progress = ProgressScreen(f"{preview.title}: {preview.target}", expected, hooks.cancel.set)

        def on_progress(p: Any) -> None:
            progress.advance_to(p.changed + p.refused + p.skipped,
                                f"{p.changed:,} done · {p.refused:,} refused · {p.skipped:,} already handled · "
                                f"{p.chunks_done} chunks · {p.elapsed_s:.1f} s")

        hooks.progress = on_progress
        action_hooks = getattr(action, "hooks", None)
        if isinstance(action_hooks, dict):
            action_hooks[preview.preview_id] = hooks
            await self.app.push_screen(progress)
        try:
            result = await kernel.run(preview, confirmation)
        finally:
            if progress.is_attached:
                progress.finish()
            await asyncio.sleep(0)
        if isinstance(result, Refusal):
            self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=12)
            return
        assert isinstance(result, Outcome)
        lines = [result.summary]
        if result.journal_error:
            lines.append(f"JOURNAL: {result.journal_error}")
        severity: Literal["information", "warning", "error"] = (
            "information" if result.ok else ("warning" if result.status.value == "partial" else "error"))
        self.app.notify("\n".join(cell(line, 300) for line in lines), title=preview.title, severity=severity,
                        markup=False, timeout=20)
        self.action_clear()
        self.run_worker(self._load(), group="dlq-load", exclusive=True, exit_on_error=False)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / 1024 / 1024:.1f} MB"
