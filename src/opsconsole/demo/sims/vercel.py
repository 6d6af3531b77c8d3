"""Loopback simulator of the Vercel REST API parts the console reads and acts through.

Read: `GET /v6|v7/deployments`, `GET /v13/deployments/{idOrUrl}`, `GET /v9/projects/{idOrName}`
(`?rollbackInfo=true` adds `lastAliasRequest`), `GET /v3/deployments/{id}/events` (build output),
`GET /v1/projects/{id}/deployments/{id}/runtime-logs` (NDJSON, `application/stream+json`, chunked:
the last 15 minutes, then live lines until the stream ends). Act: `POST /v13/deployments` with
`deploymentId` (a redeploy: QUEUED -> BUILDING -> READY over a few seconds, or ERROR for a commit
marked broken, then it serves production) and `POST /v10/projects/{id}/promote/{deploymentId}`
(202, a job that goes pending -> in-progress -> succeeded; 409 when already current). Bearer auth,
team scope (`teamId`) and `until` pagination answer like api.vercel.com (shapes from the official
OpenAPI spec, `specs/vercel_api.json`). The history is seeded once per `build()` with timestamps
relative to now, deterministically per scenario:

- healthy:  the newest production deployment is READY and serves production.
- incident / bad-deploy: a bad change went out 47 min ago (READY, current production: its
  requests answer 500); the fix pushed 12 min later failed to build (ERROR, and fails again when
  redeployed). The last good deployment, 2 h old, is the rollback target: promoting it resolves
  the world's `bad-deploy` (the API simulator's /health recovers); promoting the bad one back
  causes it again.
- api-down: the serving deployment's instances are wedged (`api-wedged`): its requests time out
  until a redeploy (or any new deployment serving production) cycles them.
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

from opsconsole.demo.scenario import VERCEL_PROJECT_ID, VERCEL_PROJECT_NAME, VERCEL_TEAM_ID, DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, bearer, epoch_ms, now
from opsconsole.demo.world import DemoWorld

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
        dep["buildErrorAt"] = building + 48_000
    elif state == "CANCELED":
        dep["errorCode"] = "DEPLOYMENT_CANCELED"
        dep["errorMessage"] = ("The Deployment has been canceled as a result of running the command "
                               "vercel --cancel")
    return dep


_READY_LOG = ("Running \"vercel build\"", "Installing dependencies...", "added 812 packages in 19s",
              "Running \"npm run build\"", "> campaign-api@1.42.0 build", "> next build",
              "  ▲ Next.js 14.2.15", "   Creating an optimized production build ...", " ✓ Compiled successfully",
              "Build Completed in /vercel/output", "Deploying outputs...")
_ERROR_LOG = ("Running \"vercel build\"", "Installing dependencies...", "added 812 packages in 19s",
              "Running \"npm run build\"", "> campaign-api@1.42.0 build", "> next build",
              "  ▲ Next.js 14.2.15", "   Creating an optimized production build ...")
_ERROR_STDERR = ("Failed to compile.",
                 "./src/workers/campaign.ts:48:7",
                 "Type error: Property 'maxConcurrency' does not exist on type 'WorkerOptions'.",
                 'Error: Command "npm run build" exited with 1')

# Requests the API serves (path, method, weight) and what its functions log about them.
_ROUTES = (("/api/campaigns", "GET", 5), ("/api/campaigns/8812/send", "POST", 2),
           ("/webhooks/twilio/status", "POST", 6), ("/webhooks/twilio/inbound", "POST", 2),
           ("/health", "GET", 3), ("/api/recipients", "GET", 2))
_POOL_ERROR = ("Error: timeout acquiring a connection from the pool after 5000 ms (pool exhausted: 20/20 in use, "
               "{waiting} waiting)\n    at Pool.acquire (/var/task/node_modules/pg-pool/index.js:45:11)")
_WEDGED_ERROR = "Task timed out after 30.00 seconds (instance iad1-{instance} is not answering: event loop blocked)"


@dataclass
class Build:
    """A build the simulator runs: QUEUED for `queued_s`, BUILDING for `build_s`, then final."""

    uid: str
    started: float  # time.time()
    queued_s: float
    build_s: float
    fails: bool


@dataclass
class PromoteJob:
    to_id: str
    from_id: str
    requested: float  # time.time()
    duration_s: float
    status: str = "pending"


@dataclass
class LogKnobs:
    """How the runtime-logs stream behaves (tests and benchmarks turn these)."""

    period_s: float = 0.5  # one request every period per serving deployment
    backlog_s: float = 15 * 60  # history sent first
    stream_s: float = 120.0  # live part, then the stream ends (the client reconnects)
    inject: list[bytes] = field(default_factory=list)  # raw bytes sent right after the backlog
    after_inject: str = ""  # "" | "cut" (drop the connection) | "stall" (send nothing more, keep it open)
    firehose: int = 0  # send this many generated lines as fast as possible after the backlog
    rate: float = 0.0  # > 0: live lines at this many per second instead of one per period (benchmarks)
    chunk_lines: int = 200  # lines per chunk written
    sent: int = 0  # lines written to clients so far (what a benchmark measures)


@dataclass
class VercelState:
    """The project's deployments (newest first), which one serves production, builds and jobs."""

    deployments: list[dict[str, Any]] = field(default_factory=list)
    production_id: str = ""
    created_at: int = 0
    broken_shas: set[str] = field(default_factory=set)  # a build of these commits fails
    bad_sha: str = ""  # the commit whose requests fail while it serves (bad-deploy)
    wedged_id: str = ""  # the deployment whose instances are wedged (api-wedged), until cycled
    wedged_until_ms: float | None = None
    served: list[tuple[float, str]] = field(default_factory=list)  # (since ms, uid), oldest first
    builds: dict[str, Build] = field(default_factory=dict)
    job: PromoteJob | None = None
    queued_s: float = 1.0
    build_s: float = 4.0
    promote_s: float = 1.5
    logs: LogKnobs = field(default_factory=LogKnobs)
    lock: threading.RLock = field(default_factory=threading.RLock)
    world: DemoWorld | None = None

    def find(self, ident: str) -> dict[str, Any] | None:
        host = ident.removeprefix("https://")
        return next((d for d in self.deployments if ident == d["uid"] or host == d["url"]), None)

    @property
    def production(self) -> dict[str, Any] | None:
        return self.find(self.production_id)

    @property
    def production_sha(self) -> str:
        prod = self.production
        return str(prod["meta"]["githubCommitSha"]) if prod else ""

    # -- time passes ------------------------------------------------------------------------
    def advance(self, at: float | None = None) -> None:
        """Move builds and the promotion job on to where they are at `at` (time.time())."""
        t = time.time() if at is None else at
        with self.lock:
            for build in list(self.builds.values()):
                dep = self.find(build.uid)
                if dep is None:
                    continue
                elapsed = t - build.started
                if elapsed < build.queued_s:
                    continue
                if dep["readyState"] == "QUEUED":
                    self._set_state(dep, "BUILDING")
                    dep["buildingAt"] = int((build.started + build.queued_s) * 1000)
                if elapsed < build.queued_s + build.build_s:
                    continue
                done_ms = int((build.started + build.queued_s + build.build_s) * 1000)
                del self.builds[build.uid]
                if build.fails:
                    self._set_state(dep, "ERROR")
                    dep["errorCode"], dep["errorMessage"] = _BUILD_ERROR
                    dep["buildErrorAt"] = done_ms
                    continue
                self._set_state(dep, "READY")
                dep["ready"] = dep["aliasAssigned"] = done_ms
                dep["isRollbackCandidate"] = dep["target"] == "production"
                if dep["target"] == "production":  # production builds are promoted when READY
                    self._serve(dep["uid"], done_ms)
            job = self.job
            if job is not None and job.status in ("pending", "in-progress"):
                elapsed = t - job.requested
                if elapsed >= job.duration_s:
                    job.status = "succeeded"
                    self._serve(job.to_id, int((job.requested + job.duration_s) * 1000))
                elif elapsed >= min(0.3, job.duration_s / 3):
                    job.status = "in-progress"

    @staticmethod
    def _set_state(dep: dict[str, Any], state: str) -> None:
        dep["state"] = dep["readyState"] = state

    def _serve(self, uid: str, at_ms: float) -> None:
        """`uid` serves production from `at_ms`; the world learns what that fixes or breaks."""
        if uid == self.production_id:
            return
        old = self.production
        if old is not None:
            old["readySubstate"] = "STAGED" if old.get("readySubstate") == "PROMOTED" else old.get("readySubstate")
        self.production_id = uid
        dep = self.find(uid)
        if dep is not None:
            dep["readySubstate"] = "PROMOTED"
        self.served.append((at_ms, uid))
        if self.wedged_id and self.wedged_until_ms is None and uid != self.wedged_id:
            self.wedged_until_ms = at_ms  # new instances serve: the wedged ones are gone
        world = self.world
        if world is None:
            return
        if world.has("api-wedged"):
            world.resolve("api-wedged")
        sha = self.production_sha
        if self.bad_sha:
            if sha == self.bad_sha:
                world.cause("bad-deploy")
            else:
                world.resolve("bad-deploy")

    def serving_at(self, ms: float) -> str:
        """Which deployment served production at `ms` (epoch ms)."""
        current = ""
        for since, uid in self.served:
            if since > ms:
                break
            current = uid
        return current

    # -- runtime logs -----------------------------------------------------------------------
    def log_lines(self, uid: str, start_ms: float, end_ms: float) -> list[bytes]:
        """The NDJSON lines `uid` logged in [start_ms, end_ms): one request per period while it served."""
        period = max(0.0001, self.logs.period_s) * 1000
        first = int(start_ms // period) + 1
        last = int(end_ms // period)
        dep = self.find(uid)
        if dep is None:
            return []
        sha = str(dep["meta"]["githubCommitSha"])
        out: list[bytes] = []
        for k in range(first, last + 1):
            ms = k * period
            if self.serving_at(ms) != uid:
                continue
            out.append(self._log_line(uid, sha, k, ms))
        return out

    def _log_line(self, uid: str, sha: str, k: int, ms: float) -> bytes:
        rng = random.Random(f"{uid}:{k}")
        path, method = _pick_route(rng)
        status, level = 200, "info"
        wedged = uid == self.wedged_id and (self.wedged_until_ms is None or ms < self.wedged_until_ms)
        if self.bad_sha and sha == self.bad_sha and (path == "/health" or rng.random() < 0.45):
            status, level = 500, "error"
            message = _POOL_ERROR.format(waiting=rng.randint(40, 64))
        elif wedged and (path == "/health" or rng.random() < 0.6):
            status, level = (504 if rng.random() < 0.5 else 500), "error"
            message = _WEDGED_ERROR.format(instance=uid[4:8].lower())
        elif rng.random() < 0.04:
            status, level = 404, "warning"
            message = f"{method} {path}: campaign 99{rng.randint(10, 99)} not found"
        else:
            ms_taken = rng.randint(8, 140)
            message = {"/health": f"health ok in {ms_taken}ms", "/webhooks/twilio/status":
                       f"status callback SM{rng.getrandbits(64):016x} delivered ({ms_taken}ms)"}.get(
                path, f"{method} {path} {status} in {ms_taken}ms")
        entry = {"level": level, "message": message, "rowId": f"{uid[4:14]}-{k}", "source": "serverless",
                 "timestampInMs": int(ms), "domain": ALIASES[1], "messageTruncated": False,
                 "requestMethod": method, "requestPath": path, "responseStatusCode": status}
        return json.dumps(entry).encode() + b"\n"


def _pick_route(rng: random.Random) -> tuple[str, str]:
    total = sum(w for _, _, w in _ROUTES)
    pick = rng.uniform(0, total)
    for path, method, weight in _ROUTES:
        pick -= weight
        if pick <= 0:
            return path, method
    return _ROUTES[0][0], _ROUTES[0][1]


def seed(scenario: str, at: datetime | None = None, world: DemoWorld | None = None) -> VercelState:
    """Deterministic history for `scenario` (ids and shas stable, times relative to `at`)."""
    key = "incident" if has(scenario, "bad-deploy") else "healthy"  # stable ids per history
    rng = random.Random(f"opsconsole-vercel-{key}")
    at = at or now()
    rows = (*_HEAD[key], *_HISTORY)
    state = VercelState(created_at=epoch_ms(at - timedelta(days=210)), world=world)
    for minutes, target, status, ref, message, who in rows:
        created = at - timedelta(minutes=minutes)
        state.deployments.append(_deployment(rng, created, target, status, ref, message, _USERS[who]))
    state.deployments.sort(key=lambda d: d["created"], reverse=True)
    current = next(d for d in state.deployments if d["target"] == "production" and d["readyState"] == "READY")
    state.production_id = current["uid"]
    for dep in reversed(state.deployments):  # who served production when: what the logs show
        if dep["target"] == "production" and dep["readyState"] == "READY":
            state.served.append((float(dep.get("ready") or dep["created"]), dep["uid"]))
        if dep["readyState"] == "ERROR":
            state.broken_shas.add(str(dep["meta"]["githubCommitSha"]))  # fails again when redeployed
    if has(scenario, "bad-deploy"):
        state.bad_sha = state.production_sha
    if has(scenario, "api-wedged"):
        state.wedged_id = current["uid"]
    return state


def production_sha(scenario: str) -> str:
    """The commit production runs in `scenario` (the API simulator reports it as its version)."""
    prod = seed(scenario).production
    return str(prod["meta"]["githubCommitSha"]) if prod else ""


def build_events(dep: dict[str, Any], at: float | None = None) -> list[dict[str, Any]]:
    """The build output of `dep` so far, in the events shape (`type`, `created`, `payload`)."""
    t_ms = (time.time() if at is None else at) * 1000
    start = float(dep.get("buildingAt") or dep["created"])
    failed = dep["readyState"] == "ERROR"
    lines: list[tuple[str, str]] = [("command" if i == 0 else "stdout", text)
                                    for i, text in enumerate(_ERROR_LOG if failed else _READY_LOG)]
    if failed:
        lines += [("stderr", text) for text in _ERROR_STDERR]
    end = float(dep.get("ready") or dep.get("buildErrorAt") or 0) or None
    step = ((end or start + 4000) - start) / max(1, len(lines))
    out: list[dict[str, Any]] = []
    for i, (kind, text) in enumerate(lines):
        created = start + i * step
        if dep["readyState"] in ("QUEUED", "BUILDING", "INITIALIZING") and created > t_ms:
            break
        serial = f"{int(created)}000{i:04d}"
        out.append({"type": kind, "created": int(created), "payload": {
            "deploymentId": dep["uid"], "id": f"{dep['uid'][4:12]}-{i}", "date": int(created), "serial": serial,
            "text": text, "info": {"type": "build", "name": "bld_" + dep["uid"][4:13].lower()}}})
    if dep["readyState"] in ("READY", "ERROR"):
        created = int(end or start)
        out.append({"type": "deployment-state", "created": created, "payload": {
            "deploymentId": dep["uid"], "id": f"{dep['uid'][4:12]}-state", "date": created,
            "serial": f"{created}0009999", "info": {"type": "deployment", "name": dep["uid"],
                                                    "readyState": dep["readyState"]}}})
    return out


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
        out.setdefault("buildErrorAt", dep["buildingAt"] + 48_000)
    if dep["readyState"] in ("QUEUED", "BUILDING"):
        out["alias"], out["aliasFinal"] = [], None
    return out


def _job_shape(job: PromoteJob | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {"fromDeploymentId": job.from_id, "toDeploymentId": job.to_id, "jobStatus": job.status,
            "requestedAt": int(job.requested * 1000), "type": "promote"}


def _project_shape(state: VercelState, *, rollback_info: bool = False) -> dict[str, Any]:
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
    } | ({"lastAliasRequest": _job_shape(state.job), "lastRollbackTarget": None} if rollback_info else {})


def _number(req: Request, name: str) -> float | None:
    raw = req.q(name)
    if raw is None or raw == "":
        return None
    return float(raw)  # ValueError -> 400 in the caller


class StreamBody:
    """A response body written as it is produced (chunked). A chunk `ABORT` drops the connection
    without finishing the body (a stream cut mid-line); the iterator stalls by sleeping."""

    ABORT = b"\x00__abort__"

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks


class VercelSimulator(Simulator):
    """A Simulator that also exposes its seeded state (tests turn its knobs: timings, logs)."""

    def __init__(self, faults: FaultPlan, state: VercelState, **kwargs: Any) -> None:
        super().__init__("vercel", faults, **kwargs)
        self.state = state

    def wait(self, seconds: float) -> bool:
        """Sleep in a handler thread; True when the simulator is stopping."""
        return self._released.wait(seconds)

    def _send(self, h: BaseHTTPRequestHandler, resp: Response, head: bool = False) -> None:
        if not isinstance(resp.body, StreamBody):
            super()._send(h, resp, head)
            return
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", resp.content_type or "application/stream+json")
            h.send_header("Transfer-Encoding", "chunked")
            h.send_header("Cache-Control", "no-cache")
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            for chunk in resp.body.chunks:
                if chunk == StreamBody.ABORT:
                    h.wfile.flush()
                    h.close_connection = True
                    return
                if chunk:
                    h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            h.close_connection = True


def _log_stream(sim: VercelSimulator, uid: str) -> Iterator[bytes]:
    """History (`backlog_s`), injected lines, a firehose if asked, then live lines for `stream_s`."""
    state = sim.state
    knobs = state.logs
    t = time.time() * 1000
    with state.lock:
        backlog = state.log_lines(uid, t - knobs.backlog_s * 1000, t)
    for i in range(0, len(backlog), knobs.chunk_lines):
        yield b"".join(backlog[i:i + knobs.chunk_lines])
        knobs.sent += len(backlog[i:i + knobs.chunk_lines])
    yield from list(knobs.inject)
    if knobs.after_inject == "cut":
        yield StreamBody.ABORT
        return
    if knobs.after_inject == "stall":
        sim.wait(knobs.stream_s)
        yield StreamBody.ABORT
        return
    if knobs.firehose:
        sent = 0
        dep = state.find(uid)
        sha = str(dep["meta"]["githubCommitSha"]) if dep else ""
        base = int(t)
        while sent < knobs.firehose:
            n = min(knobs.chunk_lines, knobs.firehose - sent)
            yield b"".join(state._log_line(uid, sha, base * 1000 + sent + j, t) for j in range(n))
            sent += n
            knobs.sent += n
    ends = time.time() + knobs.stream_s
    last = t
    synthetic = int(t) * 1000
    owed, tick = 0.0, time.time()
    while time.time() < ends:
        if knobs.rate > 0:  # a steady rate of lines (benchmarks), read on every step so it can change
            if sim.wait(0.02):
                return
            owed += knobs.rate * (time.time() - tick)
            tick = time.time()
            n = int(owed)
            owed -= n
            if n:
                dep = state.find(uid)
                sha = str(dep["meta"]["githubCommitSha"]) if dep else ""
                now_ms = time.time() * 1000
                yield b"".join(state._log_line(uid, sha, synthetic + j, now_ms) for j in range(n))
                synthetic += n
                knobs.sent += n
            last = time.time() * 1000
            continue
        if sim.wait(min(knobs.period_s, 0.25, max(0.0, ends - time.time()))):
            return
        tick = time.time()
        now_ms = tick * 1000
        with state.lock:
            state.advance()
            lines = state.log_lines(uid, last, now_ms)
        last = now_ms
        if lines:
            knobs.sent += len(lines)
            yield b"".join(lines)


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *, world: DemoWorld | None = None,
          ) -> VercelSimulator:
    """The "vercel" simulator for `scenario`; state is seeded once, here. `world` is shared with the
    other simulators (a private one when not given, e.g. by tests that build this one alone)."""
    state = seed(scenario, world=world or DemoWorld(scenario))
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
        with state.lock:
            state.advance()
            rows = list(state.deployments)
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
        with state.lock:
            state.advance()
            dep = state.find(m.group("ident"))
            if dep is None:
                return _err(404, "not_found", "Deployment not found")
            return Response(200, _detail_shape(dep, state))

    @sim.route("GET", r"/v3/deployments/(?P<ident>[^/]+)/events")
    def get_events(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return _err(404, "not_found", "Deployment not found") if denied.status == 404 else denied
        with state.lock:
            state.advance()
            dep = state.find(m.group("ident"))
            if dep is None:
                return _err(404, "not_found", "Deployment not found")
            events = build_events(dep)
        try:
            limit = int(req.q("limit") or 100)
        except ValueError:
            return _err(400, "bad_request", "Invalid request: `limit` should be a number.")
        if req.q("direction") == "backward":
            events = events[::-1][:limit] if limit > 0 else events[::-1]
        elif limit > 0:
            events = events[:limit]
        return Response(200, events)

    @sim.route("POST", r"/v13/deployments")
    def create_deployment(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        try:
            body = req.json()
        except ValueError:
            return _err(400, "bad_request", "Invalid JSON body")
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return _err(400, "bad_request", "Invalid request: missing required property `name`.")
        source_id = body.get("deploymentId")
        if not isinstance(source_id, str):
            return _err(400, "bad_request", "This simulator only redeploys: `deploymentId` is required.")
        project = body.get("project")
        if project is not None and not project_matches(str(project)):
            return _err(404, "not_found", "Project not found")
        with state.lock:
            state.advance()
            source = state.find(source_id)
            if source is None or source.get("projectId") != VERCEL_PROJECT_ID:
                return _err(404, "not_found", "Deployment not found")
            rng = random.Random()
            created = now()
            dep = _deployment(rng, created, body.get("target") if body.get("target") in ("production", "staging")
                              else None, "QUEUED", source["meta"]["githubCommitRef"],
                              source["meta"]["githubCommitMessage"], _USERS[0])
            dep["meta"] = dict(source["meta"])
            dep["source"] = "redeploy"
            dep["buildingAt"] = None
            dep["readySubstate"] = None
            dep.pop("ready", None)
            for key in ("errorCode", "errorMessage", "buildErrorAt"):
                dep.pop(key, None)
            dep["aliasAssigned"] = None
            dep["isRollbackCandidate"] = False
            state.deployments.insert(0, dep)
            state.builds[dep["uid"]] = Build(dep["uid"], time.time(), state.queued_s, state.build_s,
                                             fails=str(dep["meta"]["githubCommitSha"]) in state.broken_shas)
            return Response(200, _detail_shape(dep, state))

    @sim.route("POST", r"/v10/projects/(?P<project>[^/]+)/promote/(?P<ident>[^/]+)")
    def promote(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        if not project_matches(m.group("project")):
            return _err(404, "not_found", "Project not found")
        with state.lock:
            state.advance()
            dep = state.find(m.group("ident"))
            if dep is None:
                return _err(404, "not_found", "Deployment not found")
            if dep["readyState"] != "READY":
                return _err(400, "bad_request", f"The deployment is {dep['readyState']} and cannot be promoted: "
                                                "only a READY deployment can serve production.")
            if dep["uid"] == state.production_id:
                return _err(409, "conflict", "This deployment is already the current production deployment.")
            if state.job is not None and state.job.status in ("pending", "in-progress"):
                return _err(409, "conflict", "Another promotion of this project is in progress.")
            # A preview deployment is rebuilt with the production environment first: it takes longer.
            duration = state.promote_s * (3 if dep["target"] != "production" else 1)
            state.job = PromoteJob(to_id=dep["uid"], from_id=state.production_id, requested=time.time(),
                                   duration_s=duration)
        return Response(202, None)

    @sim.route("GET", r"/v1/projects/(?P<project>[^/]+)/deployments/(?P<ident>[^/]+)/runtime-logs")
    def runtime_logs(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        if not project_matches(m.group("project")):
            return _err(404, "not_found", "Project not found")
        with state.lock:
            state.advance()
            dep = state.find(m.group("ident"))
        if dep is None:
            return _err(404, "not_found", "Deployment not found")
        return Response(200, StreamBody(_log_stream(sim, dep["uid"])), content_type="application/stream+json")

    @sim.route("GET", r"/v9/projects/(?P<ident>[^/]+)")
    def get_project(req: Request, m: re.Match[str]) -> Response:
        denied = scope(req)
        if denied is not None:
            return denied
        if not project_matches(m.group("ident")):
            return _err(404, "not_found", "Project not found")
        with state.lock:
            state.advance()
            return Response(200, _project_shape(state, rollback_info=req.q("rollbackInfo") in ("true", "1")))

    return sim
