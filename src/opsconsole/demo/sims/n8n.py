"""Loopback simulator of the n8n public REST API v1 (`<instance>/api/v1`) and its health probes.

Shapes follow n8n's `openapi.yml` (executions, workflows, retry, credential test): ids are strings,
timestamps are ISO 8601 with milliseconds, lists are `{"data": [...], "nextCursor": "<base64>" | null}`
and newest-first for executions; errors are `{"message": ...}`. The schedule keeps running while the
simulator is up (workflows fire every few minutes), so "the last hour" stays meaningful in a long demo.

What it models, besides listing:
- `POST /executions/{id}/retry` starts a new execution (`mode: "retry"`, `retryOf`) that runs for
  `retry_run_s` (listed as `running` meanwhile, as in queue mode) and then succeeds when the original
  failed transiently (CRM 5xx, timeouts, a crashed worker) or fails again while the credential it
  failed on is still broken; when it succeeds n8n's `retrySuccessId` is set on the execution retried.
  409 for a running or a successful execution.
- `POST /credentials/{id}/test` answers `{"status": "OK" | "Error", "message": ...}` like n8n.
- Switches (`POST /__sim/n8n/features`): an n8n older than 1.112 (`"retry": false`: 404 on the retry
  path), one without the credential-test endpoint (`"credential_test": false`, answering
  `credential_test_status` 404 or 405), an API key missing scopes (`"missing_scopes":
  ["credential:read"]`: 403), and how long a retry runs (`"retry_run_s"`).
- The runbook's manual fix: `POST /__sim/n8n/credentials/{id}/fix` (an operator re-entered the
  credential in n8n's UI); `.../break` breaks one (with n8n's message, e.g. `connect ECONNREFUSED ...`),
  `.../delete` deletes one that workflows still name (its test answers 404).
  `POST /__sim/n8n/executions` adds executions (`kind`: transient, credential, hostile, huge, running,
  success; `count`; `workflow`; `seconds` for running ones), `GET /__sim/n8n/state` shows the state.
  The control paths need no API key, like `/__sim/faults`.

Scenarios (problem `n8n-failing`, in `n8n-sync` and `incident`): from ~50 minutes before start the CRM
behind "Supabase → CRM sync" (1001) answers 503s and times out for 20 minutes; then the Supabase
credential stops working (the service-role key was rotated) and every run of 1001 fails on it (one
with hostile text in the message); "Twilio status sync" (1002) crashed once and timed out once; the
unwatched digest (1003) failed once. When the credential is fixed and every failure of the watched
workflows in the last hour has been retried successfully, the world's `n8n-failing` is resolved.
healthy: every execution succeeds, except one old failure (more than an hour ago).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.demo.scenario import N8N_WORKFLOWS, DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, epoch_ms, iso, now
from opsconsole.domain.n8n import Execution, RetryFamilies

if TYPE_CHECKING:
    from opsconsole.demo.world import DemoWorld

API = "/api/v1"
CONTROL = "/__sim/n8n"
HISTORY = timedelta(hours=6)
MAX_LIMIT = 250
DEFAULT_LIMIT = 100
STATUSES = ("canceled", "crashed", "error", "new", "running", "success", "unknown", "waiting")
PROBLEM = "n8n-failing"
RETRY_RUN_S = 0.6

JWT_ERROR = "Supabase: JWT expired / 401 from REST"
# Service-provided text the console must show without obeying markup or terminal escapes.
HOSTILE_ERROR = JWT_ERROR + " [red]x[/] \x1b[2J\x1b[31mPWNED\x1b[0m"
HUGE_CHARS = 1_048_576  # 1 MiB: twice in the execution (run data and result), over a list row's 2 MiB
CREDENTIAL_BROKEN = "Authorization failed - please check your credentials (401: JWT expired)"
CREDENTIAL_OK = "Connection successful!"


@dataclass(frozen=True)
class _Credential:
    id: str
    name: str
    type: str


SUPABASE_CREDENTIAL = "sbProdSvcRole7Kq"
CREDENTIALS: dict[str, _Credential] = {c.id: c for c in (
    _Credential(SUPABASE_CREDENTIAL, "Supabase prod (service role)", "supabaseApi"),
    _Credential("pgCampaignDb4w8Z", "Campaign DB (Supabase Postgres)", "postgres"),
    _Credential("crmApiKey3Rt5Yu0", "CRM API key", "httpHeaderAuth"),
    _Credential("twilioMain8Jk2Nb", "Twilio main account", "twilioApi"),
    _Credential("smtpDigest6Hg4Df", "Digest mailer (SMTP)", "smtp"),
    _Credential("airtableOld1Qw2E", "Airtable (old)", "airtableTokenApi"),
)}


@dataclass(frozen=True)
class _Workflow:
    id: str
    name: str
    every_min: int  # schedule: runs when minute index % every_min == 0
    offset_s: int  # seconds into the minute the trigger fires
    nodes: tuple[tuple[str, str, str | None], ...]  # (name, type, credential id)
    active: bool = True
    tags: tuple[str, ...] = ()


WORKFLOWS: tuple[_Workflow, ...] = (
    _Workflow(N8N_WORKFLOWS[0], "Supabase → CRM sync", 2, 3,
              (("Every 2 minutes", "n8n-nodes-base.scheduleTrigger", None),
               ("Fetch changed contacts (Supabase)", "n8n-nodes-base.supabase", SUPABASE_CREDENTIAL),
               ("Upsert contacts (CRM)", "n8n-nodes-base.httpRequest", "crmApiKey3Rt5Yu0")), tags=("sync",)),
    _Workflow(N8N_WORKFLOWS[1], "Twilio status sync", 5, 7,
              (("Every 5 minutes", "n8n-nodes-base.scheduleTrigger", None),
               ("List message statuses", "n8n-nodes-base.twilio", "twilioMain8Jk2Nb"),
               ("Update campaign_queue", "n8n-nodes-base.postgres", "pgCampaignDb4w8Z")), tags=("sync",)),
    _Workflow("1003", "Weekly digest email", 15, 11,
              (("Every 15 minutes", "n8n-nodes-base.scheduleTrigger", None),
               ("Build digest", "n8n-nodes-base.code", None),
               ("Send email", "n8n-nodes-base.emailSend", "smtpDigest6Hg4Df")), tags=("reports",)),
    _Workflow("1004", "Old Airtable import (archived)", 0, 0,
              (("Manual trigger", "n8n-nodes-base.manualTrigger", None),
               ("Airtable", "n8n-nodes-base.airtable", "airtableOld1Qw2E")), active=False),
)
_BY_ID = {w.id: w for w in WORKFLOWS}
_CREATED = datetime(2025, 3, 4, 9, 30, 0, tzinfo=UTC)
_NODE_INDEX = {"credential": 1, "crm_5xx": 2, "timeout": 2, "twilio_timeout": 1, "hostile": 1, "huge": 1}


def _node_json(wf: _Workflow, index: int) -> dict[str, Any]:
    name, type_, cred = wf.nodes[index]
    out: dict[str, Any] = {"id": f"{wf.id}-node-{index}", "name": name, "type": type_, "typeVersion": 1,
                           "position": [240 + 220 * index, 300], "parameters": {}}
    if cred is not None:
        c = CREDENTIALS[cred]
        out["credentials"] = {c.type: {"id": c.id, "name": c.name}}
    return out


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


def _stack(name: str, type_: str) -> str:
    module = type_.rsplit(".", 1)[-1]
    cls = module[:1].upper() + module[1:]
    base = "/usr/local/lib/node_modules/n8n/node_modules"
    return "\n".join((
        f"{name}: see message",
        f"    at {cls}.execute ({base}/n8n-nodes-base/dist/nodes/{cls}/{cls}.node.js:412:23)",
        f"    at WorkflowExecute.runNode ({base}/n8n-core/dist/execution-engine/workflow-execute.js:1093:31)",
        f"    at {base}/n8n-core/dist/execution-engine/workflow-execute.js:1474:38",
        "    at processTicksAndRejections (node:internal/process/task_queues:105:5)",
        f"    at async {base}/n8n-core/dist/execution-engine/workflow-execute.js:2067:11",
    ))


def _node_error(wf: _Workflow, cause: str, when: datetime) -> dict[str, Any]:
    """n8n's error object for a failure of `cause` (NodeApiError shape, the node included)."""
    index = _NODE_INDEX.get(cause, len(wf.nodes) - 1)
    name, type_, cred = wf.nodes[min(index, len(wf.nodes) - 1)]
    if cause in ("credential", "hostile"):
        message, description, code = (HOSTILE_ERROR if cause == "hostile" else JWT_ERROR), "JWT expired", "401"
    elif cause == "crm_5xx":
        message, description, code = ("The service was not able to process your request",
                                      "503 Service Unavailable from crm.example.com", "503")
    elif cause in ("timeout", "twilio_timeout"):
        message, description, code = ("The connection timed out, consider setting the 'Retry on Fail' option "
                                      "in the node settings", "timeout of 30000ms exceeded", "")
    elif cause == "huge":
        message, description, code = ("Supabase: unexpected response: " + "A" * HUGE_CHARS,
                                      "the upstream sent an error page", "502")
    elif cause == "smtp":
        message, description, code = ("Invalid login: 535 Authentication credentials invalid",
                                      "SMTP authentication failed", "535")
    elif cause == "rate_limited":
        message, description, code = "Twilio: 20429 Too Many Requests", "Too many requests", "429"
    else:
        message, description, code = "Unexpected error", "", ""
    node: dict[str, Any] = {"name": name, "type": type_, "typeVersion": 1, "parameters": {}}
    if cred is not None:
        c = CREDENTIALS[cred]
        node["credentials"] = {c.type: {"id": c.id, "name": c.name}}
    out: dict[str, Any] = {"message": message, "name": "NodeApiError", "description": description,
                           "timestamp": epoch_ms(when), "context": {}, "node": node,
                           "stack": _stack("NodeApiError", type_)}
    if code:
        out["httpCode"] = code
    if cause in ("timeout", "twilio_timeout"):
        out["code"] = "ECONNABORTED"
    return out


