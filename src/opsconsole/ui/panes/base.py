"""A tab's content: one status line per check, the tab's list (its detail view), its runbook steps.

At 80x24 a tab shows without scrolling: a one-line card per check of its systems (Enter on a
card, or `i` for all of them, opens the details), the keys of its actions in the footer (the
focus starts inside the pane, so its keys come first) and the first rows of its list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from opsconsole.domain.models import CheckResult
from opsconsole.runbooks.catalog import steps_for_tab
from opsconsole.services import CHECK_CATALOG, DetailRows, Services
from opsconsole.ui.format import Freshness
from opsconsole.ui.widgets.live import still_cursor
from opsconsole.ui.widgets.status import CheckCard

_TITLES = {cid: title for cid, _system, title in CHECK_CATALOG}
LIST_MIN_ROWS = 6
_KIND_LABEL = {"check": "live check", "action": "guarded action", "manual": "manual step"}


def card_id(check_id: str) -> str:
    return "card-" + check_id.replace(".", "-")


class Pane(VerticalScroll):
    """Base for tabs. Subclasses list their check ids; `links` come from the configuration."""

    TAB_ID: ClassVar[str] = ""
    CHECK_IDS: ClassVar[tuple[str, ...]] = ()
    # A detail view (richer than the checks) polled only while the tab is visible.
    DETAIL_TITLE: ClassVar[str] = ""
    DETAIL_INTERVAL_S: ClassVar[float] = 0.0

    BINDINGS: ClassVar[list[BindingType]] = [Binding("i", "toggle_all_details", "All details")]

    DEFAULT_CSS = """
    Pane { padding: 0 1; scrollbar-size-vertical: 1; }
    Pane > CheckCard:last-of-type { margin-bottom: 1; }
    Pane .runbook { color: $text-muted; padding: 0 1; border-top: solid $panel; height: auto; }
    """

    def __init__(self, links: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links = links or {}
        self.active = False
        self.detail_fetches = 0

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        for cid in self.CHECK_IDS:
            yield CheckCard(cid, _TITLES.get(cid, cid), id=card_id(cid))
        if self.DETAIL_TITLE:
            for widget in self.compose_detail():
                yield widget.add_class("pane-list")  # sized by fit_list: the rest of the screen
        yield Static(self.runbook_text(), classes="runbook")

    def compose_top(self) -> ComposeResult:
        yield from ()

    def compose_detail(self) -> ComposeResult:
        from opsconsole.ui.widgets.detail import DetailView  # panes are built after the first frame

        yield DetailView(self.DETAIL_TITLE, id=f"detail-{self.TAB_ID}")

    def on_mount(self) -> None:
        replay = getattr(self.app, "replay_into", None)
        if replay is not None:
            replay(self)
        if self.DETAIL_TITLE and getattr(self.app, "live", False):
            self._detail_timer = self.set_interval(self.DETAIL_INTERVAL_S, self.refresh_detail, pause=True)
        is_active = getattr(self.app, "is_tab_active", None)
        self.set_active(bool(is_active and is_active(self.TAB_ID)))

    def set_active(self, active: bool) -> None:
        """Detail polling runs only while the tab is visible (the status strip keeps polling)."""
        was_active, self.active = self.active, active
        if active and not was_active:
            self.call_after_refresh(self.focus_first)
        if not self.DETAIL_TITLE:
            return
        timer = getattr(self, "_detail_timer", None)
        if timer is None:
            if active and not was_active:
                self.refresh_detail()  # not live: load once when shown, never poll
            return
        if active:
            timer.resume()
            self.refresh_detail()
        else:
            timer.pause()

    def focus_first(self) -> None:
        """Focus into the pane (unless it already holds the focus), so its keys lead the footer:
        the tab's list first (a table), else its first check card."""
        if not self.active or not self.is_attached:
            return
        focused = self.screen.focused
        if focused is not None and self in focused.ancestors:
            return
        target = self.default_focus()
        if target is not None:
            self.focus_inside(target)

    def focus_inside(self, widget: Widget) -> None:
        """Focus a widget of this pane (see `on_descendant_focus`: it never switches tabs)."""
        if not widget.has_focus:
            widget.focus(scroll_visible=False)

    def default_focus(self) -> Widget | None:
        """Where the focus goes when the tab is shown: its list (the first focusable widget that is
        not a card), else the first card."""
        candidates = [w for w in self.query("*") if w.focusable and w is not self]
        lists = [w for w in candidates if not isinstance(w, CheckCard) and not w.has_class("card-more")
                 and not any(isinstance(a, CheckCard) for a in w.ancestors)]
        return lists[0] if lists else (candidates[0] if candidates else None)

    def on_resize(self) -> None:
        self.call_after_refresh(self.fit_list)

    def fit_list(self) -> None:
        """Give the tab's list (`.pane-list`) the rest of the visible height below the status lines,
        so the first screen is status lines + list (the runbook follows below the fold), and the
        list's height never follows its row count: a row more or less then repaints the list only,
        not (through a new layout) the whole tab."""
        lists = [w for w in self.children if w.has_class("pane-list") and w.display]
        if not lists or not self.is_attached:
            return
        # Several lists (the Deploy tab: deployments, then migrations) follow one another and share
        # the room, the first taking any odd row: each shows its first rows, none leaves the next
        # one below the fold behind a screenful of blank lines.
        margins = sum(w.styles.margin.top + w.styles.margin.bottom for w in lists) - lists[0].styles.margin.top
        room = self.scrollable_content_region.height - lists[0].virtual_region.y - margins
        share, odd = divmod(room, len(lists))
        for i, target in enumerate(lists):
            height = max(LIST_MIN_ROWS, share + (1 if i < odd else 0))
            if target.styles.height is None or target.styles.height.value != height:
                target.styles.height = height

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Tabs change only by the operator's keys (1-6, the palette, a click), never because a
        widget in a pane got the focus: TabPane would ask TabbedContent to show its pane, and that
        request, handled later (e.g. the focus a closing dialog restores), would undo a tab key
        pressed in the meantime."""
        still_cursor(event.widget)
        event.stop()

    def action_toggle_all_details(self) -> None:
        """`i`: open the details of every check on this tab, or close them all."""
        cards = list(self.query(CheckCard))
        expand = not all(card.expanded for card in cards)
        for card in cards:
            card.set_expanded(expand)
        self.call_after_refresh(self.fit_list)

    def refresh_detail(self) -> None:
        if self.DETAIL_TITLE and self.active:
            self.run_worker(self._load_detail(), group=f"detail-{self.TAB_ID}", exclusive=True,
                            exit_on_error=False)

    @property
    def services(self) -> Services:
        services: Services = self.app.services  # type: ignore[attr-defined]
        return services

    async def _load_detail(self) -> None:
        self.detail_fetches += 1
        from opsconsole.ui.widgets.detail import DetailView

        data = await self.load_detail(self.services)
        self.query_one(DetailView).show(data, self.services.clock(), self.DETAIL_INTERVAL_S)

    async def load_detail(self, services: Services) -> DetailRows:
        return DetailRows.off("no detail view")

    def runbook_text(self) -> Content:
        """The runbook steps this tab serves, grouped by incident: what each is (live check,
        guarded action, manual step), its deep link and any warning."""
        lines = ["Runbook"]
        section = ""
        for step in steps_for_tab(self.TAB_ID):
            if step.section != section:
                section = step.section
                lines.append(f" {section}")
            state = _KIND_LABEL[step.kind]
            lines.append(f"  {step.number}. {step.text} ({state})")
            link = self.links.get(step.link) if step.link else None
            if link:
                lines.append(f"     -> {link}")
            if step.warning:
                lines.append(f"     ! {step.warning}")
        return Content("\n".join(lines))

    def show_result(self, result: CheckResult, fresh: Freshness, interval_s: float | None = None) -> None:
        if result.id in self.CHECK_IDS:
            self.query_one(f"#{card_id(result.id)}", CheckCard).show(result, fresh, interval_s)

    def tick(self, freshness_of: Callable[[CheckResult], Freshness]) -> None:
        """Once a second: ages and staleness, repainted only where the displayed text changes.
        `freshness_of(result)` is the app's per-check rule."""
        for card in self.query(CheckCard):
            if card.result is not None:
                card.refresh_age(freshness_of(card.result))
