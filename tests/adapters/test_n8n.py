"""The n8n adapter against its real loopback simulator (real sockets).

Settings are built directly from the dataclasses with literal secrets from DemoSecrets (or env
secrets where the test needs a hint name). Every result is checked for the secret canaries
and for raw terminal escapes: expected failures must be readable data, never tracebacks.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from opsconsole.adapters.n8n import N8nAdapter
from opsconsole.demo.scenario import N8N_WORKFLOWS
from opsconsole.demo.sim import Fault
from opsconsole.demo.sims import n8n as n8n_sim
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.settings import ChecksSettings, N8nSettings, Secret, Settings
from tests.adapters.helpers import closed_port_url
from tests.adapters.n8n_twilio import FAST, FAULTS, N8N_CANARY, Running, assert_clean, close, get, running


@pytest.fixture
def n8n_incident() -> Iterator[Running]:
    with running(n8n_sim.build, "incident") as r:
        yield r


@pytest.fixture
def n8n_healthy() -> Iterator[Running]:
    with running(n8n_sim.build, "healthy") as r:
        yield r


def n8n_settings(base: str, *, key: Secret | None = None, workflows: tuple[str, ...] = N8N_WORKFLOWS,
                 timeout_s: float = 5.0) -> Settings:
    return Settings(n8n=N8nSettings(api_url=f"{base}/api/v1", api_key=key or Secret.literal(N8N_CANARY),
                                    workflows=workflows),
                    checks=ChecksSettings(timeout_s=timeout_s))


async def run_n8n(settings: Settings, **kwargs: Any) -> CheckResult:
    adapter = N8nAdapter(settings, **kwargs)
    try:
        (check,) = adapter.checks()
        assert (check.id, check.system, check.title) == ("n8n.executions", "n8n", "n8n sync executions")
        return await check.run()
    finally:
        await adapter.aclose()


def n8n_get(base: str, path: str, **params: Any) -> Any:
    return get(f"{base}/api/v1{path}", params=params, headers={"X-N8N-API-KEY": N8N_CANARY}).json()


def n8n_failures_last_hour(base: str, watched: tuple[str, ...]) -> int:
    """Independent count straight from the simulator's API (largest pages)."""
    since = utcnow() - timedelta(hours=1)
    count, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 250}
        if cursor:
            params["cursor"] = cursor
        body = n8n_get(base, "/executions", **params)
        for item in body["data"]:
            started = datetime.fromisoformat(item["startedAt"])
            if item["status"] in ("error", "crashed") and started >= since and (
                    not watched or item["workflowId"] in watched):
                count += 1
        cursor = body["nextCursor"]
        if not cursor:
            return count


# -- n8n ------------------------------------------------------------------------------------------
async def test_n8n_incident_fails_with_newest_error(n8n_incident: Running) -> None:
    result = await run_n8n(n8n_settings(n8n_incident.base))
    assert_clean(result)
    assert result.status is Status.FAIL
    details = result.details
    assert details["failed"] > 20
    by_wf = {row["workflow_id"]: row for row in details["by_workflow"]}
    assert by_wf["1001"]["name"] == "Supabase → CRM sync" and by_wf["1001"]["failures"] > 20
    assert "1003" not in by_wf  # the unwatched workflow's failure is not counted
    assert details["crashed"] == 1 and by_wf["1002"]["failures"] == 1
    assert "Supabase → CRM sync" in result.summary and "JWT expired" in result.summary
    newest = details["newest_error"]
    assert newest["workflow_id"] == "1001" and newest["node"] == "Upsert contacts (Supabase)"
    assert newest["message"].startswith("Supabase: JWT expired / 401 from REST")
    recent = details["recent"]
    assert recent and set(recent[0]) >= {"id", "workflow_id", "started_at", "stopped_at", "mode"}
    assert recent == sorted(recent, key=lambda r: r["started_at"], reverse=True)
    assert close(details["failed"], n8n_failures_last_hour(n8n_incident.base, N8N_WORKFLOWS))


async def test_n8n_empty_watch_list_means_all_workflows(n8n_incident: Running) -> None:
    result = await run_n8n(n8n_settings(n8n_incident.base, workflows=()))
    assert result.status is Status.FAIL
    by_wf = {row["workflow_id"]: row for row in result.details["by_workflow"]}
    assert by_wf["1003"]["name"] == "Weekly digest email"
    assert close(result.details["failed"], n8n_failures_last_hour(n8n_incident.base, ()))


async def test_n8n_healthy_is_ok_and_ignores_old_failures(n8n_healthy: Running) -> None:
    result = await run_n8n(n8n_settings(n8n_healthy.base))
    assert_clean(result)
    assert result.status is Status.OK, result.summary
    assert result.summary == "no failed executions in the last hour (2 watched workflow(s))"
    # the healthy scenario does have one failure, older than an hour
    body = n8n_get(n8n_healthy.base, "/executions", status="error")
    assert len(body["data"]) == 1
    assert datetime.fromisoformat(body["data"][0]["startedAt"]) < utcnow() - timedelta(hours=1)


