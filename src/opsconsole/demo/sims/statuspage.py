"""Loopback simulators of the Supabase and Vercel status pages (Atlassian Statuspage JSON v2).

Serves `/api/v2/status.json`, `summary.json`, `components.json` and `incidents/unresolved.json`
with the shapes of apis.md §6. Scenarios:

- supabase, incident: indicator "minor", Connection Pooler degraded_performance and one open
  incident whose name and update text carry Rich markup and an ANSI escape, so the demo proves
  that the console shows vendor text literally.
- vercel: operational in both; in "incident" an upcoming scheduled maintenance is announced,
  which must not change the indicator (the deploy failure is ours, not Vercel's).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsconsole.demo.scenario import has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, iso, now

PAGES: dict[str, dict[str, Any]] = {
    "supabase": {
        "name": "Supabase", "url": "https://status.supabase.com",
        "groups": {"Supabase Cloud": ("API Gateway", "Auth", "Connection Pooler", "Database",
                                      "Edge Functions", "Realtime", "Storage")},
        "components": ("Analytics", "Dashboard", "Management API", "Support"),
    },
    "vercel": {
        "name": "Vercel", "url": "https://www.vercel-status.com",
        "groups": {"Git Integrations": ("GitHub", "GitLab", "Bitbucket")},
        "components": ("API", "Builds", "Dashboard", "Domains", "DNS", "Edge Network", "Edge Functions",
                       "Serverless Functions", "Logs", "Image Optimization"),
    },
}

DESCRIPTIONS = {"none": "All Systems Operational", "minor": "Minor Service Outage",
                "major": "Partial System Outage", "critical": "Major System Outage",
                "maintenance": "Service Under Maintenance"}
_RANK = ("operational", "under_maintenance", "degraded_performance", "partial_outage", "major_outage")

# Vendor text is untrusted: this incident carries Rich markup and a raw ANSI escape on purpose.
HOSTILE_NAME = "Elevated Connection Pooler errors in us-east-1 [bold red]x[/]"
HOSTILE_UPDATE = ("We have identified \x1b[31mconnection timeouts\x1b[0m on Supavisor nodes in us-east-1 and "
                  "are rolling out a fix. [link=https://example.invalid]details[/link]")


def _sid(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))


@dataclass
class PageState:
    page: dict[str, Any]
    indicator: str
    components: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    maintenances: list[dict[str, Any]]

    @property
    def status(self) -> dict[str, str]:
        return {"indicator": self.indicator, "description": DESCRIPTIONS[self.indicator]}


def _components(rng: random.Random, spec: dict[str, Any], page_id: str, since: str, updated: str,
                degraded: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def comp(name: str, position: int, group_id: str | None = None, group: bool = False) -> dict[str, Any]:
        return {"id": _sid(rng), "name": name, "status": degraded.get(name, "operational"),
                "created_at": since, "updated_at": updated if name in degraded else since,
                "position": position, "description": None, "showcase": not group and group_id is None,
                "start_date": None, "group_id": group_id, "page_id": page_id, "group": group,
                "only_show_if_degraded": False}

    position = 1
    for group_name, members in spec["groups"].items():
        group = comp(group_name, position, group=True)
        position += 1
        children = [comp(name, i + 1, group_id=group["id"]) for i, name in enumerate(members)]
        group["components"] = [c["id"] for c in children]
        group["status"] = max((c["status"] for c in children), key=_RANK.index)
        out.append(group)
        out.extend(children)
    for name in spec["components"]:
        out.append(comp(name, position))
        position += 1
    return out


def seed(page: str, scenario: str, at: datetime | None = None) -> PageState:
    """The page's state for `scenario`; ids are stable per page, times relative to `at`."""
    if page not in PAGES:
        raise ValueError(f"unknown status page {page!r}; expected one of {', '.join(PAGES)}")
    spec = PAGES[page]
    rng = random.Random(f"opsconsole-statuspage-{page}")
    at = at or now()
    page_id = _sid(rng)
    since = iso(at - timedelta(days=900))
    incident_start = at - timedelta(minutes=35)
    supabase_incident = page == "supabase" and has(scenario, "supabase-degraded")
    degraded = {"Connection Pooler": "degraded_performance"} if supabase_incident else {}
    components = _components(rng, spec, page_id, since, iso(incident_start), degraded)
    page_obj = {"id": page_id, "name": spec["name"], "url": spec["url"], "time_zone": "Etc/UTC",
                "updated_at": iso(incident_start + timedelta(minutes=20) if supabase_incident else at)}
    incidents: list[dict[str, Any]] = []
    maintenances: list[dict[str, Any]] = []
    if supabase_incident:
        affected = [c for c in components if c["name"] in degraded]
        incidents.append(_incident(rng, page_id, incident_start, affected))
    if page == "vercel" and has(scenario, "status-notices"):
        maintenances.append(_maintenance(rng, page_id, at, [c for c in components if c["name"] == "Domains"]))
    return PageState(page=page_obj, indicator="minor" if supabase_incident else "none", components=components,
                     incidents=incidents, maintenances=maintenances)


