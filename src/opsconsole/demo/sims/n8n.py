"""Loopback simulator of the n8n public REST API v1 (`<instance>/api/v1`) and its health probes.

Shapes follow n8n's `openapi.yml` (executions, workflows, retry): ids are strings, timestamps
are ISO 8601 with milliseconds, lists are `{"data": [...], "nextCursor": "<base64>" | null}`
and newest-first for executions. The schedule keeps running while the simulator is up
(workflows fire every few minutes), so "the last hour" stays meaningful in a long demo.

Scenarios:
- healthy: every execution succeeds, except one old failure (more than an hour ago).
- incident: since ~50 minutes before start, every run of "Supabase → CRM sync" (1001) fails
  with an expired Supabase JWT (one with hostile text in the message), "Twilio status sync"
  (1002) crashed once, and the unwatched workflow failed once.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsconsole.demo.scenario import N8N_WORKFLOWS, DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, epoch_ms, iso, now

API = "/api/v1"
HISTORY = timedelta(hours=6)
MAX_LIMIT = 250
DEFAULT_LIMIT = 100
STATUSES = ("canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting")

JWT_ERROR = "Supabase: JWT expired / 401 from REST"
# Service-provided text the console must show without obeying markup or terminal escapes.
HOSTILE_ERROR = JWT_ERROR + " [red]x[/] \x1b[2J\x1b[31mPWNED\x1b[0m"


@dataclass(frozen=True)
class _Workflow:
    id: str
    name: str
    every_min: int  # schedule: runs when minute index % every_min == 0
    offset_s: int  # seconds into the minute the trigger fires
    nodes: tuple[tuple[str, str], ...]  # (name, type); the last one does the external call
    active: bool = True
    tags: tuple[str, ...] = ()


WORKFLOWS: tuple[_Workflow, ...] = (
    _Workflow(N8N_WORKFLOWS[0], "Supabase → CRM sync", 2, 3,
              (("Every 2 minutes", "n8n-nodes-base.scheduleTrigger"),
               ("Fetch changed contacts", "n8n-nodes-base.httpRequest"),
               ("Upsert contacts (Supabase)", "n8n-nodes-base.supabase")), tags=("sync",)),
    _Workflow(N8N_WORKFLOWS[1], "Twilio status sync", 5, 7,
              (("Every 5 minutes", "n8n-nodes-base.scheduleTrigger"),
               ("List message statuses", "n8n-nodes-base.twilio"),
               ("Update campaign_queue", "n8n-nodes-base.postgres")), tags=("sync",)),
    _Workflow("1003", "Weekly digest email", 15, 11,
              (("Every 15 minutes", "n8n-nodes-base.scheduleTrigger"),
               ("Build digest", "n8n-nodes-base.code"),
               ("Send email", "n8n-nodes-base.emailSend")), tags=("reports",)),
    _Workflow("1004", "Old Airtable import (archived)", 0, 0,
              (("Manual trigger", "n8n-nodes-base.manualTrigger"),
               ("Airtable", "n8n-nodes-base.airtable")), active=False),
)
_BY_ID = {w.id: w for w in WORKFLOWS}
_CREATED = datetime(2025, 3, 4, 9, 30, 0, tzinfo=UTC)


@dataclass
class _Execution:
    id: int
    workflow: _Workflow
    mode: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    retry_of: str | None = None
    retry_success_id: str | None = None
    error: dict[str, Any] | None = None
    items: int = 0  # records the run moved, for the success data

    def summary(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "finished": self.status == "success",
            "mode": self.mode,
            "retryOf": self.retry_of,
            "retrySuccessId": self.retry_success_id,
            "status": self.status,
            "startedAt": iso(self.started_at),
            "stoppedAt": iso(self.stopped_at) if self.stopped_at is not None else None,
            "workflowId": self.workflow.id,
            "waitTill": None,
            "storedAt": "db",
        }

    def full(self) -> dict[str, Any]:
        """With `includeData=true`: run data, the failing node's error, the workflow snapshot."""
        out = self.summary()
        last_node = self.workflow.nodes[-1][0]
        node = (self.error or {}).get("node")
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            last_node = node["name"]
        started = epoch_ms(self.started_at)
        run_data: dict[str, Any] = {}
        for i, (name, _type) in enumerate(self.workflow.nodes):
            entry: dict[str, Any] = {"startTime": started + i * 150, "executionTime": 120 + i * 40,
                                     "executionStatus": "success", "source": [],
                                     "data": {"main": [[{"json": {"count": self.items}}]]}}
            if self.error is not None and name == last_node:
                entry["executionStatus"] = "error"
                entry["error"] = self.error
                entry.pop("data")
            run_data[name] = [entry]
            if name == last_node:
                break  # nodes after the failing one never ran
        result: dict[str, Any] = {"runData": run_data, "lastNodeExecuted": last_node}
        if self.error is not None:
            result["error"] = self.error
        out["data"] = {"startData": {}, "resultData": result,
                       "executionData": {"contextData": {}, "nodeExecutionStack": [],
                                         "waitingExecution": {}, "waitingExecutionSource": {}}}
        out["workflowData"] = _workflow_json(self.workflow, with_nodes=True)
        out["customData"] = {}
        return out


