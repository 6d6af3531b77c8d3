"""Fakes for the Deploy tab's UI tests and snapshots: the fixed deployments of tests.fakes, a kernel with
the real Vercel actions on a fake API (fixed clock, no I/O), and fixed runtime log entries.

The actions and adapters themselves are tested against the Vercel simulator (tests/actions, tests/adapters).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.vercel import PromoteDeployment, PromotionRecord, RedeployProduction
from opsconsole.adapters.http import HttpOutcome
from opsconsole.audit import Journal, Operator
from opsconsole.domain.deploys import BuildEvent, Deployment, PromotionJob
from opsconsole.domain.logs import LogEntry
from opsconsole.services import DeployListing
from opsconsole.settings import SecretError, VercelSettings
from tests.fakes import FAKE_DEPLOYMENTS, NOW, FakeServices, fake_services

_OK = HttpOutcome(url="fake://vercel", status_code=200, latency_ms=1.0)


class FakeDeployApi:
    """Answers like the adapter from FAKE_DEPLOYMENTS; dpl_7 serves production."""

    project_id = "prj_fake"

    def __init__(self) -> None:
        self.deployments = {d.id: d for d in FAKE_DEPLOYMENTS}
        self.production = "dpl_7"

    def token_problem(self, exc: SecretError) -> str:
        return str(exc)

    async def get_deployment(self, ident: str) -> tuple[Deployment | None, HttpOutcome]:
        dep = self.deployments.get(ident)
        if dep is not None and dep.id == "dpl_new" and dep.in_progress:  # each look moves the build on
            nxt = {"QUEUED": "BUILDING", "BUILDING": "READY"}[dep.state]
            dep = replace(dep, state=nxt, building_at=dep.building_at or NOW,
                          ready_at=NOW + timedelta(seconds=61) if nxt == "READY" else None)
            self.deployments[ident] = dep
            if nxt == "READY":
                self.production = ident
        return dep, _OK

    async def fetch_deployments(self, limit: int, *, target: str | None = None,
                                page_size: int = 100) -> tuple[list[Deployment], HttpOutcome]:
        rows = [d for d in self.deployments.values() if target is None or d.target == target]
        return sorted(rows, key=lambda d: d.created_at, reverse=True)[:limit], _OK

    async def rollback_info(self) -> tuple[PromotionJob | None, Deployment | None, HttpOutcome]:
        return None, self.deployments[self.production], _OK

    async def redeploy(self, source: Deployment, *, reason: str = "") -> tuple[Deployment | None, HttpOutcome]:
        new = replace(source, id="dpl_new", state="QUEUED", created_at=NOW, building_at=None, ready_at=None)
        self.deployments[new.id] = new
        return new, _OK

    async def build_events(self, ident: str, limit: int = 200) -> tuple[list[BuildEvent], HttpOutcome]:
        return [], _OK

    async def promote(self, deployment_id: str) -> HttpOutcome:
        self.production = deployment_id
        return replace(_OK, status_code=202)


class DeployFakeServices(FakeServices):
    """FakeServices with a real kernel holding the Vercel actions (journal in `journal_dir`)."""

    journal_dir: Path = Path(".")
    api: FakeDeployApi
    record: PromotionRecord | None = None

    async def deploy_listing(self, limit: int = 20) -> DeployListing:
        rows = sorted(self.api.deployments.values(), key=lambda d: d.created_at, reverse=True)
        return DeployListing(deployments=tuple(rows), current_id=self.api.production, fetched_at=NOW,
                             latency_ms=48.0)

    @property
    def kernel(self) -> ActionKernel | None:
        if self._kernel is None:
            settings = self.settings
            journal = Journal(self.journal_dir / "journal.jsonl", environment=settings.environment.name,
                              operator=Operator(user="alice"))
            kernel = ActionKernel(settings, journal, locks=None, clock=lambda: NOW)

            async def last() -> PromotionRecord | None:
                return self.record

            kernel.register(RedeployProduction(self.api, clock=lambda: NOW, poll_s=0.01))
            kernel.register(PromoteDeployment(self.api, clock=lambda: NOW, poll_s=0.01, last_promotion=last))
            self._kernel = kernel
        return self._kernel


def deploy_services(journal_dir: Path, *, read_only: bool = False) -> DeployFakeServices:
    base = fake_services(read_only=read_only)
    settings = replace(base.settings, vercel=VercelSettings(project_id="prj_fake", token=_fake_secret()))
    services = DeployFakeServices(settings, adapter_factory=lambda _s: base.adapters, clock=lambda: NOW)
    services.board = base.board
    services.journal_dir = journal_dir
    services.api = FakeDeployApi()
    return services


def _fake_secret() -> Any:
    from opsconsole.settings import Secret

    return Secret.literal("fake-vercel-token-not-real")


def log_entries() -> list[LogEntry]:
    """A fixed stretch of runtime logs: 200s, a 404, 500s with hostile text (markup, escapes)."""
    base = NOW.timestamp() * 1000 - 60_000
    rows: list[LogEntry] = []
    for i in range(40):
        status = 500 if i % 5 == 2 else (404 if i == 7 else 200)
        level = "error" if status == 500 else ("warning" if status == 404 else "info")
        message = {500: "pool exhausted [bold red]x[/] \x1b[31mred\x1b[0m [/oops]",
                   404: "campaign 9912 not found"}.get(status, f"GET ok in {10 + i}ms")
        rows.append(LogEntry(timestamp_ms=base + i * 1500, level=level, message=message, status=status,
                             method="GET" if i % 2 else "POST", path="/api/campaigns" if i % 2 else
                             "/webhooks/twilio/status", source="serverless", row_id=f"r{i}"))
    return rows
