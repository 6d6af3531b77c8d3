"""A runbook as data: an incident of runbook.md, its steps, and where each step leads.

Plain frozen dataclasses, built by `runbooks.loader` from TOML files (the keys are design.md's
public contract plus a few additive ones, documented in docs/runbooks.md). No I/O here.

A step is a `check` (runs live checks; passes when all are ok), an `action` (a guarded action
through the kernel) or a `manual` step (the console says where to go; the operator records done
or skipped). After a step the run goes to `next` (default: the following step in the file); a
check step that does not pass, an action that fails and a manual step answered "no" go to
`on_fail` when it is set. `END` as a target ends the run there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = ("check", "action", "manual")
END = "end"
"""A `next`/`on_fail` target that ends the run (e.g. "fixable via SQL: no restore")."""

TABS: tuple[str, ...] = ("api", "database", "n8n", "dlq", "deploy", "backups")
"""Where a step is served in the console (the tab that lists it at its bottom)."""

DEFAULT_EVERY_S = 5.0


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a runbook.

    `title` is the short line shown in lists; `text` the runbook's own words. `checks`: for a
    check step, what must be ok; for a manual step, what is shown beside it (context only).
    `params` are the action's parameters as plain data; `params_from` fills a parameter from the
    newest result of a check: `{pids = "db.long_running:sessions.pid"}` takes `pid` of every item
    of `details["sessions"]`. `warning` is shown in full; `ack` is text the operator types before
    the step can start, pass or be skipped. `link` names a deep link (`runbooks.catalog.links`);
    for an action step it is also where to do it by hand when the action is not built here.
    `wait_s`: a check step that does not pass is re-run every `every_s` seconds for up to this
    long before it counts as failed (a rate such as CPU needs a moment to come down).
    `number` is the runbook's own step number (0: a step the wizard adds, e.g. a re-check).
    """

    id: str
    title: str
    kind: str
    text: str = ""
    checks: tuple[str, ...] = ()
    on_fail: str = ""
    next: str = ""
    action: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    params_from: Mapping[str, str] = field(default_factory=dict)
    warning: str = ""
    ack: str = ""
    link: str = ""
    tab: str = ""
    number: int = 0
    wait_s: float = 0.0
    every_s: float = DEFAULT_EVERY_S

    @property
    def kind_label(self) -> str:
        return {"check": "live check", "action": "guarded action", "manual": "manual step"}.get(self.kind, self.kind)


@dataclass(frozen=True, slots=True)
class Runbook:
    """One incident: its steps in file order. `triggers`: a FAIL of any of these checks suggests
    it; `resolved`: the checks that say the incident is over, re-run when the run closes
    (default: the triggers). `source` is "built-in" or the file it came from."""

    id: str
    title: str
    steps: tuple[Step, ...]
    triggers: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    description: str = ""
    source: str = "built-in"
    path: str = ""

    @property
    def closing_checks(self) -> tuple[str, ...]:
        return self.resolved or self.triggers

    def index(self, step_id: str) -> int:
        """The position of `step_id` (0-based); ValueError when there is no such step."""
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise ValueError(f"runbook {self.id} has no step {step_id!r}")

    def step(self, step_id: str) -> Step:
        return self.steps[self.index(step_id)]

    def has_step(self, step_id: str) -> bool:
        return any(s.id == step_id for s in self.steps)

    def following(self, step: Step) -> str:
        """Where the run goes after `step` when it went well: `next`, else the step after it, else END."""
        if step.next:
            return step.next
        i = self.index(step.id)
        return self.steps[i + 1].id if i + 1 < len(self.steps) else END

    def after_failure(self, step: Step) -> str | None:
        """Where a failed step sends the run (`on_fail`), or None: stay and offer the next step."""
        return step.on_fail or None

    def edges(self, step: Step) -> list[str]:
        """Every step (or END) the run can go to from `step`."""
        targets = [self.following(step)]
        if step.on_fail:
            targets.append(step.on_fail)
        return targets
