"""Loopback simulator of the Vercel REST API parts the console reads.

`GET /v6|v7/deployments`, `GET /v13/deployments/{idOrUrl}`, `GET /v9/projects/{idOrName}`, with
Bearer auth, team scope (`teamId`) and `until` pagination answering like api.vercel.com (shapes
from the official OpenAPI spec, `specs/vercel_api.json`). The history is seeded once per
`build()` with timestamps relative to now, deterministically per scenario:

- healthy:  the newest production deployment is READY and serves production.
- incident: a bad change went out 47 min ago (READY, current production); the fix pushed
  12 min later failed to build (ERROR). The last good deployment, 2 h old, is the rollback target.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsconsole.demo.scenario import VERCEL_PROJECT_ID, VERCEL_PROJECT_NAME, VERCEL_TEAM_ID, DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, bearer, epoch_ms, now

TEAM_SLUG = "opsdemo"
GIT_ORG = "opsdemo"
GIT_REPO = "campaign-api"
REPO_ID = "781203344"
ALIASES = (f"{VERCEL_PROJECT_NAME}.vercel.app", "api.opsdemo.example")

_USERS: tuple[dict[str, str], ...] = (
    {"uid": "u9Lk2PqT7mWzR4sX8vB1nC3d", "username": "maria-k", "email": "maria@opsdemo.example",
     "githubLogin": "maria-k"},
    {"uid": "aH5jN2bV9cX1zQ7wE3rT6yU8", "username": "dev-tomas", "email": "tomas@opsdemo.example",
     "githubLogin": "tomasr"},
    {"uid": "Zp4Mn8Kb2Vc6Xq1Lw9Er3Ty7", "username": "priya-s", "email": "priya@opsdemo.example",
     "githubLogin": "priyas"},
)

# (minutes ago, target, state, branch, commit message, author index). Newest first per block.
_HISTORY: tuple[tuple[int, str | None, str, str, str, int], ...] = (
    (122, "production", "READY", "main", "Bump @supabase/supabase-js to 2.45.4", 0),
    (170, None, "READY", "feat/sms-quiet-hours", "Respect recipient quiet hours when scheduling sends", 2),
    (26 * 60, "production", "READY", "main", "Add retry with jitter to Twilio status callbacks", 1),
    (27 * 60, None, "READY", "fix/twilio-callback-retry", "Retry Twilio status callbacks on 5xx", 1),
    (30 * 60, None, "ERROR", "fix/twilio-callback-retry", "WIP: callback retries", 1),
    (51 * 60, "production", "READY", "main", "Log n8n sync batch ids on failure", 2),
    (53 * 60, None, "READY", "chore/n8n-logging", "Log n8n sync batch ids on failure", 2),
    (68 * 60, "production", "READY", "main",
     "Move DLQ requeue to a single transaction\n\nAvoids double sends when the worker dies mid-batch.", 0),
    (72 * 60, None, "CANCELED", "fix/dlq-requeue-tx", "Move DLQ requeue to a single transaction", 0),
    (77 * 60, None, "READY", "fix/dlq-requeue-tx", "Move DLQ requeue to a single transaction", 0),
    (97 * 60, "production", "READY", "main", "Add campaign pause endpoint", 1),
    (99 * 60, None, "READY", "feat/campaign-pause", "Add campaign pause endpoint", 1),
    (123 * 60, "production", "READY", "main", "Use transaction pooler (6543) for API connections", 0),
    (125 * 60, None, "READY", "chore/pooler-6543", "Use transaction pooler (6543) for API connections", 0),
    (146 * 60, "production", "READY", "main", "Upgrade Next.js to 14.2.15", 2),
    (150 * 60, None, "ERROR", "chore/next-14-2", "Upgrade Next.js to 14.2.15", 2),
    (170 * 60, "production", "READY", "main", "Rate-limit outbound SMS per sender number", 1),
    (172 * 60, None, "READY", "feat/sender-rate-limit", "Rate-limit outbound SMS per sender number", 1),
    (194 * 60, "production", "READY", "main", "Add /health component checks (db, twilio, queue)", 0),
    (219 * 60, "production", "READY", "main", "Initial campaign scheduling API", 0),
    (243 * 60, "production", "READY", "main", "Add RLS policies for campaigns and recipients", 2),
    (246 * 60, None, "READY", "feat/rls-policies", "Add RLS policies for campaigns and recipients", 2),
)
_HEAD: dict[str, tuple[tuple[int, str | None, str, str, str, int], ...]] = {
    "healthy": (
        (4, None, "BUILDING", "feat/sms-quiet-hours", "Quiet hours: honour recipient time zone", 2),
        (38, None, "READY", "feat/sms-quiet-hours", "Quiet hours: add per-campaign override", 2),
    ),
    "incident": (
        (12, "production", "ERROR", "main", "Cap campaign worker concurrency at 16", 1),
        (19, None, "READY", "fix/worker-concurrency", "Cap campaign worker concurrency at 16", 1),
        (28, None, "ERROR", "fix/pool-size", "Try raising pool size to 40", 1),
        (47, "production", "READY", "main", "Raise campaign worker concurrency to 64", 1),
    ),
}
_BUILD_ERROR = ("BUILD_FAILED", 'Command "npm run build" exited with 1')


def _token(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _deployment(rng: random.Random, created: datetime, target: str | None, state: str, ref: str,
                message: str, user: dict[str, str]) -> dict[str, Any]:
    """One deployment in the list shape (`uid`), as GET /v6/deployments returns it."""
    uid = "dpl_" + _token(rng, 28)
    sha = f"{rng.getrandbits(160):040x}"
    created_ms = epoch_ms(created)
    building = created_ms + rng.randint(1500, 6000)
    dep: dict[str, Any] = {
        "uid": uid, "name": VERCEL_PROJECT_NAME, "projectId": VERCEL_PROJECT_ID,
        "url": f"{VERCEL_PROJECT_NAME}-{_token(rng, 9, string.ascii_lowercase + string.digits)}"
               f"-{TEAM_SLUG}.vercel.app",
        "created": created_ms, "createdAt": created_ms, "buildingAt": building,
        "state": state, "readyState": state, "type": "LAMBDAS", "source": "git", "target": target,
        "creator": dict(user),
        "meta": {"githubCommitSha": sha, "githubCommitMessage": message, "githubCommitRef": ref,
                 "githubCommitAuthorName": user["username"], "githubCommitAuthorLogin": user["githubLogin"],
                 "githubCommitOrg": GIT_ORG, "githubCommitRepo": GIT_REPO, "githubCommitRepoId": REPO_ID,
                 "githubOrg": GIT_ORG, "githubRepo": GIT_REPO, "githubDeployment": "1"},
        "aliasAssigned": None, "aliasError": None,
        "inspectorUrl": f"https://vercel.com/{TEAM_SLUG}/{VERCEL_PROJECT_NAME}/{uid[4:]}",
        "isRollbackCandidate": False,
        "projectSettings": {"framework": "nextjs", "nodeVersion": "20.x"},
    }
    if state == "READY":
        ready = building + rng.randint(55_000, 140_000)
        dep["ready"] = ready
        dep["aliasAssigned"] = ready
        if target == "production":
            dep["readySubstate"] = "PROMOTED"
            dep["isRollbackCandidate"] = True
    elif state == "ERROR":
        dep["errorCode"], dep["errorMessage"] = _BUILD_ERROR
    elif state == "CANCELED":
        dep["errorCode"] = "DEPLOYMENT_CANCELED"
        dep["errorMessage"] = ("The Deployment has been canceled as a result of running the command "
                               "vercel --cancel")
    return dep


@dataclass
class VercelState:
    """The project's deployments (newest first) and which one serves production."""

    deployments: list[dict[str, Any]] = field(default_factory=list)
    production_id: str = ""
    created_at: int = 0

    def find(self, ident: str) -> dict[str, Any] | None:
        host = ident.removeprefix("https://")
        return next((d for d in self.deployments if ident == d["uid"] or host == d["url"]), None)

    @property
    def production(self) -> dict[str, Any] | None:
        return self.find(self.production_id)


