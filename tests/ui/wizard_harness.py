"""The console on fakes with a fixed clock and operator, for wizard Pilot tests and snapshots.

The kernel is the real one (journal, confirmation, refusals); the actions are small stand-ins
with fixed previews (the real database actions are walked in tests/drills on the demo)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.locks import OperatorLocks
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.audit import Journal, Operator, journal_path
from opsconsole.domain.models import CheckResult
from opsconsole.services import Services
from opsconsole.ui.app import OpsApp
from tests.fakes import NOW, FakeServices, fake_services

ALICE = Operator(user="alice", ssh_client="10.1.2.3", host="bastion-1")


@dataclass
class StandIn:
    """A guarded action with a fixed preview (ids from design.md, so the runbooks name it)."""

    id: str
    title: str
    tier: RiskTier
    target: str = "PID 4242"
    confirm_text: str = "4242"
    lines: tuple[str, ...] = ()
    warning: str = ""
    start_key: str = "x"
    description: str = "a stand-in for the tests"
    params: tuple[ParamSpec, ...] = (ParamSpec("pids", ParamType.INT_LIST, "the backend PIDs"),)
    executed: list[Mapping[str, Any]] = field(default_factory=list)
    outcome: Outcome | None = None

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        items = tuple({"pid": p, "user": "authenticator", "application": "metabase", "state": "active",
                       "duration": "14m02s", "query": "select count(*) from dead_letter_messages [/x]"}
                      for p in params.get("pids", []) or [4242])
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target=self.target,
                       confirm_text=self.confirm_text, data_as_of=NOW, lines=self.lines, items=items,
                       warning=self.warning, params=dict(params), preview_id="prev-fixed-0001")

    async def execute(self, preview: Preview) -> Outcome:
        self.executed.append(dict(preview.params))
        return self.outcome or Outcome(OutcomeStatus.OK, f"{self.title}: done for {preview.target}")


def terminate_stand_in() -> StandIn:
    return StandIn("db.terminate", "Terminate session", RiskTier.DESTRUCTIVE,
                   lines=("Terminate PID 4242:", "PID 4242  authenticator metabase  active 14m02s",
                          "    select count(*) from dead_letter_messages [/x]"),
                   warning=("Terminating closes each session's connection and rolls back its open transaction; the "
                            "application has to reconnect and retry. This cannot be undone."))


class WizardServices(FakeServices):
    """Fake checks, a fixed journal (clock and operator), the real kernel, no operator locks."""

    journal: Journal
    locks: OperatorLocks | None = None

    def wizard_journal(self) -> Journal:
        return self.journal

    def runbook_locks(self) -> OperatorLocks | None:
        return self.locks


def wizard_services(*, actions: tuple[Any, ...] = (), read_only: bool = False, operator: Operator = ALICE,
                    scenario: str = "incident", clock_step_s: float = 0.0) -> WizardServices:
    base = fake_services(read_only=read_only, scenario=scenario)
    services = WizardServices(base.settings, adapter_factory=base._adapter_factory, clock=lambda: NOW)
    for result in base.board.results.values():
        services.board.record(result)
    ticks = [0]

    def clock() -> Any:
        ticks[0] += 1
        return NOW + timedelta(seconds=clock_step_s * ticks[0])

    services.journal = Journal(journal_path(services.settings), environment=services.settings.environment.name,
                               operator=operator, clock=clock)
    if actions:
        kernel = ActionKernel(services.settings, services.journal, locks=None, clock=lambda: NOW)
        for action in actions:
            kernel.register(action)
        services._kernel = kernel
    return services


def wizard_app(runbook_id: str | None = None, services: Services | None = None, **kwargs: Any) -> OpsApp:
    kwargs.setdefault("offer_resume", False)
    return OpsApp(services or wizard_services(), live=False, start_runbook=runbook_id, **kwargs)


def result_of(services: Services, check_id: str) -> CheckResult:
    return services.board.results[check_id]
