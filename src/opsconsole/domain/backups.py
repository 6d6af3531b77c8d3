"""Backups as the Supabase Management API reports them, in a form the UI and actions can use.

Kept apart from `models.py` because the restore actions (PITR / physical restore) will need
exactly these objects for their preview: which backup, when, and whether PITR is possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsconsole.domain.models import Status

# Backup `status` values of V1BackupsResponse; kept as strings so an unknown future value
# is shown as-is instead of breaking the listing.
COMPLETED = "COMPLETED"
FAILED = "FAILED"
BACKUP_STATUSES: tuple[str, ...] = ("COMPLETED", "FAILED", "PENDING", "REMOVED", "ARCHIVED", "CANCELLED")


@dataclass(frozen=True, slots=True)
class Backup:
    """One daily (physical or logical) backup."""

    id: int
    status: str
    inserted_at: datetime
    is_physical: bool

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED


@dataclass(frozen=True, slots=True)
class PitrWindow:
    """The range a point-in-time restore can target (from `physical_backup_data`)."""

    earliest: datetime | None
    latest: datetime | None


@dataclass(frozen=True, slots=True)
class BackupInventory:
    """Everything one `GET /v1/projects/{ref}/database/backups` said, newest backup first."""

    region: str
    walg_enabled: bool
    pitr_enabled: bool
    backups: tuple[Backup, ...]
    pitr_window: PitrWindow | None = None
    unreadable: int = 0  # entries whose id/status/date could not be read

    @property
    def newest(self) -> Backup | None:
        return self.backups[0] if self.backups else None

    @property
    def newest_completed(self) -> Backup | None:
        return next((b for b in self.backups if b.completed), None)


@dataclass(frozen=True, slots=True)
class BackupListing:
    """The answer of `list_backups()`: an inventory, or why there is none (failures are data)."""

    inventory: BackupInventory | None
    problem: str | None = None
    status: Status = Status.OK  # status of the exchange itself (WARN for 429, FAIL otherwise)
    latency_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.inventory is not None and self.problem is None


# -- restores ------------------------------------------------------------------------------------

# The runbook's own words ("Backups & Restore Plan"); shown in full, and held on screen, before a restore.
DOWNTIME_WARNING = ("Restoring from a backup (PITR or Daily) overrides the current database. This process takes the "
                    "database OFFLINE for the duration of the restore (minutes to hours depending on size).")

# Project statuses (GET /v1/projects/{ref}) a restore goes through.
RESTORING = "RESTORING"
RESTORE_FAILED = "RESTORE_FAILED"
ACTIVE_HEALTHY = "ACTIVE_HEALTHY"


@dataclass(frozen=True, slots=True)
class RestorePoint:
    """A named restore point (V1RestorePointResponse): AVAILABLE, PENDING, REMOVED or FAILED."""

    name: str
    status: str
    completed_on: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """A Management API call that changes something: accepted, or why not (the service's own words)."""

    ok: bool
    status_code: int | None = None
    problem: str | None = None
    data: object = None
