"""Every guarded action the product knows, configured here or not.

`opsconsole action list` shows them all and says which can run here; the kernel holds only
the ones whose configuration is present. An action added to the product is added here.
Each class declares `id`, `title`, `tier`, `description`, `start_key`, `params` and `needs`
(the configuration it requires) as class attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsconsole.actions.backups import RestoreBackup
from opsconsole.actions.database import CancelBackends, TerminateBackends
from opsconsole.actions.dlq import DiscardMessages, FixPayload, RequeueMessages, UndoDiscard
from opsconsole.actions.migrations import RevertMigration
from opsconsole.actions.model import RiskTier
from opsconsole.actions.n8n import RetryExecutions
from opsconsole.actions.params import ParamRule, ParamSpec
from opsconsole.actions.vercel import PromoteDeployment, RedeployProduction


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """What is known of an action without configuring it."""

    id: str
    title: str
    tier: RiskTier
    description: str
    start_key: str
    params: tuple[ParamSpec, ...]
    needs: str
    rules: tuple[ParamRule, ...] = ()
    tab: str = ""  # the console tab that serves it (runbooks.model.TABS)

    @classmethod
    def of(cls, action: type) -> ActionInfo:
        return cls(id=action.id, title=action.title, tier=action.tier,  # type: ignore[attr-defined]
                   description=getattr(action, "description", ""), start_key=getattr(action, "start_key", ""),
                   params=tuple(getattr(action, "params", ())), needs=getattr(action, "needs", ""),
                   rules=tuple(getattr(action, "param_rules", ())), tab=getattr(action, "tab", ""))


KNOWN_ACTIONS: tuple[ActionInfo, ...] = tuple(ActionInfo.of(cls) for cls in (
    CancelBackends,
    TerminateBackends,
    RequeueMessages,
    DiscardMessages,
    UndoDiscard,
    FixPayload,
    RedeployProduction,
    PromoteDeployment,
    RevertMigration,
    RestoreBackup,
    RetryExecutions,
))


def action_info(action_id: str) -> ActionInfo | None:
    return next((a for a in KNOWN_ACTIONS if a.id == action_id), None)