@dataclass
class _Execution:
    id: int
    workflow: _Workflow
    mode: str
    final_status: str  # what it ends with; "running" until stopped_at
    started_at: datetime
    stopped_at: datetime | None
    cause: str | None = None  # why it failed: credential, crm_5xx, timeout, crash, ...
    retry_of: str | None = None
    retry_success_id: str | None = None
    error: dict[str, Any] | None = None
    items: int = 0  # records the run moved, for the success data
    settled: bool = True  # False for a retry whose end is not yet reflected on the original

    def status_at(self, t: datetime) -> str:
        if self.stopped_at is not None and t < self.stopped_at:
            return "running"
        return self.final_status

    def summary(self, t: datetime) -> dict[str, Any]:
        status = self.status_at(t)
        return {
            "id": str(self.id),
            "finished": status == "success",
            "mode": self.mode,
            "retryOf": self.retry_of,
            "retrySuccessId": self.retry_success_id,
            "status": status,
            "startedAt": iso(self.started_at),
            "stoppedAt": iso(self.stopped_at) if self.stopped_at is not None and status != "running" else None,
            "workflowId": self.workflow.id,
            "waitTill": None,
            "storedAt": "db",
        }

    def full(self, t: datetime) -> dict[str, Any]:
        """With `includeData=true`: run data, the failing node's error, the workflow snapshot."""
        out = self.summary(t)
        running = out["status"] == "running"
        error = None if running else self.error
        last_node = self.workflow.nodes[-1][0]
        node = (error or {}).get("node")
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            last_node = node["name"]
        started = epoch_ms(self.started_at)
        run_data: dict[str, Any] = {}
        for i, (name, _type, _cred) in enumerate(self.workflow.nodes):
            if running and i > 0:
                break
            entry: dict[str, Any] = {"startTime": started + i * 150, "executionTime": 120 + i * 40,
                                     "executionStatus": "success", "source": [],
                                     "data": {"main": [[{"json": {"count": self.items}}]]}}
            if error is not None and name == last_node:
                entry["executionStatus"] = "error"
                entry["error"] = error
                entry.pop("data")
            run_data[name] = [entry]
            if name == last_node:
                break  # nodes after the failing one never ran
        result: dict[str, Any] = {"runData": run_data, "lastNodeExecuted": last_node}
        if error is not None and self.final_status != "crashed":
            result["error"] = error
        elif error is not None:  # a crash leaves a bare error: no node ran to completion
            result["error"] = {k: v for k, v in error.items() if k != "node"}
        out["data"] = {"startData": {}, "resultData": result,
                       "executionData": {"contextData": {}, "nodeExecutionStack": [],
                                         "waitingExecution": {}, "waitingExecutionSource": {}}}
        out["workflowData"] = _workflow_json(self.workflow, with_nodes=True)
        out["customData"] = {}
        return out

    def as_domain(self, t: datetime) -> Execution:
        return Execution(id=str(self.id), workflow_id=self.workflow.id, status=self.status_at(t), mode=self.mode,
                         started_at=self.started_at, stopped_at=self.stopped_at, retry_of=self.retry_of,
                         retry_success_id=self.retry_success_id)


