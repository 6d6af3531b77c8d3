"""n8n executions and credentials as plain data: what the n8n tab, the retry action and the checks share.

Ids are strings (older n8n typed them as numbers). Every text field here has been made printable by the
adapter (no terminal escapes) and is still to be rendered without markup.

Retry families: a retry of execution X is a new execution with `retryOf = X`; when it succeeds n8n sets
`retrySuccessId` on X. Retrying a failed retry makes chains (X <- Y <- Z). A failure is *resolved* when any
execution of its family (X and every retry linked to it through `retryOf`) carries a `retrySuccessId`:
the sync ran through, and running it again would repeat its writes. `RetryFamilies` works that out from
whatever executions are at hand (a listing, or what the retry preview read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FAILED_STATUSES: tuple[str, ...] = ("error", "crashed")
RUNNING_STATUSES: tuple[str, ...] = ("new", "running", "waiting")
FINISHED_STATUSES: tuple[str, ...] = ("success", "error", "crashed", "canceled", "unknown")


def id_key(execution_id: str) -> tuple[int, int, str]:
    """Sort key matching n8n's own order (by id); numeric ids compare as numbers."""
    return (1, int(execution_id), "") if execution_id.isdigit() else (0, 0, execution_id)


@dataclass(frozen=True, slots=True)
class Execution:
    """One execution, as `GET /executions` lists it (no run data)."""

    id: str
    workflow_id: str
    status: str
    mode: str
    started_at: datetime
    stopped_at: datetime | None
    retry_of: str | None = None
    retry_success_id: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.stopped_at is None:
            return None
        return max(0.0, (self.stopped_at - self.started_at).total_seconds())

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "workflow_id": self.workflow_id, "status": self.status, "mode": self.mode,
                "started_at": self.started_at.isoformat(),
                "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None,
                "retry_of": self.retry_of, "retry_success_id": self.retry_success_id}


# The name the `n8n.executions` check has always used.
FailedExecution = Execution


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """A credential a node uses, as the workflow names it: id, name and type. Never its data."""

    id: str
    name: str
    type: str

    @property
    def label(self) -> str:
        return f"{self.name or self.id} · {self.type}" if self.type else (self.name or self.id)

    @property
    def rank(self) -> int:
        """Supabase first, then Postgres, then the rest: the runbook's step is about Supabase access."""
        kind = self.type.lower()
        return 0 if "supabase" in kind else 1 if "postgres" in kind else 2


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """Why one execution failed: its failing node and n8n's error, read with `includeData=true`.

    `message` may span lines and is capped (`message_chars` is the length n8n sent); `stack` holds the
    first lines of the stack only. `problem` says why nothing could be read (too large, gone, ...).
    """

    execution_id: str
    node: str = ""
    node_type: str = ""
    message: str = ""
    description: str = ""
    error_name: str = ""
    http_code: str = ""
    stack: tuple[str, ...] = ()
    message_chars: int = 0
    credentials: tuple[CredentialRef, ...] = ()  # the failing node's credentials
    workflow_name: str = ""
    problem: str | None = None

    @property
    def first_line(self) -> str:
        for line in self.message.splitlines():
            if line.strip():
                return line.strip()
        return self.problem or ""

    @property
    def truncated(self) -> bool:
        return self.message_chars > len(self.message)

    def to_json(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "node": self.node, "node_type": self.node_type,
                "message": self.first_line, "description": self.description, "error_name": self.error_name,
                "http_code": self.http_code, "credentials": [c.label for c in self.credentials],
                "problem": self.problem}


@dataclass(frozen=True, slots=True)
class StreamPos:
    """Where one listing stream (one status, maybe one workflow) stands: the cursor of the server page
    being read (None: the first) and how many of its items were already consumed."""

    status: str
    workflow_id: str | None
    cursor: str | None = None
    skip: int = 0
    done: bool = False  # nothing left in this stream: not read again
    head: str | None = None  # the id of its next execution, when known: read only when a page reaches it


