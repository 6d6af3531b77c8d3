"""Loopback simulator of the product API's `GET /health` (no auth).

The body follows a common health-document shape: an overall status, the running version and
one entry per dependency. It answers from the shared `DemoWorld`, so what is done on Vercel
shows here: while `bad-deploy` is active (the deployment Vercel serves raised the campaign
workers' concurrency to 64) the database pool is exhausted: HTTP 500, database down, queue
backing up; promoting the previous deployment resolves it. While `api-wedged` is active the
serving deployment's instances are wedged (the runtime check reports its event loop blocked,
requests time out) until a redeploy cycles them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from opsconsole.demo.scenario import DemoSecrets
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, iso, now
from opsconsole.demo.sims.vercel import production_sha
from opsconsole.demo.world import DemoWorld

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


def _wedged(rng: random.Random) -> dict[str, Any]:
    checks = _healthy(rng)
    checks["runtime"] = {"status": "down", "instances": {"total": 3, "wedged": 3},
                         "error": "event loop blocked for 30012 ms on instance iad1-3f8a (and 2 more): requests "
                                  "queue and time out; the instances need to be cycled (redeploy)"}
    checks["queue"] = {"status": "degraded", "depth": 1900 + rng.randint(0, 300),
                       "oldest_age_s": 900 + rng.randint(0, 120)}
    return checks


def _database_failure(world: DemoWorld, rng: random.Random) -> dict[str, Any] | None:
    """Database problems the shared world reports (demo/world.py: a migration broke a column the API
    reads, the database offline during a restore): the database component as the API would show it."""
    problems = world.database_problems()
    if not problems:
        return None
    return {"status": "down", "latency_ms": round(rng.uniform(2.0, 6.0), 1), "error": "; ".join(problems)}


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *, world: DemoWorld | None = None,
          version: Callable[[], str] | None = None) -> Simulator:
    """The "api" simulator for `scenario`. `secrets` is unused: /health needs no credentials.

    `world` is the demo's shared state (a private one when not given): its deployment problems and its
    database problems fail /health; `version` returns the commit production runs now (the Vercel
    simulator's), so /health reports what actually serves."""
    del secrets
    world = world or DemoWorld(scenario)
    sim = Simulator("api", faults)
    initial_sha = production_sha(scenario)
    current_sha = version or (lambda: initial_sha)
    booted = [initial_sha, now() - (timedelta(minutes=47) if world.has("bad-deploy") else timedelta(hours=2))]
    rng = random.Random()  # jitter only; statuses depend on the world alone

    @sim.route("GET", r"/health")
    def health(req: Request, m: re.Match[str]) -> Response:
        sha = current_sha() or initial_sha
        if sha != booted[0]:  # another deployment serves now: fresh instances
            booted[:] = [sha, now()]
        if world.has("bad-deploy"):
            status, checks = "error", _incident(rng)
        elif world.has("api-wedged"):
            status, checks = "error", _wedged(rng)
        else:
            status, checks = "ok", _healthy(rng)
        database = _database_failure(world, rng)
        if database is not None:
            checks["database"] = database
            status = "error"
        body = {
            "status": status,
            "version": f"1.42.0+{sha[:7]}",
            "commit": sha,
            "uptime_s": int((now() - booted[1]).total_seconds()),  # type: ignore[operator]
            "timestamp": iso(now()),
            "checks": checks,
        }
        return Response(500 if status == "error" else 200, body, headers={"Cache-Control": "no-store"})

    return sim