@dataclass
class _Features:
    retry: bool = True  # POST /executions/{id}/retry exists (n8n >= 1.112)
    credential_test: bool = True  # POST /credentials/{id}/test exists (n8n releases of 2026)
    credential_test_status: int = 404  # what an n8n without it answers: 404 or 405
    missing_scopes: tuple[str, ...] = ()  # e.g. ("credential:read",): answered 403
    retry_run_s: float = RETRY_RUN_S

    def to_json(self) -> dict[str, Any]:
        return {"retry": self.retry, "credential_test": self.credential_test,
                "credential_test_status": self.credential_test_status, "missing_scopes": list(self.missing_scopes),
                "retry_run_s": self.retry_run_s}


@dataclass
class _Instance:
    """The instance's execution history and credentials; grows minute by minute while the simulator runs."""

    scenario: str
    started: datetime
    world: DemoWorld | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    executions: dict[int, _Execution] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # ids ascending (n8n numbers executions as they start)
    pending: set[int] = field(default_factory=set)  # retries whose end is not yet reflected on the original
    next_id: int = 5200
    generated_until: datetime | None = None  # start of the next minute to generate
    oneoffs_done: set[str] = field(default_factory=set)
    broken: dict[str, list[list[datetime | None]]] = field(default_factory=dict)  # cred -> [[from, until]]
    messages: dict[str, str] = field(default_factory=dict)  # cred -> n8n's test message while broken
    features: _Features = field(default_factory=_Features)
    deleted: set[str] = field(default_factory=set)  # credentials deleted in n8n (workflows still name them)
    resolved: bool = False

    @property
    def incident_start(self) -> datetime:
        return self.started - timedelta(minutes=50)

    def broken_at(self, credential: str, t: datetime) -> bool:
        return any(start is not None and start <= t and (until is None or t < until)
                   for start, until in self.broken.get(credential, []))

    def break_credential(self, credential: str, since: datetime, message: str = CREDENTIAL_BROKEN) -> None:
        spans = self.broken.setdefault(credential, [])
        if not any(until is None for _s, until in spans):
            spans.append([since, None])
        self.messages[credential] = message

    def fix_credential(self, credential: str, t: datetime) -> bool:
        changed = False
        for span in self.broken.get(credential, []):
            if span[1] is None:
                span[1] = t
                changed = True
        return changed

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
        self._settle(t)

    def _once(self, key: str, due: datetime, at: datetime) -> bool:
        if at >= due and key not in self.oneoffs_done:
            self.oneoffs_done.add(key)
            return True
        return False

    def _run(self, wf: _Workflow, start: datetime, index: int) -> None:
        rng = random.Random(f"{self.scenario}:{wf.id}:{index}")
        start = start + timedelta(milliseconds=rng.randint(0, 900))
        cause: str | None = None
        duration = timedelta(milliseconds=rng.randint(900, 4200))
        crm_trouble = self.incident_start <= start < self.incident_start + timedelta(minutes=20)
        if wf.id == N8N_WORKFLOWS[0] and self.broken_at(SUPABASE_CREDENTIAL, start):
            hostile = self._once("hostile", self.incident_start + timedelta(minutes=25), start)
            cause = "hostile" if hostile else "credential"
            duration = timedelta(milliseconds=rng.randint(300, 800))
        elif has(self.scenario, PROBLEM) and wf.id == N8N_WORKFLOWS[0] and crm_trouble and rng.random() < 0.6:
            cause = "crm_5xx" if rng.random() < 0.6 else "timeout"
            if cause == "timeout":
                duration = timedelta(seconds=30, milliseconds=rng.randint(0, 400))
        elif has(self.scenario, PROBLEM) and wf.id == N8N_WORKFLOWS[1] and self._once(
                "crash", self.incident_start + timedelta(minutes=20), start):
            cause = "crash"
        elif has(self.scenario, PROBLEM) and wf.id == N8N_WORKFLOWS[1] and self._once(
                "twilio-timeout", self.incident_start + timedelta(minutes=35), start):
            cause = "twilio_timeout"
        elif has(self.scenario, PROBLEM) and wf.id == "1003" and self._once(
                "digest", self.incident_start + timedelta(minutes=10), start):
            cause = "smtp"
        elif not has(self.scenario, PROBLEM) and wf.id == N8N_WORKFLOWS[1] and self._once(
                "old", self.started - timedelta(hours=2, minutes=10), start):
            cause = "rate_limited"
        self._add_failure_or_success(wf, "trigger", cause, start, start + duration, items=rng.randint(0, 40))

    def _add_failure_or_success(self, wf: _Workflow, mode: str, cause: str | None, start: datetime,
                                stop: datetime | None, *, retry_of: str | None = None, items: int = 0,
                                settled: bool = True) -> _Execution:
        if cause is None:
            return self._add(wf, mode, "success", start, stop, retry_of=retry_of, items=items, settled=settled)
        if cause == "crash":
            error = {"message": "Worker crashed: out of memory while updating campaign_queue",
                     "name": "WorkflowCrashedError", "timestamp": epoch_ms(stop or start),
                     "stack": "WorkflowCrashedError: Workflow did not finish, possible out-of-memory issue"}
            return self._add(wf, mode, "crashed", start, stop, error=error, cause=cause, retry_of=retry_of,
                             settled=settled)
        return self._add(wf, mode, "error", start, stop, error=_node_error(wf, cause, stop or start), cause=cause,
                         retry_of=retry_of, settled=settled)

    def _add(self, wf: _Workflow, mode: str, status: str, start: datetime, stop: datetime | None, *,
             error: dict[str, Any] | None = None, cause: str | None = None, retry_of: str | None = None,
             items: int = 0, settled: bool = True) -> _Execution:
        ex = _Execution(self.next_id, wf, mode, status, start, stop, cause=cause, retry_of=retry_of, error=error,
                        items=items, settled=settled)
        self.executions[ex.id] = ex
        self.order.append(ex.id)
        if not settled:
            self.pending.add(ex.id)
        self.next_id += 1
        return ex

    def retry(self, ex: _Execution, t: datetime) -> _Execution:
        """A retry runs now for `retry_run_s`: it fails again while the credential its original failed on
        is still broken, and succeeds for transient failures."""
        cred = _failed_on(ex)
        still_broken = cred is not None and self.broken_at(cred, t)
        stop = t + timedelta(seconds=self.features.retry_run_s)
        return self._add_failure_or_success(ex.workflow, "retry", "credential" if still_broken else None, t, stop,
                                            retry_of=str(ex.id), items=ex.items or 1, settled=False)

    def _settle(self, t: datetime) -> None:
        """Finished retries mark what they retried (n8n's `retrySuccessId`)."""
        for ident in sorted(self.pending):
            ex = self.executions[ident]
            if ex.stopped_at is not None and t < ex.stopped_at:
                continue
            self.pending.discard(ident)
            ex.settled = True
            if ex.final_status == "success" and ex.retry_of is not None:
                original = self.executions.get(int(ex.retry_of))
                if original is not None and original.retry_success_id is None:
                    original.retry_success_id = str(ex.id)

    def unresolved(self, t: datetime) -> list[_Execution]:
        """Failures of the watched workflows in the last hour whose retry family never succeeded."""
        since = t - timedelta(hours=1)
        recent = []
        for ident in reversed(self.order):  # newest first, until the hour is over
            ex = self.executions[ident]
            if ex.started_at < since:
                break
            recent.append(ex)
        families = RetryFamilies(e.as_domain(t) for e in recent)
        return [e for e in recent if e.workflow.id in N8N_WORKFLOWS and e.status_at(t) in ("error", "crashed")
                and not families.resolved(str(e.id))]

    def check_resolved(self, t: datetime) -> bool:
        """True when, just now, nothing is broken any more and every recent failure was retried
        successfully (once: the caller resolves the world's problem after releasing the lock)."""
        if self.resolved:
            return False
        if any(self.broken_at(c, t) for c in self.broken) or self.unresolved(t):
            return False
        self.resolved = True
        return True

    def inject(self, kind: str, count: int, wf: _Workflow, seconds: float, t: datetime) -> list[_Execution]:
        """Executions added now, in id order and in time order (as n8n numbers them)."""
        last = self.executions[self.order[-1]].started_at if self.order else t - timedelta(minutes=1)
        last = min(last, t)
        out: list[_Execution] = []
        for i in range(count):
            if kind == "running":
                start = t
                out.append(self._add(wf, "trigger", "success", start, t + timedelta(seconds=seconds), items=3))
                continue
            start = last + (t - last) * (i + 1) / (count + 1)
            stop = min(start + timedelta(milliseconds=300), t)
            if kind == "success":
                out.append(self._add(wf, "trigger", "success", start, stop, items=5))
            else:
                cause = {"transient": "crm_5xx", "credential": "credential", "hostile": "hostile",
                         "huge": "huge"}[kind]
                out.append(self._add_failure_or_success(wf, "trigger", cause, start, stop))
        return out


