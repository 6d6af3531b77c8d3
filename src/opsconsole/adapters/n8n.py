"""n8n: are the sync workflows failing, what does each failure say, do n8n's credentials work?

Serves the runbook's "n8n Sync Failing" steps: (1) the execution log filtered by error is the
`n8n.executions` check and the n8n tab's paged list (`failed_page`, `inspect`); (2) "Manually
retry failed workflow execution" is `retry_execution` + `follow` (driven by the guarded action
`n8n.retry`); (3) "Verify n8n credentials for Supabase are valid" is the `n8n.credentials` check:
n8n itself tests every credential the watched workflows' nodes use (`POST /credentials/{id}/test`).
Credential *data* is never requested: only the ids, names and types the workflows carry, and the
test's status and message.

Everything goes through `adapters.http.fetch`, so timeouts, HTTP errors, HTML pages, bad JSON and
huge bodies come back as readable data. The API key is revealed per request and only ever sent in
`X-N8N-API-KEY`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from opsconsole.adapters.http import HttpOutcome, fetch, new_client
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.n8n import (
    FAILED_STATUSES,
    FINISHED_STATUSES,
    CredentialRef,
    CredentialTest,
    Execution,
    ExecutionError,
    ExecutionPage,
    FailedExecution,
    PagePosition,
    RetryFamilies,
    StreamPos,
    id_key,
)
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import N8nSettings, SecretError, Settings

SERVICE = "n8n"
WINDOW = timedelta(hours=1)
PAGE_LIMIT = 100  # n8n's default; its maximum is 250
MAX_LIMIT = 250
MAX_PAGES = 10  # per (status, workflow) listing: at most 1,000 failures read per round
PER_WORKFLOW_QUERIES = 4  # watch up to this many workflows with server-side `workflowId` filters
WARN_AT = 1
FAIL_AT = 3
RECENT = 20  # failed executions listed in the details
FAILED_IDS = 100  # ids of the unresolved failures in the details (what n8n.retry takes at most, per retry)
ERROR_TEXT_LIMIT = 160
RETRY_TIMEOUT_S = 30.0  # n8n may run the workflow before it answers
ROW_MAX_BYTES = 2 * 1024 * 1024  # one execution with its run data, for a list row
INSPECT_MAX_BYTES = 4 * 1024 * 1024  # the same, for the full error view
ROW_MESSAGE_CHARS = 300
INSPECT_MESSAGE_CHARS = 20_000
STACK_LINES = 12
ERROR_CACHE = 2_000  # errors of finished executions never change: keep the last ones read
PARALLEL = 6  # concurrent per-execution reads
NAMES_TTL_S = 60.0
SCAN_PAGES = 40  # server pages one `failed_page` may read when the watch list is filtered client-side
CREDENTIAL_TESTS = 40  # at most this many distinct credentials tested per round
CREDENTIAL_TEST_ADDED = "n8n releases before 2026 do not have it"
RETRY_ADDED_IN = "1.112"


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


def _opt_id(value: Any) -> str | None:
    return _txt(value, 40) or None


def parse_execution(raw: Any) -> Execution | None:
    """Ids may be numbers (older n8n) or strings (newer); both become strings."""
    if not isinstance(raw, Mapping):
        return None
    ident, wf = raw.get("id"), raw.get("workflowId")
    started = _parse_time(raw.get("startedAt"))
    if ident in (None, "") or wf in (None, "") or started is None:
        return None
    return Execution(id=_txt(ident, 40), workflow_id=_txt(wf, 40), status=_txt(raw.get("status"), 20),
                     mode=_txt(raw.get("mode"), 20), started_at=started,
                     stopped_at=_parse_time(raw.get("stoppedAt")), retry_of=_opt_id(raw.get("retryOf")),
                     retry_success_id=_opt_id(raw.get("retrySuccessId")))


def _credential_refs(raw: Any) -> tuple[CredentialRef, ...]:
    """A node's `credentials` ({type: {id, name}}; very old n8n: {type: name}) as refs, never data."""
    refs: list[CredentialRef] = []
    for kind, value in _mapping(raw).items():
        if isinstance(value, Mapping):
            refs.append(CredentialRef(id=_txt(value.get("id"), 40), name=_txt(value.get("name"), 80),
                                      type=_txt(kind, 60)))
        elif isinstance(value, str):
            refs.append(CredentialRef(id="", name=_txt(value, 80), type=_txt(kind, 60)))
    return tuple(refs)


def _multiline(value: Any, limit: int) -> tuple[str, int]:
    """Untrusted text kept on its lines, capped; returns (text, original length)."""
    if value in (None, ""):
        return "", 0
    text = value if isinstance(value, str) else str(value)
    return printable(text[:limit]), len(text)


