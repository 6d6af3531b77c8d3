"""A live check of a vendor status page (Atlassian Statuspage JSON, `/api/v2/summary.json`).

The runbook's first step is often "is it them or us?": this answers it with the vendor's own
indicator, the components it reports as not operational and its open incidents. Every text
taken from the page goes through `printable`, because the page is not under our control.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsconsole.adapters.http import HttpOutcome, fetch, new_client
from opsconsole.domain.models import CheckResult, Status
from opsconsole.domain.text import printable

SUMMARY_PATH = "/api/v2/summary.json"

_INDICATOR_STATUS: dict[str, Status] = {
    "none": Status.OK,
    "minor": Status.WARN,
    "maintenance": Status.WARN,
    "major": Status.FAIL,
    "critical": Status.FAIL,
}
_OPEN_MAINTENANCE = ("in_progress", "verifying")


def new_status_client(timeout_s: float = 5.0) -> httpx.AsyncClient:
    """A client for status pages: no credentials, since the pages are public."""
    return new_client(timeout_s=timeout_s)


def _text(value: Any, limit: int = 120) -> str:
    return printable(str(value), single_line=True, limit=limit) if value is not None else ""


def _degraded(components: Any) -> list[dict[str, str]]:
    """Components not operational; group rows only when none of their members are listed."""
    if not isinstance(components, list):
        return []
    rows = [c for c in components if isinstance(c, dict) and c.get("status") not in (None, "operational")]
    leaves = [c for c in rows if not c.get("group")]
    return [{"name": _text(c.get("name"), 60), "status": _text(c.get("status"), 40)}
            for c in (leaves or rows)]


def _incidents(incidents: Any) -> list[dict[str, str]]:
    if not isinstance(incidents, list):
        return []
    out: list[dict[str, str]] = []
    for inc in incidents:
        if not isinstance(inc, dict) or inc.get("status") in ("resolved", "postmortem"):
            continue
        updates = inc.get("incident_updates")
        latest = updates[0] if isinstance(updates, list) and updates and isinstance(updates[0], dict) else {}
        out.append({
            "name": _text(inc.get("name")),
            "status": _text(inc.get("status"), 40),
            "impact": _text(inc.get("impact"), 40),
            "updated_at": _text(inc.get("updated_at"), 40),
            "update": printable(str(latest.get("body") or ""), limit=500),
            "shortlink": _text(inc.get("shortlink"), 200),
        })
    return out


def _maintenances(items: Any) -> list[dict[str, str]]:
    if not isinstance(items, list):
        return []
    return [{"name": _text(m.get("name")), "status": _text(m.get("status"), 40),
             "scheduled_for": _text(m.get("scheduled_for"), 40),
             "scheduled_until": _text(m.get("scheduled_until"), 40)}
            for m in items if isinstance(m, dict)]


class StatusPageCheck:
    """`check_id` e.g. "supabase.status_page"; pass `client=None` to let the check own one."""

    def __init__(self, check_id: str, system: str, title: str, base_url: str,
                 client: httpx.AsyncClient | None, timeout_s: float) -> None:
        self.id = check_id
        self.system = system
        self.title = title
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._owns_client = client is None
        self._client = client if client is not None else new_status_client(timeout_s)

    @property
    def url(self) -> str:
        return self.base_url + SUMMARY_PATH

    async def aclose(self) -> None:
        """Close the client only when this check created it."""
        if self._owns_client:
            await self._client.aclose()

    def _result(self, status: Status, summary: str, outcome: HttpOutcome,
                details: dict[str, Any] | None = None) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status,
                           summary=summary, latency_ms=outcome.latency_ms,
                           details={"url": self.url, **(details or {})})

    async def run(self) -> CheckResult:
        outcome = await fetch(self._client, self.url, service=f"{self.title} ({_host(self.base_url)})",
                              timeout_s=self.timeout_s)
        if outcome.problem is not None:
            problem = outcome.problem
            if outcome.kind == "http" and outcome.status_code in (401, 403):
                problem = (f"HTTP {outcome.status_code} from {self.title}: a public page asked for "
                           "credentials — a proxy or firewall in between, or a wrong status page URL?")
            return self._result(outcome.status, problem, outcome,
                                {"http_status": outcome.status_code, "error": outcome.kind})
        data = outcome.data
        status_block = data.get("status") if isinstance(data, dict) else None
        if not isinstance(status_block, dict) or not isinstance(status_block.get("indicator"), str):
            return self._result(Status.FAIL, f"{self.title}: the answer is not a Statuspage summary "
                                             "(no status.indicator) — check the status page URL", outcome,
                                {"http_status": outcome.status_code})
        assert isinstance(data, dict)
        indicator = _text(status_block["indicator"], 20)
        description = _text(status_block.get("description"), 80)
        degraded = _degraded(data.get("components"))
        incidents = _incidents(data.get("incidents"))
        maintenances = [m for m in _maintenances(data.get("scheduled_maintenances"))
                        if m["status"] in _OPEN_MAINTENANCE]
        status = _INDICATOR_STATUS.get(indicator, Status.UNKNOWN)
        if status is Status.OK and degraded:
            status = Status.WARN  # the page has not caught up with its own components yet
        details: dict[str, Any] = {
            "http_status": outcome.status_code, "indicator": indicator, "description": description,
            "degraded_components": degraded, "incidents": incidents, "maintenances": maintenances,
        }
        return self._result(status, _summary(indicator, description, degraded, incidents, maintenances),
                            outcome, details)


def _host(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def _summary(indicator: str, description: str, degraded: list[dict[str, str]],
             incidents: list[dict[str, str]], maintenances: list[dict[str, str]]) -> str:
    """E.g. "Minor: Connection Pooler degraded_performance; 1 open incident: <name>"."""
    if indicator == "none" and not degraded and not incidents:
        return description or "All Systems Operational"
    head = indicator.capitalize() if indicator in _INDICATOR_STATUS else f"Indicator {indicator!r}"
    parts: list[str] = []
    if degraded:
        shown = ", ".join(f"{c['name']} {c['status']}" for c in degraded[:3])
        more = f" (+{len(degraded) - 3} more)" if len(degraded) > 3 else ""
        parts.append(shown + more)
    elif description:
        parts.append(description)
    if incidents:
        noun = "incident" if len(incidents) == 1 else "incidents"
        parts.append(f"{len(incidents)} open {noun}: {printable(incidents[0]['name'], limit=70)}")
    if maintenances:
        parts.append(f"maintenance in progress: {printable(maintenances[0]['name'], limit=60)}")
    return f"{head}: " + "; ".join(parts)