def _node_json(wf: _Workflow, index: int) -> dict[str, Any]:
    name, type_ = wf.nodes[index]
    return {"id": f"{wf.id}-node-{index}", "name": name, "type": type_, "typeVersion": 1,
            "position": [240 + 220 * index, 300], "parameters": {}}


def _workflow_json(wf: _Workflow, *, with_nodes: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": wf.id, "name": wf.name, "active": wf.active, "isArchived": False,
        "createdAt": iso(_CREATED), "updatedAt": iso(_CREATED + timedelta(days=int(wf.id) - 990)),
        "versionId": f"v-{wf.id}-3", "triggerCount": 1 if wf.active else 0,
        "tags": [{"id": f"tag-{t}", "name": t} for t in wf.tags],
        "settings": {"executionOrder": "v1", "saveDataErrorExecution": "all"},
        "connections": {},
    }
    if with_nodes:
        out["nodes"] = [_node_json(wf, i) for i in range(len(wf.nodes))]
    return out


def _node_error(wf: _Workflow, message: str, when: datetime, *, http_code: str = "401",
                description: str = "JWT expired", node: int = -1) -> dict[str, Any]:
    name, type_ = wf.nodes[node]
    return {"message": message, "name": "NodeApiError", "description": description,
            "httpCode": http_code, "timestamp": epoch_ms(when), "context": {},
            "node": {"name": name, "type": type_, "typeVersion": 1, "parameters": {}}}


