"""api.health, vercel.deployment, vercel.status_page and supabase.status_page against the real
loopback simulators (no mocks): both scenarios, a fault matrix per check, credentials and
hostile vendor text. Simulators are started once per module; faults are cleared per test.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest

from opsconsole.adapters import api_health
from opsconsole.adapters.api_health import ApiAdapter
from opsconsole.adapters.http import fetch, new_client
from opsconsole.adapters.statuspage import StatusPageCheck
from opsconsole.adapters.vercel import VercelAdapter, VercelDeploymentCheck, VercelError
from opsconsole.demo.scenario import (
    PROJECT_REF,
    VERCEL_PROJECT_ID,
    VERCEL_PROJECT_NAME,
    VERCEL_TEAM_ID,
    DemoSecrets,
)
from opsconsole.demo.sim import Fault, FaultPlan, Simulator
from opsconsole.demo.sims import api as api_sim
from opsconsole.demo.sims import statuspage as statuspage_sim
from opsconsole.demo.sims import vercel as vercel_sim
from opsconsole.domain.deploys import Deployment
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.settings import (
    ApiSettings,
    ChecksSettings,
    Secret,
    Settings,
    SupabaseSettings,
    VercelSettings,
)

SECRETS = DemoSecrets()
TOKEN_ENV = "OPSCONSOLE_TEST_VERCEL_TOKEN"
WRONG_TOKEN = "wrong-token-123"


@dataclass
class Env:
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


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def envs() -> Iterator[dict[str, Env]]:
    out: dict[str, Env] = {}
    for scenario in ("healthy", "incident"):
        faults = FaultPlan()
        sims: dict[str, Simulator] = {
            "api": api_sim.build(faults, scenario, SECRETS),
            "vercel": vercel_sim.build(faults, scenario, SECRETS),
            "vercel-status": statuspage_sim.build(faults, scenario, page="vercel"),
            "supabase-status": statuspage_sim.build(faults, scenario, page="supabase"),
        }
        for sim in sims.values():
            sim.start()
        out[scenario] = Env(scenario, faults, sims)
    yield out
    for env in out.values():
        for sim in env.sims.values():
            sim.stop()


@pytest.fixture
def healthy(envs: dict[str, Env]) -> Iterator[Env]:
    envs["healthy"].faults.clear()
    yield envs["healthy"]
    envs["healthy"].faults.clear()


@pytest.fixture
def incident(envs: dict[str, Env]) -> Iterator[Env]:
    envs["incident"].faults.clear()
    yield envs["incident"]
    envs["incident"].faults.clear()


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


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
async def test_healthy_scenario_is_ok(healthy: Env) -> None:
    settings = healthy.settings()
    api = await run_check("api.health", settings)
    assert api.status is Status.OK
    assert api.summary.startswith("HTTP 200 in ")
    assert api.details["http_status"] == 200
    assert api.details["components"] == {"database": "ok", "twilio": "ok", "queue": "ok"}

    dep = await run_check("vercel.deployment", settings)
    assert dep.status is Status.OK, dep.summary
    prod = healthy.vercel.production
    assert prod is not None
    sha = prod["meta"]["githubCommitSha"]
    assert dep.summary.startswith(f"READY {sha[:7]} ")
    assert dep.details["current_id"] == prod["uid"]
    rows = dep.details["deployments"]
    assert len(rows) == 10
    assert set(rows[0]) >= {"id", "url", "state", "target", "sha", "message", "ref", "created_at", "creator"}
    assert [r["id"] for r in rows if r["current"]] == [prod["uid"]]
    assert rows[0]["created_at"].endswith("Z")

    for check_id in ("vercel.status_page", "supabase.status_page"):
        page = await run_check(check_id, settings)
        assert page.status is Status.OK
        assert page.summary == "All Systems Operational"


async def test_incident_scenario(incident: Env) -> None:
    settings = incident.settings()
    api = await run_check("api.health", settings)
    assert api.status is Status.FAIL
    assert api.summary.startswith("HTTP 500 in ")
    assert "database: down" in api.summary
    assert api.details["components"]["database"] == "down"
    current = incident.vercel.production
    assert current is not None
    assert api.details["version"].endswith(current["meta"]["githubCommitSha"][:7])  # same story everywhere

    dep = await run_check("vercel.deployment", settings)
    assert dep.status is Status.FAIL
    assert "newest production deployment ERROR" in dep.summary
    assert 'Command "npm run build" exited with 1' in dep.summary
    assert f"still serving {current['meta']['githubCommitSha'][:7]}" in dep.summary
    assert dep.details["newest_production"]["state"] == "ERROR"
    assert dep.details["current"]["id"] == current["uid"]
    previews = [r for r in dep.details["deployments"] if r["target"] is None]
    assert len(previews) >= 2

    vercel_page = await run_check("vercel.status_page", settings)
    assert vercel_page.status is Status.OK

    supa = await run_check("supabase.status_page", settings)
    assert supa.status is Status.WARN
    assert supa.summary.startswith("Minor: Connection Pooler degraded_performance; 1 open incident")
    assert supa.details["degraded_components"] == [
        {"name": "Connection Pooler", "status": "degraded_performance"}]
    (inc,) = supa.details["incidents"]
    assert set(inc) >= {"name", "status", "impact", "updated_at"}


async def test_hostile_status_text_is_literal_and_printable(incident: Env) -> None:
    supa = await run_check("supabase.status_page", incident.settings())
    (inc,) = supa.details["incidents"]
    assert "[bold red]x[/]" in supa.summary  # markup preserved, to be rendered literally
    assert inc["name"] == statuspage_sim.HOSTILE_NAME
    assert "\x1b" not in inc["update"]
    assert "␛[31mconnection timeouts␛[0m" in inc["update"]
    assert "[link=https://example.invalid]details[/link]" in inc["update"]


# --------------------------------------------------------------------------------------------
# fault matrix
# --------------------------------------------------------------------------------------------
CHECKS = {  # check id -> (simulator, path prefix the fault is limited to)
    "api.health": ("api", "/health"),
    "vercel.deployment": ("vercel", "/v"),
    "vercel.status_page": ("vercel-status", "/api/v2/"),
    "supabase.status_page": ("supabase-status", "/api/v2/"),
}
# name -> (fault, expected status, the summary contains one of these)
FAULTS: dict[str, tuple[Fault | None, Status, tuple[str, ...]]] = {
    "timeout": (Fault("hang", delay_s=3), Status.FAIL, ("did not answer within",)),
    # "cannot reach": http.py does not yet see the ConnectionRefusedError behind anyio's OSError
    "refused": (None, Status.FAIL, ("refused the connection", "cannot reach")),
    "401": (Fault("status", status=401), Status.FAIL, ("HTTP 401",)),
    "403": (Fault("status", status=403), Status.FAIL, ("HTTP 403",)),
    "404": (Fault("status", status=404), Status.FAIL, ("HTTP 404",)),
    "429": (Fault("status", status=429, retry_after="30"), Status.WARN, ("rate limited, retry after 30 s",)),
    "500": (Fault("status", status=500), Status.FAIL, ("HTTP 500",)),
    "html-200": (Fault("html"), Status.FAIL, ("HTML",)),
    "html-502": (Fault("html", status=502), Status.FAIL, ("HTTP 502",)),
    "truncated": (Fault("truncated"), Status.FAIL, ("invalid JSON",)),
    "huge": (Fault("huge"), Status.FAIL, ("MB",)),
}


@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.parametrize("check_id", list(CHECKS))
async def test_fault_matrix(healthy: Env, check_id: str, fault_name: str) -> None:
    service, path = CHECKS[check_id]
    fault, expected, needles = FAULTS[fault_name]
    timeout = 0.5 if fault_name == "timeout" else 2.0
    if fault is None:
        settings = healthy.settings(timeout_s=timeout, down=service)
    else:
        healthy.faults.set(service, replace(fault, path=path))
        settings = healthy.settings(timeout_s=timeout)
    result = await run_check(check_id, settings)
    assert result.status is expected, result.summary
    assert any(n in result.summary for n in needles), result.summary
    assert result.latency_ms is not None
    if fault_name == "timeout":
        assert result.latency_ms < 1500


async def test_429_retry_after_is_honoured(healthy: Env) -> None:
    """One 429 with Retry-After: 1 -> the retry waits ~1 s and the check is OK again."""
    settings = healthy.settings(timeout_s=3.0)
    before = {svc: len(healthy.sims[svc].requests) for svc, _ in CHECKS.values()}
    for service, path in CHECKS.values():
        healthy.faults.set(service, Fault("status", status=429, retry_after="1", path=path, times=1))
    results = await asyncio.gather(*(run_check(check_id, settings) for check_id in CHECKS))
    for result in results:
        assert result.status is Status.OK, (result.id, result.summary)
        assert result.latency_ms is not None and result.latency_ms >= 950, result.id
    # every service saw its normal calls plus exactly one retry
    normal = {"api": 1, "vercel": 3, "vercel-status": 1, "supabase-status": 1}
    for svc, count in normal.items():
        assert len(healthy.sims[svc].requests) - before[svc] == count + 1, svc


# --------------------------------------------------------------------------------------------
# api.health specifics
# --------------------------------------------------------------------------------------------
async def test_api_plain_text_ok_is_ok(healthy: Env) -> None:
    healthy.faults.set("api", Fault("status", status=200, body="OK", path="/health"))
    result = await run_check("api.health", healthy.settings())
    assert result.status is Status.OK
    assert result.details["components"] == {}


async def test_api_degraded_component_warns(healthy: Env) -> None:
    body = json.dumps({"status": "ok", "checks": {"database": {"status": "ok"},
                                                  "queue": {"status": "degraded"},
                                                  "twilio": {"status": "down"}}})
    healthy.faults.set("api", Fault("status", status=200, body=body, path="/health"))
    result = await run_check("api.health", healthy.settings())
    assert result.status is Status.WARN
    assert result.summary.endswith("twilio: down, queue: degraded")


async def test_api_slow_answer_warns(healthy: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_health, "SLOW_MS", 100.0)
    healthy.faults.set("api", Fault("delay", delay_s=0.2, path="/health"))
    result = await run_check("api.health", healthy.settings())
    assert result.status is Status.WARN
    assert "slow (over 0.1 s)" in result.summary


async def test_api_timeout_is_capped_by_api_timeout(healthy: Env) -> None:
    healthy.faults.set("api", Fault("hang", delay_s=3, path="/health"))
    base = healthy.settings(timeout_s=5.0)
    assert base.api is not None
    settings = replace(base, api=replace(base.api, timeout_s=0.4))
    result = await run_check("api.health", settings)
    assert result.status is Status.FAIL
    assert "within 0.4 s" in result.summary


# --------------------------------------------------------------------------------------------
# Vercel credentials, scope, listing
# --------------------------------------------------------------------------------------------
async def test_wrong_vercel_token_names_the_hint(healthy: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, WRONG_TOKEN)
    settings = healthy.settings(token=Secret.env(TOKEN_ENV))
    result = await run_check("vercel.deployment", settings)
    assert result.status is Status.FAIL
    assert "token rejected" in result.summary
    assert TOKEN_ENV in result.summary
    assert "Not authorized" in result.summary
    vercel = VercelAdapter(settings)
    try:
        with pytest.raises(VercelError, match="token rejected") as info:
            await vercel.list_deployments()
        assert WRONG_TOKEN not in str(info.value)
    finally:
        await vercel.aclose()


async def test_unset_vercel_token_is_a_fail_not_an_exception(healthy: Env,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = healthy.settings(token=Secret.env(TOKEN_ENV))
    before = len(healthy.sims["vercel"].requests)
    result = await run_check("vercel.deployment", settings)
    assert result.status is Status.FAIL
    assert f"environment variable {TOKEN_ENV} is not set" in result.summary
    assert len(healthy.sims["vercel"].requests) == before  # nothing was sent without a token
    page = await run_check("vercel.status_page", settings)  # public page still works
    assert page.status is Status.OK


async def test_missing_team_id_is_reported(healthy: Env) -> None:
    result = await run_check("vercel.deployment", healthy.settings(team_id=None))
    assert result.status is Status.FAIL
    assert "HTTP 404" in result.summary and "Project not found" in result.summary


async def test_list_deployments_follows_pagination(healthy: Env) -> None:
    state = healthy.vercel
    vercel = VercelAdapter(healthy.settings())
    before = len(healthy.sims["vercel"].requests)
    try:
        found = await vercel.list_deployments(limit=100, page_size=7)
        production = await vercel.list_deployments(limit=3, target="production")
    finally:
        await vercel.aclose()
    assert [d.id for d in found] == [d["uid"] for d in state.deployments]
    pages = -(-len(found) // 7)
    assert len(healthy.sims["vercel"].requests) - before == pages + 1
    assert all(isinstance(d, Deployment) for d in found)
    assert [d.target for d in production] == ["production"] * 3
    assert production[0].sha and production[0].short_sha == production[0].sha[:7]


# --------------------------------------------------------------------------------------------
# simulator shapes (what the adapters rely on is what the real APIs send)
# --------------------------------------------------------------------------------------------
async def test_vercel_sim_shapes(incident: Env) -> None:
    base = incident.url("vercel")
    state = incident.vercel
    good = {"Authorization": f"Bearer {SECRETS.vercel_token}"}
    team = {"teamId": VERCEL_TEAM_ID}
    async with new_client(timeout_s=2) as client:
        missing = await fetch(client, f"{base}/v6/deployments", service="sim", params=team)
        wrong = await fetch(client, f"{base}/v6/deployments", service="sim", params=team,
                            headers={"Authorization": "Bearer nope"})
        v7 = await fetch(client, f"{base}/v7/deployments", service="sim", headers=good,
                         params={**team, "projectId": VERCEL_PROJECT_NAME, "target": "production",
                                 "state": "READY", "limit": 2})
        one = await fetch(client, f"{base}/v13/deployments/{state.production_id}", service="sim",
                          headers=good, params=team)
        project = await fetch(client, f"{base}/v9/projects/{VERCEL_PROJECT_ID}", service="sim",
                              headers=good, params=team)
    assert missing.status_code == 403 and missing.data["error"]["missingToken"] is True
    assert wrong.status_code == 403
    assert wrong.data == {"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": True}}
    assert [d["readyState"] for d in v7.data["deployments"]] == ["READY", "READY"]
    assert v7.data["pagination"]["next"] == v7.data["deployments"][-1]["created"]
    assert one.data["id"] == state.production_id and "uid" not in one.data
    assert project.data["targets"]["production"]["id"] == state.production_id
    assert len(state.deployments) >= 20


async def test_status_page_sim_endpoints(incident: Env) -> None:
    base = incident.url("supabase-status")
    async with new_client(timeout_s=2) as client:
        got = {name: await fetch(client, f"{base}/api/v2/{name}.json", service="sim")
               for name in ("status", "summary", "components", "incidents/unresolved")}
    assert got["status"].data["status"]["indicator"] == "minor"
    assert set(got["summary"].data) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert any(c["group"] for c in got["components"].data["components"])
    assert got["incidents/unresolved"].data["incidents"][0]["status"] == "identified"


# --------------------------------------------------------------------------------------------
# deployment assessment rules (no network)
# --------------------------------------------------------------------------------------------
def _dep(ident: str, state: str, minutes: int, target: str | None = "production") -> Deployment:
    return Deployment(id=ident, url=f"{ident}.vercel.app", state=state, target=target,
                      created_at=utcnow() - timedelta(minutes=minutes), sha=f"{ident:0<40}"[:40],
                      message="msg", ref="main", creator="dev")


@pytest.mark.parametrize(("newest_state", "minutes", "expected", "needle"), [
    ("BUILDING", 3, Status.OK, "BUILDING for 3 min"),
    ("QUEUED", 40, Status.WARN, "QUEUED for 40 min"),
    ("READY", 5, Status.WARN, "is not promoted"),
    ("CANCELED", 5, Status.FAIL, "CANCELED"),
])
async def test_assessment_rules(healthy: Env, newest_state: str, minutes: int, expected: Status,
                                needle: str) -> None:
    vercel = VercelAdapter(healthy.settings())
    try:
        check = next(c for c in vercel.checks() if isinstance(c, VercelDeploymentCheck))
        current = _dep("cur", "READY", 120)
        newest = _dep("new", newest_state, minutes)
        prod_raw = {"id": "cur", "createdAt": 0}
        result = check._assess(prod_raw, [newest, current], [newest, current], 1.0)
        assert result.status is expected, result.summary
        assert needle in result.summary
        none = check._assess(None, [_dep("x", "ERROR", 5)], [], 1.0)
        assert none.status is Status.FAIL and "no READY production deployment" in none.summary
    finally:
        await vercel.aclose()

