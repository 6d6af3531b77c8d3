"""vercel.status_page and supabase.status_page (statuspage.io pages) against the real loopback
simulators: both scenarios, hostile vendor text, and the endpoints the adapter relies on. The
fault matrix they share with the other HTTP checks is in test_http.py.
"""

from __future__ import annotations

from opsconsole.adapters.http import fetch, new_client
from opsconsole.demo.sims import statuspage as statuspage_sim
from opsconsole.domain.models import Status
from tests.adapters.web_sims import WebEnv, run_check


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
async def test_healthy_scenario_is_ok(web_healthy: WebEnv) -> None:
    settings = web_healthy.settings()
    for check_id in ("vercel.status_page", "supabase.status_page"):
        page = await run_check(check_id, settings)
        assert page.status is Status.OK
        assert page.summary == "All Systems Operational"


async def test_incident_scenario(web_incident: WebEnv) -> None:
    settings = web_incident.settings()
    vercel_page = await run_check("vercel.status_page", settings)
    assert vercel_page.status is Status.OK

    supa = await run_check("supabase.status_page", settings)
    assert supa.status is Status.WARN
    assert supa.summary.startswith("Minor: Connection Pooler degraded_performance; 1 open incident")
    assert supa.details["degraded_components"] == [
        {"name": "Connection Pooler", "status": "degraded_performance"}]
    (inc,) = supa.details["incidents"]
    assert set(inc) >= {"name", "status", "impact", "updated_at"}


async def test_hostile_status_text_is_literal_and_printable(web_incident: WebEnv) -> None:
    supa = await run_check("supabase.status_page", web_incident.settings())
    (inc,) = supa.details["incidents"]
    assert "[bold red]x[/]" in supa.summary  # markup preserved, to be rendered literally
    assert inc["name"] == statuspage_sim.HOSTILE_NAME
    assert "\x1b" not in inc["update"]
    assert "␛[31mconnection timeouts␛[0m" in inc["update"]
    assert "[link=https://example.invalid]details[/link]" in inc["update"]


# --------------------------------------------------------------------------------------------
# simulator shapes (what the adapter relies on is what the real pages send)
# --------------------------------------------------------------------------------------------
async def test_status_page_sim_endpoints(web_incident: WebEnv) -> None:
    base = web_incident.url("supabase-status")
    async with new_client(timeout_s=2) as client:
        got = {name: await fetch(client, f"{base}/api/v2/{name}.json", service="sim")
               for name in ("status", "summary", "components", "incidents/unresolved")}
    assert got["status"].data["status"]["indicator"] == "minor"
    assert set(got["summary"].data) == {"page", "status", "components", "incidents", "scheduled_maintenances"}
    assert any(c["group"] for c in got["components"].data["components"])
    assert got["incidents/unresolved"].data["incidents"][0]["status"] == "identified"
