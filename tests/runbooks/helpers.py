"""A small world for engine tests: real kernel and journal, fake checks, a test action."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opsconsole.actions.catalog import KNOWN_ACTIONS, ActionInfo
from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.locks import OperatorLocks
from opsconsole.actions.model import Confirmation, Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.audit import Journal, Operator
from opsconsole.domain.models import Status, utcnow
from opsconsole.runbooks.catalog import LINK_KEYS
from opsconsole.runbooks.engine import Wizard
from opsconsole.runbooks.loader import parse_text
from opsconsole.runbooks.model import Runbook
from opsconsole.runbooks.vocabulary import Vocabulary, build_vocabulary
from opsconsole.services import CHECK_CATALOG, CHECK_IDS, CheckRunner
from opsconsole.settings import ActionsSettings, AuditSettings, EnvironmentSettings, Settings
from tests.fakes import FakeCheck

ALICE = Operator(user="alice", ssh_client="10.1.2.3", host="bastion-1")
BOB = Operator(user="bob", ssh_client="10.9.8.7", host="bastion-2")


@dataclass
class PokeAction:
    """A guarded action that records what it was asked to do; its outcomes are scripted."""

    id: str = "test.poke"
    title: str = "Poke the service"
    tier: RiskTier = RiskTier.DISRUPTIVE
    start_key: str = "p"
    description: str = "poke"
    needs: str = "[test]"
    params: tuple[ParamSpec, ...] = (ParamSpec("target", ParamType.STR, "what to poke"),
                                     ParamSpec("why", ParamType.STR, "why", required=False))
    outcomes: list[Outcome] = field(default_factory=list)
    done: list[Mapping[str, Any]] = field(default_factory=list)
    gate: asyncio.Event | None = None  # set: execute waits for it
    started: asyncio.Event = field(default_factory=asyncio.Event)
    preview_refusal: Refusal | None = None
    lock_key: str | None = None
    data_as_of: datetime | None = None
    hooks: dict[str, Any] = field(default_factory=dict)

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        if self.preview_refusal is not None:
            return self.preview_refusal
        target = str(params.get("target") or "the service")
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target=target, confirm_text=target,
                       data_as_of=self.data_as_of or utcnow(), lines=(f"poke {target}",), params=dict(params),
                       lock_key=self.lock_key)

    async def execute(self, preview: Preview) -> Outcome:
        self.started.set()
        hooks = self.hooks.pop(preview.preview_id, None)
        if hooks is not None and hooks.progress is not None:
            hooks.progress("half way")
        if self.gate is not None:
            await self.gate.wait()
        self.done.append(dict(preview.params))
        return self.outcomes.pop(0) if self.outcomes else Outcome(OutcomeStatus.OK, f"poked {preview.target}")


def settings(tmp_path: Path, *, read_only: bool = False, max_age_s: float = 30.0) -> Settings:
    return Settings(environment=EnvironmentSettings(name="drill", read_only=read_only),
                    audit=AuditSettings(path=str(tmp_path / "journal.jsonl")),
                    actions=ActionsSettings(max_preview_age_s=max_age_s))


def vocabulary(*actions: Any) -> Vocabulary:
    extra = [ActionInfo.of(type(a)) if not isinstance(a, ActionInfo) else a for a in actions]
    return build_vocabulary(CHECK_IDS, LINK_KEYS, known_actions=[*KNOWN_ACTIONS, *extra])


def checks(**statuses: Status) -> dict[str, FakeCheck]:
    """Every catalogued check, ok unless given: `checks(api_health=Status.FAIL)`."""
    out = {}
    for cid, system, title in CHECK_CATALOG:
        status = statuses.get(cid.replace(".", "_"), Status.OK)
        out[cid] = FakeCheck(cid, system, title, status, f"{cid} is {status.value}", age_s=0)
    return out


@dataclass
class World:
    tmp: Path
    runbook: Runbook
    fake_checks: dict[str, FakeCheck]
    action: PokeAction
    operator: Operator = ALICE
    read_only: bool = False
    max_age_s: float = 30.0
    locks: OperatorLocks | None = None
    timeout_s: float = 2.0

    def __post_init__(self) -> None:
        self.settings = settings(self.tmp, read_only=self.read_only, max_age_s=self.max_age_s)
        self.journal = Journal(self.tmp / "journal.jsonl", environment="drill", operator=self.operator)
        self.kernel = ActionKernel(self.settings, self.journal, locks=self.locks)
        self.kernel.register(self.action)
        self.runner = CheckRunner(self.fake_checks.values(), timeout_s=self.timeout_s)
        self.vocab = vocabulary(self.action)
        self.changes = 0

    def wizard(self, **kwargs: Any) -> Wizard:
        return Wizard(self.runbook, Wizard.new_record(self.runbook), journal=self.journal, runner=self.runner,
                      kernel=self.kernel, vocabulary=self.vocab, links={"vercel_logs": "https://vercel.example/logs"},
                      locks=self.locks, on_change=self._changed, **kwargs)

    def _changed(self) -> None:
        self.changes += 1

    def events(self) -> list[dict[str, Any]]:
        return self.journal.read().events

    def wizard_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("kind") == "wizard"]

    def whats(self) -> list[tuple[str, str]]:
        return [(e.get("step", ""), e["what"]) for e in self.wizard_events()]


def runbook(text: str) -> Runbook:
    rb, problems = parse_text(text, "test.toml")
    assert rb is not None and not problems, problems
    return rb


def confirm(key: str = "y", typed: str = "") -> Confirmation:
    return Confirmation(key=key, start_key="x", elapsed_s=1.0, typed=typed)


__all__ = ["ALICE", "BOB", "PokeAction", "RefusalReason", "World", "checks", "confirm", "runbook", "settings"]
