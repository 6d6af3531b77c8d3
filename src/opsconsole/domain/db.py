"""Database sessions as the Database tab shows them (pg_activity-like)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

CONSOLE_APP_PREFIX = "opsconsole"
"""Every connection the console opens has an application_name starting with this."""


@dataclass(frozen=True, slots=True)
class Backend:
    """One client backend from `pg_stat_activity`. Text fields are printable (no escapes) and
    `query` is truncated; `duration_s` counts from `query_start` when active, else from
    `state_change`. `blocked_by` are the PIDs it waits for, `blocking` those waiting for it."""

    pid: int
    user: str
    database: str
    application: str
    client_addr: str  # "local" for a unix socket, "" when hidden
    state: str  # "" when the role may not see it (no pg_read_all_stats)
    backend_type: str
    backend_start: datetime | None
    xact_start: datetime | None
    query_start: datetime | None
    state_change: datetime | None
    duration_s: float
    wait_event_type: str
    wait_event: str
    blocked_by: tuple[int, ...]
    blocking: tuple[int, ...]
    query: str

    @property
    def console(self) -> bool:
        """One of opsconsole's own connections (this or another console): never signalled."""
        return self.application.startswith(CONSOLE_APP_PREFIX)

    @property
    def wait(self) -> str:
        return f"{self.wait_event_type}:{self.wait_event}" if self.wait_event_type else ""

    def to_json(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d is not None else None

        return {"pid": self.pid, "user": self.user, "database": self.database, "application": self.application,
                "client_addr": self.client_addr, "state": self.state, "backend_type": self.backend_type,
                "backend_start": iso(self.backend_start), "xact_start": iso(self.xact_start),
                "query_start": iso(self.query_start), "state_change": iso(self.state_change),
                "duration_s": round(self.duration_s, 3), "wait": self.wait, "blocked_by": list(self.blocked_by),
                "blocking": list(self.blocking), "query": self.query}


@dataclass(frozen=True, slots=True)
class ActivitySnapshot:
    """Every client backend except the console's own session, as of `taken_at` (local clock,
    read before the query). `hidden` counts sessions of other roles whose details the console's
    role may not see. On failure `backends` is empty and `error` says why."""

    taken_at: datetime
    backends: tuple[Backend, ...] = ()
    hidden: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def by_pid(self, pid: int) -> Backend | None:
        return next((b for b in self.backends if b.pid == pid), None)

    def blocking_chains(self) -> dict[int, tuple[int, ...]]:
        """holder PID -> the PIDs waiting for it."""
        return {b.pid: b.blocking for b in self.backends if b.blocking}
