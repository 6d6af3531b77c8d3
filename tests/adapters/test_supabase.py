"""SupabaseAdapter against the real Supabase simulators on loopback (no mocks of HTTP).

Covers the healthy and incident scenarios, the service-role key cases, secrets never leaking
into results, and a fault matrix (timeout, refused, 401/403/404/429/500, HTML, truncated
body, 5 MB body) for the four checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from opsconsole.adapters.supabase import (
    BackupsCheck,
    CpuCounters,
    SupabaseAdapter,
    cpu_busy_pct,
    decode_legacy_jwt,
    evaluate_backups,
    parse_backups,
    parse_metrics,
)
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets, make_legacy_jwt
from opsconsole.demo.sim import Fault, FaultPlan, Simulator
from opsconsole.demo.sims.supabase import build_management, build_project
from opsconsole.domain.backups import Backup, BackupInventory, PitrWindow
from opsconsole.domain.models import CheckResult, Status
from opsconsole.settings import ChecksSettings, Secret, Settings, SupabaseSettings
from tests.adapters.helpers import closed_port_url

HEALTHY = DemoSecrets.for_scenario("healthy")
INCIDENT = DemoSecrets.for_scenario("incident")
SB_SECRET = "sb_secret_CANARYzq7Wv0ExampleNotReal_4242"
SB_PUBLISHABLE = "sb_publishable_DemoPublishableNotReal_1717"
TIMEOUT_S = 0.6
ALL_SECRETS = (HEALTHY.service_role_key, INCIDENT.service_role_key, HEALTHY.supabase_access_token, SB_SECRET)


@dataclass
class Env:
    plan: FaultPlan
    mgmt: Simulator
    project: Simulator
    secrets: DemoSecrets


@pytest.fixture(scope="module")
def envs() -> Iterator[dict[str, Env]]:
    started: dict[str, Env] = {}
    for scenario, secrets in (("healthy", HEALTHY), ("incident", INCIDENT)):
        plan = FaultPlan()
        mgmt = build_management(plan, scenario, secrets)
        project = build_project(plan, scenario, secrets, secret_key=SB_SECRET, publishable_key=SB_PUBLISHABLE)
        mgmt.start()
        project.start()
        started[scenario] = Env(plan, mgmt, project, secrets)
    yield started
    for env in started.values():
        env.mgmt.stop()
        env.project.stop()


@pytest.fixture
def healthy(envs: dict[str, Env]) -> Iterator[Env]:
    yield envs["healthy"]
    envs["healthy"].plan.clear()


@pytest.fixture
def incident(envs: dict[str, Env]) -> Iterator[Env]:
    yield envs["incident"]
    envs["incident"].plan.clear()


DEFAULT = "<scenario default>"


def as_secret(value: Secret | str | None, default: str) -> Secret | None:
    """A literal Secret from a str (DEFAULT: the scenario's own value); a Secret or None as given."""
    if isinstance(value, str):
        return Secret.literal(default if value == DEFAULT else value)
    return value


def make_settings(env: Env, *, key: Secret | str | None = DEFAULT, token: Secret | str | None = DEFAULT,
                  api_url: str | None = None, management_url: str | None = None,
                  timeout_s: float = TIMEOUT_S) -> Settings:
    return Settings(
        supabase=SupabaseSettings(
            project_ref=PROJECT_REF,
            api_url=api_url or env.project.base_url,
            management_url=management_url or env.mgmt.base_url,
            access_token=as_secret(token, env.secrets.supabase_access_token),
            service_role_key=as_secret(key, env.secrets.service_role_key),
        ),
        checks=ChecksSettings(timeout_s=timeout_s),
    )


def assert_clean(result: CheckResult) -> None:
    """No secret (nor any 12-character piece of one) and no traceback in what the operator sees."""
    blob = json.dumps(result.to_json()) + repr(result)
    for secret in ALL_SECRETS:
        for i in range(len(secret) - 11):
            assert secret[i:i + 12] not in blob, f"secret fragment leaked in {result.id}: {result.summary}"
    assert "Traceback" not in blob
    assert result.summary.strip()


async def run_check(settings: Settings, check_id: str, **kwargs: float) -> CheckResult:
    adapter = SupabaseAdapter(settings, **kwargs)
    try:
        check = next(c for c in adapter.checks() if c.id == check_id)
        result = await check.run()
    finally:
        await adapter.aclose()
    assert_clean(result)
    return result


def metrics_scrapes(env: Env) -> int:
    return sum(1 for _, path in env.project.requests if path.startswith("/customer/"))


# -- healthy / incident ----------------------------------------------------------------------

async def test_healthy_round_is_all_ok(healthy: Env) -> None:
    adapter = SupabaseAdapter(make_settings(healthy, timeout_s=3))
    try:
        assert adapter.system == "supabase"
        assert [c.id for c in adapter.checks()] == ["supabase.health", "supabase.resources",
                                                   "supabase.service_key", "backups.latest"]
        results = {c.id: await c.run() for c in adapter.checks()}
    finally:
        await adapter.aclose()
    for r in results.values():
        assert_clean(r)
        assert r.status is Status.OK, (r.id, r.summary)
    assert results["supabase.health"].summary == "db, pooler, rest, auth: all ACTIVE_HEALTHY"
    res = results["supabase.resources"]
    assert 15 <= res.details["cpu_pct"] <= 35
    assert res.details["disk_pct"].keys() == {"/", "/data"}
    assert res.details["connections"] == 23 and res.details["max_connections"] == 120
    assert "PITR on" in results["backups.latest"].summary
    assert results["backups.latest"].system == "backups"
    assert results["backups.latest"].details["newest_completed_age_h"] < 24
    assert "accepted" in results["supabase.service_key"].summary


async def test_incident_health_names_the_broken_services(incident: Env) -> None:
    r = await run_check(make_settings(incident), "supabase.health")
    assert r.status is Status.FAIL
    assert "pooler UNHEALTHY" in r.summary and "rest COMING_UP" in r.summary
    assert r.details["services"]["pooler"]["error"]
    assert r.details["project_status"] == "ACTIVE_UNHEALTHY"


async def test_incident_resources_cpu_rate_from_two_scrapes(incident: Env) -> None:
    before = metrics_scrapes(incident)
    r = await run_check(make_settings(incident, timeout_s=5), "supabase.resources")
    assert metrics_scrapes(incident) - before == 2  # first round: a second scrape for the rate
    assert r.status is Status.FAIL
    assert 90 < r.details["cpu_pct"] < 99
    assert r.summary.startswith("CPU 9") and "kill long-running queries" in r.summary
    assert 83 <= r.details["mem_pct"] <= 87
    assert r.details["disk_pct"]["/data"] == pytest.approx(70, abs=1)
    assert r.details["connections"] == 114 and r.details["max_connections"] == 120


async def test_resources_keeps_previous_scrape_between_rounds(healthy: Env) -> None:
    adapter = SupabaseAdapter(make_settings(healthy, timeout_s=5))
    check = next(c for c in adapter.checks() if c.id == "supabase.resources")
    try:
        first = await check.run()
        await asyncio.sleep(1.05)
        before = metrics_scrapes(healthy)
        started = time.monotonic()
        second = await check.run()
        elapsed = time.monotonic() - started
    finally:
        await adapter.aclose()
    assert first.details["cpu_pct"] is not None
    assert metrics_scrapes(healthy) - before == 1 and elapsed < 0.9  # the rate used the stored scrape
    assert 15 <= second.details["cpu_pct"] <= 35


async def test_resources_reports_no_cpu_number_when_counters_stand_still(healthy: Env) -> None:
    """An endpoint that serves a cached exposition gives no rate: UNKNOWN, not a made-up figure."""
    async with httpx.AsyncClient() as client:
        frozen = (await client.get(healthy.project.base_url + "/customer/v1/privileged/metrics",
                                   auth=("service_role", healthy.secrets.service_role_key))).text
    healthy.plan.set("supabase-project", Fault("status", status=200, body=frozen, path="/customer/"))
    adapter = SupabaseAdapter(make_settings(healthy, timeout_s=3), cpu_sample_s=0.2)
    check = next(c for c in adapter.checks() if c.id == "supabase.resources")
    try:
        stale = await check.run()
        healthy.plan.clear()
        await asyncio.sleep(0.3)
        live = await check.run()  # the frozen scrape is kept as the baseline
    finally:
        await adapter.aclose()
    assert_clean(stale)
    assert stale.status is Status.UNKNOWN and stale.details["cpu_pct"] is None
    assert "counters did not advance" in stale.summary and "RAM 46%" in stale.summary
    assert live.status is Status.OK and 15 <= live.details["cpu_pct"] <= 35


async def test_incident_backups_stale_and_last_failed(incident: Env) -> None:
    r = await run_check(make_settings(incident), "backups.latest")
    assert r.status is Status.WARN
    assert "40 h ago" in r.summary and "FAILED" in r.summary and "PITR off" in r.summary
    assert r.details["backups"][0]["status"] == "FAILED"
    assert set(r.details["backups"][0]) == {"id", "status", "inserted_at", "physical"}


async def test_list_backups_returns_domain_objects(healthy: Env) -> None:
    adapter = SupabaseAdapter(make_settings(healthy))
    try:
        listing = await adapter.list_backups()
    finally:
        await adapter.aclose()
    assert listing.ok and listing.inventory is not None
    inv = listing.inventory
    assert len(inv.backups) == 7 and all(b.completed and b.is_physical for b in inv.backups)
    assert inv.backups == tuple(sorted(inv.backups, key=lambda b: b.inserted_at, reverse=True))
    assert inv.pitr_enabled and inv.pitr_window is not None and inv.pitr_window.earliest is not None


# -- service-role key ------------------------------------------------------------------------

def days_from_now(days: float) -> int:
    return int(time.time() + days * 86400)


async def test_key_expiring_within_14_days_warns(incident: Env) -> None:
    r = await run_check(make_settings(incident), "supabase.service_key")
    assert r.status is Status.WARN
    assert "expires in 5 days" in r.summary
    assert r.details["probed"] is True and r.details["probe_status"] == 200


async def test_key_expired_fails_without_probe(healthy: Env) -> None:
    key = make_legacy_jwt(PROJECT_REF, "service_role", days_from_now(-2))
    before = len(healthy.project.requests)
    r = await run_check(make_settings(healthy, key=key), "supabase.service_key")
    assert r.status is Status.FAIL and "expired 48 h ago" in r.summary
    assert len(healthy.project.requests) == before


@pytest.mark.parametrize(("ref", "role", "expected"), [
    ("otherprojectrefxyzab", "service_role", "key is for project otherprojectrefxyzab, not " + PROJECT_REF),
    (PROJECT_REF, "anon", "this is not a service-role key (role anon)"),
])
async def test_key_wrong_ref_or_role_fails(healthy: Env, ref: str, role: str, expected: str) -> None:
    key = make_legacy_jwt(ref, role, days_from_now(365))
    r = await run_check(make_settings(healthy, key=key), "supabase.service_key")
    assert r.status is Status.FAIL
    assert expected in r.summary


async def test_key_rejected_by_rest_endpoint(healthy: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Signed with another JWT secret: as after a JWT-secret rotation. Claims look fine locally.
    key = make_legacy_jwt(PROJECT_REF, "service_role", days_from_now(365), secret="rotated-secret")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    settings = make_settings(healthy, key=Secret.env("SUPABASE_SERVICE_ROLE_KEY"))
    r = await run_check(settings, "supabase.service_key")
    assert r.status is Status.FAIL
    assert "rejected" in r.summary and "rotated or revoked?" in r.summary
    assert "check SUPABASE_SERVICE_ROLE_KEY" in r.summary and "Invalid API key" in r.summary
    assert r.details["key"] == key[:4] + f"…({len(key)} chars)"


async def test_sb_secret_key_accepted(healthy: Env) -> None:
    r = await run_check(make_settings(healthy, key=SB_SECRET), "supabase.service_key")
    assert r.status is Status.OK
    assert "sb_secret_ key (no expiry) accepted" in r.summary
    assert r.details["kind"] == "secret" and r.details["key"] == "sb_s…(41 chars)"


async def test_unknown_sb_secret_key_rejected(healthy: Env) -> None:
    r = await run_check(make_settings(healthy, key="sb_secret_" + "Z" * 31), "supabase.service_key")
    assert r.status is Status.FAIL and "rotated or revoked?" in r.summary


async def test_publishable_key_is_not_a_service_key(healthy: Env) -> None:
    r = await run_check(make_settings(healthy, key=SB_PUBLISHABLE), "supabase.service_key")
    assert r.status is Status.FAIL and "publishable key" in r.summary


async def test_secret_echoed_by_service_is_redacted(healthy: Env) -> None:
    key = healthy.secrets.service_role_key
    healthy.plan.set("supabase-project", Fault("status", status=401, path="/rest/v1",
                                               body=json.dumps({"message": f"bad key {key}"})))
    r = await run_check(make_settings(healthy), "supabase.service_key")  # assert_clean checks the leak
    assert r.status is Status.FAIL and "[redacted]" in r.summary


async def test_metrics_use_the_service_key_too(healthy: Env) -> None:
    r = await run_check(make_settings(healthy, key=SB_SECRET, timeout_s=3), "supabase.resources")
    assert r.status is Status.OK


# -- not configured / unavailable ------------------------------------------------------------

async def test_not_configured_is_off(healthy: Env) -> None:
    no_token = make_settings(healthy, token=None, key=None)
    for check_id in ("supabase.health", "supabase.resources", "supabase.service_key", "backups.latest"):
        r = await run_check(no_token, check_id)
        assert r.status is Status.OFF and r.summary.startswith("not configured:")
    assert (await run_check(no_token, "supabase.health")).summary == "not configured: access_token"
    adapter = SupabaseAdapter(Settings())
    assert {(await c.run()).status for c in adapter.checks()} == {Status.OFF}
    await adapter.aclose()


async def test_missing_env_secret_is_a_clear_failure(healthy: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSC_TEST_MISSING", raising=False)
    missing = Secret.env("OPSC_TEST_MISSING")
    settings = make_settings(healthy, token=missing, key=missing)
    for check_id in ("supabase.health", "supabase.service_key", "backups.latest"):
        r = await run_check(settings, check_id)
        assert r.status is Status.FAIL and "OPSC_TEST_MISSING is not set" in r.summary


# -- fault matrix ----------------------------------------------------------------------------

TARGET = {  # check -> (simulator service, path prefix the fault applies to)
    "supabase.health": ("supabase-mgmt", "/v1/projects"),
    "supabase.resources": ("supabase-project", "/customer/"),
    "supabase.service_key": ("supabase-project", "/rest/v1"),
    "backups.latest": ("supabase-mgmt", "/v1/projects"),
}
TRUNCATED_METRICS = '# TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu="0",mo'

FAULTS: dict[str, tuple[Fault | None, Status, tuple[str, ...]]] = {
    "timeout": (Fault("hang", delay_s=3), Status.FAIL, ("did not answer within",)),
    "refused": (None, Status.FAIL, ("refused the connection", "127.0.0.1:")),
    "401": (Fault("status", status=401), Status.FAIL, ("401", "rejected")),
    "403": (Fault("status", status=403), Status.FAIL, ("403",)),
    "404": (Fault("status", status=404), Status.FAIL, ("404", "not found")),
    "429": (Fault("status", status=429, retry_after="30"), Status.WARN, ("429", "rate limited", "30 s")),
    "500": (Fault("status", status=500), Status.FAIL, ("HTTP 500", "server error")),
    "html": (Fault("html"), Status.FAIL, ("HTML page",)),
    "truncated": (Fault("truncated"), Status.FAIL, ("invalid JSON",)),
    "huge": (Fault("huge"), Status.FAIL, ("MB",)),
}
SPECIFIC = {  # wording that differs for one check
    ("supabase.service_key", "401"): ("rotated or revoked?", "check the literal secret"),
    ("supabase.service_key", "403"): ("this is not a service-role key",),
    ("supabase.resources", "truncated"): ("unreadable Prometheus text",),
}


MATRIX = [(check_id, fault_name) for check_id in TARGET for fault_name in FAULTS]
MATRIX.append(("supabase.resources", "garbled"))  # exposition text that is not Prometheus at all


@pytest.mark.parametrize(("check_id", "fault_name"), MATRIX)
async def test_fault_matrix(healthy: Env, check_id: str, fault_name: str) -> None:
    service, path = TARGET[check_id]
    words: tuple[str, ...]
    if fault_name == "garbled":
        garbage = "\x00\x1b[31m not prometheus at all {{{"
        fault: Fault | None = Fault("status", status=200, body=garbage, path=path)
        expected_status, words = Status.FAIL, ("unreadable Prometheus text",)
    else:
        fault, expected_status, words = FAULTS[fault_name]
        if check_id == "supabase.resources" and fault_name == "truncated":
            fault = Fault("truncated", body=TRUNCATED_METRICS)
    settings = make_settings(healthy)
    if fault_name == "refused":
        url = closed_port_url()
        settings = (make_settings(healthy, management_url=url) if service == "supabase-mgmt"
                    else make_settings(healthy, api_url=url))
    elif fault is not None:
        healthy.plan.set(service, dataclasses.replace(fault, path=path))
    started = time.monotonic()
    r = await run_check(settings, check_id)
    print(f"{check_id:22} {fault_name:9} {r.status.value:5} {r.summary}")
    assert time.monotonic() - started < TIMEOUT_S + 3.0  # bounded by the timeout (with room for a loaded machine)
    assert r.status is expected_status, r.summary
    for word in SPECIFIC.get((check_id, fault_name), words):
        assert word in r.summary, r.summary
    assert "\x1b" not in r.summary and "\x00" not in r.summary


# -- simulator contract (what the adapter relies on) -----------------------------------------

def test_management_sim_auth_and_shapes(healthy: Env) -> None:
    base = healthy.mgmt.base_url + f"/v1/projects/{PROJECT_REF}"
    auth = {"Authorization": f"Bearer {healthy.secrets.supabase_access_token}"}
    assert httpx.get(base).status_code == 401
    wrong = httpx.get(base, headers={"Authorization": "Bearer sbp_wrong"})
    assert wrong.status_code == 401 and wrong.json() == {"message": "Unauthorized"}
    assert httpx.get(base, headers=auth).json()["status"] == "ACTIVE_HEALTHY"
    unknown = healthy.mgmt.base_url + "/v1/projects/abcdefghijklmnopqrst"
    assert httpx.get(unknown, headers=auth).status_code == 404
    assert httpx.get(base + "/health", headers=auth).status_code == 400  # services is required
    repeated: list[tuple[str, str | int | float | bool | None]] = [("services", "db"), ("services", "auth")]
    items = httpx.get(base + "/health", params=repeated, headers=auth).json()
    assert [i["name"] for i in items] == ["db", "auth"] and all(i["healthy"] for i in items)
    body = httpx.get(base + "/database/backups", headers=auth).json()
    assert {"region", "walg_enabled", "pitr_enabled", "backups", "physical_backup_data"} <= body.keys()


def test_project_sim_key_rules(healthy: Env) -> None:
    root = healthy.project.base_url + "/rest/v1/"
    service_jwt = healthy.secrets.service_role_key
    missing = httpx.get(root)
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    bad = httpx.get(root, headers={"apikey": "nope"})
    assert bad.status_code == 401 and bad.json()["message"] == "Invalid API key"
    assert httpx.get(root, headers={"apikey": service_jwt, "Authorization": f"Bearer {service_jwt}"}).json()[
        "swagger"] == "2.0"
    anon = make_legacy_jwt(PROJECT_REF, "anon", days_from_now(30))
    assert httpx.get(root, headers={"apikey": anon}).status_code == 403
    assert httpx.get(root, headers={"apikey": SB_PUBLISHABLE}).status_code == 403
    assert httpx.get(root, headers={"apikey": SB_SECRET}).status_code == 200
    as_bearer = httpx.get(root, headers={"apikey": SB_SECRET, "Authorization": f"Bearer {SB_SECRET}"})
    assert as_bearer.status_code == 401 and as_bearer.json()["code"] == "PGRST301"
    other_ref = make_legacy_jwt("otherprojectrefxyzab", "service_role", days_from_now(30))
    assert httpx.get(root, headers={"apikey": other_ref}).status_code == 401
    metrics = healthy.project.base_url + "/customer/v1/privileged/metrics"
    assert httpx.get(metrics).status_code == 401
    assert httpx.get(metrics, auth=("service_role", "wrong")).status_code == 401
    text = httpx.get(metrics, auth=("service_role", service_jwt)).text
    assert 'mountpoint="/data"' in text and f'supabase_project_ref="{PROJECT_REF}"' in text


# -- pure parts ------------------------------------------------------------------------------

def test_cpu_rate_needs_advancing_counters() -> None:
    a = CpuCounters(at=0.0, idle=100.0, total=200.0, cpus=2)
    assert cpu_busy_pct(a, a) is None
    assert cpu_busy_pct(a, CpuCounters(at=1.0, idle=100.5, total=202.0, cpus=2)) == pytest.approx(75.0)


def test_metrics_for_another_project_are_ignored() -> None:
    text = 'pg_up{supabase_project_ref="otherprojectrefxyzab"} 1\n'
    parsed = parse_metrics(text, PROJECT_REF, 0.0)
    assert not isinstance(parsed, str)
    assert parsed.samples == 0 and parsed.foreign_refs == {"otherprojectrefxyzab"}


def test_decode_legacy_jwt() -> None:
    claims = decode_legacy_jwt(HEALTHY.service_role_key)
    assert claims is not None and claims.role == "service_role" and claims.ref == PROJECT_REF
    assert decode_legacy_jwt("not-a-jwt") is None and decode_legacy_jwt("a.b.c") is None


def _inventory(*backups: tuple[float, str], pitr: bool = False,
               pitr_latest_h: float | None = None) -> BackupInventory:
    """Backups given as (age in hours, status)."""
    now = datetime.now(UTC)
    items = tuple(Backup(id=n, status=s, inserted_at=now - timedelta(hours=h), is_physical=True)
                  for n, (h, s) in enumerate(sorted(backups)))
    window = None
    if pitr_latest_h is not None:
        window = PitrWindow(earliest=now - timedelta(days=7), latest=now - timedelta(hours=pitr_latest_h))
    return BackupInventory(region="eu-central-1", walg_enabled=True, pitr_enabled=pitr, backups=items,
                           pitr_window=window)


@pytest.mark.parametrize(("inventory", "status", "words"), [
    (_inventory((5, "COMPLETED")), Status.OK, ("5 h ago", "PITR off")),
    (_inventory((30, "COMPLETED")), Status.WARN, ("30 h ago", ">26 h")),
    (_inventory((50, "COMPLETED")), Status.FAIL, ("50 h ago", ">48 h")),
    (_inventory(), Status.FAIL, ("no completed backup",)),
    (_inventory((3, "FAILED"), (20, "COMPLETED")), Status.WARN, ("last backup FAILED",)),
    (_inventory(pitr=True, pitr_latest_h=0.1), Status.OK, ("PITR latest point", "PITR on (7.0 d window)")),
])
def test_backup_thresholds(inventory: BackupInventory, status: Status, words: tuple[str, ...]) -> None:
    r = evaluate_backups(BackupsCheck(SupabaseAdapter(Settings())), inventory, None)
    assert r.status is status, r.summary
    for word in words:
        assert word in r.summary, r.summary


def test_parse_backups_tolerates_bad_entries() -> None:
    good = {"id": 1, "status": "COMPLETED", "inserted_at": "2026-01-01T00:00:00Z", "is_physical_backup": True}
    inv = parse_backups({"region": "x", "walg_enabled": True, "pitr_enabled": False,
                         "physical_backup_data": {}, "backups": [good, {"id": "x"}, 7]})
    assert isinstance(inv, BackupInventory) and len(inv.backups) == 1 and inv.unreadable == 2
    assert parse_backups([]) == "expected an object"
