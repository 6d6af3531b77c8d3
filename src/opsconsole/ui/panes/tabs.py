"""The six tabs. Each shows the live status of its own systems and its runbook steps."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Sparkline, Static

from opsconsole.domain.models import CheckResult
from opsconsole.services import DetailRows, Services
from opsconsole.ui.panes.base import Pane


class ApiPane(Pane):
    TAB_ID = "api"
    CHECK_IDS = ("api.health", "vercel.deployment", "vercel.status_page")

    DEFAULT_CSS = """
    ApiPane #latency-label { color: $text-muted; height: 1; }
    ApiPane Sparkline { height: 2; margin-bottom: 1; }
    """

    def compose_top(self) -> ComposeResult:
        yield Static(Content("/health latency (last 60 polls): no data yet"), id="latency-label")
        spark = Sparkline([], summary_function=max, id="latency")
        spark.display = False
        yield spark

    def show_latencies(self, values: list[float]) -> None:
        spark = self.query_one(Sparkline)
        spark.data = values
        spark.display = len(values) >= 2  # one point would draw a misleading full bar
        if values:
            ordered = sorted(values)
            median = ordered[len(ordered) // 2]
            label = (f"/health latency (last {len(values)} polls): now {values[-1]:.0f} ms · "
                     f"median {median:.0f} ms · max {ordered[-1]:.0f} ms")
            self.query_one("#latency-label", Static).update(Content(label))


class DatabasePane(Pane):
    TAB_ID = "database"
    CHECK_IDS = ("supabase.pooler", "supabase.resources", "db.long_running", "supabase.health",
                 "supabase.service_key", "supabase.status_page")
    DETAIL_TITLE = "Sessions"
    DETAIL_INTERVAL_S = 2.0

    def compose_detail(self) -> ComposeResult:
        from opsconsole.ui.widgets.activity import ActivityView  # built after the first frame

        yield ActivityView(id="activity")

    def set_active(self, active: bool) -> None:
        super().set_active(active)
        if active:  # keys (space, c, x, /) act on the session list at once
            for table in self.query("#activity-table"):  # absent while the pane is still mounting
                table.focus()

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.activity import ActivityView

        self.detail_fetches += 1
        snapshot = await self.services.activity()
        self.query_one(ActivityView).show(snapshot, self.services.clock())


class N8nPane(Pane):
    TAB_ID = "n8n"
    CHECK_IDS = ("n8n.executions", "n8n.credentials")
    DETAIL_TITLE = "Failed executions"
    DETAIL_INTERVAL_S = 10.0

    def compose_detail(self) -> ComposeResult:
        from opsconsole.ui.widgets.n8n import ExecutionsView  # built after the first frame

        yield ExecutionsView(id="n8n-executions")

    def set_active(self, active: bool) -> None:
        super().set_active(active)
        if active:  # keys (space, R, /, ]) act on the executions list at once
            for table in self.query("#n8n-table"):  # absent while the pane is still mounting
                table.focus()

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.n8n import ExecutionsView

        self.detail_fetches += 1
        self.query_one(ExecutionsView).reload()


class DlqPane(Pane):
    TAB_ID = "dlq"
    CHECK_IDS = ("dlq.depth", "twilio.alerts")
    DETAIL_TITLE = "Dead-letter messages"
    DETAIL_INTERVAL_S = 10.0

    def compose_detail(self) -> ComposeResult:
        # Imported here: the DLQ domain module is sizeable, and this pane is built after the first frame.
        from opsconsole.ui.widgets.dlq import DlqView

        yield DlqView(id="dlq-view")

    def set_active(self, active: bool) -> None:
        super().set_active(active)
        if active:
            for table in self.query("#dlq-table"):  # absent while the pane is still mounting
                table.focus()

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.dlq import DlqView

        self.detail_fetches += 1
        self.query_one(DlqView).reload()


class DeployPane(Pane):
    TAB_ID = "deploy"
    CHECK_IDS = ("vercel.deployment",)
    DETAIL_TITLE = "Recent deployments"
    DETAIL_INTERVAL_S = 15.0

    async def load_detail(self, services: Services) -> DetailRows:
        return await services.deployments(20)


class BackupsPane(Pane):
    TAB_ID = "backups"
    CHECK_IDS = ("backups.latest",)
    DETAIL_TITLE = "Backups"
    DETAIL_INTERVAL_S = 60.0

    async def load_detail(self, services: Services) -> DetailRows:
        return await services.backups()


# (tab id, label, pane class) in tab order; number keys 1..6 follow this order.
TABS: tuple[tuple[str, str, type[Pane]], ...] = (
    ("api", "API", ApiPane),
    ("database", "Database", DatabasePane),
    ("n8n", "n8n", N8nPane),
    ("dlq", "Twilio DLQ", DlqPane),
    ("deploy", "Deploy", DeployPane),
    ("backups", "Backups", BackupsPane),
)


def panes_showing(result: CheckResult) -> list[str]:
    return [tab for tab, _label, cls in TABS if result.id in cls.CHECK_IDS]


__all__ = ["TABS", "ApiPane", "BackupsPane", "DatabasePane", "DeployPane", "DlqPane", "N8nPane",
           "panes_showing"]


