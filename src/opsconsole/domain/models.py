"""Domain data shared by adapters, services and the UI."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Status(enum.StrEnum):
    """Check status; the order of SEVERITY decides which one is 'worst'."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    OFF = "off"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @property
    def exit_code(self) -> int:
        """Monitoring-plugin exit code: 0 OK, 1 WARN, 2 FAIL, 3 UNKNOWN."""
        return _EXIT[self]


# FAIL outranks UNKNOWN (design.md), OFF counts as nothing wrong.
_SEVERITY = {Status.OFF: 0, Status.OK: 1, Status.WARN: 2, Status.UNKNOWN: 3, Status.FAIL: 4}
_EXIT = {Status.OFF: 0, Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 3, Status.FAIL: 2}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe status; OK for an empty list."""
    if not statuses:
        return Status.OK
    top = max(statuses, key=lambda s: s.severity)
    return Status.OK if top is Status.OFF else top


def utcnow() -> datetime:
    return datetime.now(UTC)


# Systems, in status-strip order. Each check id starts with one of these.
SYSTEMS: tuple[str, ...] = ("api", "vercel", "supabase", "db", "n8n", "twilio", "dlq", "backups")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One measurement of one check. Expected failures are results, never exceptions."""

    id: str
    system: str
    title: str
    status: Status
    summary: str
    latency_ms: float | None = None
    checked_at: datetime = field(default_factory=utcnow)
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "system": self.system,
            "title": self.title,
            "status": self.status.value,
            "summary": self.summary,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "checked_at": self.checked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "details": dict(self.details),
        }
