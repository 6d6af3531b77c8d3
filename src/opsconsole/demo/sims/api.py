"""Loopback simulator of the product API's `GET /health` (no auth).

The body follows a common health-document shape: an overall status, the running version and
one entry per dependency. In "incident" the campaign workers (concurrency raised to 64 by the
deployment Vercel shows as current) have exhausted the database pool: HTTP 500, database down,
queue backing up, which is what the runbook's "API Down / 500 Errors" section starts from.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

from opsconsole.demo.scenario import DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, iso, now
from opsconsole.demo.sims.vercel import production_sha

POOL_MAX = 20


def _healthy(rng: random.Random) -> dict[str, Any]:
    return {
        "database": {"status": "ok", "latency_ms": round(rng.uniform(1.8, 4.5), 1),
                     "pool": {"active": rng.randint(2, 6), "idle": rng.randint(10, 14), "waiting": 0,
                              "max": POOL_MAX}},
        "twilio": {"status": "ok", "latency_ms": round(rng.uniform(90, 160), 1)},
        "queue": {"status": "ok", "depth": rng.randint(0, 40), "oldest_age_s": rng.randint(0, 20)},
    }


def _incident(rng: random.Random) -> dict[str, Any]:
    waiting = rng.randint(48, 64)
    return {
        "database": {"status": "down", "latency_ms": 5000.0,
                     "error": f"timeout acquiring a connection from the pool after 5000 ms "
                              f"(pool exhausted: {POOL_MAX}/{POOL_MAX} in use, {waiting} waiting)",
                     "pool": {"active": POOL_MAX, "idle": 0, "waiting": waiting, "max": POOL_MAX}},
        "twilio": {"status": "ok", "latency_ms": round(rng.uniform(90, 160), 1)},
        "queue": {"status": "degraded", "depth": 4800 + rng.randint(0, 400),
                  "oldest_age_s": 1700 + rng.randint(0, 300)},
    }


def _database_failure(world: Any, rng: random.Random) -> dict[str, Any] | None:
    """Database problems the shared world reports (demo/world.py: a migration broke a column the API
    reads, the database offline during a restore): the database component as the API would show it."""
    problems = world.database_problems() if world is not None else []
    if not problems:
        return None
    return {"status": "down", "latency_ms": round(rng.uniform(2.0, 6.0), 1), "error": "; ".join(problems)}


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *, world: Any = None) -> Simulator:
    """The "api" simulator for `scenario`. `secrets` is unused: /health needs no credentials.
    `world` (demo.world.DemoWorld): its database problems fail /health too."""
    del secrets
    sim = Simulator("api", faults)
    sha = production_sha(scenario)
    started = now() - (timedelta(minutes=47) if has(scenario, "bad-deploy") else timedelta(hours=2))
    rng = random.Random()  # jitter only; statuses depend on the scenario alone

    @sim.route("GET", r"/health")
    def health(req: Request, m: re.Match[str]) -> Response:
        incident = has(scenario, "bad-deploy") or has(scenario, "api-wedged")
        checks = _incident(rng) if incident else _healthy(rng)
        database = _database_failure(world, rng)
        if database is not None:
            checks["database"] = database
            incident = True
        body = {
            "status": "error" if incident else "ok",
            "version": f"1.42.0+{sha[:7]}",
            "commit": sha,
            "uptime_s": int((now() - started).total_seconds()),
            "timestamp": iso(now()),
            "checks": checks,
        }
        return Response(500 if incident else 200, body, headers={"Cache-Control": "no-store"})

    return sim
