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
        check, _credentials = adapter.checks()
        assert (check.id, check.system, check.title) == ("n8n.executions", "n8n", "n8n sync executions")
        return await check.run()
    finally:
        await adapter.aclose()


def control(base: str, path: str, body: Any = None) -> Any:
    """The simulator's /__sim/n8n controls (no API key, like /__sim/faults)."""
    resp = httpx.post(f"{base}/__sim/n8n{path}", json=body or {}, timeout=5.0)
    assert resp.status_code == 200, resp.text
    return resp.json()


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
    assert by_wf["1001"]["name"] == "Supabase → CRM sync" and by_wf["1001"]["failures"] > 18
    assert "1003" not in by_wf  # the unwatched workflow's failure is not counted
    assert details["crashed"] == 1 and by_wf["1002"]["failures"] == 2  # a crash and a timeout
    assert "Supabase → CRM sync" in result.summary and "JWT expired" in result.summary
    newest = details["newest_error"]
    assert newest["workflow_id"] == "1001" and newest["node"] == "Fetch changed contacts (Supabase)"
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


async def test_n8n_retry_execution_and_follow(n8n_incident: Running) -> None:
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        failed = (await adapter.checks()[0].run()).details["recent"][0]["id"]
        result = await adapter.retry_execution(failed)
        assert result.ok and result.new_execution_id and result.new_status == "running"  # queue mode: runs on
        assert f"started execution {result.new_execution_id}" in result.summary
        refused = await adapter.retry_execution(result.new_execution_id)  # still running: n8n says 409
        assert not refused.ok and refused.http_status == 409 and "running" in refused.summary
        followed = await adapter.follow(result.new_execution_id, timeout_s=10)
        assert followed.finished and followed.execution is not None
        assert followed.execution.status == "error"  # the Supabase credential is still broken
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


async def test_n8n_retry_404_of_an_n8n_older_than_1_112(n8n_incident: Running) -> None:
    control(n8n_incident.base, "/features", {"retry": False})
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        failed = n8n_get(n8n_incident.base, "/executions", status="error", limit=1)["data"][0]["id"]
        result = await adapter.retry_execution(failed, exists=True)
        assert not result.ok and result.no_endpoint and result.http_status == 404
        assert "older than 1.112" in result.summary and "Upgrade n8n to 1.112 or newer" in result.summary
        unsure = await adapter.retry_execution(failed)  # without knowing the execution exists
        assert not unsure.no_endpoint and "needs n8n 1.112 or newer" in unsure.summary
    finally:
        await adapter.aclose()


async def test_n8n_check_counts_a_failure_retried_successfully_as_resolved(n8n_incident: Running) -> None:
    crashed = n8n_get(n8n_incident.base, "/executions", status="crashed", workflowId="1002")["data"][0]["id"]
    before = await run_n8n(n8n_settings(n8n_incident.base))
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        retry = await adapter.retry_execution(crashed)  # a crash is transient: the retry succeeds
        assert retry.new_execution_id is not None
        done = await adapter.follow(retry.new_execution_id, timeout_s=10)
        assert done.execution is not None and done.execution.status == "success"
    finally:
        await adapter.aclose()
    assert n8n_get(n8n_incident.base, f"/executions/{crashed}")["retrySuccessId"] == retry.new_execution_id
    after = await run_n8n(n8n_settings(n8n_incident.base))
    assert after.details["crashed"] == 0 and after.details["retried_ok"] == 1
    assert close(after.details["failed"], before.details["failed"] - 1)
    assert "1 more retried successfully" in after.summary


# -- the n8n tab's list: pages, errors, inspection ------------------------------------------------
async def test_failed_page_pages_through_more_than_250_failures_newest_first(n8n_incident: Running) -> None:
    injected = control(n8n_incident.base, "/executions", {"kind": "transient", "count": 600})["ids"]
    expected = [e["id"] for e in _all_failed(n8n_incident.base, N8N_WORKFLOWS)]
    assert len(expected) > 600
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    seen: list[str] = []
    positions = []
    costs: list[int] = []
    try:
        page = await adapter.failed_page(None, 50)
        assert page.problem is None and len(page.rows) == 50
        assert page.requests == 4  # the first page: one request per (status, workflow) stream
        assert page.names["1001"] == "Supabase → CRM sync"
        while True:
            assert len(page.rows) <= 50  # one page of rows in memory, however many there are
            seen += [r.id for r in page.rows]
            if page.next is None:
                break
            positions.append(page.next)
            live = sum(1 for stream in page.next.streams if not stream.done)
            page = await adapter.failed_page(page.next, 50)
            assert page.problem is None
            assert page.requests <= live  # finished streams are not read again
            costs.append(page.requests)
        again = await adapter.failed_page(positions[3], 50)  # a page start is stable: the same rows again
        assert [r.id for r in again.rows] == seen[200:250]
    finally:
        await adapter.aclose()
    assert seen == expected  # every failure exactly once, in n8n's order (id, newest first)
    # past the first page, a page costs one request: streams whose next failure is older are not read
    assert sum(1 for c in costs if c == 1) >= len(costs) - 2, costs
    assert set(injected) <= set(seen)


