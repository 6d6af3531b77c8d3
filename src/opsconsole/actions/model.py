"""The data of a guarded action: its risk tier, the preview the operator confirms, the
confirmation the tier demands, the outcome, and the refusals. Plain frozen data, no I/O.

Everything here is JSON-friendly through `to_json()` so the journal records exactly what the
operator was shown (the preview), what they typed, and what happened.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class RiskTier(enum.StrEnum):
    """How bad an accident would be; decides the confirmation (see `policy.requirement_for`).

    reversible:  undoable (re-queue a message): y/n, focus on Cancel.
    disruptive:  interrupts work but loses nothing durable (cancel a query): y/n naming the target.
    destructive: cannot be undone (terminate sessions, restore a backup): type the target's name.
    """

    REVERSIBLE = "reversible"
    DISRUPTIVE = "disruptive"
    DESTRUCTIVE = "destructive"

    @property
    def locks(self) -> bool:
        """Whether an action of this tier takes the operator lock on its target."""
        return self is not RiskTier.REVERSIBLE


class RefusalReason(enum.StrEnum):
    READ_ONLY = "read_only"
    STALE = "stale"
    JOURNAL = "journal"
    LOCK_HELD = "lock_held"
    LOCK_FAILED = "lock_failed"  # the lock could not be taken at all (database unreachable, pooler URL)
    CONFIRMATION = "confirmation"
    NOTHING_TO_DO = "nothing_to_do"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"  # the data for the preview could not be read (database down, not configured)


class OutcomeStatus(enum.StrEnum):
    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


class ConfirmationKind(enum.StrEnum):
    YES_NO = "yes_no"
    YES_NO_NAMED = "yes_no_named"
    TYPED = "typed"


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: mappings/sequences copied, datetimes ISO, enums their value."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class Preview:
    """Exactly what an action will affect, as read at `data_as_of`. What the operator confirms.

    `target` is the short human name ("PID 4242", "3 sessions (4242, 4243, 4244)");
    `confirm_text` what a destructive action needs typed ("4242", "3 sessions", the project ref);
    `lines` the human description; `items` one plain dict per affected object (what `execute`
    works on); `excluded` objects that were asked for but will NOT be touched, each with a
    `reason`; `warning` text the UI must always show and no key may skip (e.g. downtime);
    `params` the (plain, secret-free) parameters; `lock_key` the operator-lock key shown to
    the operator, `lock_keys` the individual keys actually locked (default: `lock_key`).
    """

    action_id: str
    title: str
    tier: RiskTier
    target: str
    confirm_text: str
    data_as_of: datetime
    lines: tuple[str, ...] = ()
    items: tuple[Mapping[str, Any], ...] = ()
    excluded: tuple[Mapping[str, Any], ...] = ()
    warning: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    lock_key: str | None = None
    lock_keys: tuple[str, ...] = ()
    preview_id: str = field(default_factory=_new_id)
    warning_hold_s: float = 0.0

    @property
    def keys_to_lock(self) -> tuple[str, ...]:
        if self.lock_keys:
            return tuple(sorted(set(self.lock_keys)))
        return (self.lock_key,) if self.lock_key else ()

    def age_s(self, now: datetime) -> float:
        return (now - self.data_as_of).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "preview_id": self.preview_id,
            "action_id": self.action_id,
            "title": self.title,
            "tier": self.tier.value,
            "target": self.target,
            "confirm_text": self.confirm_text,
            "data_as_of": _iso(self.data_as_of),
            "lines": list(self.lines),
            "items": plain(self.items),
            "excluded": plain(self.excluded),
            "warning": self.warning,
            "warning_hold_s": self.warning_hold_s,
            "params": plain(self.params),
            "lock_key": self.lock_key,
            "lock_keys": list(self.keys_to_lock),
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an executed action did. `items` carry a per-item `result` (e.g. "signalled").

    `journal_error` is set when the action ran but its journal event could not be written: the
    UI must show it (the action happened; the record of it is missing).
    """

    status: OutcomeStatus
    summary: str
    items: tuple[Mapping[str, Any], ...] = ()
    error: str = ""
    journal_error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is OutcomeStatus.OK

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "summary": self.summary, "items": plain(self.items),
                "error": self.error}

    @staticmethod
    def from_items(items: Sequence[Mapping[str, Any]], *, good: frozenset[str] | set[str],
                   summary: str) -> Outcome:
        """ok when every item's `result` is in `good`, failed when none is, partial otherwise."""
        n_good = sum(1 for it in items if it.get("result") in good)
        if items and n_good == len(items):
            status = OutcomeStatus.OK
        elif n_good == 0:
            status = OutcomeStatus.FAILED
        else:
            status = OutcomeStatus.PARTIAL
        return Outcome(status=status, summary=summary, items=tuple(items))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action was not done. `message` is for the operator (what happened, what to do);
    `details` carries data, e.g. the lock holder and since when."""

    reason: RefusalReason
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "message": self.message, "details": plain(self.details)}


@dataclass(frozen=True, slots=True)
class ConfirmationRequirement:
    """What the confirmation dialog must collect (built by `policy.requirement_for`).

    The dialog starts with the focus on Cancel; `cancel_keys` close it without acting; only
    `confirm_key` confirms, and only after `MIN_ARM_S` and not as a key repeat; for `typed`
    the text typed must equal `expected_text` exactly. `warning` must be shown in full.
    """

    kind: ConfirmationKind
    confirm_key: str
    start_key: str
    prompt: str
    expected_text: str = ""
    warning: str = ""
    start_keys: tuple[str, ...] = ()  # every key that starts this action: none of them confirms
    cancel_keys: tuple[str, ...] = ("n", "escape")
    focus: str = "cancel"
    warning_hold_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "confirm_key": self.confirm_key, "start_key": self.start_key,
                "prompt": self.prompt, "expected_text": self.expected_text, "warning_hold_s": self.warning_hold_s}


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the UI collected when the operator pressed a key to confirm.

    `key` the Textual key name pressed; `typed` the text in the confirmation field (typed tier);
    `start_key` the key that started the action; `elapsed_s` seconds since the dialog opened;
    `repeat` whether this key event looks like auto-repeat (see `policy.KeyTracker`).
    """

    key: str
    start_key: str
    elapsed_s: float
    repeat: bool = False
    typed: str = ""
    via: str = "console"  # "console": a key in the dialog; "cli": `action run` (--yes, --confirm or its prompt)

    @classmethod
    def from_cli(cls, how: str, *, typed: str = "", elapsed_s: float = 0.0) -> Confirmation:
        """What `opsconsole action run` collected: `how` is "--yes", "--confirm" or "prompt"."""
        return cls(key=how, start_key="cli", elapsed_s=elapsed_s, typed=typed, via="cli")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "start_key": self.start_key, "elapsed_s": round(self.elapsed_s, 3),
                "repeat": self.repeat, "typed": self.typed, "via": self.via}