def seed(scenario: str, at: datetime | None = None) -> VercelState:
    """Deterministic history for `scenario` (ids and shas stable, times relative to `at`)."""
    key = "incident" if has(scenario, "bad-deploy") else "healthy"  # stable ids per history
    rng = random.Random(f"opsconsole-vercel-{key}")
    at = at or now()
    rows = (*_HEAD[key], *_HISTORY)
    state = VercelState(created_at=epoch_ms(at - timedelta(days=210)))
    for minutes, target, status, ref, message, who in rows:
        created = at - timedelta(minutes=minutes)
        state.deployments.append(_deployment(rng, created, target, status, ref, message, _USERS[who]))
    state.deployments.sort(key=lambda d: d["created"], reverse=True)
    current = next(d for d in state.deployments if d["target"] == "production" and d["readyState"] == "READY")
    state.production_id = current["uid"]
    return state


def production_sha(scenario: str) -> str:
    """The commit production runs in `scenario` (the API simulator reports it as its version)."""
    prod = seed(scenario).production
    return str(prod["meta"]["githubCommitSha"]) if prod else ""


# -- response shapes ---------------------------------------------------------------------------
def _err(status: int, code: str, message: str, **extra: Any) -> Response:
    return Response(status, {"error": {"code": code, "message": message, **extra}})


