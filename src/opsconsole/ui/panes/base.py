"""A tab's content: the cards of its checks plus the runbook steps it serves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from opsconsole.domain.models import CheckResult
from opsconsole.runbooks.catalog import steps_for_tab
from opsconsole.services import CHECK_CATALOG, DetailRows, Services
from opsconsole.ui.widgets.status import CheckCard

_TITLES = {cid: title for cid, _system, title in CHECK_CATALOG}
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

    DEFAULT_CSS = """
    Pane { padding: 0 1; }
    Pane .runbook { color: $text-muted; margin-top: 1; padding: 0 1; border-top: solid $panel; height: auto; }
    """

    def __init__(self, links: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links = links or {}
        self.active = False
        self.detail_fetches = 0

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        if self.DETAIL_TITLE:
            yield from self.compose_detail()
        for cid in self.CHECK_IDS:
            yield CheckCard(cid, _TITLES.get(cid, cid), id=card_id(cid))
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
        if self.DETAIL_TITLE:
            if getattr(self.app, "live", False):
                self._detail_timer = self.set_interval(self.DETAIL_INTERVAL_S, self.refresh_detail, pause=True)
            is_active = getattr(self.app, "is_tab_active", None)
            self.set_active(bool(is_active and is_active(self.TAB_ID)))

    def set_active(self, active: bool) -> None:
        """Detail polling runs only while the tab is visible (the status strip keeps polling)."""
        was_active, self.active = self.active, active
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
        lines = ["Runbook"]
        for step in steps_for_tab(self.TAB_ID):
            state = _KIND_LABEL[step.kind] + ("" if step.built else ", not built yet")
            line = f"  {step.section} {step.number}. {step.text}  [{state}]"
            link = self.links.get(step.link) if step.link else None
            if link:
                line += f"\n      -> {link}"
            if step.warning:
                line += f"\n      ! {step.warning}"
            lines.append(line)
        return Content("\n".join(lines))

    def show_result(self, result: CheckResult, now: datetime, stale: bool) -> None:
        if result.id in self.CHECK_IDS:
            self.query_one(f"#{card_id(result.id)}", CheckCard).show(result, now, stale)

    def tick(self, now: datetime, interval_s: float) -> None:
        """Refresh ages and staleness once a second without re-rendering the details."""
        for card in self.query(CheckCard):
            if card.result is not None:
                stale = (now - card.result.checked_at).total_seconds() > 2 * interval_s
                card.set_class(stale, "-stale")
                card.refresh_head(now, stale)