@dataclass
class _World:
    """The instance's execution history; grows minute by minute while the simulator runs."""

    scenario: str
    started: datetime
    lock: threading.Lock = field(default_factory=threading.Lock)
    executions: dict[int, _Execution] = field(default_factory=dict)
    next_id: int = 5200
    generated_until: datetime | None = None  # start of the next minute to generate
    oneoffs_done: set[str] = field(default_factory=set)

    @property
    def incident_start(self) -> datetime:
        return self.started - timedelta(minutes=50)

    def advance(self, t: datetime) -> None:
        """Generate every scheduled run in complete minutes up to `t` (callers hold the lock)."""
        minute = self.generated_until
        if minute is None:
            first = self.started - HISTORY
            minute = first.replace(second=0, microsecond=0)
        while minute + timedelta(minutes=1) <= t:
            index = int(minute.timestamp()) // 60
            for wf in sorted(WORKFLOWS, key=lambda w: w.offset_s):
                if wf.every_min and index % wf.every_min == 0:
                    self._run(wf, minute + timedelta(seconds=wf.offset_s), index)
            minute += timedelta(minutes=1)
        self.generated_until = minute

    def _once(self, key: str, due: datetime, at: datetime) -> bool:
        if at >= due and key not in self.oneoffs_done:
            self.oneoffs_done.add(key)
            return True
        return False

    def _run(self, wf: _Workflow, start: datetime, index: int) -> None:
        rng = random.Random(f"{self.scenario}:{wf.id}:{index}")
        start = start + timedelta(milliseconds=rng.randint(0, 900))
        status, error = "success", None
        duration = timedelta(milliseconds=rng.randint(900, 4200))
        if has(self.scenario, "n8n-failing"):
            if wf.id == N8N_WORKFLOWS[0] and start >= self.incident_start:
                status = "error"
                hostile = self._once("hostile", self.incident_start + timedelta(minutes=15), start)
                error = _node_error(wf, HOSTILE_ERROR if hostile else JWT_ERROR, start + duration)
                duration = timedelta(milliseconds=rng.randint(300, 800))
            elif wf.id == N8N_WORKFLOWS[1] and self._once(
                    "crash", self.incident_start + timedelta(minutes=20), start):
                status = "crashed"
                error = {"message": "Worker crashed: out of memory while updating campaign_queue",
                         "name": "WorkflowCrashedError", "timestamp": epoch_ms(start + duration)}
            elif wf.id == "1003" and self._once("digest", self.incident_start + timedelta(minutes=10), start):
                status = "error"
                error = _node_error(wf, "Invalid login: 535 Authentication credentials invalid", start,
                                    http_code="535", description="SMTP authentication failed")
        elif wf.id == N8N_WORKFLOWS[1] and self._once(
                "old", self.started - timedelta(hours=2, minutes=10), start):
            status = "error"
            error = _node_error(wf, "Twilio: 20429 Too Many Requests", start, http_code="429",
                                description="Too many requests", node=1)
        self._add(wf, "trigger", status, start, start + duration, error=error, items=rng.randint(0, 40))

    def _add(self, wf: _Workflow, mode: str, status: str, start: datetime, stop: datetime | None, *,
             error: dict[str, Any] | None = None, retry_of: str | None = None, items: int = 0) -> _Execution:
        ex = _Execution(self.next_id, wf, mode, status, start, stop, retry_of=retry_of, error=error,
                        items=items)
        self.executions[ex.id] = ex
        self.next_id += 1
        return ex

    def retry(self, ex: _Execution, t: datetime) -> _Execution:
        """A retry runs now; it fails again while the incident's cause (expired JWT) persists."""
        still_broken = (has(self.scenario, "n8n-failing") and ex.workflow.id == N8N_WORKFLOWS[0])
        stop = t + timedelta(milliseconds=650)
        if still_broken:
            new = self._add(ex.workflow, "retry", "error", t, stop, retry_of=str(ex.id),
                            error=_node_error(ex.workflow, JWT_ERROR, stop))
        else:
            new = self._add(ex.workflow, "retry", "success", t, stop, retry_of=str(ex.id),
                            items=ex.items or 1)
            ex.retry_success_id = str(new.id)
        return new


# -- request helpers --------------------------------------------------------------------------
def _msg(status: int, message: str) -> Response:
    return Response(status, {"message": message})


