"""api.health against the real loopback API simulator (no mocks): both scenarios, the component
rules, slowness and the API's own timeout. The fault matrix it shares with the other HTTP checks
is in test_http.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from opsconsole.adapters import api_health
from opsconsole.demo.sim import Fault
from opsconsole.domain.models import Status
from tests.adapters.web_sims import WebEnv, run_check


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
async def test_healthy_scenario_is_ok(web_healthy: WebEnv) -> None:
    settings = web_healthy.settings()
    api = await run_check("api.health", settings)
    assert api.status is Status.OK
    assert api.summary.startswith("HTTP 200 in ")
    assert api.details["http_status"] == 200
    assert api.details["components"] == {"database": "ok", "twilio": "ok", "queue": "ok"}


async def test_incident_scenario(web_incident: WebEnv) -> None:
    settings = web_incident.settings()
    api = await run_check("api.health", settings)
    assert api.status is Status.FAIL
    assert api.summary.startswith("HTTP 500 in ")
    assert "database: down" in api.summary
    assert api.details["components"]["database"] == "down"
    current = web_incident.vercel.production
    assert current is not None
    assert api.details["version"].endswith(current["meta"]["githubCommitSha"][:7])  # same story everywhere


# --------------------------------------------------------------------------------------------
# api.health specifics
# --------------------------------------------------------------------------------------------
async def test_api_plain_text_ok_is_ok(web_healthy: WebEnv) -> None:
    web_healthy.faults.set("api", Fault("status", status=200, body="OK", path="/health"))
    result = await run_check("api.health", web_healthy.settings())
    assert result.status is Status.OK
    assert result.details["components"] == {}


async def test_api_degraded_component_warns(web_healthy: WebEnv) -> None:
    body = json.dumps({"status": "ok", "checks": {"database": {"status": "ok"},
                                                  "queue": {"status": "degraded"},
                                                  "twilio": {"status": "down"}}})
    web_healthy.faults.set("api", Fault("status", status=200, body=body, path="/health"))
    result = await run_check("api.health", web_healthy.settings())
    assert result.status is Status.WARN
    assert result.summary.endswith("twilio: down, queue: degraded")


async def test_api_slow_answer_warns(web_healthy: WebEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_health, "SLOW_MS", 100.0)
    web_healthy.faults.set("api", Fault("delay", delay_s=0.2, path="/health"))
    result = await run_check("api.health", web_healthy.settings())
    assert result.status is Status.WARN
    assert "slow (over 0.1 s)" in result.summary


async def test_api_timeout_is_capped_by_api_timeout(web_healthy: WebEnv) -> None:
    web_healthy.faults.set("api", Fault("hang", delay_s=3, path="/health"))
    base = web_healthy.settings(timeout_s=5.0)
    assert base.api is not None
    settings = replace(base, api=replace(base.api, timeout_s=0.4))
    result = await run_check("api.health", settings)
    assert result.status is Status.FAIL
    assert "within 0.4 s" in result.summary
