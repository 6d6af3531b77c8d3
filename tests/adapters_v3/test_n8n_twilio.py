"""n8n and Twilio adapters against their real loopback simulators (real sockets, real Twilio SDK).

Settings are built directly from the dataclasses with literal secrets from DemoSecrets (or env
secrets where the test needs a hint name). Every result is checked for the secret canaries
and for raw terminal escapes: expected failures must be readable data, never tracebacks.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from twilio.rest import Client

from opsconsole.adapters.n8n import N8nAdapter
from opsconsole.adapters.twilio import TwilioAdapter, readable_alert_text
from opsconsole.demo.scenario import N8N_WORKFLOWS, DemoSecrets
from opsconsole.demo.sim import Fault, FaultPlan, Simulator
from opsconsole.demo.sims import n8n as n8n_sim
from opsconsole.demo.sims import twilio as twilio_sim
from opsconsole.domain import twilio_codes
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.settings import ChecksSettings, N8nSettings, Secret, Settings, TwilioSettings

N8N_CANARY = "n8n-CANARY-7f3a9c-NOT-REAL"
TWILIO_CANARY = "twilio-CANARY-51d2e8-NOT-REAL"
SECRETS = DemoSecrets(n8n_api_key=N8N_CANARY, twilio_auth_token=TWILIO_CANARY)
CANARIES = (N8N_CANARY, TWILIO_CANARY, SECRETS.twilio_account_sid)
FAST = 0.6  # check timeout for the hang cases


@dataclass
class Running:
    sim: Simulator
    faults: FaultPlan
    base: str


@contextmanager
def running(build: Callable[[FaultPlan, str, DemoSecrets], Simulator], scenario: str) -> Iterator[Running]:
    faults = FaultPlan()
    sim = build(faults, scenario, SECRETS)
    base = sim.start()
    try:
        yield Running(sim, faults, base)
    finally:
        sim.stop()


@pytest.fixture
def n8n_incident() -> Iterator[Running]:
    with running(n8n_sim.build, "incident") as r:
        yield r


@pytest.fixture
def n8n_healthy() -> Iterator[Running]:
    with running(n8n_sim.build, "healthy") as r:
        yield r


@pytest.fixture
def twilio_incident() -> Iterator[Running]:
    with running(twilio_sim.build, "incident") as r:
        yield r


@pytest.fixture
def twilio_healthy() -> Iterator[Running]:
    with running(twilio_sim.build, "healthy") as r:
        yield r


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def n8n_settings(base: str, *, key: Secret | None = None, workflows: tuple[str, ...] = N8N_WORKFLOWS,
                 timeout_s: float = 5.0) -> Settings:
    return Settings(n8n=N8nSettings(api_url=f"{base}/api/v1", api_key=key or Secret.literal(N8N_CANARY),
                                    workflows=workflows),
                    checks=ChecksSettings(timeout_s=timeout_s))


def twilio_settings(base: str, *, token: Secret | None = None, timeout_s: float = 5.0) -> Settings:
    return Settings(twilio=TwilioSettings(account_sid=Secret.literal(SECRETS.twilio_account_sid),
                                          auth_token=token or Secret.literal(TWILIO_CANARY),
                                          api_url=base, monitor_url=base),
                    checks=ChecksSettings(timeout_s=timeout_s))


async def run_n8n(settings: Settings, **kwargs: Any) -> CheckResult:
    adapter = N8nAdapter(settings, **kwargs)
    try:
        (check,) = adapter.checks()
        assert (check.id, check.system, check.title) == ("n8n.executions", "n8n", "n8n sync executions")
        return await check.run()
    finally:
        await adapter.aclose()


async def run_twilio(settings: Settings, **kwargs: Any) -> CheckResult:
    adapter = TwilioAdapter(settings, **kwargs)
    try:
        (check,) = adapter.checks()
        assert (check.id, check.system, check.title) == ("twilio.alerts", "twilio", "Twilio error alerts")
        return await check.run()
    finally:
        await adapter.aclose()


def assert_clean(result: CheckResult) -> str:
    """No secret, no raw ESC, no traceback anywhere in what the console would show or export."""
    dumped = json.dumps(result.to_json(), ensure_ascii=False)
    for canary in CANARIES:
        assert canary not in dumped
    assert "\x1b" not in dumped and "\x9b" not in dumped
    assert "Traceback" not in dumped and "File \"" not in dumped
    assert result.summary and "\n" not in result.summary
    return dumped


def get(url: str, **kwargs: Any) -> httpx.Response:
    """A direct probe of a simulator (sync on purpose: loopback, a few ms)."""
    return httpx.get(url, timeout=5.0, **kwargs)


def n8n_get(base: str, path: str, **params: Any) -> Any:
    return get(f"{base}/api/v1{path}", params=params, headers={"X-N8N-API-KEY": N8N_CANARY}).json()


def close(got: int, expected: int, slack: int = 1) -> bool:
    """Equal up to the traffic that crossed the one-hour edge (or arrived) between two reads;
    a skipped page would lose a whole page (4 or 7 items), far more than the slack."""
    return abs(got - expected) <= slack


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


# -- Twilio ---------------------------------------------------------------------------------------
async def test_twilio_incident_fails_with_codes_called_out(twilio_incident: Running) -> None:
    result = await run_twilio(twilio_settings(twilio_incident.base))
    dumped = assert_clean(result)
    assert result.status is Status.FAIL
    for code in ("30008", "11200", "11205", "11217"):
        assert f"{code} ×" in result.summary
    assert "webhook failures" in result.summary
    details = result.details
    by_code = {row["code"]: row for row in details["by_code"]}
    assert by_code["30008"]["count"] == max(row["count"] for row in details["by_code"])
    assert by_code["30008"]["meaning"] == twilio_codes.meaning(30008)
    assert by_code["30008"]["transient"] is True
    assert by_code["21610"]["transient"] is False
    assert details["webhook_failures"] == sum(by_code[c]["count"] for c in ("11200", "11205", "11217"))
    newest = details["newest"]
    assert newest and set(newest[0]) >= {"sid", "error_code", "date", "request_url", "text"}
    assert all(row["sid"].startswith("NO") for row in newest)
    dates = [datetime.fromisoformat(row["date"]) for row in newest]
    assert dates == sorted(dates, reverse=True) and dates[-1] >= utcnow() - timedelta(hours=1, minutes=1)
    assert SECRETS.twilio_account_sid not in dumped  # 21610 request URLs carry it; it is masked


async def test_twilio_healthy_is_ok(twilio_healthy: Running) -> None:
    result = await run_twilio(twilio_settings(twilio_healthy.base))
    assert_clean(result)
    assert result.status is Status.OK and result.summary == "no error alerts in the last hour"
    client = Client(SECRETS.twilio_account_sid, TWILIO_CANARY)
    client.monitor.base_url = twilio_healthy.base
    older = client.monitor.v1.alerts.list(log_level="error")
    assert older and all(a.date_created < utcnow() - timedelta(hours=1) for a in older)
    assert client.monitor.v1.alerts.list(log_level="warning", limit=5)


async def test_twilio_follows_absolute_next_page_url(twilio_incident: Running) -> None:
    result = await run_twilio(twilio_settings(twilio_incident.base), page_size=7)
    assert result.status is Status.FAIL
    pages = [p for m, p in twilio_incident.sim.requests if m == "GET" and p == "/v1/Alerts"]
    assert result.details["pages"] >= 5 and len(pages) == result.details["pages"]
    client = Client(SECRETS.twilio_account_sid, TWILIO_CANARY)
    client.monitor.base_url = twilio_incident.base
    first = client.monitor.v1.alerts.page(log_level="error", page_size=7)
    assert first.next_page_url.startswith(twilio_incident.base + "/v1/Alerts?")
    since = utcnow() - timedelta(hours=1)
    everything = client.monitor.v1.alerts.list(log_level="error", start_date=since, page_size=1000)
    assert close(result.details["total"], len(everything), slack=3)


async def test_twilio_wrong_token_gets_real_401_and_clear_summary(twilio_incident: Running,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    raw = get(f"{twilio_incident.base}/v1/Alerts", auth=(SECRETS.twilio_account_sid, "wrong"))
    assert raw.status_code == 401
    assert raw.json() == {"code": 20003, "message": "Authenticate",
                          "more_info": "https://www.twilio.com/docs/errors/20003", "status": 401}
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "wrong-token-value")
    result = await run_twilio(twilio_settings(twilio_incident.base, token=Secret.env("TWILIO_AUTH_TOKEN")))
    dumped = assert_clean(result)
    assert result.status is Status.FAIL
    assert "HTTP 401" in result.summary and "20003" in result.summary
    assert "credentials rejected — check TWILIO_AUTH_TOKEN" in result.summary
    assert result.details["twilio_code"] == 20003
    assert "wrong-token-value" not in dumped


async def test_twilio_edge_and_region_env_cannot_redirect(twilio_incident: Running,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    result = await run_twilio(twilio_settings(twilio_incident.base))
    assert result.status is Status.FAIL and result.details["total"] > 20, result.summary


async def test_twilio_hostile_alert_text_is_defused(twilio_incident: Running) -> None:
    adapter = TwilioAdapter(twilio_settings(twilio_incident.base))
    try:
        collected = await adapter.error_alerts()
    finally:
        await adapter.aclose()
    hostile = [a for a in collected.alerts if "PWNED" in a.text]
    assert len(hostile) == 1 and hostile[0].error_code == "11217"
    assert "\x1b" not in hostile[0].text and "␛[2J" in hostile[0].text
    assert all("\x1b" not in a.text and "\x1b" not in a.request_url for a in collected.alerts)
    assert readable_alert_text("Msg=Bad+Gateway&httpResponse=502&ErrorCode=11200&LogLevel=ERROR") == (
        "Bad Gateway; httpResponse=502")


def test_twilio_messages_api_through_the_sdk(twilio_incident: Running) -> None:
    client = Client(SECRETS.twilio_account_sid, TWILIO_CANARY)
    client.api.base_url = twilio_incident.base
    messages = client.messages.list(limit=45, page_size=20)
    assert len(messages) == 45
    assert all(isinstance(m.date_sent, datetime) for m in messages)
    failed = [m for m in messages if m.status in ("failed", "undelivered")]
    assert failed and all(isinstance(m.error_code, int) for m in failed)
    assert client.messages(messages[0].sid).fetch().sid == messages[0].sid
    raw = httpx.get(f"{twilio_incident.base}/2010-04-01/Accounts/{SECRETS.twilio_account_sid}/Messages.json",
                    params={"PageSize": 2}, auth=(SECRETS.twilio_account_sid, TWILIO_CANARY)).json()
    assert raw["messages"][0]["date_created"].endswith("+0000")
    assert raw["next_page_uri"].startswith("/2010-04-01/Accounts/")


def test_twilio_code_table_covers_the_runbook_codes() -> None:
    needed = [*range(30001, 30011), 30034, 11200, 11205, 11206, 11210, 11217, 11321, 21211, 21408, 21610,
              21614, 20003, 20429]
    for code in needed:
        assert twilio_codes.lookup(code) is not None, code
        assert twilio_codes.lookup(str(code)) == twilio_codes.lookup(code)
    assert twilio_codes.is_webhook_failure("11217") and not twilio_codes.is_webhook_failure("30008")
    assert twilio_codes.is_transient(99999) is None


# -- fault matrix ---------------------------------------------------------------------------------
FAULTS: list[tuple[str, Fault | None, Status, str]] = [
    ("timeout", Fault("hang"), Status.FAIL, "did not answer within"),
    ("refused", None, Status.FAIL, "refused the connection"),
    ("401", Fault("status", status=401), Status.FAIL, "credentials rejected"),
    ("403", Fault("status", status=403), Status.FAIL, "HTTP 403"),
    ("404", Fault("status", status=404), Status.FAIL, "HTTP 404"),
    ("429", Fault("status", status=429, retry_after="30"), Status.WARN, "rate limited, retry after 30 s"),
    ("500", Fault("status", status=500), Status.FAIL, "HTTP 500"),
    ("html", Fault("html"), Status.FAIL, "HTML page where JSON was expected"),
    ("truncated", Fault("truncated"), Status.FAIL, "invalid JSON"),
    ("huge", Fault("huge"), Status.FAIL, "MB"),
]


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


@pytest.mark.parametrize(("name", "fault", "status", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_twilio_fault_matrix(twilio_incident: Running, name: str, fault: Fault | None, status: Status,
                                   fragment: str) -> None:
    base = twilio_incident.base
    if fault is None:
        base = closed_port_url()
    else:
        twilio_incident.faults.set("twilio", fault)
    result = await run_twilio(twilio_settings(base, timeout_s=FAST if name == "timeout" else 5.0))
    assert_clean(result)
    assert result.status is status, result.summary
    assert fragment in result.summary
    assert result.summary.startswith(("HTTP ", "Twilio "))
    assert result.latency_ms is not None and result.latency_ms < 3000


class _EndlessJson(BaseHTTPRequestHandler):
    """Streams a never-ending JSON body with no Content-Length (HTTP/1.0, close-delimited)."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            self.wfile.write(b'{"alerts": [')
            for _ in range(400):  # ~6.5 MB unless the client hangs up first
                self.wfile.write(b'{"sid": "NO' + b"0" * 16_000 + b'"},')
        except (BrokenPipeError, ConnectionResetError):
            pass


async def test_twilio_body_cap_counts_bytes_without_content_length() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessJson)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        result = await run_twilio(twilio_settings(base))
    finally:
        server.shutdown()
        server.server_close()
    assert_clean(result)
    assert result.status is Status.FAIL
    assert result.summary == "Twilio sent more than 2.1 MB; stopped reading"