def _target_shape(dep: dict[str, Any], state: VercelState) -> dict[str, Any]:
    """A deployment as `targets.production` / `latestDeployments` of GET /v9/projects show it."""
    user = dep["creator"]
    out: dict[str, Any] = {
        "id": dep["uid"], "createdAt": dep["createdAt"], "createdIn": "sfo1",
        "creator": {"uid": user["uid"], "username": user["username"], "email": user["email"],
                    "githubLogin": user["githubLogin"]},
        "deploymentHostname": dep["url"].removesuffix(".vercel.app"), "name": dep["name"], "plan": "pro",
        "private": True, "readyState": dep["readyState"], "target": dep["target"], "teamId": VERCEL_TEAM_ID,
        "type": "LAMBDAS", "url": dep["url"], "userId": user["uid"], "meta": dict(dep["meta"]),
        "buildingAt": dep["buildingAt"], "aliasAssigned": dep["aliasAssigned"], "aliasError": None,
    }
    if "ready" in dep:
        out["readyAt"] = dep["ready"]
    if "readySubstate" in dep:
        out["readySubstate"] = dep["readySubstate"]
    if dep["uid"] == state.production_id:
        out["alias"] = list(ALIASES)
    return out


def _detail_shape(dep: dict[str, Any], state: VercelState) -> dict[str, Any]:
    """GET /v13/deployments/{id}: `id` instead of `uid`, plus build and git details."""
    meta = dep["meta"]
    out = {k: v for k, v in dep.items() if k not in ("uid", "state", "created", "projectSettings")}
    out.update({
        "id": dep["uid"], "status": dep["readyState"], "version": 2, "regions": ["iad1"], "public": False,
        "bootedAt": dep["buildingAt"], "buildSkipped": False, "ownerId": VERCEL_TEAM_ID, "plan": "pro",
        "createdIn": "sfo1", "projectId": VERCEL_PROJECT_ID, "routes": None,
        "alias": list(ALIASES) if dep["uid"] == state.production_id else [],
        "aliasFinal": ALIASES[0] if dep["uid"] == state.production_id else None,
        "gitSource": {"type": "github", "repoId": REPO_ID, "ref": meta["githubCommitRef"],
                      "sha": meta["githubCommitSha"], "prId": None},
        "project": {"id": VERCEL_PROJECT_ID, "name": VERCEL_PROJECT_NAME, "framework": "nextjs"},
        "creator": {"uid": dep["creator"]["uid"], "username": dep["creator"]["username"]},
    })
    if dep["readyState"] == "ERROR":
        out["errorStep"] = "build"
        out["buildErrorAt"] = dep["buildingAt"] + 48_000
    return out