def parse_error(execution_id: str, data: Mapping[str, Any], *, message_chars: int) -> ExecutionError:
    """The failing node and n8n's error out of one execution read with `includeData=true`."""
    result = _mapping(_mapping(data.get("data")).get("resultData"))
    error = _mapping(result.get("error"))
    node_name: Any = _mapping(error.get("node")).get("name")
    if not error:  # some failures carry the error on the node's run only
        for name, runs in _mapping(result.get("runData")).items():
            for run in runs if isinstance(runs, list) else ():
                if isinstance(run, Mapping) and isinstance(run.get("error"), Mapping):
                    error, node_name = run["error"], name
    node = _mapping(error.get("node"))
    node_name = node_name or result.get("lastNodeExecuted") or ""
    workflow = _mapping(data.get("workflowData"))
    node_def: Mapping[str, Any] = {}
    for item in workflow.get("nodes") or ():
        if isinstance(item, Mapping) and item.get("name") == node_name:
            node_def = item
            break
    message, chars = _multiline(error.get("message") or error.get("description"), message_chars)
    stack_raw = error.get("stack")
    stack_text = stack_raw if isinstance(stack_raw, str) else ""
    stack = tuple(printable(line, limit=300) for line in stack_text.splitlines()[:STACK_LINES] if line.strip())
    credentials = _credential_refs(node.get("credentials")) or _credential_refs(node_def.get("credentials"))
    description = _txt(error.get("description"), 2000) if error.get("message") else ""
    problem = None
    if not message:
        status = _txt(data.get("status"), 20)
        problem = ("n8n recorded no error for this execution" +
                   (" (crashed: the worker or process died before it could write one)" if status == "crashed"
                    else ""))
    return ExecutionError(execution_id=execution_id, node=_txt(node_name, 80),
                          node_type=_txt(node.get("type") or node_def.get("type"), 80), message=message,
                          description=description, error_name=_txt(error.get("name"), 60),
                          http_code=_txt(error.get("httpCode"), 10), stack=stack, message_chars=chars,
                          credentials=credentials, workflow_name=_txt(workflow.get("name"), 80), problem=problem)


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
    no_endpoint: bool = False  # 404 on the retry path of an execution that exists: n8n older than 1.112

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "ok": self.ok, "summary": self.summary,
                "new_execution_id": self.new_execution_id, "new_status": self.new_status,
                "http_status": self.http_status, "ambiguous": self.ambiguous}


@dataclass(frozen=True, slots=True)
class Inspected:
    """One execution read with its data: the summary fields, the error, or why neither."""

    execution: Execution | None
    error: ExecutionError
    http_status: int | None = None
    too_large: bool = False

    @property
    def found(self) -> bool:
        return self.execution is not None


@dataclass(frozen=True, slots=True)
class FollowResult:
    """Where a followed execution ended: its last state, or why following stopped."""

    execution: Execution | None
    finished: bool
    problem: str | None = None
    polls: int = 0


@dataclass(frozen=True, slots=True)
class UsedCredentials:
    """The credentials the watched workflows' nodes use (refs only), or why they could not be read."""

    refs: tuple[tuple[CredentialRef, tuple[str, ...]], ...] = ()  # (credential, workflow names using it)
    workflows: int = 0
    problem: HttpOutcome | None = None
    latency_ms: float = 0.0


@dataclass
class _Listing:
    found: list[Execution]
    pages: int
    truncated: bool
    problem: HttpOutcome | None
    latency_ms: float


