"""The Twilio adapter against its real loopback simulator (real sockets, real Twilio SDK).

Settings are built directly from the dataclasses with literal secrets from DemoSecrets (or env
secrets where the test needs a hint name). Every result is checked for the secret canaries
and for raw terminal escapes: expected failures must be readable data, never tracebacks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from twilio.rest import Client

from opsconsole.adapters.twilio import TwilioAdapter, readable_alert_text
from opsconsole.demo.sim import Fault
from opsconsole.demo.sims import twilio as twilio_sim
from opsconsole.domain import twilio_codes
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.settings import ChecksSettings, Secret, Settings, TwilioSettings
from tests.adapters.helpers import closed_port_url
from tests.adapters.n8n_twilio import (
    FAST,
    FAULTS,
    SECRETS,
    TWILIO_CANARY,
    Running,
    assert_clean,
    close,
    get,
    running,
)


@pytest.fixture
def twilio_incident() -> Iterator[Running]:
    with running(twilio_sim.build, "incident") as r:
        yield r


@pytest.fixture
def twilio_healthy() -> Iterator[Running]:
    with running(twilio_sim.build, "healthy") as r:
        yield r


def twilio_settings(base: str, *, token: Secret | None = None, timeout_s: float = 5.0) -> Settings:
    return Settings(twilio=TwilioSettings(account_sid=Secret.literal(SECRETS.twilio_account_sid),
                                          auth_token=token or Secret.literal(TWILIO_CANARY),
                                          api_url=base, monitor_url=base),
                    checks=ChecksSettings(timeout_s=timeout_s))


async def run_twilio(settings: Settings, **kwargs: Any) -> CheckResult:
    adapter = TwilioAdapter(settings, **kwargs)
    try:
        (check,) = adapter.checks()
        assert (check.id, check.system, check.title) == ("twilio.alerts", "twilio", "Twilio error alerts")
        return await check.run()
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
