"""The six tabs. Each shows the live status of its own systems and its runbook steps."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult

from opsconsole.domain.models import CheckResult
from opsconsole.ui.format import Freshness
from opsconsole.ui.panes.base import Pane
from opsconsole.ui.widgets.status import LatencyLine


class ApiPane(Pane):
    TAB_ID = "api"
    CHECK_IDS = ("api.health", "vercel.deployment", "vercel.status_page")

    DEFAULT_CSS = """
    ApiPane #latency { margin-bottom: 1; }
    """

    def compose_top(self) -> ComposeResult:
        yield LatencyLine("/health", id="latency")

    def show_latencies(self, values: list[float]) -> None:
        self.query_one(LatencyLine).show_values(values)


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
                self.focus_inside(table)

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
                self.focus_inside(table)  # without scrolling: the status lines stay on screen

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
                self.focus_inside(table)

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.dlq import DlqView

        self.detail_fetches += 1
        self.query_one(DlqView).reload()


class DeployPane(Pane):
    TAB_ID = "deploy"
    CHECK_IDS = ("vercel.deployment", "db.migrations")
    DETAIL_TITLE = "Recent deployments"
    DETAIL_INTERVAL_S = 15.0

    def compose_detail(self) -> ComposeResult:
        # Separate widgets, one per view: the deployments (polled here) and the migrations (polls itself).
        from opsconsole.ui.widgets.deploys import DeploymentsView
        from opsconsole.ui.widgets.migrations import MigrationsView

        yield DeploymentsView(id="deployments")
        yield MigrationsView(id="migrations")

    def set_active(self, active: bool) -> None:
        super().set_active(active)
        from opsconsole.ui.widgets.migrations import MigrationsView

        for view in self.query(MigrationsView):
            view.set_active(active)
        if active:  # R, P, u and l act on the deployments at once
            for table in self.query("#deploy-table"):  # absent while the pane is still mounting
                self.focus_inside(table)

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.deploys import DeploymentsView

        self.detail_fetches += 1
        listing = await self.services.deploy_listing(20)
        for view in self.query(DeploymentsView):
            view.show(listing, self.services.clock(), self.DETAIL_INTERVAL_S)

    def tick(self, freshness_of: Callable[[CheckResult], Freshness]) -> None:
        super().tick(freshness_of)
        from opsconsole.ui.widgets.deploys import DeploymentsView

        now = self.services.clock()
        for view in self.query(DeploymentsView):
            view.tick(now)


class BackupsPane(Pane):
    TAB_ID = "backups"
    CHECK_IDS = ("backups.latest",)
    DETAIL_TITLE = "Backups"
    DETAIL_INTERVAL_S = 60.0

    def compose_detail(self) -> ComposeResult:
        from opsconsole.ui.widgets.restore import RestoreView  # backups, PITR, the restore in progress

        yield RestoreView(id="restore-view")

    def set_active(self, active: bool) -> None:
        super().set_active(active)
        if active:  # R / T act on the backup list at once
            for table in self.query("#backups-table"):
                self.focus_inside(table)  # without scrolling: the status line stays on screen

    async def _load_detail(self) -> None:
        from opsconsole.ui.widgets.restore import RestoreView

        self.detail_fetches += 1
        self.query_one(RestoreView).reload()


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


