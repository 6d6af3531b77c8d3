"""Deployments as the console shows and acts on them, independent of the hosting provider.

Adapters build these from provider payloads with all service text already made printable, so
panes, runbooks and actions can show and compare deployments without knowing the API shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsconsole.domain.models import utcnow

# States in which a deployment will never serve traffic.
FAILED_STATES: frozenset[str] = frozenset({"ERROR", "CANCELED"})
# States of a deployment that is still on its way to READY.
IN_PROGRESS_STATES: frozenset[str] = frozenset({"BUILDING", "QUEUED", "INITIALIZING"})


def iso_utc(dt: datetime) -> str:
    """The timestamp format used in check details and `check --json`."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment. `target` is "production", "staging" or None (a preview)."""

    id: str
    url: str | None
    state: str  # READY, ERROR, BUILDING, QUEUED, INITIALIZING, CANCELED, BLOCKED, DELETED
    target: str | None
    created_at: datetime
    sha: str = ""
    message: str = ""  # first line of the commit message, printable
    ref: str = ""  # git branch
    creator: str = ""
    ready_substate: str | None = None  # STAGED | ROLLING | PROMOTED
    error_code: str = ""
    error_message: str = ""
    inspector_url: str | None = None
    rollback_candidate: bool | None = None

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def is_production(self) -> bool:
        return self.target == "production"

    @property
    def failed(self) -> bool:
        return self.state in FAILED_STATES

    @property
    def in_progress(self) -> bool:
        return self.state in IN_PROGRESS_STATES

    def age_s(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or utcnow()) - self.created_at).total_seconds())

    def to_dict(self, *, current_id: str | None = None) -> dict[str, Any]:
        """Plain JSON-ready dict for check details (`check --json`, detail panes)."""
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "state": self.state,
            "target": self.target,
            "sha": self.sha,
            "message": self.message,
            "ref": self.ref,
            "created_at": iso_utc(self.created_at),
            "creator": self.creator,
        }
        if self.error_message or self.error_code:
            out["error"] = self.error_message or self.error_code
        if current_id is not None:
            out["current"] = self.id == current_id
        return out
