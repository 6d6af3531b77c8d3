"""The runtime log view: production's Vercel runtime logs, live, bounded, filtered.

The stream is read by a worker into a `domain.logs.LogBuffer` (at most `[vercel] log_lines`
entries; oldest dropped and counted); painting is decoupled from arrival: a timer repaints at
most four times a second, and only the rows on screen are rendered (`LogLines` is a line-API
scroll view over the buffer), so thousands of lines a second cost a few frames, not thousands.
`5` shows only 5xx, `4` only 4xx, `l` cycles a minimum level, `/` filters by regular expression
(`!` inverts), `f` follows the end, space pauses (the view freezes; lines keep arriving and are
counted). Reconnects are said in the header. Log text is untrusted: rendered as plain segments,
escape sequences made visible, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.geometry import Size
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Input, Static

from opsconsole.domain.logs import LogBuffer, LogEntry, LogFilter, LogFilterError, next_level
from opsconsole.domain.text import printable
from opsconsole.ui.format import cell

if TYPE_CHECKING:
    from opsconsole.adapters.vercel_logs import LogFollower, StreamEvent
    from opsconsole.services import Services

REPAINT_S = 0.25  # new lines are painted at most 4 times a second (keys repaint at once)
MESSAGE_LIMIT = 2000  # characters of a message drawn (scroll right to read them)
VIRTUAL_WIDTH = 2200
ROW_STEP = 512  # the scroll area grows by this many rows at a time
_LEVEL = {"warning": "WARN", "error": "ERROR", "fatal": "FATAL", "info": "INFO", "debug": "DEBUG", "trace": "TRACE"}


class LogLines(ScrollView, can_focus=True):
    """Draws only the visible entries of a sequence (the buffer's shown entries, or a frozen copy)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"loglines--time", "loglines--error", "loglines--warning",
                                             "loglines--muted", "loglines--s5", "loglines--s4", "loglines--s2"}
    DEFAULT_CSS = """
    LogLines { height: 1fr; scrollbar-size-horizontal: 0; }
    LogLines > .loglines--time { color: $text-muted; }
    LogLines > .loglines--muted { color: $text-muted; }
    LogLines > .loglines--error { color: $error; text-style: bold; }
    LogLines > .loglines--warning { color: $warning; }
    LogLines > .loglines--s5 { color: $error; text-style: bold; }
    LogLines > .loglines--s4 { color: $warning; }
    LogLines > .loglines--s2 { color: $success; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "up", "Up", show=False), Binding("down", "down", "Down", show=False),
        Binding("pageup", "page_up_", "Page up", show=False),
        Binding("pagedown", "page_down_", "Page down", show=False),
        Binding("home", "home", "Oldest", show=False), Binding("end", "end", "Newest", show=False),
        Binding("left", "left", "Left", show=False), Binding("right", "right", "Right", show=False),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entries: Sequence[LogEntry] = ()
        self.follow = True
        self.paints = 0
        self._styles: dict[str, Style] = {}

    def set_entries(self, entries: Sequence[LogEntry], capacity: int | None = None) -> None:
        """New content (or more of it): size the scroll area, keep the end in view when following.

        The scroll height grows in steps (a change of size is a layout pass of the screen; at a few
        thousand lines a second it must not be one per repaint) and is the buffer's capacity once full."""
        self.entries = entries
        rows = len(entries)
        height = rows if capacity is not None and rows >= capacity else -(-rows // ROW_STEP) * ROW_STEP
        if self.virtual_size.height != height:
            self.virtual_size = Size(VIRTUAL_WIDTH, height)
        if self.follow:
            self.scroll_to(y=self.end_y, animate=False, immediate=True)
        self.refresh()

    @property
    def end_y(self) -> int:
        """The scroll offset that shows the newest entry on the last row."""
        return max(0, len(self.entries) - self.size.height)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()  # the theme or CSS changed: look the styles up again

    def _style(self, name: str) -> Style:
        found = self._styles.get(name)
        if found is None:
            found = self._styles[name] = (self.rich_style if name == "base" else
                                          self.get_component_rich_style(name, partial=True))
        return found

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        entries = self.entries
        if index >= len(entries):
            return Strip.blank(width, self._style("base"))
        self.paints += 1
        e = entries[index]
        level_style = self._style("loglines--error") if e.level in ("error", "fatal") else \
            self._style("loglines--warning") if e.level == "warning" else self._style("loglines--muted")
        status = e.status or 0
        status_style = self._style("loglines--s5") if status >= 500 else self._style("loglines--s4") \
            if status >= 400 else self._style("loglines--s2") if status else self._style("loglines--muted")
        path_width = max(12, min(32, width // 4))  # the message gets the rest of the line
        path = printable(e.path, single_line=True, limit=path_width) if e.path else "-"
        segments = [Segment(e.time_text(), self._style("loglines--time")), Segment(" "),
                    Segment(f"{_LEVEL.get(e.level, e.level[:5].upper()):<5}", level_style), Segment(" "),
                    Segment(f"{e.status_text:>3}", status_style), Segment(" "),
                    Segment(f"{printable(e.method, limit=7) or '-':<4} {path:<{path_width}}"), Segment(" "),
                    Segment(e.display_message(MESSAGE_LIMIT))]
        strip = Strip(segments).crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width).apply_style(self._style("base"))

    # scrolling by the operator stops following; End (or f) starts it again
    def _moved(self) -> None:
        self.follow = self.scroll_y >= self.end_y

    def action_up(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_y - 1, animate=False)

    def action_down(self) -> None:
        self.scroll_to(y=self.scroll_y + 1, animate=False, immediate=True)
        self._moved()

    def action_page_up_(self) -> None:
        self.follow = False
        self.scroll_to(y=self.scroll_y - max(1, self.size.height - 1), animate=False)

    def action_page_down_(self) -> None:
        self.scroll_to(y=self.scroll_y + max(1, self.size.height - 1), animate=False, immediate=True)
        self._moved()

    def action_home(self) -> None:
        self.follow = False
        self.scroll_to(y=0, animate=False)

    def action_end(self) -> None:
        self.follow = True
        self.scroll_to(y=self.end_y, animate=False)

    def action_left(self) -> None:
        self.scroll_to(x=max(0, self.scroll_x - 20), animate=False)

    def action_right(self) -> None:
        self.scroll_to(x=self.scroll_x + 20, animate=False)

    def _on_mouse_scroll_up(self, event: Any) -> None:
        self.follow = False


class LogScreen(Screen[None]):
    """Production's runtime logs; Esc (or q) goes back to the console."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("5", "status('5xx')", "5xx", tooltip="only 5xx responses (again: all)"),
        Binding("4", "status('4xx')", "4xx", tooltip="only 4xx responses (again: all)"),
        Binding("l", "level", "Level"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("f", "follow", "Follow"),
        Binding("space", "pause", "Pause"),
    ]
    DEFAULT_CSS = """
    LogScreen { layout: vertical; }
    LogScreen #log-head { height: 1; background: $panel; color: $text; text-style: bold; padding: 0 1;
        text-wrap: nowrap; text-overflow: ellipsis; }
    LogScreen #log-state { height: 1; color: $text-muted; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    LogScreen.-trouble #log-state { color: $warning; text-style: bold; }
    LogScreen.-paused #log-state { color: $warning; }
    LogScreen #log-filter-input { display: none; }
    LogScreen #log-filter-input.-shown { display: block; }
    """

    def __init__(self, *, follower: LogFollower | None = None, capacity: int | None = None,
                 live: bool = True) -> None:
        super().__init__()
        self._follower = follower
        self._capacity = capacity
        self.live = live  # False (snapshots): no stream, show what is fed
        self.buffer = LogBuffer(capacity or 10_000)
        self.frozen: list[LogEntry] | None = None
        self.paused_at = 0
        self.connection = "connecting…"
        self.trouble = False
        self.deployment_text = ""
        self.bad_lines = 0
        self.reconnects = 0
        self._painted = -1
        self._lines: dict[str, str] = {}

    @property
    def services(self) -> Services:
        return self.app.services  # type: ignore[attr-defined, no-any-return]

    def compose(self) -> ComposeResult:
        yield Static(Content("Runtime logs · production"), id="log-head")
        yield Static(Content(""), id="log-state")
        yield LogLines(id="log-lines")
        yield Input(placeholder="regular expression (case-insensitive unless it has capitals; !expr inverts); "
                                "Enter applies, Esc cancels", id="log-filter-input")
        yield Footer()

    def on_mount(self) -> None:
        if self._capacity is None and hasattr(self.app, "services"):
            self.buffer = LogBuffer(self.services.log_lines)
        self.query_one(LogLines).focus()
        self.set_interval(REPAINT_S, self.repaint)
        if self.live:
            follower = self._follower or (self.services.log_follower() if hasattr(self.app, "services") else None)
            if follower is None:
                self.connection, self.trouble = "not configured: [vercel]", True
            else:
                self.run_worker(self._stream(follower), group="log-stream", exclusive=True, exit_on_error=False)
        self.repaint(force=True)

    async def _stream(self, follower: LogFollower) -> None:
        async for event in follower.events(follow=True):
            self.on_stream_event(event)

    def on_stream_event(self, event: StreamEvent) -> None:
        """What the follower reports; entries go into the buffer, the rest into the header."""
        if event.kind == "entries":
            self.buffer.extend(event.entries)
            self.bad_lines += event.bad_lines
            if self.trouble:
                self.trouble = False
                self.connection = "streaming"
            return
        if event.deployment is not None:
            dep = event.deployment
            self.deployment_text = f"{dep.id} ({dep.short_sha or 'no sha'})"
        kind = event.kind
        if kind == "connected":
            self.connection, self.trouble = "streaming" + (f" · {self.reconnects} reconnects" if self.reconnects
                                                          else ""), False
        elif kind == "connecting":
            self.connection = "connecting…"
        elif kind == "retrying":
            self.reconnects += 1
            self.connection = f"{self._last_problem} · {event.message}"
            self.trouble = True
        elif kind == "switched":
            self.connection, self.trouble = event.message, False
        else:  # ended, stalled, cut, refused
            self._last_problem = {"ended": "stream ended", "stalled": "stream stalled"}.get(kind, kind) + \
                f": {event.message}"
            self.connection, self.trouble = self._last_problem, True
        self.repaint(force=True)

    _last_problem = ""

    # -- painting ---------------------------------------------------------------------------
    def repaint(self, force: bool = False) -> None:
        """Every REPAINT_S (and at once after a key): the lines (if the buffer changed, unless paused), the header."""
        buffer = self.buffer
        lines = self.query_one(LogLines)
        if self.frozen is None and (force or buffer.version != self._painted):
            self._painted = buffer.version
            lines.set_entries(buffer.shown, buffer.capacity)
        elif self.frozen is not None and lines.entries is not self.frozen:
            lines.set_entries(self.frozen)
        self._header()

    def _header(self) -> None:
        b = self.buffer
        head = f"Runtime logs · production {self.deployment_text}".rstrip()
        self._set_line("#log-head", cell(head, 200))
        parts = [self.connection, f"filter: {b.filter.describe()}",
                 f"{len(b.shown):,} shown of {len(b):,} kept (max {b.capacity:,})"]
        if b.dropped:
            parts.append(f"{b.dropped:,} oldest dropped")
        if self.bad_lines:
            parts.append(f"{self.bad_lines:,} unreadable lines")
        if self.frozen is not None:
            parts.append(f"PAUSED ({b.received - self.paused_at:,} new; space resumes)")
        elif not self.query_one(LogLines).follow:
            parts.append("not following (f follows)")
        self.set_class(self.trouble, "-trouble")
        self.set_class(self.frozen is not None, "-paused")
        self._set_line("#log-state", cell(" · ".join(parts), 400))

    def _set_line(self, selector: str, text: str) -> None:
        """A one-row status line: redrawn only when its text changed, never a layout pass."""
        if self._lines.get(selector) == text:
            return
        self._lines[selector] = text
        self.query_one(selector, Static).update(Content(text), layout=False)

    # -- keys -------------------------------------------------------------------------------
    def _set_filter(self, flt: LogFilter) -> None:
        self.buffer.set_filter(flt)
        if self.frozen is not None:
            self.frozen = list(self.buffer.shown)
        self.repaint(force=True)

    def action_status(self, status: str) -> None:
        current = self.buffer.filter
        self._set_filter(current.with_(status="" if current.status == status else status))

    def action_level(self) -> None:
        current = self.buffer.filter
        self._set_filter(current.with_(min_level=next_level(current.min_level)))

    def action_filter(self) -> None:
        box = self.query_one("#log-filter-input", Input)
        box.value = self.buffer.filter.text
        box.add_class("-shown")
        box.focus()

    @on(Input.Submitted, "#log-filter-input")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            flt = self.buffer.filter.with_(text=event.value)
        except LogFilterError as exc:
            self.notify(f"{exc} — the filter is unchanged", title="Filter", severity="error", markup=False)
            return  # the text stays so it can be fixed
        self._set_filter(flt)
        event.input.remove_class("-shown")
        self.query_one(LogLines).focus()

    def on_key(self, event: Any) -> None:
        box = self.query_one("#log-filter-input", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.remove_class("-shown")
            self.query_one(LogLines).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        typing = self.query_one("#log-filter-input", Input).has_focus  # typing a filter: the keys are text
        return not (typing and action in ("status", "level", "follow", "pause", "close"))

    def action_follow(self) -> None:
        lines = self.query_one(LogLines)
        if self.frozen is not None:
            self.frozen = None
        lines.follow = True
        lines.action_end()
        self.repaint(force=True)

    def action_pause(self) -> None:
        if self.frozen is None:
            self.frozen = list(self.buffer.shown)
            self.paused_at = self.buffer.received
        else:
            self.frozen = None
        self.repaint(force=True)

    def action_close(self) -> None:
        self.dismiss(None)