def _update(rng: random.Random, incident_id: str, status: str, body: str, when: datetime,
            affected: list[dict[str, Any]], old: str, new: str) -> dict[str, Any]:
    return {"id": _sid(rng), "status": status, "body": body, "incident_id": incident_id,
            "created_at": iso(when), "updated_at": iso(when), "display_at": iso(when),
            "affected_components": [{"code": c["id"], "name": c["name"], "old_status": old, "new_status": new}
                                    for c in affected],
            "deliver_notifications": True, "custom_tweet": None, "tweet_id": None}


def _incident(rng: random.Random, page_id: str, start: datetime, affected: list[dict[str, Any]],
              ) -> dict[str, Any]:
    incident_id = _sid(rng)
    identified = start + timedelta(minutes=20)
    updates = [
        _update(rng, incident_id, "identified", HOSTILE_UPDATE, identified, affected,
                "degraded_performance", "degraded_performance"),
        _update(rng, incident_id, "investigating",
                "We are investigating elevated connection errors on the Connection Pooler in us-east-1.",
                start, affected, "operational", "degraded_performance"),
    ]
    return {"id": incident_id, "name": HOSTILE_NAME, "status": "identified", "impact": "minor",
            "created_at": iso(start), "updated_at": iso(identified), "monitoring_at": None,
            "resolved_at": None, "started_at": iso(start), "page_id": page_id,
            "shortlink": f"https://stspg.io/{_sid(rng)[:7]}", "incident_updates": updates,
            "components": affected}


def _maintenance(rng: random.Random, page_id: str, at: datetime, affected: list[dict[str, Any]],
                 ) -> dict[str, Any]:
    mid = _sid(rng)
    start = (at + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
    body = ("We will be performing scheduled maintenance on the Domains API. "
            "Existing domains are not affected.")
    return {"id": mid, "name": "Scheduled maintenance: Domains API", "status": "scheduled",
            "impact": "maintenance",
            "created_at": iso(at - timedelta(days=3)), "updated_at": iso(at - timedelta(days=3)),
            "monitoring_at": None, "resolved_at": None, "started_at": iso(start), "page_id": page_id,
            "shortlink": f"https://stspg.io/{_sid(rng)[:7]}", "scheduled_for": iso(start),
            "scheduled_until": iso(start + timedelta(hours=2)),
            "incident_updates": [_update(rng, mid, "scheduled", body, at - timedelta(days=3), affected,
                                         "operational", "operational")],
            "components": affected}


def build(faults: FaultPlan, scenario: str, *, page: str) -> Simulator:
    """The "<page>-status" simulator ("vercel-status" or "supabase-status"); no auth, like the real ones."""
    state = seed(page, scenario)
    sim = Simulator(f"{page}-status", faults)

    @sim.route("GET", r"/api/v2/status\.json")
    def status(req: Request, m: re.Match[str]) -> Response:
        return Response(200, {"page": state.page, "status": state.status})

    @sim.route("GET", r"/api/v2/summary\.json")
    def summary(req: Request, m: re.Match[str]) -> Response:
        return Response(200, {"page": state.page, "status": state.status, "components": state.components,
                              "incidents": state.incidents, "scheduled_maintenances": state.maintenances})

    @sim.route("GET", r"/api/v2/components\.json")
    def components(req: Request, m: re.Match[str]) -> Response:
        return Response(200, {"page": state.page, "components": state.components})

    @sim.route("GET", r"/api/v2/incidents/unresolved\.json")
    def unresolved(req: Request, m: re.Match[str]) -> Response:
        return Response(200, {"page": state.page, "incidents": state.incidents})

    return sim
