"""What a runbook file may name: check ids, action ids (built here or planned), deep links.

The design names actions that are built on other branches (`vercel.redeploy`, `vercel.promote`,
`n8n.retry`, `migrations.revert`, `backups.restore`) and two checks (`n8n.credentials`,
`db.migrations`). A runbook names them already; until they are registered here, the wizard
turns such a step into a manual one that says so ("not built yet: do it in the Vercel dashboard:
<link>") and lint accepts the id. When an action lands in `actions.catalog.KNOWN_ACTIONS` it is
used as is (a known id always wins over the planned entry); remove it from PLANNED_ACTIONS then,
so the per-tab runbook lists stop saying "not built yet".

This module imports nothing heavy at import time (the console's first frame reads the built-in
runbooks); `build_vocabulary` imports the action catalog when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.actions.params import ParamSpec


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """An action the design names that this version does not build yet."""

    id: str
    title: str
    tier: str  # reversible | disruptive | destructive
    where: str  # where the operator does it by hand meanwhile


PLANNED_ACTIONS: dict[str, PlannedAction] = {a.id: a for a in (
    PlannedAction("vercel.redeploy", "Redeploy the production deployment", "disruptive", "the Vercel dashboard"),
    PlannedAction("vercel.promote", "Promote a deployment to production", "disruptive", "the Vercel dashboard"),
    PlannedAction("n8n.retry", "Retry failed n8n executions", "disruptive", "the n8n executions list"),
    PlannedAction("migrations.revert", "Revert a database migration", "destructive",
                  "the Supabase SQL editor (the revert script, or ALTER TABLE by hand)"),
    PlannedAction("backups.restore", "Restore a backup", "destructive", "the Supabase dashboard (Database -> Backups)"),
)}

PLANNED_CHECKS: dict[str, str] = {
    "n8n.credentials": "the n8n credentials the watched workflows use, tested by n8n itself",
    "db.migrations": "the newest migrations, flagged when recent and destructive",
}


@dataclass(frozen=True, slots=True)
class ActionRef:
    """What a runbook needs to know of an action: its tier and whether it is built here.

    `params` are the declared parameters of a built action (None for a planned one: unknown)."""

    id: str
    title: str
    tier: str
    built: bool
    needs: str = ""
    where: str = ""
    params: tuple[ParamSpec, ...] | None = None

    @property
    def destructive(self) -> bool:
        return self.tier == "destructive"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The ids lint and the engine accept. `checks`: built checks; `planned_checks`: named by the
    design, not built here; `actions`: built and planned; `links`: deep-link keys."""

    checks: frozenset[str]
    actions: Mapping[str, ActionRef]
    links: frozenset[str]
    planned_checks: frozenset[str] = field(default_factory=lambda: frozenset(PLANNED_CHECKS))

    def known_check(self, check_id: str) -> bool:
        return check_id in self.checks or check_id in self.planned_checks

    def check_built(self, check_id: str) -> bool:
        return check_id in self.checks

    def action(self, action_id: str) -> ActionRef | None:
        return self.actions.get(action_id)


def planned_refs(skip: Iterable[str] = ()) -> dict[str, ActionRef]:
    skipped = set(skip)
    return {p.id: ActionRef(p.id, p.title, p.tier, built=False, where=p.where)
            for p in PLANNED_ACTIONS.values() if p.id not in skipped}


def build_vocabulary(check_ids: Iterable[str], link_keys: Iterable[str],
                     known_actions: Iterable[Any] | None = None) -> Vocabulary:
    """The vocabulary of this version: `check_ids` (services.CHECK_IDS), the action catalog
    (`actions.catalog.KNOWN_ACTIONS` unless given) and the planned ids it does not cover."""
    if known_actions is None:
        from opsconsole.actions.catalog import KNOWN_ACTIONS

        known_actions = KNOWN_ACTIONS
    actions: dict[str, ActionRef] = {}
    for info in known_actions:
        actions[info.id] = ActionRef(info.id, info.title, str(getattr(info.tier, "value", info.tier)), built=True,
                                     needs=getattr(info, "needs", ""), params=tuple(getattr(info, "params", ())))
    actions.update(planned_refs(skip=actions))
    checks = frozenset(check_ids)
    return Vocabulary(checks=checks, actions=actions, links=frozenset(link_keys),
                      planned_checks=frozenset(c for c in PLANNED_CHECKS if c not in checks))
