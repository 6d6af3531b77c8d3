"""The Vercel and API simulators sharing one DemoWorld (as `opsconsole demo` wires them), with builds,
promotions and log streams sped up, and Settings pointing the real adapters at them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from opsconsole.demo.scenario import VERCEL_PROJECT_ID, VERCEL_TEAM_ID, DemoSecrets
from opsconsole.demo.sim import FaultPlan
from opsconsole.demo.sims import api as api_sim
from opsconsole.demo.sims import vercel as vercel_sim
from opsconsole.demo.world import DemoWorld
from opsconsole.settings import (
    ActionsSettings,
    ApiSettings,
    AuditSettings,
    ChecksSettings,
    EnvironmentSettings,
    Secret,
    Settings,
    SupabaseSettings,
    VercelSettings,
)

SECRETS = DemoSecrets()


@dataclass
class VercelEnv:
    scenario: str
    world: DemoWorld
    faults: FaultPlan
    vercel: vercel_sim.VercelSimulator
    api: vercel_sim.Simulator
    audit: Path

    @property
    def state(self) -> vercel_sim.VercelState:
        return self.vercel.state

    def settings(self, *, read_only: bool = False, token: Secret | None = None, log_lines: int = 10_000,
                 database_url: str | None = None, max_age_s: float = 30.0) -> Settings:
        return Settings(
            environment=EnvironmentSettings(name="drill", read_only=read_only),
            api=ApiSettings(health_url=self.api.base_url + "/health", timeout_s=3.0),
            vercel=VercelSettings(project_id=VERCEL_PROJECT_ID, token=token or Secret.literal(SECRETS.vercel_token),
                                  api_url=self.vercel.base_url, team_id=VERCEL_TEAM_ID, log_lines=log_lines),
            supabase=SupabaseSettings(project_ref="opsdemoprojectrefabc", database_url=Secret.literal(database_url))
            if database_url else None,
            audit=AuditSettings(path=str(self.audit)),
            checks=ChecksSettings(timeout_s=3.0),
            actions=ActionsSettings(max_preview_age_s=max_age_s))

    def config_file(self, path: Path, *, token: str | None = None, vercel: bool = True) -> Path:
        data: dict[str, object] = {
            "environment": {"name": "drill"},
            "api": {"health_url": self.api.base_url + "/health"},
            "audit": {"path": str(self.audit)},
            "checks": {"timeout_s": 3.0},
        }
        if vercel:
            data["vercel"] = {"project_id": VERCEL_PROJECT_ID, "team_id": VERCEL_TEAM_ID,
                              "token": token or SECRETS.vercel_token, "api_url": self.vercel.base_url}
        path.write_text(tomli_w.dumps(data))
        path.chmod(0o600)
        return path


def start(scenario: str, audit: Path) -> VercelEnv:
    world = DemoWorld(scenario)
    faults = FaultPlan()
    vercel = vercel_sim.build(faults, scenario, SECRETS, world=world)
    vercel.state.queued_s, vercel.state.build_s, vercel.state.promote_s = 0.3, 0.8, 0.4
    vercel.state.logs.period_s = 0.1
    vercel.state.logs.backlog_s = 120
    vercel.state.logs.stream_s = 30
    api = api_sim.build(faults, scenario, SECRETS, world=world, version=lambda: vercel.state.production_sha)
    vercel.start()
    api.start()
    return VercelEnv(scenario, world, faults, vercel, api, audit)


@pytest.fixture
def vercel_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VercelEnv]:
    """A fresh environment per test (actions change it); the scenario comes from `@pytest.mark.scenario`."""
    marker = request.node.get_closest_marker("scenario")
    env = start(marker.args[0] if marker else "bad-deploy", tmp_path / "audit" / "drill.jsonl")
    try:
        yield env
    finally:
        env.vercel.stop()
        env.api.stop()


@pytest.fixture(scope="module")
def lock_db() -> Iterator[str]:
    """An embedded PostgreSQL for the operator locks (advisory locks need a real server)."""
    from opsconsole.demo.postgres import DemoPostgres

    pg = DemoPostgres().start()
    try:
        yield pg.admin_dsn
    finally:
        pg.stop()