def _encode_cursor(payload: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def _decode_cursor(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.b64decode(value.encode(), validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _limit(req: Request, cursor: dict[str, Any] | None) -> int | Response:
    raw = req.q("limit")
    if cursor is not None and isinstance(cursor.get("limit"), int):
        raw = str(cursor["limit"])
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        return _msg(400, "request/query/limit must be number")
    if value > MAX_LIMIT:
        return _msg(400, f"request/query/limit must be <= {MAX_LIMIT}")
    if value < 1:
        return _msg(400, "request/query/limit must be >= 1")
    return value


def _bool_param(req: Request, name: str) -> bool | Response:
    raw = req.q(name, "false")
    if raw not in ("true", "false"):
        return _msg(400, f"request/query/{name} must be equal to one of the allowed values: true, false")
    return raw == "true"


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets) -> Simulator:
    """The n8n simulator (not started). Auth: `X-N8N-API-KEY: <secrets.n8n_api_key>`."""
    world = _World(scenario=scenario, started=now())
    with world.lock:
        world.advance(world.started)

    def auth(req: Request) -> Response | None:
        if req.headers.get("x-n8n-api-key", "") != secrets.n8n_api_key:
            return _msg(401, "unauthorized")
        return None

    class _N8nSimulator(Simulator):
        def not_found(self, req: Request) -> Response:
            return _msg(404, "not found")

    sim = _N8nSimulator("n8n", faults, auth=auth, open_paths=("/healthz",))

    @sim.route("GET", "/healthz")
    def healthz(req: Request, m: Any) -> Response:
        return Response(200, {"status": "ok"})

    @sim.route("GET", "/healthz/readiness")
    def readiness(req: Request, m: Any) -> Response:
        return Response(200, {"status": "ok"})

    @sim.route("GET", f"{API}/workflows")
    def list_workflows(req: Request, m: Any) -> Response:
        cursor = None
        if req.q("cursor"):
            cursor = _decode_cursor(req.q("cursor") or "")
            if cursor is None:
                return _msg(400, "An invalid cursor was provided")
        limit = _limit(req, cursor)
        if isinstance(limit, Response):
            return limit
        rows = list(WORKFLOWS)
        active = req.q("active")
        if active in ("true", "false"):
            rows = [w for w in rows if w.active == (active == "true")]
        name = req.q("name")
        if name:
            rows = [w for w in rows if name.lower() in w.name.lower()]
        tags = req.q("tags")
        if tags:
            wanted = {t.strip() for t in tags.split(",") if t.strip()}
            rows = [w for w in rows if wanted & set(w.tags)]
        offset = int(cursor.get("offset", 0)) if cursor else 0
        page = rows[offset:offset + limit]
        more = offset + limit < len(rows)
        next_cursor = _encode_cursor({"offset": offset + limit, "limit": limit}) if more else None
        return Response(200, {"data": [_workflow_json(w) for w in page], "nextCursor": next_cursor})

    @sim.route("GET", f"{API}/workflows/(?P<id>[^/]+)")
    def get_workflow(req: Request, m: Any) -> Response:
        wf = _BY_ID.get(m.group("id"))
        if wf is None:
            return _msg(404, "Not Found")
        return Response(200, _workflow_json(wf))

    @sim.route("GET", f"{API}/executions")
    def list_executions(req: Request, m: Any) -> Response:
        cursor = None
        if req.q("cursor"):
            cursor = _decode_cursor(req.q("cursor") or "")
            if cursor is None or not str(cursor.get("lastId", "")).isdigit():
                return _msg(400, "An invalid cursor was provided")
        limit = _limit(req, cursor)
        if isinstance(limit, Response):
            return limit
        include = _bool_param(req, "includeData")
        if isinstance(include, Response):
            return include
        status = req.q("status")
        if status is not None and status not in STATUSES:
            return _msg(400, "request/query/status must be equal to one of the allowed values: "
                             + ", ".join(STATUSES))
        workflow_id = req.q("workflowId")
        with world.lock:
            world.advance(now())
            rows = sorted(world.executions.values(), key=lambda e: e.id, reverse=True)
            if status is not None:
                rows = [e for e in rows if e.status == status]
            if workflow_id:
                rows = [e for e in rows if e.workflow.id == workflow_id]
            if cursor is not None:
                last = int(cursor["lastId"])
                rows = [e for e in rows if e.id < last]
            page = rows[:limit]
            more = len(rows) > limit
            data = [e.full() if include else e.summary() for e in page]
        next_cursor = _encode_cursor({"lastId": str(page[-1].id), "limit": limit}) if more and page else None
        return Response(200, {"data": data, "nextCursor": next_cursor})

    @sim.route("GET", f"{API}/executions/(?P<id>[^/]+)")
    def get_execution(req: Request, m: Any) -> Response:
        raw = m.group("id")
        if not raw.isdigit():
            return _msg(400, "request/params/id must be integer")
        include = _bool_param(req, "includeData")
        if isinstance(include, Response):
            return include
        with world.lock:
            world.advance(now())
            ex = world.executions.get(int(raw))
            if ex is None:
                return _msg(404, "Not Found")
            return Response(200, ex.full() if include else ex.summary())

    @sim.route("POST", f"{API}/executions/(?P<id>[^/]+)/retry")
    def retry_execution(req: Request, m: Any) -> Response:
        raw = m.group("id")
        if not raw.isdigit():
            return _msg(400, "request/params/id must be integer")
        if req.body:
            try:
                body = req.json()
            except ValueError:
                return _msg(400, "request/body must be object")
            if not isinstance(body, dict) or not isinstance(body.get("loadWorkflow", False), bool):
                return _msg(400, "request/body/loadWorkflow must be boolean")
        with world.lock:
            world.advance(now())
            ex = world.executions.get(int(raw))
            if ex is None:
                return _msg(404, "Not Found")
            if ex.status == "success":
                return _msg(409, "The execution succeeded, so it cannot be retried.")
            if ex.status in ("new", "running", "waiting"):
                return _msg(409, f"The execution is {ex.status} and cannot be retried yet.")
            if ex.retry_success_id is not None:
                return _msg(409, f"The execution was already retried successfully (execution "
                                 f"{ex.retry_success_id}).")
            new = world.retry(ex, now())
            return Response(200, new.full())

    return sim
