"""`n8n.credentials` through the real adapter against the n8n simulator: n8n itself tests each credential
the watched workflows' nodes use. Every outcome (ok, fail with n8n's own message, no endpoint: 404/405,
missing scope: 403) and the fault matrix, on every path and on the test endpoint alone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsconsole.adapters.n8n import N8nAdapter
from opsconsole.demo.sim import Fault
from opsconsole.demo.sims import n8n as n8n_sim
from opsconsole.domain.models import CheckResult, Status
from tests.adapters.helpers import closed_port_url
from tests.adapters.n8n_twilio import FAST, FAULTS, N8N_CANARY, Running, assert_clean, get, running
from tests.adapters.test_n8n import control, n8n_settings

MANUAL = "/home/credentials"


@pytest.fixture
def incident() -> Iterator[Running]:
    with running(n8n_sim.build, "incident") as r:
        yield r


@pytest.fixture
def healthy() -> Iterator[Running]:
    with running(n8n_sim.build, "healthy") as r:
        yield r


async def run_credentials(base: str, **kwargs: Any) -> CheckResult:
    adapter = N8nAdapter(n8n_settings(base, **kwargs))
    try:
        _executions, check = adapter.checks()
        assert (check.id, check.system, check.title) == ("n8n.credentials", "n8n", "n8n credentials")
        return await check.run()
    finally:
        await adapter.aclose()


def _no_credential_data_read(r: Running) -> None:
    """Only the test endpoint is called: never the credential listing, a credential or its schema."""
    paths = [(m, p) for m, p in r.sim.requests if "/credentials" in p]
    assert paths and all(m == "POST" and p.endswith("/test") for m, p in paths), paths


async def test_broken_supabase_credential_fails_with_n8ns_own_message_named_first(incident: Running) -> None:
    result = await run_credentials(incident.base)
    dumped = assert_clean(result)
    assert result.status is Status.FAIL
    assert result.summary.startswith("Supabase prod (service role) · supabaseApi fails n8n's own test: "
                                     "Authorization failed - please check your credentials (401: JWT expired)")
    assert "(3 ok)" in result.summary and MANUAL in result.summary
    rows = result.details["credentials"]
    assert [r["type"] for r in rows[:2]] == ["supabaseApi", "postgres"]  # Supabase and Postgres first
    assert [r["status"] for r in rows] == ["fail", "ok", "ok", "ok"]
    assert rows[0]["used_by"] == "Supabase → CRM sync" and rows[1]["message"] == "Connection successful!"
    assert result.details["manual"].endswith(MANUAL)
    _no_credential_data_read(incident)
    assert "password" not in dumped.lower() and '"data"' not in dumped


async def test_healthy_credentials_pass(healthy: Running) -> None:
    result = await run_credentials(healthy.base)
    assert_clean(result)
    assert result.status is Status.OK, result.summary
    assert result.summary == ("4 credentials pass n8n's own test: Supabase prod (service role), Campaign DB "
                              "(Supabase Postgres), CRM API key, Twilio main account")
    _no_credential_data_read(healthy)


async def test_a_refused_database_is_reported_with_n8ns_message(healthy: Running) -> None:
    control(healthy.base, "/credentials/pgCampaignDb4w8Z/break", {"message": "connect ECONNREFUSED 10.20.0.5:5432"})
    result = await run_credentials(healthy.base)
    assert result.status is Status.FAIL
    assert result.summary.startswith("Campaign DB (Supabase Postgres) · postgres fails n8n's own test: "
                                     "connect ECONNREFUSED 10.20.0.5:5432")
    control(healthy.base, "/credentials/pgCampaignDb4w8Z/fix")
    assert (await run_credentials(healthy.base)).status is Status.OK


async def test_fixing_the_credential_in_n8n_turns_the_check_ok(incident: Running) -> None:
    assert (await run_credentials(incident.base)).status is Status.FAIL
    control(incident.base, "/credentials/sbProdSvcRole7Kq/fix")
    state = get(f"{incident.base}/__sim/n8n/state").json()
    assert not any(c["broken"] for c in state["credentials"])
    assert (await run_credentials(incident.base)).status is Status.OK


def test_the_demo_credentials_page_says_how_to_fix_one(incident: Running) -> None:
    page = get(f"{incident.base}{MANUAL}")  # where the runbook's link leads, no API key
    assert page.status_code == 200 and "sbProdSvcRole7Kq  Supabase prod (service role)" in page.text
    assert "BROKEN: Authorization failed" in page.text
    assert f"curl -X POST {incident.base}/__sim/n8n/credentials/sbProdSvcRole7Kq/fix" in page.text
    assert N8N_CANARY not in page.text


async def test_empty_watch_list_tests_the_credentials_of_every_active_workflow(incident: Running) -> None:
    result = await run_credentials(incident.base, workflows=())
    names = [r["credential"] for r in result.details["credentials"]]
    assert "Digest mailer (SMTP)" in names  # workflow 1003, active though not a sync
    assert "Airtable (old)" not in names  # its workflow is archived (inactive): it runs nothing
    assert result.details["watched_workflows"] == "all active"


@pytest.mark.parametrize("status", [404, 405])
async def test_an_n8n_without_the_test_endpoint_is_unknown_not_fail(incident: Running, status: int) -> None:
    control(incident.base, "/features", {"credential_test": False, "credential_test_status": status})
    result = await run_credentials(incident.base)
    assert_clean(result)
    assert result.status is Status.UNKNOWN, result.summary
    assert f"answered HTTP {status}" in result.summary and "releases before 2026" in result.summary
    assert "verify the 4 credential(s)" in result.summary and MANUAL in result.summary
    assert result.details["reason"] == "no_endpoint"


async def test_a_key_without_the_credential_read_scope_is_unknown_not_fail(incident: Running) -> None:
    control(incident.base, "/features", {"missing_scopes": ["credential:read"]})
    raw = _post(f"{incident.base}/api/v1/credentials/sbProdSvcRole7Kq/test")
    assert raw.status_code == 403 and raw.json() == {"message": "Forbidden"}
    result = await run_credentials(incident.base)
    assert_clean(result)
    assert result.status is Status.UNKNOWN, result.summary
    assert "credential:read scope" in result.summary and MANUAL in result.summary
    assert result.details["reason"] == "scope"


def _post(url: str) -> httpx.Response:
    """A direct probe of the simulator's test endpoint (sync on purpose: loopback, a few ms)."""
    return httpx.post(url, headers={"X-N8N-API-KEY": N8N_CANARY}, timeout=5.0)


