"""n8n: are the sync workflows failing, and what does the newest failure say?

Serves the runbook's "n8n Sync Failing" steps: (1) the execution log filtered by error is the
`n8n.executions` check; (2) "Manually retry failed workflow execution" is `retry_execution`
(for the guarded-action kernel; not wired to a key here). Everything goes through
`adapters.http.fetch`, so timeouts, HTTP errors, HTML pages, bad JSON and huge bodies come back
as readable data. The API key is revealed per request and only ever sent in `X-N8N-API-KEY`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from opsconsole.adapters.http import HttpOutcome, fetch, new_client
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import N8nSettings, SecretError, Settings

SERVICE = "n8n"
WINDOW = timedelta(hours=1)
FAILED_STATUSES = ("error", "crashed")
PAGE_LIMIT = 100  # n8n's default; its maximum is 250
MAX_PAGES = 10  # per (status, workflow) listing: at most 1,000 failures read per round
PER_WORKFLOW_QUERIES = 4  # watch up to this many workflows with server-side `workflowId` filters
WARN_AT = 1
FAIL_AT = 3
RECENT = 20  # failed executions listed in the details
ERROR_TEXT_LIMIT = 160
RETRY_TIMEOUT_S = 30.0  # a retry runs the workflow before n8n answers


def _txt(value: Any, limit: int = 120) -> str:
    return printable(str(value), single_line=True, limit=limit) if value not in (None, "") else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True, slots=True)
class FailedExecution:
    """One failed (or crashed) execution, as listed by `GET /executions`."""

    id: str
    workflow_id: str
    status: str
    mode: str
    started_at: datetime
    stopped_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow_id": self.workflow_id, "status": self.status, "mode": self.mode,
                "started_at": self.started_at.isoformat(),
                "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None}


def parse_execution(raw: Any) -> FailedExecution | None:
    """Ids may be numbers (older n8n) or strings (newer); both become strings."""
    if not isinstance(raw, Mapping):
        return None
    ident, wf = raw.get("id"), raw.get("workflowId")
    started = _parse_time(raw.get("startedAt"))
    if ident in (None, "") or wf in (None, "") or started is None:
        return None
    return FailedExecution(id=_txt(ident, 40), workflow_id=_txt(wf, 40), status=_txt(raw.get("status"), 20),
                           mode=_txt(raw.get("mode"), 20), started_at=started,
                           stopped_at=_parse_time(raw.get("stoppedAt")))


@dataclass(frozen=True, slots=True)
class RetryResult:
    """What `retry_execution` did. `ok` only when n8n started a new execution."""

    execution_id: str
    ok: bool
    summary: str
    new_execution_id: str | None = None
    new_status: str | None = None
    http_status: int | None = None
    ambiguous: bool = False  # True when we cannot tell whether the retry started (timeout)

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "ok": self.ok, "summary": self.summary,
                "new_execution_id": self.new_execution_id, "new_status": self.new_status,
                "http_status": self.http_status, "ambiguous": self.ambiguous}


@dataclass
class _Listing:
    found: list[FailedExecution]
    pages: int
    truncated: bool
    problem: HttpOutcome | None
    latency_ms: float


class N8nAdapter:
    """n8n public API v1 for one instance; one shared HTTP client."""

    system = "n8n"

    def __init__(self, settings: Settings, *, timeout_s: float | None = None, page_limit: int = PAGE_LIMIT,
                 max_pages: int = MAX_PAGES) -> None:
        if settings.n8n is None:
            raise ValueError("[n8n] is not configured")
        self.settings: N8nSettings = settings.n8n
        self.timeout_s = timeout_s if timeout_s is not None else settings.checks.timeout_s
        self.base_url = self.settings.api_url.rstrip("/")  # ends in /api/v1
        self.page_limit = max(1, min(page_limit, 250))
        self.max_pages = max(1, max_pages)
        self._client = new_client(timeout_s=self.timeout_s)
        self._checks: list[Check] = [N8nExecutionsCheck(self)]

    def checks(self) -> list[Check]:
        return list(self._checks)

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def credential(self) -> str:
        return self.settings.api_key.hint

    def key_problem(self, exc: SecretError) -> str:
        hint = self.credential
        return f"n8n API key unavailable: {exc}" + ("" if hint in str(exc) else f" — check {hint}")

    async def request(self, method: str, path: str, *, timeout_s: float,
                      params: Mapping[str, str] | None = None, json_body: Any = None) -> HttpOutcome:
        """One call with the API key header. Raises SecretError only."""
        headers = {"X-N8N-API-KEY": self.settings.api_key.reveal()}
        return await fetch(self._client, self.base_url + path, service=SERVICE, credential=self.credential,
                           method=method, params=dict(params or {}), headers=headers, json_body=json_body,
                           timeout_s=timeout_s)

    # -- reads -------------------------------------------------------------------------------
    async def list_failed(self, status: str, workflow_id: str | None, since: datetime,
                          deadline: float) -> _Listing:
        """Failed executions started at or after `since`, following `nextCursor` (newest first).

        Stops at the first execution older than `since`, at `max_pages`, or at the deadline.
        """
        found: list[FailedExecution] = []
        params = {"status": status, "limit": str(self.page_limit)}
        if workflow_id is not None:
            params["workflowId"] = workflow_id
        latency = 0.0
        for page in range(self.max_pages):
            remaining = deadline - time.monotonic()
            if remaining <= 0.1 and page > 0:
                return _Listing(found, page, True, None, latency)  # out of time: report what we have
            outcome = await self.request("GET", "/executions", params=params, timeout_s=max(0.1, remaining))
            latency += outcome.latency_ms
            if outcome.problem is not None:
                return _Listing(found, page + 1, False, outcome, latency)
            data = outcome.data
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                bad = replace(outcome, kind="bad_shape",
                              problem="n8n answered without an executions list — check [n8n] api_url "
                                      "(it must end in /api/v1)")
                return _Listing(found, page + 1, False, bad, latency)
            older = False
            for item in items:
                ex = parse_execution(item)
                if ex is None:
                    continue
                if ex.started_at < since:
                    older = True
                    continue
                found.append(ex)
            cursor = data.get("nextCursor")
            if older or not isinstance(cursor, str) or not cursor:
                return _Listing(found, page + 1, False, None, latency)
            params["cursor"] = cursor
        return _Listing(found, self.max_pages, True, None, latency)

    async def workflow_names(self, deadline: float) -> dict[str, str]:
        """id → name for the summary; best effort (names are a nicety, never a failure)."""
        names: dict[str, str] = {}
        params = {"limit": "250"}
        for _ in range(4):
            remaining = deadline - time.monotonic()
            if remaining <= 0.1:
                break
            outcome = await self.request("GET", "/workflows", params=params, timeout_s=remaining)
            data = outcome.data if outcome.problem is None else None
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                break
            for item in items:
                if isinstance(item, Mapping) and item.get("id") not in (None, ""):
                    names[str(item["id"])] = _txt(item.get("name"), 60)
            cursor = data.get("nextCursor") if isinstance(data, dict) else None
            if not isinstance(cursor, str) or not cursor:
                break
            params["cursor"] = cursor
        return names

    async def error_of(self, execution_id: str, deadline: float) -> dict[str, str]:
        """The failing node and error message of one execution (`includeData=true`)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0.1:
            return {"unavailable": "no time left in this round to read the error text"}
        outcome = await self.request("GET", f"/executions/{quote(execution_id, safe='')}",
                                     params={"includeData": "true"}, timeout_s=remaining)
        if outcome.problem is not None:
            return {"unavailable": outcome.problem}
        data = _mapping(outcome.data)
        result = _mapping(_mapping(data.get("data")).get("resultData"))
        error = _mapping(result.get("error"))
        node = _mapping(error.get("node"))
        message = error.get("message") or error.get("description")
        node_name = node.get("name") or result.get("lastNodeExecuted")
        if not message:
            return {"unavailable": "n8n returned no error message for this execution"}
        return {"message": _txt(message, ERROR_TEXT_LIMIT), "node": _txt(node_name, 60)}

    # -- actions -----------------------------------------------------------------------------
    async def retry_execution(self, execution_id: str, *, load_workflow: bool = False,
                              timeout_s: float = RETRY_TIMEOUT_S) -> RetryResult:
        """`POST /executions/{id}/retry` (n8n >= 1.112). Never retried automatically: not idempotent.

        `load_workflow=True` runs the currently saved workflow instead of the failed snapshot.
        """
        ident = str(execution_id).strip()
        shown = _txt(ident, 40)
        if not ident.isdigit():
            return RetryResult(shown, False, f"'{shown}' is not an n8n execution id (digits expected)")
        try:
            outcome = await self.request("POST", f"/executions/{ident}/retry", timeout_s=timeout_s,
                                         json_body={"loadWorkflow": load_workflow})
        except SecretError as exc:
            return RetryResult(ident, False, self.key_problem(exc))
        code = outcome.status_code
        if outcome.problem is not None:
            own = outcome.data.get("message") if isinstance(outcome.data, Mapping) else None
            own_txt = f": {_txt(own, 160)}" if own else ""
            if outcome.kind == "timeout":
                return RetryResult(ident, False, f"no answer from n8n within {timeout_s:g} s — the retry may "
                                   "still be running; check the executions list before retrying again",
                                   http_status=code, ambiguous=True)
            if code == 409:
                summary = f"n8n refused to retry execution {ident}{own_txt}"
            elif code == 404:
                summary = (f"execution {ident} not found, or this n8n has no retry endpoint "
                           f"(needs n8n 1.112 or newer){own_txt}")
            else:
                summary = f"retry of execution {ident} failed: {outcome.problem}"
            return RetryResult(ident, False, summary, http_status=code)
        data = outcome.data if isinstance(outcome.data, Mapping) else {}
        new_id = _txt(data.get("id"), 40) or None
        new_status = _txt(data.get("status"), 20) or None
        if new_id is None:
            return RetryResult(ident, False, "n8n accepted the retry but returned no new execution id",
                               http_status=code)
        tail = f" and it ended with status {new_status}" if new_status and new_status != "running" else ""
        return RetryResult(ident, True, f"retry of execution {ident} started execution {new_id}{tail}",
                           new_execution_id=new_id, new_status=new_status, http_status=code)