async def test_n8n_follows_next_cursor_over_small_pages(n8n_incident: Running) -> None:
    result = await run_n8n(n8n_settings(n8n_incident.base), page_limit=4)
    assert result.status is Status.FAIL
    listed = [p for m, p in n8n_incident.sim.requests if m == "GET" and p == "/api/v1/executions"]
    assert result.details["pages"] >= 7 and len(listed) == result.details["pages"]
    assert result.details["truncated"] is False
    assert close(result.details["failed"], n8n_failures_last_hour(n8n_incident.base, N8N_WORKFLOWS))


def test_n8n_cursor_is_opaque_base64_and_null_at_the_end(n8n_incident: Running) -> None:
    headers = {"X-N8N-API-KEY": N8N_CANARY}
    first = httpx.get(f"{n8n_incident.base}/api/v1/executions", params={"limit": 3}, headers=headers).json()
    assert len(first["data"]) == 3 and isinstance(first["nextCursor"], str)
    json.loads(base64.b64decode(first["nextCursor"]))
    second = httpx.get(f"{n8n_incident.base}/api/v1/executions", params={"cursor": first["nextCursor"]},
                       headers=headers).json()
    assert int(second["data"][0]["id"]) < int(first["data"][-1]["id"])
    last = httpx.get(f"{n8n_incident.base}/api/v1/executions", params={"workflowId": "1003", "limit": 250},
                     headers=headers).json()
    assert last["nextCursor"] is None
    too_many = httpx.get(f"{n8n_incident.base}/api/v1/executions", params={"limit": 251}, headers=headers)
    assert too_many.status_code == 400
    assert httpx.get(f"{n8n_incident.base}/healthz").status_code == 200
    assert httpx.get(f"{n8n_incident.base}/healthz/readiness").status_code == 200


async def test_n8n_wrong_key_gets_real_401_and_clear_summary(n8n_incident: Running,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    raw = get(f"{n8n_incident.base}/api/v1/executions", headers={"X-N8N-API-KEY": "wrong"})
    assert raw.status_code == 401 and raw.json() == {"message": "unauthorized"}
    monkeypatch.setenv("N8N_API_KEY", "wrong-key")
    result = await run_n8n(n8n_settings(n8n_incident.base, key=Secret.env("N8N_API_KEY")))
    dumped = assert_clean(result)
    assert result.status is Status.FAIL
    assert result.summary.startswith("HTTP 401 from n8n: credentials rejected — check N8N_API_KEY")
    assert "wrong-key" not in dumped


async def test_n8n_missing_key_is_reported_not_raised(n8n_incident: Running,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("N8N_API_KEY_UNSET", raising=False)
    result = await run_n8n(n8n_settings(n8n_incident.base, key=Secret.env("N8N_API_KEY_UNSET")))
    assert result.status is Status.FAIL
    assert "N8N_API_KEY_UNSET is not set" in result.summary
    assert n8n_incident.sim.requests == []


async def test_n8n_hostile_error_text_is_defused(n8n_incident: Running) -> None:
    body = n8n_get(n8n_incident.base, "/executions", status="error", workflowId="1001", includeData="true",
                   limit=250)
    hostile = [e["id"] for e in body["data"] if "\x1b" in e["data"]["resultData"]["error"]["message"]]
    assert len(hostile) == 1
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        import time
        error = await adapter.error_of(hostile[0], time.monotonic() + 3)
    finally:
        await adapter.aclose()
    assert "\x1b" not in error["message"] and "␛[2J" in error["message"]
    assert "[red]x[/]" in error["message"]  # shown literally; the UI renders without markup


async def test_n8n_retry_execution(n8n_incident: Running) -> None:
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        failed = (await adapter.checks()[0].run()).details["recent"][0]["id"]
        result = await adapter.retry_execution(failed)
        assert result.ok and result.new_execution_id and result.new_status == "error"  # JWT still expired
        assert f"started execution {result.new_execution_id}" in result.summary
        new = n8n_get(n8n_incident.base, f"/executions/{result.new_execution_id}")
        assert new["mode"] == "retry" and new["retryOf"] == failed
        ok_id = n8n_get(n8n_incident.base, "/executions", status="success", limit=1)["data"][0]["id"]
        refused = await adapter.retry_execution(ok_id)
        assert not refused.ok and refused.http_status == 409 and "cannot be retried" in refused.summary
        missing = await adapter.retry_execution("99999999")
        assert not missing.ok and missing.http_status == 404 and "not found" in missing.summary
        before = len(n8n_incident.sim.requests)
        bogus = await adapter.retry_execution("../workflows/1001")
        assert not bogus.ok and len(n8n_incident.sim.requests) == before
    finally:
        await adapter.aclose()


# -- fault matrix ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fault", "status", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_n8n_fault_matrix(n8n_incident: Running, name: str, fault: Fault | None, status: Status,
                                fragment: str) -> None:
    base = n8n_incident.base
    if fault is None:
        base = closed_port_url()
    else:
        n8n_incident.faults.set("n8n", fault)
    result = await run_n8n(n8n_settings(base, timeout_s=FAST if name == "timeout" else 5.0))
    assert_clean(result)
    assert result.status is status, result.summary
    assert fragment in result.summary
    assert result.summary.startswith(("HTTP ", "n8n "))
    assert result.latency_ms is not None and result.latency_ms < 3000
