"""What a runbook file may name: check ids, action ids, deep links.

The action ids are those of `actions.catalog.KNOWN_ACTIONS` (every action design.md names); an
action a console cannot run (its section is not configured) is still a known id: the wizard
makes that step a manual one that says what is missing and where to do it by hand.

This module imports nothing heavy at import time (the console's first frame reads the built-in
runbooks); `build_vocabulary` imports the action catalog when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.actions.params import ParamSpec


@dataclass(frozen=True, slots=True)
class ActionRef:
    """What a runbook needs to know of an action: its tier, what it needs configured and its
    declared parameters (None: not declared, nothing to check them against)."""

    id: str
    title: str
    tier: str
    needs: str = ""
    params: tuple[ParamSpec, ...] | None = None

    @property
    def destructive(self) -> bool:
        return self.tier == "destructive"


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The ids lint and the engine accept: `checks`, `actions` and `links` (deep-link keys)."""

    checks: frozenset[str]
    actions: Mapping[str, ActionRef]
    links: frozenset[str]

    def known_check(self, check_id: str) -> bool:
        return check_id in self.checks

    def check_built(self, check_id: str) -> bool:
        return check_id in self.checks

    def action(self, action_id: str) -> ActionRef | None:
        return self.actions.get(action_id)


def build_vocabulary(check_ids: Iterable[str], link_keys: Iterable[str],
                     known_actions: Iterable[Any] | None = None) -> Vocabulary:
    """The vocabulary of this version: `check_ids` (services.CHECK_IDS) and the action catalog
    (`actions.catalog.KNOWN_ACTIONS` unless given)."""
    if known_actions is None:
        from opsconsole.actions.catalog import KNOWN_ACTIONS

        known_actions = KNOWN_ACTIONS
    actions: dict[str, ActionRef] = {}
    for info in known_actions:
        actions[info.id] = ActionRef(info.id, info.title, str(getattr(info.tier, "value", info.tier)),
                                     needs=getattr(info, "needs", ""), params=tuple(getattr(info, "params", ())))
    return Vocabulary(checks=frozenset(check_ids), actions=actions, links=frozenset(link_keys))