async def test_a_deleted_credential_still_used_by_a_workflow_fails(healthy: Running) -> None:
    control(healthy.base, "/credentials/crmApiKey3Rt5Yu0/delete")  # the workflow still names it
    result = await run_credentials(healthy.base)
    assert result.status is Status.FAIL
    assert result.summary.startswith("CRM API key · httpHeaderAuth fails n8n's own test: not found in n8n")
    crm = next(r for r in result.details["credentials"] if r["id"] == "crmApiKey3Rt5Yu0")
    assert crm["status"] == "fail" and "not found in n8n" in crm["message"]


# -- fault matrix ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fault", "status", "fragment"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_credentials_fault_matrix(incident: Running, name: str, fault: Fault | None, status: Status,
                                        fragment: str) -> None:
    base = incident.base
    if fault is None:
        base = closed_port_url()
    else:
        incident.faults.set("n8n", fault)
    result = await run_credentials(base, timeout_s=FAST if name == "timeout" else 5.0)
    assert_clean(result)
    assert result.status is status, result.summary
    assert fragment in result.summary
    assert result.summary.startswith(("HTTP ", "n8n "))
    assert result.latency_ms is not None and result.latency_ms < 3000


# The same faults on the test endpoint alone: a missing endpoint or scope is UNKNOWN, the rest as above.
TEST_PATH = "/api/v1/credentials/"
ON_TEST_PATH: list[tuple[str, Fault, Status, str]] = [
    ("timeout", Fault("hang", path=TEST_PATH), Status.FAIL, "did not answer within"),
    ("401", Fault("status", status=401, path=TEST_PATH), Status.FAIL, "credentials rejected"),
    ("403", Fault("status", status=403, path=TEST_PATH), Status.UNKNOWN, "credential:read scope"),
    ("404", Fault("status", status=404, path=TEST_PATH), Status.UNKNOWN, "answered HTTP 404"),
    ("429", Fault("status", status=429, retry_after="30", path=TEST_PATH), Status.WARN, "rate limited"),
    ("500", Fault("status", status=500, path=TEST_PATH), Status.FAIL, "HTTP 500"),
    ("html", Fault("html", path=TEST_PATH), Status.FAIL, "HTML page where JSON was expected"),
    ("truncated", Fault("truncated", path=TEST_PATH), Status.FAIL, "invalid JSON"),
    ("huge", Fault("huge", path=TEST_PATH), Status.FAIL, "MB"),
]


@pytest.mark.parametrize(("name", "fault", "status", "fragment"), ON_TEST_PATH, ids=[f[0] for f in ON_TEST_PATH])
async def test_credentials_fault_matrix_on_the_test_endpoint(incident: Running, name: str, fault: Fault,
                                                             status: Status, fragment: str) -> None:
    incident.faults.set("n8n", fault)
    result = await run_credentials(incident.base, timeout_s=FAST if name == "timeout" else 5.0)
    assert_clean(result)
    assert result.status is status, result.summary
    assert fragment in result.summary
    assert result.status is not Status.OK
    assert result.latency_ms is not None and result.latency_ms < 3000