def _project_shape(state: VercelState) -> dict[str, Any]:
    prod = state.production
    latest = state.deployments[0]
    return {
        "id": VERCEL_PROJECT_ID, "name": VERCEL_PROJECT_NAME, "accountId": VERCEL_TEAM_ID,
        "createdAt": state.created_at, "updatedAt": latest["createdAt"], "framework": "nextjs",
        "nodeVersion": "20.x", "directoryListing": False, "live": False,
        "link": {"type": "github", "org": GIT_ORG, "repo": GIT_REPO, "repoId": int(REPO_ID),
                 "productionBranch": "main", "deployHooks": [], "gitCredentialId": "cred_opsdemo",
                 "createdAt": state.created_at, "updatedAt": state.created_at, "sourceless": True},
        "latestDeployments": [_target_shape(d, state) for d in state.deployments[:5]],
        "targets": {"production": _target_shape(prod, state) if prod else None},
        "resourceConfig": {"functionDefaultRegions": ["iad1"], "functionDefaultTimeout": 60,
                           "functionDefaultMemoryType": "standard", "fluid": True},
        "defaultResourceConfig": {"functionDefaultRegions": ["iad1"], "functionDefaultTimeout": 60,
                                  "functionDefaultMemoryType": "standard", "fluid": True},
    }


def _number(req: Request, name: str) -> float | None:
    raw = req.q(name)
    if raw is None or raw == "":
        return None
    return float(raw)  # ValueError -> 400 in the caller


class VercelSimulator(Simulator):
    """A Simulator that also exposes its seeded state (for tests and later action endpoints)."""

    def __init__(self, faults: FaultPlan, state: VercelState, **kwargs: Any) -> None:
        super().__init__("vercel", faults, **kwargs)
        self.state = state


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets) -> VercelSimulator:
    """The "vercel" simulator for `scenario`; state is seeded once, here."""
    state = seed(scenario)
    auth = bearer(
        lambda: secrets.vercel_token,
        unauthorized=lambda: _err(403, "forbidden", "The request is missing an authentication token",
                                  missingToken=True),
        forbidden=lambda: _err(403, "forbidden", "Not authorized", invalidToken=True),
    )
    sim = VercelSimulator(faults, state, auth=auth)

    def scope(req: Request) -> Response | None:
        """Wrong team -> 403; no team -> personal scope, where the team's project does not exist."""
        team = req.q("teamId")
        if team is not None and team != VERCEL_TEAM_ID:
            return _err(403, "forbidden", "Not authorized")
        if team is None and req.q("slug") != TEAM_SLUG:
            return _err(404, "not_found", "Project not found")
        return None

    def project_matches(ident: str) -> bool:
        return ident in (VERCEL_PROJECT_ID, VERCEL_PROJECT_NAME)

    @sim.route("GET", r"/v(?:6|7)/deployments")
    def list_deployments(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        project = req.q("projectId")
        if project is not None and not project_matches(project):
            return _err(404, "not_found", "Project not found")
        try:
            limit = _number(req, "limit")
            until, since = _number(req, "until"), _number(req, "since")
        except ValueError:
            return _err(400, "bad_request",
                        "Invalid request: `limit`, `until` and `since` should be numbers.")
        count = int(limit) if limit is not None else 20
        if not 1 <= count <= 100:
            return _err(400, "bad_request", "Invalid request: `limit` should be between 1 and 100.")
        rows = state.deployments
        target = req.q("target")
        if target:
            want = None if target == "preview" else target
            rows = [d for d in rows if d["target"] == want]
        if req.q("state"):
            states = {s.strip().upper() for s in (req.q("state") or "").split(",")}
            rows = [d for d in rows if d["readyState"] in states]
        for param, key in (("sha", "githubCommitSha"), ("branch", "githubCommitRef")):
            if req.q(param):
                rows = [d for d in rows if d["meta"][key] == req.q(param)]
        if until is not None:
            rows = [d for d in rows if d["created"] < until]
        if since is not None:
            rows = [d for d in rows if d["created"] > since]
        page = rows[:count]
        return Response(200, {
            "pagination": {"count": len(page),
                           "next": page[-1]["created"] if len(rows) > count else None,
                           "prev": page[0]["created"] if page else None},
            "deployments": page,
        })

    @sim.route("GET", r"/v13/deployments/(?P<ident>[^/]+)")
    def get_deployment(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return _err(404, "not_found", "Deployment not found") if denied.status == 404 else denied
        dep = state.find(m.group("ident"))
        if dep is None:
            return _err(404, "not_found", "Deployment not found")
        return Response(200, _detail_shape(dep, state))

    @sim.route("GET", r"/v9/projects/(?P<ident>[^/]+)")
    def get_project(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        if not project_matches(m.group("ident")):
            return _err(404, "not_found", "Project not found")
        return Response(200, _project_shape(state))

    return sim
