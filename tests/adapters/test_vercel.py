"""vercel.deployment against the real loopback Vercel simulator (no mocks): both scenarios, the
token and team scope, pagination, the simulator's shapes and the assessment rules. The fault
matrix it shares with the other HTTP checks is in test_http.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsconsole.adapters.http import fetch, new_client
from opsconsole.adapters.vercel import VercelAdapter, VercelDeploymentCheck, VercelError, parse_deployment
from opsconsole.demo.scenario import VERCEL_PROJECT_ID, VERCEL_PROJECT_NAME, VERCEL_TEAM_ID
from opsconsole.domain.deploys import Deployment, PromotionJob
from opsconsole.domain.models import Status, utcnow
from opsconsole.settings import Secret
from tests.adapters.web_sims import SECRETS, TOKEN_ENV, WRONG_TOKEN, WebEnv, run_check


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
async def test_healthy_scenario_is_ok(web_healthy: WebEnv) -> None:
    settings = web_healthy.settings()
    dep = await run_check("vercel.deployment", settings)
    assert dep.status is Status.OK, dep.summary
    prod = web_healthy.vercel.production
    assert prod is not None
    sha = prod["meta"]["githubCommitSha"]
    assert dep.summary.startswith(f"READY {sha[:7]} ")
    assert dep.details["current_id"] == prod["uid"]
    rows = dep.details["deployments"]
    assert len(rows) == 10
    assert set(rows[0]) >= {"id", "url", "state", "target", "sha", "message", "ref", "created_at", "creator"}
    assert [r["id"] for r in rows if r["current"]] == [prod["uid"]]
    assert rows[0]["created_at"].endswith("Z")


async def test_incident_scenario(web_incident: WebEnv) -> None:
    settings = web_incident.settings()
    current = web_incident.vercel.production
    assert current is not None
    dep = await run_check("vercel.deployment", settings)
    assert dep.status is Status.FAIL
    assert "newest production deployment ERROR" in dep.summary
    assert 'Command "npm run build" exited with 1' in dep.summary
    assert f"still serving {current['meta']['githubCommitSha'][:7]}" in dep.summary
    assert dep.details["newest_production"]["state"] == "ERROR"
    assert dep.details["current"]["id"] == current["uid"]
    previews = [r for r in dep.details["deployments"] if r["target"] is None]
    assert len(previews) >= 2


# --------------------------------------------------------------------------------------------
# Vercel credentials, scope, listing
# --------------------------------------------------------------------------------------------
async def test_wrong_vercel_token_names_the_hint(web_healthy: WebEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, WRONG_TOKEN)
    settings = web_healthy.settings(token=Secret.env(TOKEN_ENV))
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


async def test_unset_vercel_token_is_a_fail_not_an_exception(web_healthy: WebEnv,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = web_healthy.settings(token=Secret.env(TOKEN_ENV))
    before = len(web_healthy.sims["vercel"].requests)
    result = await run_check("vercel.deployment", settings)
    assert result.status is Status.FAIL
    assert f"environment variable {TOKEN_ENV} is not set" in result.summary
    assert len(web_healthy.sims["vercel"].requests) == before  # nothing was sent without a token
    page = await run_check("vercel.status_page", settings)  # public page still works
    assert page.status is Status.OK


async def test_missing_team_id_is_reported(web_healthy: WebEnv) -> None:
    result = await run_check("vercel.deployment", web_healthy.settings(team_id=None))
    assert result.status is Status.FAIL
    assert "HTTP 404" in result.summary and "Project not found" in result.summary


async def test_list_deployments_follows_pagination(web_healthy: WebEnv) -> None:
    state = web_healthy.vercel
    vercel = VercelAdapter(web_healthy.settings())
    before = len(web_healthy.sims["vercel"].requests)
    try:
        found = await vercel.list_deployments(limit=100, page_size=7)
        production = await vercel.list_deployments(limit=3, target="production")
    finally:
        await vercel.aclose()
    assert [d.id for d in found] == [d["uid"] for d in state.deployments]
    pages = -(-len(found) // 7)
    assert len(web_healthy.sims["vercel"].requests) - before == pages + 1
    assert all(isinstance(d, Deployment) for d in found)
    assert [d.target for d in production] == ["production"] * 3
    assert production[0].sha and production[0].short_sha == production[0].sha[:7]


# --------------------------------------------------------------------------------------------
# simulator shapes (what the adapter relies on is what the real API sends)
# --------------------------------------------------------------------------------------------
async def test_vercel_sim_shapes(web_incident: WebEnv) -> None:
    base = web_incident.url("vercel")
    state = web_incident.vercel
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
async def test_assessment_rules(web_healthy: WebEnv, newest_state: str, minutes: int, expected: Status,
                                needle: str) -> None:
    vercel = VercelAdapter(web_healthy.settings())
    try:
        check = next(c for c in vercel.checks() if isinstance(c, VercelDeploymentCheck))
        current = _dep("cur", "READY", 120)
        newest = _dep("new", newest_state, minutes)
        result = check._assess(parse_deployment({"id": "cur", "createdAt": 0}), [newest, current],
                               [newest, current], 1.0)
        assert result.status is expected, result.summary
        assert needle in result.summary
        none = check._assess(None, [_dep("x", "ERROR", 5)], [], 1.0)
        assert none.status is Status.FAIL and "no READY production deployment" in none.summary
    finally:
        await vercel.aclose()


@pytest.mark.parametrize(("promoted_min_ago", "expected"), [(2, Status.OK), (30, Status.FAIL)])
async def test_a_promote_after_a_failed_build_is_a_decision_not_a_fault(web_healthy: WebEnv, promoted_min_ago: int,
                                                                       expected: Status) -> None:
    """After a rollback (promote of an older deployment) the newest build is still ERROR; production
    serves what someone chose after it: OK. A promote older than the failed build does not excuse it."""
    vercel = VercelAdapter(web_healthy.settings())
    try:
        check = next(c for c in vercel.checks() if isinstance(c, VercelDeploymentCheck))
        current, failed = _dep("cur", "READY", 120), _dep("bad", "ERROR", 12)
        job = PromotionJob(from_id="prev", to_id="cur", status="succeeded",
                           requested_at=utcnow() - timedelta(minutes=promoted_min_ago))
        result = check._assess(current, [failed, current], [failed, current], 1.0, job)
        assert result.status is expected, result.summary
        if expected is Status.OK:
            assert "promoted 2 min ago, after the newest production deployment" in result.summary
            assert result.details["promoted_at"]
    finally:
        await vercel.aclose()
