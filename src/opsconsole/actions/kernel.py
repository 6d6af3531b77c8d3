"""The guarded-action kernel: the one place that decides whether an action may run.

    preview = await kernel.prepare("db.terminate", {"pids": [4242]})   # Preview | Refusal
    requirement = kernel.requirement(preview, start_key="x")            # what the dialog asks
    result = await kernel.run(preview, confirmation)                    # Outcome | Refusal

`prepare` refuses in read-only mode before anything is read, and when the journal cannot be
written; it checks the parameters against the action's declared `params` (the same specs serve
the console, runbook files and `opsconsole action`). `run` checks, in this order: read-only; the
action and preview are valid (known action, its declared tier, a preview used only once); the
confirmation (policy.check_confirmation); staleness (data older than `[actions]
max_preview_age_s`, or, for an action whose preview is built on checks' data (a `checks` class
attribute naming check ids), older than the tightest staleness limit of those checks: two of
each check's own `[checks] intervals`); the journal is writable; the operator lock (disruptive/destructive actions
with a lock key; another console holding it is named with since when).

The journal is written ahead: once the gate is passed and the lock taken, a `started` event
(outcome "started", with the attempt id, the preview and this process's pid) is on disk before
the action changes anything; if it cannot be written the action is refused. Then it executes
(an unexpected exception or a timeout becomes a failed Outcome, never an exception), releases
the lock and appends the final event with the same `attempt` id. An attempt whose `started`
event has no final one was killed mid-way: `audit.unfinished_attempts` finds it ("outcome
unknown"). Every `run` call is one attempt, refusals included (a refusal has no `started`
event: nothing was changed); `cancelled()` records a dialog the operator dismissed. `run` never
raises for an expected failure (a cancelled task is journaled as failed, then re-raised).

Secrets: parameters are plain data checked for credentials (a DSN, a Secret, password=...) and
refused if they carry any; the journal masks every secret of the settings on top of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from opsconsole.actions.locks import LockError, LockHandle, LockHeld, OperatorLocks
from opsconsole.actions.model import (
    Confirmation,
    ConfirmationRequirement,
    Outcome,
    OutcomeStatus,
    Preview,
    Refusal,
    RefusalReason,
    RiskTier,
    plain,
)
from opsconsole.actions.params import ParamError, ParamRule, ParamSpec, coerce_params
from opsconsole.actions.policy import check_confirmation, requirement_for
from opsconsole.audit import Journal, JournalError
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import printable
from opsconsole.settings import Secret, SecretError, Settings

DEFAULT_EXECUTE_TIMEOUT_S = 120.0

_CREDENTIAL = re.compile(r"(?i)[a-z][a-z0-9+.\-]*://[^\s/@]*:[^\s/@]*@|\bpassword\s*=|\bpostgres(?:ql)?://")


@runtime_checkable
class GuardedAction(Protocol):
    """An operation that changes something outside the console.

    `build_preview` reads what the action would affect (never changes anything) and returns a
    Preview, or a Refusal (e.g. nothing to do). `execute` does it, for exactly the preview's
    items, and reports per item; expected failures are an Outcome, not an exception.
    """

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def tier(self) -> RiskTier: ...

    @property
    def start_key(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        """Every parameter the action takes (see `actions.params`)."""
        ...

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal: ...

    async def execute(self, preview: Preview) -> Outcome: ...


def credential_problem(value: Any, path: str = "params") -> str | None:
    """Where `value` carries something credential-like (a Secret, a DSN, password=...), or None."""
    if isinstance(value, Secret):
        return f"{path} holds a secret"
    if isinstance(value, str):
        return f"{path} looks like a connection string or credential" if _CREDENTIAL.search(value) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = credential_problem(item, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, item in enumerate(value):
            found = credential_problem(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if value is None or isinstance(value, (bool, int, float)):
        return None
    return f"{path} holds a {type(value).__name__}, not plain data"


def settings_secrets(node: Any) -> list[Secret]:
    """Every Secret anywhere in the (nested, frozen) settings."""
    if isinstance(node, Secret):
        return [node]
    if is_dataclass(node) and not isinstance(node, type):
        return [s for f in fields(node) for s in settings_secrets(getattr(node, f.name))]
    if isinstance(node, (list, tuple)):
        return [s for item in node for s in settings_secrets(item)]
    return []


def _secret_values(settings: Settings) -> list[str]:
    """The current values of the settings' secrets and the passwords inside DSN-shaped ones
    (revealed on each call: a rotated secret is still scrubbed), longest first."""
    values: set[str] = set()
    for secret in settings_secrets(settings):
        with contextlib.suppress(SecretError):
            value = secret.reveal()
            values.add(value)
            with contextlib.suppress(psycopg.Error):
                password = conninfo_to_dict(value).get("password")
                if password:
                    values.add(str(password))
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


class ActionKernel:
    """The registry of guarded actions and the gate every one of them passes."""

    def __init__(self, settings: Settings, journal: Journal, *, locks: OperatorLocks | None,
                 clock: Callable[[], datetime] = utcnow,
                 execute_timeout_s: float = DEFAULT_EXECUTE_TIMEOUT_S) -> None:
        self.settings = settings
        self.journal = journal
        self.locks = locks
        self.clock = clock
        self.execute_timeout_s = execute_timeout_s
        self._actions: dict[str, GuardedAction] = {}
        self._used_previews: set[str] = set()

    # -- registry ----------------------------------------------------------------------------
    def register(self, action: GuardedAction) -> GuardedAction:
        if action.id in self._actions:
            raise ValueError(f"action {action.id} is already registered")
        if not isinstance(action.tier, RiskTier):
            raise ValueError(f"action {action.id} declares no risk tier")
        self._actions[action.id] = action
        return action

    def actions(self) -> list[GuardedAction]:
        """Every registered action (read-only mode included: for tests and the refusal path)."""
        return list(self._actions.values())

    def visible_actions(self) -> list[GuardedAction]:
        """What the footer, help and command palette may offer: nothing in read-only mode
        (every action mutates)."""
        return [] if self.read_only else self.actions()

    def get(self, action_id: str) -> GuardedAction:
        """The action registered as `action_id`; KeyError when there is none."""
        return self._actions[action_id]

    @property
    def read_only(self) -> bool:
        return bool(self.settings.environment.read_only)

    @property
    def max_preview_age_s(self) -> float:
        return float(self.settings.actions.max_preview_age_s)

    def preview_age_limit(self, action: GuardedAction | None) -> tuple[float, str]:
        """How old a preview's data may be when it is confirmed, and why (for the refusal).

        `[actions] max_preview_age_s` always applies. An action whose preview is built on the data
        of live checks names them (class attribute `checks = ("api.health", ...)`); the preview must
        then also be no older than each one's staleness limit (`ChecksSettings.stale_after_s`, two
        of that check's own intervals), the same rule the badges and cards use: a preview is never
        confirmed on data the screen would already mark STALE. A check polled less often than
        the preview limit (supabase.resources, every 60 s) does not loosen it.
        """
        limit, why = self.max_preview_age_s, ""
        for check_id in getattr(action, "checks", ()) or ():
            stale_after = self.settings.checks.stale_after_s(str(check_id))
            if stale_after < limit:
                interval = self.settings.checks.interval_for(str(check_id))
                limit, why = stale_after, f"; {check_id} is polled every {interval:g} s, stale after {stale_after:g} s"
        return limit, why

    def scrub(self, text: str) -> str:
        """`text` with every secret value of the settings replaced by ***."""
        for value in _secret_values(self.settings):
            text = text.replace(value, "***")
        return text

    def _scrubbed(self, result: Outcome | Refusal) -> Outcome | Refusal:
        """What an action reported, with any secret value scrubbed before it is shown or journaled."""
        if isinstance(result, Outcome):
            return replace(result, summary=self.scrub(result.summary), error=self.scrub(result.error))
        return replace(result, message=self.scrub(result.message))

    # -- refusals ----------------------------------------------------------------------------
    def _read_only_refusal(self, title: str) -> Refusal:
        env = printable(self.settings.environment.name, single_line=True, limit=40)
        return Refusal(RefusalReason.READ_ONLY,
                       f"read-only mode ({env}): {title} changes things and is refused; nothing was done. "
                       "Start the console without --read-only (and read_only = false) to act.")

    def journal_problem(self) -> str | None:
        """Why the journal cannot be written (the full, actionable message), or None."""
        return self.journal.check_writable()

    def _journal_refusal(self, problem: str) -> Refusal:
        text = problem if "stopped" in problem else (f"journal cannot be written: {problem}; mutating actions "
                                                     "are stopped")
        return Refusal(RefusalReason.JOURNAL, text)

    # -- parameters --------------------------------------------------------------------------
    @staticmethod
    def param_specs(action: GuardedAction) -> tuple[ParamSpec, ...]:
        return tuple(getattr(action, "params", ()) or ())

    @staticmethod
    def param_rules(action: GuardedAction) -> tuple[ParamRule, ...]:
        return tuple(getattr(action, "param_rules", ()) or ())

    def check_params(self, action: GuardedAction, params: Mapping[str, Any], *,
                     from_cli: bool = False) -> dict[str, Any] | Refusal:
        """`params` checked and typed against the action's declared parameters."""
        checked = coerce_params(self.param_specs(action), params, rules=self.param_rules(action),
                                from_cli=from_cli)
        if isinstance(checked, ParamError):
            return Refusal(RefusalReason.INVALID, f"{action.title}: {checked.message}",
                           {"problems": list(checked.problems)})
        return checked

    # -- preview -----------------------------------------------------------------------------
    async def prepare(self, action_id: str, params: Mapping[str, Any], *,
                      from_cli: bool = False) -> Preview | Refusal:
        """The preview of `action_id` with `params`, or why there is none. Reads, never changes.

        `from_cli`: the values are the strings of `--param KEY=VALUE` (console-only parameters refused)."""
        action = self._actions.get(action_id)
        if self.read_only:
            return self._read_only_refusal(action.title if action is not None else action_id)
        if action is None:
            return Refusal(RefusalReason.INVALID, f"unknown action {printable(action_id, limit=60)}")
        problem = await asyncio.to_thread(self.journal_problem)
        if problem is not None:
            return self._journal_refusal(problem)
        checked = self.check_params(action, params, from_cli=from_cli)
        if isinstance(checked, Refusal):
            return checked
        leak = credential_problem(checked)
        if leak is not None:
            return Refusal(RefusalReason.INVALID, f"{action.title}: {leak}; parameters must not carry credentials")
        try:
            preview = await action.build_preview(checked)
        except Exception as exc:  # a bug in an action must not take the console down
            return Refusal(RefusalReason.UNAVAILABLE, f"{action.title}: the preview could not be built: "
                                                      f"{self.scrub(_describe(exc))}")
        if isinstance(preview, Preview):
            invalid = self._invalid(action, preview)
            if invalid is not None:
                return invalid
            return preview
        if isinstance(preview, Refusal):
            scrubbed = self._scrubbed(preview)
            assert isinstance(scrubbed, Refusal)
            return scrubbed
        return Refusal(RefusalReason.UNAVAILABLE, f"{action.title}: the action returned no preview")

    def requirement(self, preview: Preview, start_key: str | None = None) -> ConfirmationRequirement:
        """The confirmation the dialog must collect; `start_key` defaults to the action's key."""
        action = self._actions.get(preview.action_id)
        action_key = action.start_key if action is not None else ""
        return requirement_for(preview, action_key if start_key is None else start_key, action_key=action_key)

    def _invalid(self, action: GuardedAction, preview: Preview) -> Refusal | None:
        if preview.action_id != action.id:
            return Refusal(RefusalReason.INVALID, f"the preview belongs to {preview.action_id}, not {action.id}")
        if preview.tier is not action.tier:
            return Refusal(RefusalReason.INVALID, f"{action.title}: the preview says tier {preview.tier}, the "
                                                  f"action is {action.tier}")
        leak = credential_problem(preview.params)
        if leak is not None:
            return Refusal(RefusalReason.INVALID, f"{action.title}: {leak}; parameters must not carry credentials")
        return None

    # -- run ---------------------------------------------------------------------------------
    async def run(self, preview: Preview, confirmation: Confirmation) -> Outcome | Refusal:
        """Check everything, execute, journal once. See the module docstring for the order."""
        started = time.perf_counter()
        attempt = uuid.uuid4().hex[:16]
        action = self._actions.get(preview.action_id)
        lock_info: dict[str, Any] = {"keys": list(preview.keys_to_lock), "taken": False}
        refusal = await self._gate(action, preview, confirmation)
        if refusal is not None or action is None:
            refusal = refusal or Refusal(RefusalReason.INVALID, "unknown action")
            return await self._finish(preview, confirmation, refusal, lock_info, started, attempt=attempt)

        if preview.preview_id in self._used_previews:  # a concurrent run passed the gate meanwhile
            used = Refusal(RefusalReason.INVALID, f"{action.title}: this preview is already being used")
            return await self._finish(preview, confirmation, used, lock_info, started, attempt=attempt)
        self._used_previews.add(preview.preview_id)  # no await since the check: one execution per preview
        handle: LockHandle | None = None
        try:
            lock = await self._lock(action, preview, lock_info)
            if isinstance(lock, Refusal):
                self._used_previews.discard(preview.preview_id)
                return await self._finish(preview, confirmation, lock, lock_info, started, attempt=attempt)
            handle = lock
            unwritten = await self._write_ahead(preview, confirmation, lock_info, attempt)
            if unwritten is not None:
                self._used_previews.discard(preview.preview_id)
                return await self._finish(preview, confirmation, unwritten, lock_info, started, attempt=attempt,
                                          release=handle)
            outcome = await self._execute(action, preview)
        except asyncio.CancelledError:
            interrupted = Outcome(OutcomeStatus.FAILED, f"{action.title} was interrupted (the console is "
                                  "stopping); what it did is unknown: check before retrying",
                                  error="interrupted")
            await asyncio.shield(self._finish(preview, confirmation, interrupted, lock_info, started,
                                              attempt=attempt, release=handle))
            raise
        result = await self._finish(preview, confirmation, outcome, lock_info, started, attempt=attempt,
                                    release=handle)
        return result

    async def _write_ahead(self, preview: Preview, confirmation: Confirmation, lock_info: Mapping[str, Any],
                           attempt: str) -> Refusal | None:
        """The `started` event, on disk before anything changes; a refusal when it cannot be written."""
        event = self.event(preview, confirmation, None, lock_info, outcome="started", attempt=attempt)
        try:
            await asyncio.to_thread(self.journal.append, event)
        except (JournalError, OSError) as exc:
            return self._journal_refusal(str(exc))
        return None

    async def _gate(self, action: GuardedAction | None, preview: Preview,
                    confirmation: Confirmation) -> Refusal | None:
        if self.read_only:
            return self._read_only_refusal(action.title if action is not None else preview.title)
        if action is None:
            return Refusal(RefusalReason.INVALID, f"unknown action {printable(preview.action_id, limit=60)}")
        invalid = self._invalid(action, preview)
        if invalid is not None:
            return invalid
        if preview.preview_id in self._used_previews:
            return Refusal(RefusalReason.INVALID, f"{action.title}: this preview was already used; refresh and "
                                                  "confirm again")
        requirement = requirement_for(preview, confirmation.start_key or action.start_key,
                                      action_key=action.start_key)
        refused = check_confirmation(requirement, confirmation)
        if refused is not None:
            return refused
        age = preview.age_s(self.clock())
        limit, why = self.preview_age_limit(action)
        if age > limit:
            return Refusal(RefusalReason.STALE, f"previewed on data {age:.0f} s old (limit {limit:g} s{why}): "
                                                "refresh and confirm again", {"age_s": round(age, 1), "limit_s": limit})
        problem = await asyncio.to_thread(self.journal_problem)
        if problem is not None:
            return self._journal_refusal(problem)
        return None

    async def _lock(self, action: GuardedAction, preview: Preview,
                    lock_info: dict[str, Any]) -> LockHandle | Refusal | None:
        keys = preview.keys_to_lock
        if not action.tier.locks or not keys:
            lock_info["note"] = "no operator lock for this action"
            return None
        if self.locks is None:
            lock_info["note"] = "operator locks are off (no supabase.database_url configured)"
            return None
        try:
            got = await self.locks.acquire(*keys)
        except LockError as exc:
            return Refusal(RefusalReason.LOCK_FAILED, f"{exc}; nothing was done")
        if isinstance(got, LockHeld):
            lock_info["holder"] = got.to_json()
            return Refusal(RefusalReason.LOCK_HELD, got.message(self.clock()), got.to_json())
        lock_info["taken"] = True
        return got

    def execute_timeout_for(self, action: GuardedAction) -> float:
        """The action's own limit (a restore is followed for hours) or the kernel's default."""
        own = getattr(action, "execute_timeout_s", None)
        return float(own) if own else self.execute_timeout_s

    async def _execute(self, action: GuardedAction, preview: Preview) -> Outcome:
        limit = self.execute_timeout_for(action)
        try:
            async with asyncio.timeout(limit):
                outcome = await action.execute(preview)
        except TimeoutError:
            return Outcome(OutcomeStatus.FAILED, f"{action.title} did not finish within "
                                                 f"{limit:g} s; what it did is unknown: "
                                                 "check before retrying", error="timeout")
        except Exception as exc:  # never let an action crash the console
            text = self.scrub(_describe(exc))
            return Outcome(OutcomeStatus.FAILED, f"{action.title} failed: {text}", error=text)
        if not isinstance(outcome, Outcome):
            return Outcome(OutcomeStatus.FAILED, f"{action.title} returned no outcome",
                           error=f"bad outcome type {type(outcome).__name__}")
        return outcome

    async def _finish(self, preview: Preview, confirmation: Confirmation | None, result: Outcome | Refusal,
                      lock_info: Mapping[str, Any], started: float, *, attempt: str,
                      release: LockHandle | None = None) -> Outcome | Refusal:
        if release is not None:
            await release.release()
        result = self._scrubbed(result)
        event = self.event(preview, confirmation, result, lock_info,
                           duration_ms=(time.perf_counter() - started) * 1000, attempt=attempt)
        try:
            await asyncio.to_thread(self.journal.append, event)
        except (JournalError, OSError) as exc:
            text = str(exc)
            if isinstance(result, Outcome):
                return replace(result, journal_error=text)
            return replace(result, details={**result.details, "journal_error": text})
        return result

    def event(self, preview: Preview, confirmation: Confirmation | None, result: Outcome | Refusal | None,
              lock_info: Mapping[str, Any] | None = None, *, duration_ms: float | None = None,
              outcome: str | None = None, error: str | None = None, attempt: str | None = None) -> dict[str, Any]:
        """The journal event (kind "action") for one attempt; the `started` event has the same keys."""
        if isinstance(result, Outcome):
            outcome = outcome or result.status.value
            error = error or (result.error or (result.summary if result.status is not OutcomeStatus.OK else None))
            body: Any = result.to_json()
        elif isinstance(result, Refusal):
            outcome = outcome or "refused"
            error = error or result.message
            body = result.to_json()
        else:
            body = None
        return {
            "kind": "action",
            "attempt": attempt or uuid.uuid4().hex[:16],
            "pid": os.getpid(),
            "action": preview.action_id,
            "title": preview.title,
            "tier": preview.tier.value,
            "target": preview.target,
            "params": plain(preview.params),
            "preview": preview.to_json(),
            "typed": confirmation.typed if confirmation is not None else None,
            "confirmation": confirmation.to_json() if confirmation is not None else None,
            "outcome": outcome or "failed",
            "error": error,
            "result": body,
            "lock": plain(lock_info or {}),
            "duration_ms": round(duration_ms, 1) if duration_ms is not None else None,
            "read_only": self.read_only,
        }

    async def cancelled(self, preview: Preview, confirmation: Confirmation | None = None,
                        reason: str = "the operator cancelled the confirmation") -> str | None:
        """Record that the operator dismissed the dialog (outcome "cancelled"). Returns the journal
        error, if the event could not be written."""
        event = self.event(preview, confirmation, None, outcome="cancelled", error=reason)
        try:
            await asyncio.to_thread(self.journal.append, event)
        except (JournalError, OSError) as exc:
            return str(exc)
        return None


def _describe(exc: BaseException) -> str:
    text = printable(str(exc), single_line=True, limit=200)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
