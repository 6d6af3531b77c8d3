"""What the demo's simulated services share, so one reacts to what was done to another.

Real services are connected: promoting the previous deployment makes the API's /health
recover; a restore takes the database away and brings it back; terminating the long queries
lowers the CPU the metrics report. The simulators of the demo each own their service's state,
and consult (and update) this one object for what crosses service boundaries:

    world.has("bad-deploy")       # still wrong?
    world.resolve("bad-deploy")   # an action fixed it (e.g. the Vercel simulator after a promote)
    world.cause("api-wedged")     # something broke it again
    world.on_change(callback)     # told (problem, active) after every change, from any thread

The problems and their meaning are in `demo.scenario.PROBLEMS`; a scenario starts with its own.
`admin_dsn` is set once the demo PostgreSQL is up (simulators that look at the database, such
as the metrics or a restore, use it). Thread-safe: simulators answer on their own threads.

Database problems: `add_database_probe(fn)` registers a probe (returning the error the product's
API would hit, or None); `database_problems()` runs them. The API simulator's /health reports them
as its database component's error (a migration that dropped a column the API reads; the database
offline during a restore).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from opsconsole.demo.scenario import PROBLEMS, problems

Listener = Callable[[str, bool], None]


class DemoWorld:
    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self._lock = threading.Lock()
        self._active: set[str] = set(problems(scenario))
        self._listeners: list[Listener] = []
        self._probes: list[Callable[[], str | None]] = []
        self.admin_dsn: str | None = None

    def has(self, problem: str) -> bool:
        self._known(problem)
        with self._lock:
            return problem in self._active

    @property
    def active(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._active)

    def resolve(self, problem: str) -> None:
        self._set(problem, False)

    def cause(self, problem: str) -> None:
        self._set(problem, True)

    def add_database_probe(self, probe: Callable[[], str | None]) -> None:
        with self._lock:
            self._probes.append(probe)

    def database_problems(self) -> list[str]:
        """What the product's API would fail on in the database right now (empty: nothing)."""
        with self._lock:
            probes = list(self._probes)
        found = []
        for probe in probes:
            try:
                problem = probe()
            except Exception:  # a broken probe is not a database problem
                problem = None
            if problem:
                found.append(problem)
        return found

    def on_change(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _set(self, problem: str, active: bool) -> None:
        self._known(problem)
        with self._lock:
            changed = (problem in self._active) != active
            if active:
                self._active.add(problem)
            else:
                self._active.discard(problem)
            listeners = list(self._listeners) if changed else []
        for listener in listeners:
            listener(problem, active)

    @staticmethod
    def _known(problem: str) -> None:
        if problem not in PROBLEMS:
            raise ValueError(f"unknown demo problem {problem!r}; known: {', '.join(PROBLEMS)}")
