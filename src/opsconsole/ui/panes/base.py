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
from opsconsole.services import CHECK_CATALOG
from opsconsole.ui.widgets.status import CheckCard

_TITLES = {cid: title for cid, _system, title in CHECK_CATALOG}
_KIND_LABEL = {"check": "live check", "action": "guarded action", "manual": "manual step"}


def card_id(check_id: str) -> str:
    return "card-" + check_id.replace(".", "-")


class Pane(VerticalScroll):
    """Base for tabs. Subclasses list their check ids; `links` come from the configuration."""

    TAB_ID: ClassVar[str] = ""
    CHECK_IDS: ClassVar[tuple[str, ...]] = ()

    DEFAULT_CSS = """
    Pane { padding: 0 1; }
    Pane .runbook { color: $text-muted; margin-top: 1; padding: 0 1; border-top: solid $panel; height: auto; }
    """

    def __init__(self, links: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.links = links or {}

    def compose(self) -> ComposeResult:
        yield from self.compose_top()
        for cid in self.CHECK_IDS:
            yield CheckCard(cid, _TITLES.get(cid, cid), id=card_id(cid))
        yield Static(self.runbook_text(), classes="runbook")

    def compose_top(self) -> ComposeResult:
        yield from ()

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