@dataclass
class _Stream:
    """One (status, workflow) listing being merged into a page."""

    pos: StreamPos
    items: list[Any] = field(default_factory=list)
    index: int = 0
    next_cursor: str | None = None
    loaded: bool = False

    def head(self, keep: Callable[[Execution], bool]) -> Execution | None:
        while self.index < len(self.items):
            ex = parse_execution(self.items[self.index])
            if ex is not None and keep(ex):
                return ex
            self.index += 1
        return None

    def position(self, keep: Callable[[Execution], bool]) -> StreamPos:
        """Where the next page goes on: the same place when this page never read the stream; past a
        fully read server page straight to its successor; done when nothing is left (never read
        again); else with the id of its next execution, so the next page reads the stream only if it
        reaches that id (a stream of old failures is not read again page after page)."""
        if not self.loaded:
            return self.pos
        head = self.head(keep)
        if head is None:
            if self.next_cursor:
                return replace(self.pos, cursor=self.next_cursor, skip=0, head=None)
            return replace(self.pos, skip=self.index, done=True, head=None)
        return replace(self.pos, skip=self.index, head=head.id)


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
        self.page_limit = max(1, min(page_limit, MAX_LIMIT))
        self.max_pages = max(1, max_pages)
        self._client = new_client(timeout_s=self.timeout_s)
        self._checks: list[Check] = [N8nExecutionsCheck(self), N8nCredentialsCheck(self)]
        self._errors: OrderedDict[str, ExecutionError] = OrderedDict()
        self._names: tuple[float, dict[str, str]] | None = None

    def checks(self) -> list[Check]:
        return list(self._checks)

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def credential(self) -> str:
        return self.settings.api_key.hint

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for w in self.settings.workflows if w))

    @property
    def instance_url(self) -> str:
        return self.base_url.removesuffix("/api/v1")

    @property
    def credentials_url(self) -> str:
        return f"{self.instance_url}/home/credentials"

    def execution_url(self, workflow_id: str, execution_id: str) -> str:
        return (f"{self.instance_url}/workflow/{quote(workflow_id, safe='')}/executions/"
                f"{quote(execution_id, safe='')}")

    def key_problem(self, exc: SecretError) -> str:
        hint = self.credential
        return f"n8n API key unavailable: {exc}" + ("" if hint in str(exc) else f" — check {hint}")

    async def request(self, method: str, path: str, *, timeout_s: float,
                      params: Mapping[str, str] | None = None, json_body: Any = None,
                      max_bytes: int | None = None) -> HttpOutcome:
        """One call with the API key header. Raises SecretError only."""
        headers = {"X-N8N-API-KEY": self.settings.api_key.reveal()}
        extra: dict[str, Any] = {} if max_bytes is None else {"max_bytes": max_bytes}
        return await fetch(self._client, self.base_url + path, service=SERVICE, credential=self.credential,
                           method=method, params=dict(params or {}), headers=headers, json_body=json_body,
                           timeout_s=timeout_s, **extra)

    def _targets(self) -> tuple[tuple[str | None, ...], bool]:
        """The workflow filters to list with, and whether rows must be filtered here (many watched)."""
        watched = self.watched
        if 0 < len(watched) <= PER_WORKFLOW_QUERIES:
            return watched, False
        return (None,), bool(watched)

    # -- reads -------------------------------------------------------------------------------
    async def list_failed(self, status: str, workflow_id: str | None, since: datetime,
                          deadline: float) -> _Listing:
        """Failed executions started at or after `since`, following `nextCursor` (newest first).

        Stops at the first execution older than `since`, at `max_pages`, or at the deadline.
        """
        found: list[Execution] = []
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
                return _Listing(found, page + 1, False, _bad_list(outcome), latency)
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
        """id → name for summaries and rows; best effort (names are a nicety, never a failure).
        Kept for a minute: workflows are renamed rarely, and every page of the tab wants them."""
        if self._names is not None and time.monotonic() - self._names[0] < NAMES_TTL_S:
            return dict(self._names[1])
        names: dict[str, str] = {}
        params = {"limit": str(MAX_LIMIT), "excludePinnedData": "true"}
        complete = False
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
                complete = True
                break
            params["cursor"] = cursor
        if complete:
            self._names = (time.monotonic(), dict(names))
        return names

    async def inspect(self, execution_id: str, *, timeout_s: float | None = None,
                      max_bytes: int = INSPECT_MAX_BYTES, message_chars: int = INSPECT_MESSAGE_CHARS) -> Inspected:
        """One execution with `includeData=true` (size-bounded): its summary and its error."""
        ident = str(execution_id).strip()
        if not ident.isdigit():
            shown = _txt(ident, 40)
            return Inspected(None, ExecutionError(shown, problem=f"'{shown}' is not an n8n execution id "
                                                                "(digits expected)"))
        try:
            outcome = await self.request("GET", f"/executions/{ident}", params={"includeData": "true"},
                                         timeout_s=timeout_s or self.timeout_s, max_bytes=max_bytes)
        except SecretError as exc:
            return Inspected(None, ExecutionError(ident, problem=self.key_problem(exc)))
        if outcome.problem is not None:
            problem = outcome.problem
            if outcome.kind == "too_large":
                problem += " (the execution's run data is larger than the console reads; open it in n8n)"
            if outcome.status_code == 404:
                problem = f"execution {ident} not found in n8n (deleted, pruned, or not visible to this API key)"
            return Inspected(None, ExecutionError(ident, problem=problem), outcome.status_code,
                             too_large=outcome.kind == "too_large")
        data = _mapping(outcome.data)
        ex = parse_execution(data)
        error = parse_error(ident, data, message_chars=message_chars)
        if ex is not None and not error.message and ex.status not in FAILED_STATUSES:
            error = replace(error, problem=f"execution {ident} has status {ex.status or '?'}: it has no error")
        return Inspected(ex, error, outcome.status_code)

    async def error_of(self, execution_id: str, deadline: float) -> dict[str, str]:
        """The failing node and error message of one execution, for the check's summary."""
        remaining = deadline - time.monotonic()
        if remaining <= 0.1:
            return {"unavailable": "no time left in this round to read the error text"}
        found = await self.inspect(execution_id, timeout_s=remaining, max_bytes=ROW_MAX_BYTES,
                                   message_chars=ROW_MESSAGE_CHARS)
        error = found.error
        if not error.message:
            return {"unavailable": error.problem or "n8n returned no error message for this execution"}
        return {"message": _txt(error.message, ERROR_TEXT_LIMIT), "node": error.node}

    async def errors(self, execution_ids: Sequence[str], *,
                     timeout_s: float | None = None) -> AsyncIterator[ExecutionError]:
        """The error of each execution, as each arrives (cached ones first); `PARALLEL` reads at a time.

        Finished executions never change, so what was read is kept (the newest `ERROR_CACHE`)."""
        pending: list[str] = []
        for ident in dict.fromkeys(execution_ids):
            cached = self._errors.get(ident)
            if cached is not None:
                self._errors.move_to_end(ident)
                yield cached
            else:
                pending.append(ident)
        if not pending:
            return
        limit = asyncio.Semaphore(PARALLEL)

        async def one(ident: str) -> ExecutionError:
            async with limit:
                found = await self.inspect(ident, timeout_s=timeout_s, max_bytes=ROW_MAX_BYTES,
                                           message_chars=ROW_MESSAGE_CHARS)
            finished = found.execution is not None and found.execution.status in FINISHED_STATUSES
            if finished or found.too_large:  # neither changes: never read again (a 2 MB read each poll)
                self._remember(found.error)
            return found.error

        tasks = [asyncio.ensure_future(one(i)) for i in pending]
        try:
            for fut in asyncio.as_completed(tasks):
                yield await fut
        finally:
            for task in tasks:
                task.cancel()

    def _remember(self, error: ExecutionError) -> None:
        self._errors[error.execution_id] = error
        self._errors.move_to_end(error.execution_id)
        while len(self._errors) > ERROR_CACHE:
            self._errors.popitem(last=False)

    async def failed_page(self, start: PagePosition | None, size: int, *,
                          timeout_s: float | None = None) -> ExecutionPage:
        """One page of the failed and crashed executions of the watched workflows, newest first.

        n8n filters by one status (and one workflow) per listing, so the page merges one cursor-paged
        stream per (status, workflow) by id. `start` is where a previous page's `next` said to go on;
        the page holds at most `size` rows, and only the server pages it needs are read (each at most
        `size` items), so the first page comes back after one request per stream."""
        size = max(1, min(size, MAX_LIMIT))
        started = time.perf_counter()
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        targets, filter_here = self._targets()
        watched = set(self.watched)

        def keep(ex: Execution) -> bool:
            return not filter_here or ex.workflow_id in watched

        if start is None:
            streams = [_Stream(StreamPos(status, wf)) for status in FAILED_STATUSES for wf in targets]
        else:
            streams = [_Stream(pos) for pos in start.streams]
        requests = 0

        async def load(stream: _Stream) -> HttpOutcome | None:
            nonlocal requests
            if stream.pos.done:
                stream.items, stream.index, stream.next_cursor, stream.loaded = [], 0, None, True
                return None
            params = {"status": stream.pos.status, "limit": str(size)}
            if stream.pos.workflow_id is not None:
                params["workflowId"] = stream.pos.workflow_id
            if stream.pos.cursor:
                params["cursor"] = stream.pos.cursor
            remaining = deadline - time.monotonic()
            if remaining <= 0.1:
                return HttpOutcome(url=self.base_url, status_code=None, latency_ms=0.0, kind="timeout",
                                   problem=f"n8n did not answer within {timeout_s or self.timeout_s:g} s")
            requests += 1
            outcome = await self.request("GET", "/executions", params=params, timeout_s=remaining)
            if outcome.problem is not None:
                return outcome
            data = outcome.data
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                return _bad_list(outcome)
            cursor = data.get("nextCursor") if isinstance(data, dict) else None
            stream.items = items
            stream.index = min(stream.pos.skip, len(items))
            stream.next_cursor = cursor if isinstance(cursor, str) and cursor else None
            stream.loaded = True
            return None

        def failed(outcome: HttpOutcome) -> ExecutionPage:
            return ExecutionPage(start=start, fetched_at=utcnow(), requests=requests,
                                 latency_ms=(time.perf_counter() - started) * 1000,
                                 problem=outcome.problem or "n8n request failed")

        def lazy(stream: _Stream) -> bool:
            """Known from the previous page to start with `pos.head`: read only if the page reaches it."""
            return not stream.loaded and stream.pos.head is not None

        def head_key(stream: _Stream) -> tuple[int, int, str] | None:
            if lazy(stream):
                return id_key(stream.pos.head or "")
            ex = stream.head(keep)
            return id_key(ex.id) if ex is not None else None

        for s in streams:
            if s.pos.done:
                s.loaded = True  # nothing left: never read again
        try:
            problems = await asyncio.gather(*(load(s) for s in streams if not s.loaded and not lazy(s)))
            for problem in problems:
                if problem is not None:
                    return failed(problem)
            rows: list[Execution] = []
            seen: set[str] = set()
            note = ""
            scanned_pages = requests
            while len(rows) < size:
                refill = [s for s in streams if s.loaded and s.head(keep) is None and s.next_cursor]
                keyed = [(k, s) for s in streams if (k := head_key(s)) is not None]
                best = max(keyed, key=lambda pair: pair[0])[1] if keyed else None
                wanted = refill or ([best] if best is not None and lazy(best) else [])
                if wanted:
                    if scanned_pages >= SCAN_PAGES + len(streams) or time.monotonic() > deadline - 0.2:
                        note = (f"stopped after reading {scanned_pages} pages from n8n (time or page limit); "
                                "] continues from here")
                        break
                    for s in refill:
                        s.pos = StreamPos(s.pos.status, s.pos.workflow_id, s.next_cursor, 0)
                    scanned_pages += len(wanted)
                    problems = await asyncio.gather(*(load(s) for s in wanted))
                    for problem in problems:
                        if problem is not None:
                            return failed(problem)
                    continue
                if best is None:
                    break
                ex = best.head(keep)
                best.index += 1
                assert ex is not None
                if ex.id not in seen:
                    seen.add(ex.id)
                    rows.append(ex)
            more = any(lazy(s) or s.head(keep) is not None or s.next_cursor for s in streams)
            nxt = PagePosition(tuple(s.position(keep) for s in streams)) if more else None
            names = await self.workflow_names(deadline)
        except SecretError as exc:
            return ExecutionPage(start=start, fetched_at=utcnow(), problem=self.key_problem(exc))
        return ExecutionPage(rows=tuple(rows), start=start, next=nxt, names=names, fetched_at=utcnow(),
                             latency_ms=(time.perf_counter() - started) * 1000, requests=requests,
                             scanned=len(rows), note=note)

    async def get_execution(self, execution_id: str, *, timeout_s: float | None = None) -> tuple[
            Execution | None, HttpOutcome]:
        """One execution's summary (no run data): for following a retry."""
        outcome = await self.request("GET", f"/executions/{quote(execution_id, safe='')}",
                                     params={"includeData": "false"}, timeout_s=timeout_s or self.timeout_s)
        if outcome.problem is not None:
            return None, outcome
        return parse_execution(outcome.data), outcome

    async def recent_executions(self, workflow_id: str, *, limit: int = MAX_LIMIT,
                                timeout_s: float | None = None) -> list[Execution]:
        """The newest executions of one workflow, any status (to see which failures were retried)."""
        try:
            outcome = await self.request("GET", "/executions", timeout_s=timeout_s or self.timeout_s,
                                         params={"workflowId": workflow_id, "limit": str(min(limit, MAX_LIMIT))})
        except SecretError:
            return []
        items = outcome.data.get("data") if outcome.problem is None and isinstance(outcome.data, dict) else None
        return [ex for ex in (parse_execution(i) for i in items or ()) if ex is not None]

    async def families(self, executions: Iterable[Execution], *, timeout_s: float | None = None) -> RetryFamilies:
        """Retry families of `executions`, completed with their workflows' newest executions and the
        executions they are retries of (so a failure whose retry of a retry succeeded is seen as done)."""
        known = {ex.id: ex for ex in executions}
        workflows = {ex.workflow_id for ex in known.values()}
        limit = timeout_s or self.timeout_s
        for batch in await asyncio.gather(*(self.recent_executions(wf, timeout_s=limit) for wf in workflows)):
            for ex in batch:
                known.setdefault(ex.id, ex)
        for _ in range(5):  # walk up retry chains whose start is older than the newest page
            missing = {ex.retry_of for ex in known.values() if ex.retry_of and ex.retry_of not in known}
            if not missing:
                break
            found = await asyncio.gather(*(self.get_execution(m, timeout_s=limit) for m in sorted(missing)[:20]))
            added = False
            for got, _outcome in found:
                if got is not None and got.id not in known:
                    known[got.id] = got
                    added = True
            if not added:
                break
        return RetryFamilies(known.values())

    async def find_retry_of(self, execution_id: str, workflow_id: str, *,
                            timeout_s: float | None = None) -> Execution | None:
        """The newest retry of `execution_id` (after a retry request that timed out)."""
        for ex in await self.recent_executions(workflow_id, limit=50, timeout_s=timeout_s):
            if ex.retry_of == execution_id:
                return ex
        return None

    # -- actions -----------------------------------------------------------------------------
    async def retry_execution(self, execution_id: str, *, load_workflow: bool = False,
                              timeout_s: float = RETRY_TIMEOUT_S, exists: bool = False) -> RetryResult:
        """`POST /executions/{id}/retry` (n8n >= 1.112). Never retried automatically: not idempotent.

        `load_workflow=True` runs the currently saved workflow instead of the failed snapshot.
        `exists`: the caller just read the execution, so a 404 means the endpoint is missing.
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
            elif code == 404 and exists:
                return RetryResult(ident, False, retry_endpoint_missing(ident), http_status=code, no_endpoint=True)
            elif code == 404:
                summary = (f"execution {ident} not found, or this n8n has no retry endpoint "
                           f"(needs n8n {RETRY_ADDED_IN} or newer){own_txt}")
            else:
                summary = f"retry of execution {ident} failed: {outcome.problem}"
            return RetryResult(ident, False, summary, http_status=code)
        data = outcome.data if isinstance(outcome.data, Mapping) else {}
        new_id = _txt(data.get("id"), 40) or None
        new_status = _txt(data.get("status"), 20) or None
        if new_id is None:
            return RetryResult(ident, False, "n8n accepted the retry but returned no new execution id",
                               http_status=code)
        tail = f" and it ended with status {new_status}" if new_status in FINISHED_STATUSES else ""
        return RetryResult(ident, True, f"retry of execution {ident} started execution {new_id}{tail}",
                           new_execution_id=new_id, new_status=new_status, http_status=code)

    async def follow(self, execution_id: str, *, timeout_s: float,
                     on_poll: Callable[[Execution], Awaitable[None] | None] | None = None) -> FollowResult:
        """Poll one execution until it finishes (success, error, crashed, canceled) or `timeout_s` passes.

        Polls every 0.25 s at first, backing off to 3 s: a sync that runs for minutes costs a few
        dozen small GETs. A failed poll is tried again until the time is up."""
        deadline = time.monotonic() + timeout_s
        wait, polls = 0.25, 0
        last: Execution | None = None
        problem: str | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return FollowResult(last, False, problem or f"still {last.status if last else 'not visible'} "
                                    f"after {timeout_s:g} s", polls)
            try:
                ex, outcome = await self.get_execution(execution_id, timeout_s=min(self.timeout_s, remaining))
            except SecretError as exc:
                return FollowResult(last, False, self.key_problem(exc), polls)
            polls += 1
            if ex is not None:
                last, problem = ex, None
                if on_poll is not None:
                    maybe = on_poll(ex)
                    if maybe is not None:
                        await maybe
                if ex.status in FINISHED_STATUSES:
                    return FollowResult(ex, True, None, polls)
            else:
                problem = outcome.problem or "n8n returned no execution"
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
            wait = min(3.0, wait * 1.5)

    # -- credentials -------------------------------------------------------------------------
    async def used_credentials(self, deadline: float) -> UsedCredentials:
        """The credentials the watched workflows' nodes use: `GET /workflows/{id}` per watched workflow,
        or every active workflow when the watch list is empty. Disabled nodes are left out."""
        started = time.perf_counter()
        watched = self.watched
        workflows: list[Mapping[str, Any]] = []
        limit = asyncio.Semaphore(4)

        async def one(wf: str) -> HttpOutcome:
            async with limit:
                return await self.request("GET", f"/workflows/{quote(wf, safe='')}",
                                          params={"excludePinnedData": "true"},
                                          timeout_s=max(0.1, deadline - time.monotonic()))

        if watched:
            outcomes = await asyncio.gather(*(one(wf) for wf in watched))
            for outcome in outcomes:
                if outcome.problem is not None:
                    return UsedCredentials(problem=outcome, latency_ms=(time.perf_counter() - started) * 1000)
                workflows.append(_mapping(outcome.data))
        else:
            params = {"active": "true", "limit": str(MAX_LIMIT), "excludePinnedData": "true"}
            for _ in range(8):
                outcome = await self.request("GET", "/workflows", params=params,
                                             timeout_s=max(0.1, deadline - time.monotonic()))
                if outcome.problem is not None:
                    return UsedCredentials(problem=outcome, latency_ms=(time.perf_counter() - started) * 1000)
                items = outcome.data.get("data") if isinstance(outcome.data, dict) else None
                if not isinstance(items, list):
                    return UsedCredentials(problem=_bad_list(outcome, "workflows"),
                                           latency_ms=(time.perf_counter() - started) * 1000)
                workflows.extend(_mapping(i) for i in items)
                cursor = outcome.data.get("nextCursor")
                if not isinstance(cursor, str) or not cursor:
                    break
                params["cursor"] = cursor
        users: dict[tuple[str, str, str], list[str]] = {}
        for wf in workflows:
            name = _txt(wf.get("name"), 60) or _txt(wf.get("id"), 40)
            for node in wf.get("nodes") or ():
                if not isinstance(node, Mapping) or node.get("disabled") is True:
                    continue
                for ref in _credential_refs(node.get("credentials")):
                    key = (ref.id or f"name:{ref.name}", ref.name, ref.type)
                    used = users.setdefault(key, [])
                    if name not in used:
                        used.append(name)
        refs = sorted(((CredentialRef(k[0] if not k[0].startswith("name:") else "", k[1], k[2]), tuple(v))
                       for k, v in users.items()), key=lambda item: (item[0].rank, item[0].name.lower()))
        return UsedCredentials(refs=tuple(refs), workflows=len(workflows),
                               latency_ms=(time.perf_counter() - started) * 1000)

    async def test_credential(self, ref: CredentialRef, *, timeout_s: float,
                              used_by: tuple[str, ...] = ()) -> tuple[CredentialTest, HttpOutcome | None]:
        """n8n's own test of one credential (`POST /credentials/{id}/test`, scope `credential:read`).
        Returns the verdict and, when the request itself failed, its outcome."""
        if not ref.id:
            return CredentialTest(ref, "unknown", "the workflow names this credential without an id (an old "
                                  "n8n format): n8n cannot test it by id", used_by), None
        outcome = await self.request("POST", f"/credentials/{quote(ref.id, safe='')}/test", timeout_s=timeout_s)
        code = outcome.status_code
        if outcome.problem is not None:
            if code in (404, 405):
                return CredentialTest(ref, "unknown", f"HTTP {code}: no credential test here", used_by, code), outcome
            if code == 403:
                return CredentialTest(ref, "unknown", "HTTP 403: the API key lacks the credential:read scope",
                                      used_by, code), outcome
            return CredentialTest(ref, "unknown", outcome.problem, used_by, code), outcome
        data = _mapping(outcome.data)
        verdict = str(data.get("status", "")).strip().lower()
        message = _txt(data.get("message"), 300)
        if verdict == "ok":
            return CredentialTest(ref, "ok", message or "OK", used_by, code), None
        if verdict == "error":
            return CredentialTest(ref, "fail", message or "n8n's test failed without a message", used_by, code), None
        return CredentialTest(ref, "unknown", "n8n answered the credential test without a status", used_by,
                              code), None

    async def test_credentials(self, refs: Sequence[tuple[CredentialRef, tuple[str, ...]]],
                               deadline: float) -> list[tuple[CredentialTest, HttpOutcome | None]]:
        limit = asyncio.Semaphore(4)

        async def one(ref: CredentialRef, used: tuple[str, ...]) -> tuple[CredentialTest, HttpOutcome | None]:
            async with limit:
                return await self.test_credential(ref, timeout_s=max(0.1, deadline - time.monotonic()),
                                                  used_by=used)

        return list(await asyncio.gather(*(one(r, u) for r, u in refs[:CREDENTIAL_TESTS])))


def retry_endpoint_missing(execution_id: str) -> str:
    return (f"n8n answered HTTP 404 on POST /executions/{execution_id}/retry although the execution exists: "
            f"this n8n is older than {RETRY_ADDED_IN}, which added the retry endpoint to the public API. "
            f"Upgrade n8n to {RETRY_ADDED_IN} or newer, or retry the execution in n8n's UI (Executions)")


def _bad_list(outcome: HttpOutcome, what: str = "executions") -> HttpOutcome:
    return replace(outcome, kind="bad_shape",
                   problem=f"n8n answered without a {what} list — check [n8n] api_url (it must end in /api/v1)")


class N8nExecutionsCheck:
    """`n8n.executions`: failed and crashed executions of the watched workflows in the last hour.

    A failure whose retry family already succeeded (n8n set `retrySuccessId`) is resolved and not
    counted: the sync ran through. Status rule: OK with 0 unresolved failures, WARN with 1–2, FAIL with
    3 or more (a sync failing three times in an hour is no longer a blip). HTTP 429 is WARN; any other
    failure to read is FAIL.
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
        watched = adapter.watched
        targets, _filter_here = adapter._targets()
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
        unique: dict[str, Execution] = {}
        for listing in listings:
            for ex in listing.found:
                if watched and ex.workflow_id not in watched:
                    continue
                unique.setdefault(ex.id, ex)
        families = RetryFamilies(unique.values())
        resolved = [e for e in unique.values() if families.resolved(e.id)]
        open_ = [e for e in unique.values() if not families.resolved(e.id)]
        # a failed retry of a failure listed here is the same failure again, not another one
        failed_retries = sum(1 for e in open_ if e.retry_of and e.retry_of in unique)
        failures = sorted((e for e in open_ if not (e.retry_of and e.retry_of in unique)),
                          key=lambda e: (e.started_at, e.id), reverse=True)
        truncated = any(item.truncated for item in listings)
        pages = sum(item.pages for item in listings)
        if not failures:
            scope = f"{len(watched)} watched workflow(s)" if watched else "all workflows"
            if resolved:
                summary = (f"no failed executions left in the last hour: {len(resolved)} retried successfully "
                           f"({scope})")
            else:
                summary = f"no failed executions in the last hour ({scope})"
            return self._result(Status.OK, summary, (time.perf_counter() - started) * 1000,
                                {"failed": 0, "crashed": 0, "retried_ok": len(resolved), "by_workflow": [],
                                 "newest_error": None, "recent": [], "failed_ids": [], "pages": pages,
                                 "truncated": truncated})
        try:
            names, newest_error = await asyncio.gather(adapter.workflow_names(deadline),
                                                       adapter.error_of(failures[0].id, deadline))
        except SecretError as exc:
            return self._result(Status.FAIL, adapter.key_problem(exc), None, {})
        return self._assess(failures, len(resolved), failed_retries, names, newest_error, pages, truncated,
                            (time.perf_counter() - started) * 1000)

    def _assess(self, failures: list[Execution], resolved: int, failed_retries: int, names: Mapping[str, str],
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
        if failed_retries:
            summary += f" (+{failed_retries} failed {'retry' if failed_retries == 1 else 'retries'})"
        summary += ": " + ", ".join(parts)
        newest = failures[0]
        if "message" in newest_error:
            node = newest_error.get("node")
            summary += f" — newest: {node + ': ' if node else ''}{newest_error['message']}"
        if resolved:
            summary += f" ({resolved} more retried successfully)"
        summary = printable(summary, single_line=True, limit=240)
        newest_json: dict[str, Any] = {"execution_id": newest.id, "workflow_id": newest.workflow_id,
                                       "workflow_name": names.get(newest.workflow_id, ""),
                                       "started_at": newest.started_at.isoformat(), **newest_error}
        return self._result(status, summary, latency_ms, {
            "failed": count,
            "crashed": crashed,
            "retried_ok": resolved,
            "failed_retries": failed_retries,
            "by_workflow": by_workflow,
            "newest_error": newest_json,
            "recent": [f.to_json() for f in failures[:RECENT]],
            "failed_ids": [f.id for f in failures[:FAILED_IDS]],
            "pages": pages,
            "truncated": truncated,
            "thresholds": {"warn_at": WARN_AT, "fail_at": FAIL_AT},
        })


class N8nCredentialsCheck:
    """`n8n.credentials`: every credential the watched workflows' nodes use, tested by n8n itself.

    OK when every test passes; FAIL naming each credential n8n's test fails (with n8n's own message,
    e.g. `connect ECONNREFUSED 10.0.0.5:5432`), Supabase and Postgres credentials first; UNKNOWN, never
    FAIL, when this n8n cannot test credentials (404/405: releases before 2026) or the API key lacks the
    `credential:read` scope (403): the summary says why and where to verify them by hand. A failure to
    read the workflows or to reach n8n is FAIL (429: WARN), like the other checks.
    """

    id = "n8n.credentials"
    system = "n8n"
    title = "n8n credentials"

    def __init__(self, adapter: N8nAdapter) -> None:
        self.adapter = adapter

    def _result(self, status: Status, summary: str, latency_ms: float | None,
                details: Mapping[str, Any]) -> CheckResult:
        watched = list(self.adapter.watched)
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status,
                           summary=printable(summary, single_line=True, limit=300), latency_ms=latency_ms,
                           details={"watched_workflows": watched or "all active", **details,
                                    "manual": self.adapter.credentials_url})

    async def run(self) -> CheckResult:
        adapter = self.adapter
        started = time.perf_counter()
        deadline = time.monotonic() + adapter.timeout_s
        try:
            adapter.settings.api_key.reveal()
            used = await adapter.used_credentials(deadline)
            if used.problem is not None:
                outcome = used.problem
                return self._result(outcome.status, outcome.problem or "n8n request failed", used.latency_ms,
                                    {"http_status": outcome.status_code, "error": outcome.kind})
            scope = (f"the {len(adapter.watched)} watched workflow(s)" if adapter.watched
                     else f"the {used.workflows} active workflow(s)")
            if not used.refs:
                return self._result(Status.OK, f"{scope} use no credentials", used.latency_ms, {"credentials": []})
            tests = await adapter.test_credentials(used.refs, deadline)
        except SecretError as exc:
            return self._result(Status.FAIL, adapter.key_problem(exc), None, {})
        return self._assess(scope, used, tests, (time.perf_counter() - started) * 1000)

    def _assess(self, scope: str, used: UsedCredentials, tests: list[tuple[CredentialTest, HttpOutcome | None]],
                latency_ms: float) -> CheckResult:
        verdicts = [t for t, _ in tests]
        rows = [t.to_json() for t in verdicts]
        details: dict[str, Any] = {"credentials": rows, "tested": len(verdicts)}
        if len(used.refs) > len(verdicts):
            details["not_tested"] = len(used.refs) - len(verdicts)
        manual = self.adapter.credentials_url
        codes = [o.status_code for _, o in tests if o is not None]
        failing = [t for t in verdicts if t.status == "fail"]
        if 401 in codes:
            outcome = next(o for _, o in tests if o is not None and o.status_code == 401)
            return self._result(Status.FAIL, outcome.problem or "HTTP 401 from n8n", latency_ms, details)
        endpoint_missing = [t for t, o in tests if o is not None and o.status_code in (404, 405)]
        transport = [o for _, o in tests if o is not None and o.status_code not in (403, 404, 405)]
        if endpoint_missing and len(endpoint_missing) == len([t for t in verdicts if t.ref.id]) and not failing:
            code = endpoint_missing[0].http_status
            return self._result(Status.UNKNOWN, f"n8n cannot test credentials here: POST /credentials/{{id}}/test "
                                f"answered HTTP {code} ({CREDENTIAL_TEST_ADDED}) — verify the {len(verdicts)} "
                                f"credential(s) of {scope} by hand: {manual}", latency_ms,
                                {**details, "reason": "no_endpoint"})
        # a 404 next to answered tests: that credential is gone from n8n, yet a workflow still uses it
        missing_now = [t for t in endpoint_missing if t.http_status == 404]
        if missing_now:
            rows[:] = [dict(r, status="fail", message="not found in n8n (deleted?): the workflow still uses it")
                       if r["id"] in {t.ref.id for t in missing_now} else r for r in rows]
            failing = failing + [replace(t, status="fail", message="not found in n8n (deleted?)") for t in missing_now]
            failing.sort(key=lambda t: (t.ref.rank, t.ref.name.lower()))
        if failing:
            first = failing[0]
            named = "; ".join(f"{t.ref.label}: {t.message}" for t in failing[:3])
            more = f"; +{len(failing) - 3} more" if len(failing) > 3 else ""
            n_ok = sum(1 for t in verdicts if t.status == "ok")
            head = (f"{first.ref.label} fails n8n's own test" if len(failing) == 1
                    else f"{len(failing)} of {len(verdicts)} n8n credentials fail n8n's own test")
            summary = (f"{head}: {named}{more}" if len(failing) > 1 else f"{head}: {first.message}")
            summary += f" ({n_ok} ok) — fix it in n8n: {manual}"
            return self._result(Status.FAIL, summary, latency_ms, details)
        if transport:
            outcome = transport[0]
            return self._result(outcome.status, outcome.problem or "n8n request failed", latency_ms,
                                {**details, "http_status": outcome.status_code, "error": outcome.kind})
        if 403 in codes:
            return self._result(Status.UNKNOWN, "n8n cannot test credentials for this API key: HTTP 403, it lacks "
                                "the credential:read scope — add the scope to the key, or verify the credentials "
                                f"of {scope} by hand: {manual}", latency_ms, {**details, "reason": "scope"})
        unknown = [t for t in verdicts if t.status == "unknown"]
        ok = [t for t in verdicts if t.status == "ok"]
        names = ", ".join(t.ref.name or t.ref.id for t in ok[:4]) + (f", +{len(ok) - 4} more" if len(ok) > 4 else "")
        if unknown:
            return self._result(Status.UNKNOWN, f"{len(unknown)} of {len(verdicts)} credentials could not be "
                                f"tested: {unknown[0].ref.label}: {unknown[0].message} — verify by hand: {manual}",
                                latency_ms, details)
        noun = "credential passes" if len(ok) == 1 else f"{len(ok)} credentials pass"
        return self._result(Status.OK, f"{'the ' if len(ok) == 1 else ''}{noun} n8n's own test: {names}",
                            latency_ms, details)


__all__ = ["FailedExecution", "FollowResult", "Inspected", "N8nAdapter", "N8nCredentialsCheck",
           "N8nExecutionsCheck", "RetryResult", "UsedCredentials", "parse_error", "parse_execution",
           "retry_endpoint_missing"]
