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
    project_name: str = ""
    building_at: datetime | None = None  # when the build started (Vercel `buildingAt`)
    ready_at: datetime | None = None  # when it became READY, or when its build failed

    @property
    def final(self) -> bool:
        """Whether the state will not change any more on its own (READY, ERROR, CANCELED, ...)."""
        return self.state not in IN_PROGRESS_STATES

    def build_s(self, now: datetime | None = None) -> float | None:
        """Build time: start to READY/ERROR, or so far while it builds; None when unknown."""
        start = self.building_at or (self.created_at if self.in_progress else None)
        if start is None:
            return None
        end = self.ready_at if self.final else (now or utcnow())
        if end is None:
            return None
        return max(0.0, (end - start).total_seconds())

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


@dataclass(frozen=True, slots=True)
class BuildEvent:
    """One line of a deployment's build output (`GET /v3/deployments/{id}/events`), printable."""

    type: str  # command | stdout | stderr | exit | deployment-state | fatal | ...
    text: str
    created_at: datetime | None = None
    level: str = ""  # "error" | "warning" | ""

    @property
    def is_error(self) -> bool:
        return self.type in ("stderr", "fatal") or self.level == "error"


@dataclass(frozen=True, slots=True)
class PromotionJob:
    """The project's last alias request (`lastAliasRequest` of GET /v9/projects/{id}?rollbackInfo=true)."""

    from_id: str
    to_id: str
    status: str  # pending | in-progress | succeeded | failed | skipped
    requested_at: datetime | None = None
    type: str = "promote"  # promote | rollback

    @property
    def final(self) -> bool:
        return self.status in ("succeeded", "failed", "skipped")
