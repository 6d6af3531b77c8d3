"""Demo scenarios and the obviously fake credentials the demo environment uses.

Every simulator builds its state from (scenario, DemoSecrets); the same values go into the
generated config file, so the console authenticates against the simulators exactly as it
would against the real services.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

# What can be wrong in the demo. Each simulator (and the seed) looks up the problems of its scenario;
# the shared `DemoWorld` (demo/world.py) tracks which are still active, so an action can resolve one.
PROBLEMS: dict[str, str] = {
    "api-wedged": "the serving deployment's instances are wedged: /health answers 500 until a redeploy cycles them",
    "bad-deploy": "the serving deployment raised campaign-worker concurrency to 64: the database pool is "
                  "exhausted and /health answers 500; the fix pushed after it failed to build; the previous "
                  "READY production deployment is good",
    "pooler-slow": "the transaction pooler (6543) answers slowly",
    "db-load": "long-running queries keep the database CPU over 90 %",
    "supabase-degraded": "status.supabase.com reports the pooler degraded; the project is ACTIVE_UNHEALTHY",
    "status-notices": "vercel-status.com announces a scheduled maintenance",
    "service-key-expiring": "the legacy service-role key expires in 5 days",
    "n8n-failing": "the sync workflows fail: timeouts, CRM 5xx, and a Supabase credential that no longer works",
    "twilio-failing": "Twilio webhooks fail: a dead-letter backlog and Monitor error alerts (30008, 11200, 11217)",
    "backup-failed": "the latest daily backup failed; PITR is off",
    "recent-migration": "a migration was applied 47 minutes ago, with the bad deployment",
    "bad-migration": "a destructive migration applied 40 minutes ago broke the API",
    "data-corruption": "a bad UPDATE corrupted rows that SQL cannot recover; only a restore brings them back",
}


@dataclass(frozen=True)
class Scenario:
    """A demo scenario: what is wrong, and which runbook (wizard) drills it."""

    name: str
    summary: str
    problems: frozenset[str]
    runbook: str = ""


_INCIDENT = frozenset({"bad-deploy", "pooler-slow", "db-load", "supabase-degraded", "status-notices",
                       "service-key-expiring", "n8n-failing", "twilio-failing", "backup-failed", "recent-migration"})
SCENARIO_SPECS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("healthy", "a quiet day: everything works", frozenset()),
    Scenario("incident", "something wrong on every tab", _INCIDENT),
    Scenario("api-down", "API Down / 500 Errors: /health fails until the instances are cycled",
             frozenset({"api-wedged"}), runbook="api-down"),
    Scenario("supabase-queries", "Supabase Queries Failing: long-running queries hold the CPU over 90 %",
             frozenset({"db-load"}), runbook="supabase-queries"),
    Scenario("n8n-sync", "n8n Sync Failing: failed executions and a broken Supabase credential",
             frozenset({"n8n-failing"}), runbook="n8n-sync"),
    Scenario("twilio-webhooks", "Webhooks Failing (Twilio): a dead-letter backlog of transient failures",
             frozenset({"twilio-failing"}), runbook="twilio-webhooks"),
    Scenario("bad-deploy", "How to Rollback: the serving deployment answers 500s; promote the previous one",
             frozenset({"bad-deploy"}), runbook="rollback"),
    Scenario("bad-migration", "How to Rollback: a destructive migration broke the API; revert it",
             frozenset({"bad-migration"}), runbook="rollback"),
    Scenario("data-corruption", "Backups & Restore Plan: corrupted rows only a restore can bring back",
             frozenset({"data-corruption"}), runbook="backup-restore"),
)}
SCENARIOS: tuple[str, ...] = tuple(SCENARIO_SPECS)
DEFAULT_SCENARIO = "incident"


def problems(scenario: str) -> frozenset[str]:
    """What is wrong in `scenario` (empty for an unknown name)."""
    spec = SCENARIO_SPECS.get(scenario)
    return spec.problems if spec is not None else frozenset()


def has(scenario: str, problem: str) -> bool:
    """Whether `problem` is part of `scenario` from the start."""
    if problem not in PROBLEMS:
        raise ValueError(f"unknown demo problem {problem!r}")
    return problem in problems(scenario)

PROJECT_REF = "opsdemoprojectrefabc"  # 20 lowercase letters, like a real project ref
VERCEL_PROJECT_ID = "prj_opsdemo0000000000000000000"
VERCEL_TEAM_ID = "team_opsdemo00000000000000"
VERCEL_PROJECT_NAME = "campaign-api"
N8N_WORKFLOWS = ("1001", "1002")  # the watched sync workflows


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# The demo project's JWT secret: signs the legacy keys and lets the simulator verify them.
DEMO_JWT_SECRET = "demo-jwt-secret-not-real"


def make_legacy_jwt(ref: str, role: str, exp: int, secret: str = DEMO_JWT_SECRET) -> str:
    """An HS256 JWT shaped like Supabase's legacy anon/service_role keys."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"iss": "supabase", "ref": ref, "role": role, "iat": exp - 10 * 365 * 86400,
                                  "exp": exp}, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


@dataclass(frozen=True)
class DemoSecrets:
    vercel_token: str = "demo-vercel-token-NOT-REAL-0000"
    supabase_access_token: str = "sbp_demo_NOT_REAL_000000000000000000000000"
    service_role_key: str = ""
    n8n_api_key: str = "n8n-demo-api-key-NOT-REAL-0000"
    twilio_account_sid: str = "AC" + "de" * 16
    twilio_auth_token: str = "demo-twilio-token-NOT-REAL-00000"
    db_password: str = "demo-db-password-NOT-REAL"

    @classmethod
    def for_scenario(cls, scenario: str, now: float | None = None) -> DemoSecrets:
        """service-key-expiring: the service-role key expires in 5 days (the check warns 14 days ahead)."""
        t = int(now if now is not None else time.time())
        exp = t + 5 * 86400 if has(scenario, "service-key-expiring") else t + 3 * 365 * 86400
        return cls(service_role_key=make_legacy_jwt(PROJECT_REF, "service_role", exp))