def _all_failed(base: str, watched: tuple[str, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for status in ("error", "crashed"):
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 250, "status": status}
            if cursor:
                params["cursor"] = cursor
            body = n8n_get(base, "/executions", **params)
            out += [e for e in body["data"] if e["workflowId"] in watched]
            cursor = body["nextCursor"]
            if not cursor:
                break
    return sorted(out, key=lambda e: int(e["id"]), reverse=True)


async def test_failed_page_filters_a_long_watch_list_here(n8n_incident: Running) -> None:
    watched = ("1001", "1002", "1003", "1004", "9999")  # more than 4: listed once, filtered here
    adapter = N8nAdapter(n8n_settings(n8n_incident.base, workflows=("1002", *watched[2:])))
    try:
        page = await adapter.failed_page(None, 50)
    finally:
        await adapter.aclose()
    assert page.problem is None and page.rows
    assert {r.workflow_id for r in page.rows} <= {"1002", "1003"}
    assert [r.id for r in page.rows] == [e["id"] for e in _all_failed(n8n_incident.base, ("1002", "1003"))][:50]


async def test_inspect_reads_node_message_description_stack_and_credentials(n8n_incident: Running) -> None:
    jwt = next(e["id"] for e in _all_failed(n8n_incident.base, ("1001",))
               if "JWT" in n8n_get(n8n_incident.base, f"/executions/{e['id']}", includeData="true")
               ["data"]["resultData"]["error"]["message"])
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        found = await adapter.inspect(jwt)
        crashed_id = n8n_get(n8n_incident.base, "/executions", status="crashed")["data"][0]["id"]
        crashed = await adapter.inspect(crashed_id)
        missing = await adapter.inspect("99999999")
        bogus = await adapter.inspect("1; drop")
    finally:
        await adapter.aclose()
    e = found.error
    assert found.execution is not None and found.execution.status == "error"
    assert e.node == "Fetch changed contacts (Supabase)" and e.node_type == "n8n-nodes-base.supabase"
    assert e.message.startswith("Supabase: JWT expired") and e.description == "JWT expired"
    assert e.http_code == "401" and e.error_name == "NodeApiError"
    assert e.stack and e.stack[0].startswith("NodeApiError") and len(e.stack) <= 12
    assert [(c.id, c.type) for c in e.credentials] == [("sbProdSvcRole7Kq", "supabaseApi")]
    assert e.workflow_name == "Supabase → CRM sync"
    assert crashed.error.message.startswith("Worker crashed")
    assert missing.execution is None and missing.http_status == 404 and "not found" in (missing.error.problem or "")
    assert bogus.execution is None and "not an n8n execution id" in (bogus.error.problem or "")


async def test_hostile_and_1_mb_error_messages_are_bounded_and_defused(n8n_incident: Running) -> None:
    (huge_id,) = control(n8n_incident.base, "/executions", {"kind": "huge"})["ids"]
    hostile = [e["id"] for e in _all_failed(n8n_incident.base, ("1001",))
               if "\x1b" in n8n_get(n8n_incident.base, f"/executions/{e['id']}", includeData="true")
               ["data"]["resultData"]["error"]["message"]]
    assert len(hostile) == 1
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        full = await adapter.inspect(huge_id)  # up to 4 MB read: the message, capped for the screen
        rows = {e.execution_id: e async for e in adapter.errors([huge_id, hostile[0]])}
        bad = await adapter.inspect(hostile[0])
    finally:
        await adapter.aclose()
    assert full.error.message_chars > 1_000_000 and full.error.truncated
    assert len(full.error.message) == 20_000 and full.error.first_line.startswith("Supabase: unexpected response")
    row = rows[huge_id]  # a list row reads at most 2 MB: the execution (twice 1 MB of error) is over
    assert not row.message and row.problem and "MB" in row.problem and "open it in n8n" in row.problem
    reads = sum(1 for m, p in n8n_incident.sim.requests if p == f"/api/v1/executions/{huge_id}")
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        again = [e async for e in adapter.errors([huge_id])] + [e async for e in adapter.errors([huge_id])]
    finally:
        await adapter.aclose()
    assert [e.problem for e in again] == [row.problem] * 2  # too large once is too large for good: read once
    assert sum(1 for m, p in n8n_incident.sim.requests if p == f"/api/v1/executions/{huge_id}") == reads + 1
    for text in (bad.error.message, rows[hostile[0]].message, bad.error.first_line):
        assert "\x1b" not in text and "␛[2J" in text and "[red]x[/]" in text


async def test_errors_are_cached_and_read_a_few_at_a_time(n8n_incident: Running) -> None:
    ids = [e["id"] for e in _all_failed(n8n_incident.base, N8N_WORKFLOWS)][:12]
    adapter = N8nAdapter(n8n_settings(n8n_incident.base))
    try:
        first = [e.execution_id async for e in adapter.errors(ids)]
        reads = sum(1 for m, p in n8n_incident.sim.requests if m == "GET" and p.startswith("/api/v1/executions/"))
        second = [e.execution_id async for e in adapter.errors(ids)]
        reads_after = sum(1 for m, p in n8n_incident.sim.requests
                          if m == "GET" and p.startswith("/api/v1/executions/"))
    finally:
        await adapter.aclose()
    assert sorted(first) == sorted(ids) and second == ids  # cached: in the order asked
    assert reads == 12 and reads_after == 12


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