class N8nExecutionsCheck:
    """`n8n.executions`: failed and crashed executions of the watched workflows in the last hour.

    Status rule: OK with 0 failures, WARN with 1–2, FAIL with 3 or more (a sync failing three times
    in an hour is no longer a blip). HTTP 429 is WARN; any other failure to read is FAIL.
    """

    id = "n8n.executions"
    system = "n8n"
    title = "n8n sync executions"

    def __init__(self, adapter: N8nAdapter) -> None:
        self.adapter = adapter

    def _result(self, status: Status, summary: str, latency_ms: float | None,
                details: Mapping[str, Any]) -> CheckResult:
        watched = list(self.adapter.settings.workflows)
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status,
                           summary=summary, latency_ms=latency_ms,
                           details={"watched_workflows": watched or "all", "window_minutes": 60,
                                    "credential": self.adapter.credential, **details})

    async def run(self) -> CheckResult:
        adapter = self.adapter
        started = time.perf_counter()
        deadline = time.monotonic() + adapter.timeout_s
        since = utcnow() - WINDOW
        try:
            adapter.settings.api_key.reveal()  # fail once, before several calls would each fail
        except SecretError as exc:
            return self._result(Status.FAIL, adapter.key_problem(exc), None, {})
        watched = tuple(dict.fromkeys(w for w in adapter.settings.workflows if w))
        per_workflow = 0 < len(watched) <= PER_WORKFLOW_QUERIES
        targets: tuple[str | None, ...] = watched if per_workflow else (None,)
        try:
            listings = await asyncio.gather(*(adapter.list_failed(status, wf, since, deadline)
                                              for status in FAILED_STATUSES for wf in targets))
        except SecretError as exc:
            return self._result(Status.FAIL, adapter.key_problem(exc), None, {})
        latency = max(item.latency_ms for item in listings)
        for listing in listings:
            if listing.problem is not None:
                outcome = listing.problem
                return self._result(outcome.status, outcome.problem or "n8n request failed", latency,
                                    {"http_status": outcome.status_code, "error": outcome.kind})
        unique: dict[str, FailedExecution] = {}
        for listing in listings:
            for ex in listing.found:
                if watched and ex.workflow_id not in watched:
                    continue
                unique.setdefault(ex.id, ex)
        failures = sorted(unique.values(), key=lambda e: (e.started_at, e.id), reverse=True)
        truncated = any(item.truncated for item in listings)
        pages = sum(item.pages for item in listings)
        if not failures:
            scope = f"{len(watched)} watched workflow(s)" if watched else "all workflows"
            return self._result(Status.OK, f"no failed executions in the last hour ({scope})",
                                (time.perf_counter() - started) * 1000,
                                {"failed": 0, "crashed": 0, "by_workflow": [], "newest_error": None,
                                 "recent": [], "pages": pages, "truncated": truncated})
        try:
            names, newest_error = await asyncio.gather(adapter.workflow_names(deadline),
                                                       adapter.error_of(failures[0].id, deadline))
        except SecretError as exc:
            return self._result(Status.FAIL, adapter.key_problem(exc), None, {})
        return self._assess(failures, names, newest_error, pages, truncated,
                            (time.perf_counter() - started) * 1000)

    def _assess(self, failures: list[FailedExecution], names: Mapping[str, str],
                newest_error: Mapping[str, str], pages: int, truncated: bool,
                latency_ms: float) -> CheckResult:
        count = len(failures)
        crashed = sum(1 for f in failures if f.status == "crashed")
        per_wf = Counter(f.workflow_id for f in failures)
        by_workflow = [{"workflow_id": wf, "name": names.get(wf, ""), "failures": n}
                       for wf, n in per_wf.most_common()]
        status = Status.FAIL if count >= FAIL_AT else Status.WARN if count >= WARN_AT else Status.OK
        more = "≥" if truncated else ""
        noun = "execution" if count == 1 else "executions"
        parts = [f"{names.get(wf) or 'workflow ' + wf} ×{n}" for wf, n in per_wf.most_common(3)]
        if len(per_wf) > 3:
            parts.append(f"+{len(per_wf) - 3} more")
        summary = f"{more}{count} failed {noun} in the last hour"
        if crashed:
            summary += f" ({crashed} crashed)"
        summary += ": " + ", ".join(parts)
        newest = failures[0]
        if "message" in newest_error:
            node = newest_error.get("node")
            summary += f" — newest: {node + ': ' if node else ''}{newest_error['message']}"
        summary = printable(summary, single_line=True, limit=240)
        newest_json: dict[str, Any] = {"execution_id": newest.id, "workflow_id": newest.workflow_id,
                                       "workflow_name": names.get(newest.workflow_id, ""),
                                       "started_at": newest.started_at.isoformat(), **newest_error}
        return self._result(status, summary, latency_ms, {
            "failed": count,
            "crashed": crashed,
            "by_workflow": by_workflow,
            "newest_error": newest_json,
            "recent": [f.to_json() for f in failures[:RECENT]],
            "pages": pages,
            "truncated": truncated,
            "thresholds": {"warn_at": WARN_AT, "fail_at": FAIL_AT},
        })
