"""Whether a database restore is in progress: one small, explicit, shared piece of state.

A restore takes the database offline for minutes to hours. While it runs, the checks that need
the database would all FAIL; instead they say "restore in progress". Two sources publish it:

* the restore action of this console (`begin` when Supabase accepted the restore, `update` with
  each project status it polls, `end` with the final status);
* the project status any check saw (`observe`): RESTORING means a restore is running, also one
  started by another console; ACTIVE_HEALTHY (or RESTORE_FAILED) ends an observed one.

`services.CheckRunner` consults `current()` before and after every check that needs the database.
Thread-safe (the CLI and the console read it from several tasks; a lock keeps it simple).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime

from opsconsole.domain.text import format_age

THIS_CONSOLE = "this console"
PROJECT_STATUS = "project status"


@dataclass(frozen=True, slots=True)
class RestoreInProgress:
    """A restore that is running (or just ended: `final_status` set)."""

    project_ref: str
    started_at: datetime
    source: str  # THIS_CONSOLE | PROJECT_STATUS
    status: str = "RESTORING"
    what: str = ""  # "daily backup 880123 (2026-11-27 22:00 UTC)" | "point in time 2026-..."
    operator: str = ""  # who started it, when known (this console's operator, or the journal's)
    estimate_s: tuple[float, float] | None = None  # expected downtime range
    estimate_basis: str = ""
    attempt: str = ""
    final_status: str = ""
    ended_at: datetime | None = None

    @property
    def active(self) -> bool:
        return not self.final_status

    def elapsed_s(self, now: datetime) -> float:
        end = self.ended_at or now
        return max(0.0, (end - self.started_at).total_seconds())

    def describe(self, now: datetime) -> str:
        """One line: 'restore in progress: RESTORING for 3m (expected 2m–12m), daily backup 880123, started
        03:12 UTC by alice'."""
        elapsed = format_age(self.elapsed_s(now))
        parts = [f"{self.status} for {elapsed}" if self.active else f"after {elapsed}"]
        if self.estimate_s is not None:
            low, high = self.estimate_s
            parts[0] += f" (expected {format_age(low)}–{format_age(high)})"
        if self.what:
            parts.append(self.what)
        who = f" by {self.operator}" if self.operator else ""
        parts.append(f"started {self.started_at:%H:%M} UTC{who}")
        if self.source == PROJECT_STATUS:
            parts.append("seen in the project status")
        if self.active:
            return "restore in progress: " + ", ".join(parts)
        return f"restore ended {self.final_status} " + ", ".join(parts)


class RestoreState:
    """The current restore, if any (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: RestoreInProgress | None = None
        self._last: RestoreInProgress | None = None

    def current(self) -> RestoreInProgress | None:
        """The restore in progress, or None."""
        with self._lock:
            return self._current

    def last(self) -> RestoreInProgress | None:
        """The restore in progress, else the one that ended last (for the Backups tab)."""
        with self._lock:
            return self._current or self._last

    def begin(self, info: RestoreInProgress) -> None:
        with self._lock:
            self._current = info

    def update(self, status: str) -> None:
        with self._lock:
            if self._current is not None:
                self._current = replace(self._current, status=status)

    def end(self, final_status: str, now: datetime) -> None:
        with self._lock:
            if self._current is not None:
                self._last = replace(self._current, status=final_status, final_status=final_status, ended_at=now)
            self._current = None

    def enrich(self, *, operator: str = "", started_at: datetime | None = None, attempt: str = "",
               what: str = "") -> None:
        """Add who/when from the journal to a restore seen in the project status."""
        with self._lock:
            cur = self._current
            if cur is None:
                return
            self._current = replace(cur, operator=operator or cur.operator, attempt=attempt or cur.attempt,
                                    started_at=started_at or cur.started_at, what=what or cur.what)

    def observe(self, project_ref: str, status: str, now: datetime) -> bool:
        """Take in a project status a check saw; True when this began tracking a restore."""
        with self._lock:
            cur = self._current
            if status == "RESTORING":
                if cur is None:
                    self._current = RestoreInProgress(project_ref=project_ref, started_at=now, source=PROJECT_STATUS)
                    return True
                if cur.status != status:
                    self._current = replace(cur, status=status)
                return False
            if cur is not None and cur.source == PROJECT_STATUS:
                self._last = replace(cur, status=status, final_status=status, ended_at=now)
                self._current = None
            return False