def _failed_on(ex: _Execution) -> str | None:
    """The id of the credential an execution failed on (its failing node's), if it failed on one."""
    if ex.cause not in ("credential", "hostile"):
        return None
    node = (ex.error or {}).get("node")
    creds = node.get("credentials") if isinstance(node, dict) else None
    for value in (creds or {}).values():
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return str(value["id"])
    return None


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


def _body(req: Request) -> dict[str, Any] | Response:
    if not req.body:
        return {}
    try:
        body = req.json()
    except ValueError:
        return _msg(400, "request/body must be object")
    return body if isinstance(body, dict) else _msg(400, "request/body must be object")


class N8nSimulator(Simulator):
    """The n8n simulator; `state` is its instance (for in-process tests and the demo world)."""

    state: _Instance

    def not_found(self, req: Request) -> Response:
        return _msg(404, "not found")


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets, *, world: DemoWorld | None = None) -> N8nSimulator:
    """The n8n simulator (not started). Auth: `X-N8N-API-KEY: <secrets.n8n_api_key>`.

    With `world`, the simulator starts broken while the world has `n8n-failing`, resolves it once the
    credential is fixed and the failures were retried, and breaks the credential again if something
    else causes the problem."""
    inst = _Instance(scenario=scenario, started=now(), world=world)
    if has(scenario, PROBLEM) and (world is None or world.has(PROBLEM)):
        inst.break_credential(SUPABASE_CREDENTIAL, inst.incident_start + timedelta(minutes=20))
    with inst.lock:
        inst.advance(inst.started)

    def resolve_if_done(done: bool) -> None:
        if done and world is not None:
            world.resolve(PROBLEM)  # outside our lock: listeners may call back into this simulator

    if world is not None:
        def on_change(problem: str, active: bool) -> None:
            if problem != PROBLEM or not active:
                return
            with inst.lock:  # something broke it again: the credential stops working from now
                inst.resolved = False
                inst.break_credential(SUPABASE_CREDENTIAL, now())

        world.on_change(on_change)

    def scope_denied(scope: str) -> Response | None:
        return _msg(403, "Forbidden") if scope in inst.features.missing_scopes else None

    def auth(req: Request) -> Response | None:
        if req.headers.get("x-n8n-api-key", "") != secrets.n8n_api_key:
            return _msg(401, "unauthorized")
        return None

    sim = N8nSimulator("n8n", faults, auth=auth, open_paths=("/healthz", CONTROL + "/", "/home/"))
    sim.state = inst

    @sim.route("GET", "/healthz")
    def healthz(req: Request, m: Any) -> Response:
        return Response(200, {"status": "ok"})

    @sim.route("GET", "/healthz/readiness")
    def readiness(req: Request, m: Any) -> Response:
        return Response(200, {"status": "ok"})

    @sim.route("GET", f"{API}/workflows")
    def list_workflows(req: Request, m: Any) -> Response:
        denied = scope_denied("workflow:list")
        if denied is not None:
            return denied
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
        denied = scope_denied("workflow:read")
        if denied is not None:
            return denied
        wf = _BY_ID.get(m.group("id"))
        if wf is None:
            return _msg(404, "Not Found")
        return Response(200, _workflow_json(wf))

    @sim.route("GET", f"{API}/executions")
    def list_executions(req: Request, m: Any) -> Response:
        denied = scope_denied("execution:list")
        if denied is not None:
            return denied
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
        with inst.lock:
            t = now()
            inst.advance(t)
            end = bisect.bisect_left(inst.order, int(cursor["lastId"])) if cursor is not None else len(inst.order)
            page: list[_Execution] = []
            more = False
            for index in range(end - 1, -1, -1):  # newest first, below the cursor
                e = inst.executions[inst.order[index]]
                if (status is not None and e.status_at(t) != status) or (workflow_id and e.workflow.id != workflow_id):
                    continue
                if len(page) == limit:
                    more = True
                    break
                page.append(e)
            data = [e.full(t) if include else e.summary(t) for e in page]
            done = inst.check_resolved(t)
        resolve_if_done(done)
        next_cursor = _encode_cursor({"lastId": str(page[-1].id), "limit": limit}) if more and page else None
        return Response(200, {"data": data, "nextCursor": next_cursor})

    @sim.route("GET", f"{API}/executions/(?P<id>[^/]+)")
    def get_execution(req: Request, m: Any) -> Response:
        denied = scope_denied("execution:read")
        if denied is not None:
            return denied
        raw = m.group("id")
        if not raw.isdigit():
            return _msg(400, "request/params/id must be integer")
        include = _bool_param(req, "includeData")
        if isinstance(include, Response):
            return include
        with inst.lock:
            t = now()
            inst.advance(t)
            ex = inst.executions.get(int(raw))
            if ex is None:
                return _msg(404, "Not Found")
            body = ex.full(t) if include else ex.summary(t)
            done = inst.check_resolved(t)
        resolve_if_done(done)
        return Response(200, body)

    @sim.route("POST", f"{API}/executions/(?P<id>[^/]+)/retry")
    def retry_execution(req: Request, m: Any) -> Response:
        if not inst.features.retry:
            return sim.not_found(req)  # before 1.112 the public API had no such route
        denied = scope_denied("execution:retry")
        if denied is not None:
            return denied
        raw = m.group("id")
        if not raw.isdigit():
            return _msg(400, "request/params/id must be integer")
        body = _body(req)
        if isinstance(body, Response):
            return body
        if not isinstance(body.get("loadWorkflow", False), bool):
            return _msg(400, "request/body/loadWorkflow must be boolean")
        with inst.lock:
            t = now()
            inst.advance(t)
            ex = inst.executions.get(int(raw))
            if ex is None:
                return _msg(404, "Not Found")
            status = ex.status_at(t)
            if status == "success":
                return _msg(409, "The execution succeeded, so it cannot be retried.")
            if status in ("new", "running", "waiting"):
                return _msg(409, f"The execution is {status} and cannot be retried yet.")
            new = inst.retry(ex, t)
            return Response(200, new.full(t))

    @sim.route("POST", f"{API}/credentials/(?P<id>[^/]+)/test")
    def test_credential(req: Request, m: Any) -> Response:
        if not inst.features.credential_test:
            code = inst.features.credential_test_status
            return sim.not_found(req) if code == 404 else _msg(code, "method not allowed")
        denied = scope_denied("credential:read")
        if denied is not None:
            return denied
        cred = CREDENTIALS.get(m.group("id"))
        if cred is None or cred.id in inst.deleted:
            return _msg(404, "Credential not found")
        with inst.lock:
            broken = inst.broken_at(cred.id, now())
            message = inst.messages.get(cred.id, CREDENTIAL_BROKEN)
        if broken:
            return Response(200, {"status": "Error", "message": message})
        return Response(200, {"status": "OK", "message": CREDENTIAL_OK})

    @sim.route("GET", "/home/credentials")
    def credentials_page(req: Request, m: Any) -> Response:
        """Where the runbook's link leads: in the demo, how to do what an operator does in n8n's UI."""
        with inst.lock:
            t = now()
            lines = ["n8n (demo simulator): credentials", ""]
            for c in CREDENTIALS.values():
                state = f"BROKEN: {inst.messages.get(c.id, '')}" if inst.broken_at(c.id, t) else "ok"
                lines.append(f"  {c.id}  {c.name} ({c.type}): {state}")
        lines += ["", "In n8n you would open the credential, re-enter the secret and save. In the demo:",
                  f"  curl -X POST {sim.base_url}{CONTROL}/credentials/{SUPABASE_CREDENTIAL}/fix", ""]
        return Response(200, "\n".join(lines))

    # -- controls (no API key, like /__sim/faults) ----------------------------------------------
    @sim.route("GET", f"{CONTROL}/state")
    def state(req: Request, m: Any) -> Response:
        with inst.lock:
            t = now()
            inst.advance(t)
            creds = [{"id": c.id, "name": c.name, "type": c.type, "broken": inst.broken_at(c.id, t),
                      "message": inst.messages.get(c.id, "") if inst.broken_at(c.id, t) else CREDENTIAL_OK}
                     for c in CREDENTIALS.values()]
            body = {"credentials": creds, "features": inst.features.to_json(),
                    "unresolved_failures": len(inst.unresolved(t)), "resolved": inst.resolved,
                    "problem_active": world.has(PROBLEM) if world is not None else None}
        return Response(200, body)

    @sim.route("POST", f"{CONTROL}/credentials/(?P<id>[^/]+)/(?P<verb>fix|break|delete)")
    def credential_control(req: Request, m: Any) -> Response:
        cred = CREDENTIALS.get(m.group("id"))
        if cred is None:
            return _msg(404, f"no credential {m.group('id')}; known: {', '.join(CREDENTIALS)}")
        body = _body(req)
        if isinstance(body, Response):
            return body
        done = False
        with inst.lock:
            t = now()
            inst.advance(t)
            if m.group("verb") == "fix":
                inst.fix_credential(cred.id, t)
                done = inst.check_resolved(t)
            elif m.group("verb") == "delete":
                inst.deleted.add(cred.id)
            else:
                message = body.get("message", CREDENTIAL_BROKEN)
                if not isinstance(message, str) or not message:
                    return _msg(400, "message must be a non-empty string")
                inst.resolved = False
                inst.break_credential(cred.id, t, message)
        resolve_if_done(done)
        return Response(200, {"credential": cred.id, "broken": m.group("verb") == "break"})

    @sim.route("POST", f"{CONTROL}/features")
    def features(req: Request, m: Any) -> Response:
        body = _body(req)
        if isinstance(body, Response):
            return body
        f = inst.features
        try:
            for key, value in body.items():
                if key in ("retry", "credential_test") and isinstance(value, bool):
                    setattr(f, key, value)
                elif key == "credential_test_status" and value in (404, 405):
                    f.credential_test_status = int(value)
                elif key == "missing_scopes" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                    f.missing_scopes = tuple(value)
                elif key == "retry_run_s" and isinstance(value, (int, float)) and 0 <= value <= 600:
                    f.retry_run_s = float(value)
                else:
                    raise ValueError(f"bad feature {key}={value!r}")
        except ValueError as exc:
            return _msg(400, f"{exc}; known: retry, credential_test (bool), credential_test_status (404|405), "
                             "missing_scopes (list), retry_run_s (seconds)")
        return Response(200, f.to_json())

    @sim.route("POST", f"{CONTROL}/executions")
    def inject(req: Request, m: Any) -> Response:
        body = _body(req)
        if isinstance(body, Response):
            return body
        kind = body.get("kind", "transient")
        count = body.get("count", 1)
        wf = _BY_ID.get(str(body.get("workflow", N8N_WORKFLOWS[0])))
        seconds = body.get("seconds", 60)
        kinds = ("transient", "credential", "hostile", "huge", "running", "success")
        if kind not in kinds or not isinstance(count, int) or not 1 <= count <= 5000 or wf is None \
                or not isinstance(seconds, (int, float)) or not 0 < seconds <= 3600:
            return _msg(400, f"kind one of {', '.join(kinds)}; count 1..5000; workflow one of "
                             f"{', '.join(_BY_ID)}; seconds 0..3600")
        with inst.lock:
            t = now()
            inst.advance(t)
            added = inst.inject(str(kind), count, wf, float(seconds), t)
            if kind not in ("success", "running"):
                inst.resolved = False
        return Response(200, {"ids": [str(e.id) for e in added]})

    return sim
