"""The API, Vercel and status-page simulators that test_api_health, test_vercel, test_statuspage and
test_http share: one Settings for all four checks, each check built as the composition root builds it,
and what a clean result looks like. The running simulators are fixtures in conftest.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opsconsole.adapters.api_health import ApiAdapter
from opsconsole.adapters.statuspage import StatusPageCheck
from opsconsole.adapters.vercel import VercelAdapter
from opsconsole.demo.scenario import (
    PROJECT_REF,
    VERCEL_PROJECT_ID,
    VERCEL_TEAM_ID,
    DemoSecrets,
)
from opsconsole.demo.sim import FaultPlan, Simulator
from opsconsole.demo.sims import api as api_sim
from opsconsole.demo.sims import statuspage as statuspage_sim
from opsconsole.demo.sims import vercel as vercel_sim
from opsconsole.domain.models import CheckResult
from opsconsole.domain.ports import Check
from opsconsole.settings import (
    ApiSettings,
    ChecksSettings,
    Secret,
    Settings,
    SupabaseSettings,
    VercelSettings,
)
from tests.adapters.helpers import closed_port_url

SECRETS = DemoSecrets()
TOKEN_ENV = "OPSCONSOLE_TEST_VERCEL_TOKEN"
WRONG_TOKEN = "wrong-token-123"


@dataclass
class WebEnv:
    """One scenario's running simulators and the Settings that point at them."""

    scenario: str
    faults: FaultPlan
    sims: dict[str, Simulator]

    @property
    def vercel(self) -> vercel_sim.VercelState:
        sim = self.sims["vercel"]
        assert isinstance(sim, vercel_sim.VercelSimulator)
        return sim.state

    def url(self, service: str) -> str:
        return self.sims[service].base_url

    def settings(self, *, timeout_s: float = 2.0, token: Secret | None = None,
                 team_id: str | None = VERCEL_TEAM_ID, down: str | None = None) -> Settings:
        """Settings for all four checks; `down` names a service whose URL is a closed port."""
        def url(service: str) -> str:
            return closed_port_url() if service == down else self.url(service)

        return Settings(
            api=ApiSettings(health_url=url("api") + "/health", timeout_s=timeout_s),
            vercel=VercelSettings(project_id=VERCEL_PROJECT_ID,
                                  token=token or Secret.literal(SECRETS.vercel_token),
                                  api_url=url("vercel"), team_id=team_id, status_url=url("vercel-status")),
            supabase=SupabaseSettings(project_ref=PROJECT_REF, status_url=url("supabase-status")),
            checks=ChecksSettings(timeout_s=timeout_s),
        )


def start_web_env(scenario: str) -> WebEnv:
    faults = FaultPlan()
    sims: dict[str, Simulator] = {
        "api": api_sim.build(faults, scenario, SECRETS),
        "vercel": vercel_sim.build(faults, scenario, SECRETS),
        "vercel-status": statuspage_sim.build(faults, scenario, page="vercel"),
        "supabase-status": statuspage_sim.build(faults, scenario, page="supabase"),
    }
    for sim in sims.values():
        sim.start()
    return WebEnv(scenario, faults, sims)


@asynccontextmanager
async def open_check(check_id: str, settings: Settings) -> AsyncIterator[Check]:
    """The check as the composition root would build it; clients closed afterwards."""
    if check_id == "api.health":
        api = ApiAdapter(settings)
        try:
            yield api.checks()[0]
        finally:
            await api.aclose()
    elif check_id.startswith("vercel."):
        vercel = VercelAdapter(settings)
        try:
            yield next(c for c in vercel.checks() if c.id == check_id)
        finally:
            await vercel.aclose()
    else:
        assert settings.supabase is not None
        check = StatusPageCheck("supabase.status_page", "supabase", "Supabase status page",
                                settings.supabase.status_url, None, settings.checks.timeout_s)
        try:
            yield check
        finally:
            await check.aclose()


async def run_check(check_id: str, settings: Settings) -> CheckResult:
    async with open_check(check_id, settings) as check:
        result = await check.run()
    assert_clean(result)
    return result


def assert_clean(result: CheckResult) -> None:
    """Readable one-line summary, JSON-ready details, no secrets, no tracebacks, no raw ESC."""
    blob = json.dumps(result.to_json())
    assert result.summary and "\n" not in result.summary
    for bad in ("Traceback", "Exception", "Error(", "\x1b", "\\u001b", SECRETS.vercel_token, WRONG_TOKEN):
        assert bad not in blob, (bad, result.summary)