@dataclass(frozen=True, slots=True)
class PagePosition:
    """The start of a page of the merged failed/crashed listing: one position per stream.

    A few short strings however deep the operator pages, so the console keeps a stack of them for `[`
    without keeping any rows (memory stays bounded at any number of executions)."""

    streams: tuple[StreamPos, ...]


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    """One page of failed executions, newest first, and where the next one starts (None: the end)."""

    rows: tuple[Execution, ...] = ()
    start: PagePosition | None = None
    next: PagePosition | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    fetched_at: datetime | None = None
    latency_ms: float = 0.0
    requests: int = 0
    scanned: int = 0  # executions looked at (more than `rows` when a filter is on)
    problem: str | None = None
    note: str = ""  # e.g. "stopped scanning at the time limit: ] continues"


@dataclass(frozen=True, slots=True)
class CredentialTest:
    """What n8n's own test of one credential said: ok, fail (n8n's message) or unknown (why not tested)."""

    ref: CredentialRef
    status: str  # ok | fail | unknown
    message: str
    workflows: tuple[str, ...] = ()  # names of the watched workflows whose nodes use it
    http_status: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"credential": self.ref.name or self.ref.id, "type": self.ref.type, "status": self.status,
                "message": self.message, "used_by": ", ".join(self.workflows), "id": self.ref.id}


class RetryFamilies:
    """Which executions belong together through `retryOf`, and whether a family already succeeded."""

    def __init__(self, executions: Iterable[Execution] = ()) -> None:
        self._parent: dict[str, str] = {}
        self._success: dict[str, str] = {}  # root -> the successful retry's id
        self._known: dict[str, Execution] = {}
        for ex in executions:
            self.add(ex)

    def _root(self, ident: str) -> str:
        seen = []
        while ident in self._parent and self._parent[ident] != ident:
            seen.append(ident)
            ident = self._parent[ident]
        for item in seen:  # path compression
            self._parent[item] = ident
        return ident

    def _union(self, a: str, b: str) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra == rb:
            return
        self._parent[ra] = rb
        if ra in self._success:
            self._success.setdefault(rb, self._success.pop(ra))

    def add(self, ex: Execution) -> None:
        self._known[ex.id] = ex
        self._parent.setdefault(ex.id, ex.id)
        if ex.retry_of:
            self._parent.setdefault(ex.retry_of, ex.retry_of)
            self._union(ex.id, ex.retry_of)
        if ex.retry_success_id:
            self._parent.setdefault(ex.retry_success_id, ex.retry_success_id)
            self._union(ex.retry_success_id, ex.id)
            self._success.setdefault(self._root(ex.id), ex.retry_success_id)
        if ex.status == "success" and ex.retry_of:
            self._success.setdefault(self._root(ex.id), ex.id)

    def succeeded_by(self, execution_id: str) -> str | None:
        """The id of a successful retry in `execution_id`'s family, or None."""
        if execution_id not in self._parent:
            return None
        return self._success.get(self._root(execution_id))

    def resolved(self, execution_id: str) -> bool:
        return self.succeeded_by(execution_id) is not None


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """The n8n tab's `/` filter: words that must all appear (case-insensitively) in the id, workflow,
    status, mode, failing node or error of an execution. `retried` matches families already retried
    successfully, `-retried` the others."""

    text: str = ""

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(t.lower() for t in self.text.split() if t.strip())

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, ex: Execution, workflow_name: str, error: ExecutionError | None, *,
                resolved: bool = False) -> bool:
        hay = " ".join((ex.id, ex.workflow_id, workflow_name, ex.status, ex.mode,
                        error.node if error else "", error.first_line if error else "",
                        "retried" if resolved else "")).lower()
        for term in self.terms:
            if term == "-retried":
                if resolved:
                    return False
                continue
            if term not in hay:
                return False
        return True

    def describe(self) -> str:
        return " ".join(self.terms) if self.terms else "none"
