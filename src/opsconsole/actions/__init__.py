"""Guarded actions: risk tiers, previews, the confirmation policy, the kernel that refuses
(read-only, stale, unwritable journal, operator lock held) and journals every attempt, and the
database actions. No Textual here: the UI builds the dialog on `policy` and calls the kernel."""

from opsconsole.actions.kernel import ActionKernel, GuardedAction, credential_problem
from opsconsole.actions.locks import LockError, LockHandle, LockHeld, OperatorLocks
from opsconsole.actions.model import (
    Confirmation,
    ConfirmationKind,
    ConfirmationRequirement,
    Outcome,
    OutcomeStatus,
    Preview,
    Refusal,
    RefusalReason,
    RiskTier,
)
from opsconsole.actions.policy import (
    MIN_ARM_S,
    REPEAT_WINDOW_S,
    WARNING_HOLD_S,
    KeyTracker,
    check_confirmation,
    confirm_key_for,
    requirement_for,
)

__all__ = [
    "MIN_ARM_S",
    "REPEAT_WINDOW_S",
    "WARNING_HOLD_S",
    "ActionKernel",
    "Confirmation",
    "ConfirmationKind",
    "ConfirmationRequirement",
    "GuardedAction",
    "KeyTracker",
    "LockError",
    "LockHandle",
    "LockHeld",
    "OperatorLocks",
    "Outcome",
    "OutcomeStatus",
    "Preview",
    "Refusal",
    "RefusalReason",
    "RiskTier",
    "check_confirmation",
    "confirm_key_for",
    "credential_problem",
    "requirement_for",
]
