"""The wizard engine: walks one runbook, step by step, and journals every transition.

Pure async, no Textual: the UI (ui/wizard) calls these methods and renders `Wizard.view()`.

* A check step runs its checks now (through the services' CheckRunner, concurrently) and passes
  when all are ok; with `wait_s` it re-checks every `every_s` until they pass or the time is up.
  A pass goes to the next step; a failure to `on_fail`, or it stays and offers the next step.
* An action step never starts by itself: the operator asks for the preview (`prepare`), which the
  kernel builds (the same refusals as everywhere), then confirms it in the same dialog as
  everywhere (`confirm` -> kernel.run: locks, write-ahead journal). Progress of long actions comes
  through the action's `hooks` (actions/dlq.py). An action not built or not configured here makes
  the step a manual one that says so and where to do it by hand.
* A manual step shows where to go and waits for done, "did not work" (`on_fail`) or skipped.
* `ack`: a step with one cannot be started, passed or skipped until the ack text was typed in
  this console (a resumed run asks again: the one resuming may not have seen the warning).
  Skipping needs a reason. Going back to a check step runs its checks again.

Every transition is a `kind = "wizard"` journal event (audit.py documents the keys), so a run's
state is rebuilt from the journal alone: `Wizard.resume` continues a run a killed console left
open, and resolves an action that was in flight through the write-ahead journal (the kernel's
`started` event without a final one is "outcome unknown" until the operator checks).
A run holds the operator lock `runbook:<id>` while it is open in this console.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsconsole.audit import (
    FINAL_OUTCOMES,
    Journal,
    JournalError,
    StepVisit,
    WizardRunRecord,
    fold_wizard_event,
    wizard_runs,
)
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.runbooks.model import END, Runbook, Step
from opsconsole.runbooks.vocabulary import Vocabulary

if TYPE_CHECKING:
    from opsconsole.actions.kernel import ActionKernel, GuardedAction
    from opsconsole.actions.locks import LockHandle, LockHeld, OperatorLocks
    from opsconsole.actions.model import Confirmation, Outcome, Preview, Refusal
    from opsconsole.actions.params import ParamSpec

MIN_REASON = 3
MAX_TEXT = 500
MAX_AUTO_STEPS = 40  # check steps entered one after another without the operator: a loop guard
TAIL_BYTES = 1 << 20
END_TITLE = "Verify that the incident is over"


class Runner(Protocol):
    """What the engine needs of `services.CheckRunner`."""

    def select(self, only: Iterable[str] | None = None) -> list[Check]: ...

    async def run_one(self, check: Check) -> CheckResult: ...


class Mode(enum.StrEnum):
    """How the current step is walked in this console."""

    CHECK = "check"
    ACTION = "action"
    MANUAL = "manual"
    FALLBACK = "fallback"  # an action or check not built/configured here: done by hand, like a manual step
    END = "end"  # every step walked: the closing checks
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Denied:
    """The engine did not do what was asked; `message` says why and what to do instead."""

    message: str


@dataclass(slots=True)
class LiveCheck:
    """The newest result of one check of the current step (this console's rounds)."""

    check_id: str
    result: CheckResult | None = None
    running: bool = False


@dataclass(slots=True)
class StepView:
    """Everything the screen shows of one step."""

    step: Step
    index: int  # 1-based
    state: str  # pending | current | running | passed | failed | done | skipped | refused | unknown | left
    visit: StepVisit | None
    visits: int


@dataclass(slots=True)
class LockInfo:
    """The run's operator lock: held here, held by another console, or not available (and why)."""

    state: str = "none"  # held | other | unavailable | off | none
    message: str = ""
    holder: LockHeld | None = None


@dataclass
class Transient:
    """What this console knows of the current step beyond the journal (not journaled)."""

    live: dict[str, LiveCheck] = field(default_factory=dict)
    rounds: int = 0
    waiting_until: float | None = None  # monotonic: the next re-check of a wait_s step
    wait_deadline: float | None = None
    preview: Preview | None = None
    preview_lines: tuple[str, ...] = ()
    refusal: str = ""
    outcome_text: str = ""
    progress: str = ""
    acked: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    closing: dict[str, LiveCheck] = field(default_factory=dict)


def _short(value: Any, limit: int = MAX_TEXT) -> str:
    return printable(str(value), single_line=True, limit=limit)


def _plan_link(links: Mapping[str, str], key: str) -> str:
    return links.get(key, "") if key else ""


def extract(details: Mapping[str, Any], path: str) -> list[Any]:
    """Values at a dotted `path` in check details; a list on the way maps over its items
    ("sessions.pid" -> the `pid` of every item of `details["sessions"]")."""
    current: list[Any] = [details]
    for part in path.split("."):
        nxt: list[Any] = []
        for node in current:
            items = node if isinstance(node, list) else [node]
            for item in items:
                if isinstance(item, Mapping) and part in item:
                    nxt.append(item[part])
        current = nxt
    flat: list[Any] = []
    for value in current:
        flat.extend(value if isinstance(value, list) else [value])
    seen: list[Any] = []
    for value in flat:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def _recent_events(path: Path, max_bytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The last events of the journal file (the newest ones; for finding an attempt just written)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first is probably cut
    out: list[dict[str, Any]] = []
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(event, dict):
            out.append(event)
    return out


def attempt_events(events: Iterable[Mapping[str, Any]], preview_id: str) -> list[Mapping[str, Any]]:
    """The kernel's `kind = "action"` events of the attempt that used preview `preview_id`."""
    out = []
    for event in events:
        if event.get("kind") != "action":
            continue
        preview = event.get("preview")
        if isinstance(preview, Mapping) and preview.get("preview_id") == preview_id:
            out.append(event)
    return out


class Wizard:
    """One run of one runbook in this console.

    Build it with `Wizard.start(...)` (a new run) or `Wizard.resume(...)` (a run the journal
    holds). `follow=True` builds a read-only view of a run another console holds: `refresh`
    rebuilds it from the shared journal; every transition is refused.
    """

    def __init__(self, runbook: Runbook, record: WizardRunRecord, *, journal: Journal, runner: Runner,
                 kernel: ActionKernel | None, vocabulary: Vocabulary, links: Mapping[str, str],
                 locks: OperatorLocks | None = None, follow: bool = False,
                 on_change: Callable[[], None] | None = None,
                 on_result: Callable[[CheckResult], None] | None = None) -> None:
        self.runbook = runbook
        self.record = record
        self.journal = journal
        self.runner = runner
        self.kernel = kernel
        self.vocabulary = vocabulary
        self.links = dict(links)
        self.locks = locks
        self.follow = follow
        self.on_change = on_change
        self.on_result = on_result
        self.lock = LockInfo()
        self.t = Transient()
        self.busy = ""  # what is running now: checks | preview | action | closing | ""
        self._message = ""
        self._message_state: tuple[object, ...] = ()
        self._handle: LockHandle | None = None
        self._stop_wait = asyncio.Event()
        self._auto = 0
        self._cancel_action: asyncio.Event | None = None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def new_record(cls, runbook: Runbook) -> WizardRunRecord:
        from opsconsole.audit import Operator

        return WizardRunRecord(run=uuid.uuid4().hex[:12], runbook=runbook.id, title=runbook.title,
                               total=len(runbook.steps), opened_at=None, opened_by=Operator(user="-"))

    @classmethod
    def from_journal(cls, runbook: Runbook, run_id: str, events: Iterable[Mapping[str, Any]],
                     **kwargs: Any) -> Wizard:
        """A wizard for the run `run_id` as the journal tells it (KeyError: no such run)."""
        for record in wizard_runs(events):
            if record.run == run_id:
                return cls(runbook, record, **kwargs)
        raise KeyError(run_id)

    # -- what the screen shows ---------------------------------------------------------------
    def _state_key(self) -> tuple[object, ...]:
        """What a message describes: the run open or closed, the step visit and its state, the ack."""
        visit = self.visit
        return (self.record.open, len(self.record.visits), visit.state if visit is not None else "", self.t.acked)

    @property
    def message(self) -> str:
        """The last thing to tell the operator (a denial, a note), while the state it describes
        lasts: a correct ack, the next step or closing the run makes it go away."""
        return self._message if self._message_state == self._state_key() else ""

    @message.setter
    def message(self, text: str) -> None:
        self._message = text
        self._message_state = self._state_key()

    @property
    def run_id(self) -> str:
        return self.record.run

    @property
    def closed(self) -> bool:
        return not self.record.open

    @property
    def visit(self) -> StepVisit | None:
        return self.record.current

    @property
    def current_id(self) -> str:
        visit = self.visit
        return visit.step if visit is not None else ""

    @property
    def step(self) -> Step | None:
        cid = self.current_id
        return self.runbook.step(cid) if cid and self.runbook.has_step(cid) else None

    @property
    def at_end(self) -> bool:
        return self.current_id == END

    def index_of(self, step_id: str) -> int:
        return self.runbook.index(step_id) + 1 if self.runbook.has_step(step_id) else 0

    def steps(self) -> list[StepView]:
        latest: dict[str, StepVisit] = {}
        counts: dict[str, int] = {}
        for v in self.record.visits:
            latest[v.step] = v
            counts[v.step] = counts.get(v.step, 0) + 1
        out = []
        for i, step in enumerate(self.runbook.steps, start=1):
            visit = latest.get(step.id)
            state = "pending" if visit is None else visit.state
            if visit is not None and step.id == self.current_id and not self.closed:
                if self.busy in ("checks", "action") or visit.state == "running":
                    state = "running"
                elif visit.state in ("current", "left"):
                    state = "current"
            out.append(StepView(step, i, state, visit, counts.get(step.id, 0)))
        return out

    def mode(self) -> Mode:
        if self.closed:
            return Mode.CLOSED
        if self.at_end:
            return Mode.END
        step = self.step
        if step is None:
            return Mode.CLOSED
        if step.kind == "check":
            return Mode.CHECK if self._built_checks(step) else Mode.FALLBACK
        if step.kind == "action":
            return Mode.ACTION if self.action_here(step) is not None else Mode.FALLBACK
        return Mode.MANUAL

    def fallback_reason(self, step: Step | None = None, *, with_link: bool = True) -> str:
        """Why the step is done by hand here, and where (the line the screen shows)."""
        step = step or self.step
        if step is None:
            return ""
        link = _plan_link(self.links, step.link) if with_link else ""
        where_link = f": {link}" if link else ""
        if step.kind == "check":
            missing = [c for c in step.checks if c not in self._built_ids(step)]
            what = ", ".join(missing)
            return (f"not measured here (not configured): {what}. Check it by hand{where_link}, then d (done) or "
                    "f (it is not fine)")
        ref = self.vocabulary.action(step.action)
        if self.kernel is None:
            return f"no guarded actions in this console: do it by hand{where_link}"
        needs = ref.needs if ref is not None and ref.needs else "its configuration section"
        return f"not configured here (needs {needs}): do it by hand{where_link}"

    def action_here(self, step: Step) -> GuardedAction | None:
        if self.kernel is None or not step.action:
            return None
        try:
            return self.kernel.get(step.action)
        except KeyError:
            return None

    def _built_ids(self, step: Step) -> set[str]:
        return {c.id for c in self.runner.select(step.checks)} if step.checks else set()

    def _built_checks(self, step: Step) -> list[Check]:
        wanted = set(step.checks)
        return [c for c in self.runner.select(step.checks) if c.id in wanted]

    def _takes_a_list(self, name: str) -> bool:
        from opsconsole.actions.params import ParamType

        action = self.action_here(self.step) if self.step is not None else None
        spec = next((p for p in getattr(action, "params", ()) if p.name == name), None)
        return spec is None or spec.type in (ParamType.INT_LIST, ParamType.STR_LIST)

    def missing_params(self, step: Step | None = None) -> list[ParamSpec]:
        """Required parameters the runbook leaves to the operator (e.g. a discard's reason)."""
        step = step or self.step
        if step is None:
            return []
        action = self.action_here(step)
        if action is None:
            return []
        given = set(step.params) | set(step.params_from)
        return [p for p in getattr(action, "params", ()) if p.required and p.name not in given]

    def needs_ack(self, step: Step | None = None) -> bool:
        step = step or self.step
        return bool(step is not None and step.ack and not self.t.acked)

    def resume_text(self) -> str:
        return f"Resume {self.record.message()}"

    # -- journal -----------------------------------------------------------------------------
    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    async def _emit(self, what: str, step_id: str = "", **fields: Any) -> dict[str, Any]:
        """Append one wizard event and apply it to the run. Raises JournalError."""
        title = ""
        index = 0
        if step_id == END:
            title = END_TITLE
        elif step_id and self.runbook.has_step(step_id):
            title = self.runbook.step(step_id).title
            index = self.index_of(step_id)
        event: dict[str, Any] = {"kind": "wizard", "run": self.record.run, "runbook": self.runbook.id,
                                 "title": self.runbook.title, "step": step_id, "step_title": title,
                                 "index": index, "total": len(self.runbook.steps), "what": what,
                                 "pid": os.getpid()}
        for key, value in fields.items():
            if value not in (None, ""):
                event[key] = value
        written = await asyncio.to_thread(self.journal.append, event)
        if self.record.opened_at is None and what == "opened":
            from opsconsole.audit import Operator, parse_ts

            self.record.opened_at = parse_ts(written.get("ts"))
            self.record.opened_by = Operator.from_json(written.get("operator"))
        fold_wizard_event(self.record, written)
        self._notify()
        return written

    async def _guarded(self, what: str, step_id: str = "", **fields: Any) -> Denied | None:
        try:
            await self._emit(what, step_id, **fields)
        except (JournalError, OSError) as exc:
            self.message = f"not recorded, so not done: {exc}"
            self._notify()
            return Denied(self.message)
        return None

    def _deny(self, message: str) -> Denied:
        self.message = message
        self._notify()
        return Denied(message)

    def _duration_ms(self) -> float | None:
        visit = self.visit
        if visit is None or visit.entered_at is None:
            return None
        return round((utcnow() - visit.entered_at).total_seconds() * 1000, 1)

    # -- the lock ----------------------------------------------------------------------------
    async def take_lock(self) -> LockInfo:
        """The operator lock `runbook:<id>`. Held by another console: `state = "other"` (follow it
        read-only). Not available (no database, or it cannot be reached): the run goes on, and the
        operator is told that nothing stops a second operator from walking it too."""
        from opsconsole.actions.locks import LockError, LockHandle

        if self.locks is None:
            self.lock = LockInfo("off", "no operator lock for runbooks (no supabase.database_url configured): "
                                        "another console could walk this runbook at the same time")
            return self.lock
        try:
            got = await self.locks.acquire(f"runbook:{self.runbook.id}")
        except LockError as exc:
            self.lock = LockInfo("unavailable", f"{exc}; going on without it: another console could walk this "
                                                "runbook at the same time")
            return self.lock
        if isinstance(got, LockHandle):
            self._handle = got
            self.lock = LockInfo("held", f"operator lock runbook:{self.runbook.id} held by this console")
        else:
            self.lock = LockInfo("other", got.message(utcnow()), got)
        return self.lock

    async def release(self) -> None:
        """Let go of the lock (the run stays open in the journal: it can be resumed)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            await handle.release()
        if self.lock.state == "held":
            self.lock = LockInfo("none", "")

    # -- opening -----------------------------------------------------------------------------
    async def open(self) -> Denied | None:
        """Start a new run: the `opened` event, then the first step (a check step runs now)."""
        if self.follow:
            return self._deny("following read-only: this console does not walk the run")
        denied = await self._guarded("opened", source=self.runbook.source,
                                     steps=[s.id for s in self.runbook.steps])
        if denied is not None:
            return denied
        return await self._enter(self.runbook.steps[0].id, "start")

    async def resume(self, events: Sequence[Mapping[str, Any]]) -> Denied | None:
        """Continue this run (rebuilt from `events`, the whole journal) at the step it was at."""
        if self.follow:
            return self._deny("following read-only: this console does not walk the run")
        visit = self.visit
        denied = await self._guarded("resumed", visit.step if visit is not None else "")
        if denied is not None:
            return denied
        if visit is None:
            return await self._enter(self.runbook.steps[0].id, "start")
        if visit.step == END:
            return await self._finish()
        if visit.state == "running":
            return await self._settle_in_flight(visit, events)
        if visit.state == "unknown":  # the screen says so from the visit (`unknown_text`)
            self._notify()
            return None
        step = self.step
        if step is None:
            return self._deny(f"the run was at step {visit.step!r}, which this runbook no longer has: go back "
                              "(b) or close the run")
        if visit.state in ("passed", "done", "skipped"):
            return await self._enter(self.runbook.following(step), "next")
        if visit.state == "failed" and step.on_fail:
            return await self._enter(step.on_fail, "on_fail")
        if visit.state in ("current", "left", "failed") and step.kind == "check" and self.mode() is Mode.CHECK \
                and not step.ack:
            return await self._start_checks()  # a check step's results are "now": measured again
        return None

    def unknown_text(self, visit: StepVisit) -> str:
        step = self.step
        what = step.action if step is not None else "the action"
        return (f"outcome unknown: {what} was running when the console stopped (attempt {visit.attempt or '?'}). "
                "Check what it did, then record it: d it was done, n it was not done, p partly; with what you "
                "checked")

    async def _settle_in_flight(self, visit: StepVisit, events: Sequence[Mapping[str, Any]]) -> Denied | None:
        """The action of this step was with the kernel when the console died: what do its events say?"""
        own = attempt_events(events, visit.preview_id) if visit.preview_id else []
        final = [e for e in own if e.get("outcome") in FINAL_OUTCOMES]
        started = [e for e in own if e.get("outcome") == "started"]
        attempt = str((final or started or [{}])[-1].get("attempt") or "")
        verified = [e for e in events if e.get("kind") == "verified" and attempt and e.get("attempt") == attempt]
        step = self.step
        if final:
            return await self._apply_outcome(str(final[-1].get("outcome")), _short(final[-1].get("error") or
                                             (final[-1].get("result") or {}).get("summary", "")),
                                             attempt, note="recorded after the console restarted")
        if started and verified:
            verdict = str(verified[-1].get("verdict"))
            return await self._apply_outcome("ok" if verdict == "done" else "failed",
                                             _short(verified[-1].get("reason", "")), attempt,
                                             note=f"checked after the interruption: {verdict}")
        if started:
            what = step.action if step is not None else "the action"
            denied = await self._guarded("unknown", visit.step, attempt=attempt, preview_id=visit.preview_id,
                                         detail=f"{what} was running when the console stopped; what it did is "
                                                "unknown until someone checks")
            if denied is not None:
                return denied
            self._notify()  # the visit is "unknown" now: the screen says what to do (`unknown_text`)
            return None
        # The wizard wrote "running" but the kernel never started (killed in between): nothing happened.
        return await self._guarded("cancelled", visit.step, preview_id=visit.preview_id,
                                   detail="the console stopped before the action started: nothing was done")

    # -- moving ------------------------------------------------------------------------------
    async def _enter(self, step_id: str, how: str) -> Denied | None:
        """Make `step_id` the current step (END: the closing checks); a check step runs now."""
        self.t = Transient()
        self._stop_wait = asyncio.Event()
        self.message = ""
        if step_id == END:
            denied = await self._guarded("entered", END, how=how)
            return denied or await self._finish()
        if not self.runbook.has_step(step_id):
            return self._deny(f"the runbook has no step {step_id!r} (a broken file?): go back or close the run")
        denied = await self._guarded("entered", step_id, how=how)
        if denied is not None:
            return denied
        step = self.runbook.step(step_id)
        if step.kind == "manual" and step.checks:
            await self._context_checks(step)
        if step.kind == "check" and self.mode() is Mode.CHECK and not step.ack:
            self._auto += 1
            if self._auto > MAX_AUTO_STEPS:
                return self._deny("stopped: the check steps keep sending the run round in a loop; choose what to "
                                  "do (n next, b back, s skip)")
            return await self._start_checks()
        return None

    async def _advance(self, how: str = "next") -> Denied | None:
        step = self.step
        if step is None:
            return None
        return await self._enter(self.runbook.following(step), how)

    def _operator_turn(self) -> None:
        """An operator key starts a new chain of automatic steps."""
        self._auto = 0

    def _gate(self, verb: str) -> Denied | None:
        if self.follow:
            return self._deny("following read-only: only the console that holds the run walks it")
        if self.closed:
            return self._deny("this run is closed")
        if self.busy:
            return self._deny(f"wait: {self.busy} running (Esc stops a wait)")
        step = self.step
        if step is not None and self.needs_ack(step):
            return self._deny(f"type {step.ack} to acknowledge the warning before this step can be {verb}")
        return None

    async def acknowledge(self, typed: str) -> Denied | None:
        """The operator typed the ack text; exact match only (case and spaces count)."""
        step = self.step
        if self.follow or step is None or not step.ack:
            return self._deny("nothing to acknowledge here")
        if typed != step.ack:
            return self._deny(f"that is not {step.ack}: type it exactly to acknowledge the warning")
        denied = await self._guarded("acknowledged", step.id, detail=f"typed {step.ack}")
        if denied is not None:
            return denied
        self.t.acked = True
        self._notify()
        if step.kind == "check" and self.mode() is Mode.CHECK:
            return await self._start_checks()
        return None

    async def skip(self, reason: str) -> Denied | None:
        """Skip the current step, with a reason (journaled), to the next one."""
        self._operator_turn()
        denied = self._gate("skipped")
        if denied is not None:
            return denied
        reason = printable(reason, single_line=True, limit=MAX_TEXT).strip()
        if len(reason) < MIN_REASON:
            return self._deny("skipping a step needs a reason (at least 3 characters): it goes into the journal")
        step = self.step
        if step is None:
            return self._deny("no step to skip")
        if self.visit is not None and self.visit.state in ("unknown", "running"):
            return self._deny("the action's outcome is unknown: check what it did and record it first")
        denied = await self._guarded("skipped", step.id, detail=reason, duration_ms=self._duration_ms())
        return denied or await self._advance("next")

    async def next(self) -> Denied | None:
        """Go on after a step that did not pass (a failed check with no on_fail, a failed action)."""
        self._operator_turn()
        denied = self._gate("passed")
        if denied is not None:
            return denied
        visit, step = self.visit, self.step
        if self.at_end:
            return self._deny("every step is walked: c closes the run, b goes back")
        if step is None or visit is None:
            return self._deny("no step")
        if visit.state in ("failed", "passed", "done"):
            return await self._advance("next")
        if visit.state == "refused":
            return self._deny("the action was refused and nothing was done: retry it, or skip it (s) with a reason")
        if visit.state == "unknown":
            return self._deny(self.unknown_text(visit))
        return self._deny("this step is not done: do it, or skip it (s) with a reason")

    async def back(self) -> Denied | None:
        """Back to the step before this one (in the order walked); a check step runs again."""
        self._operator_turn()
        if self.follow or self.closed:
            return self._deny("following read-only" if self.follow else "this run is closed")
        if self.busy:
            return self._deny(f"wait: {self.busy} running")
        visit = self.visit
        if visit is not None and visit.state in ("running", "unknown"):
            return self._deny("the action's outcome is unknown: check what it did and record it first")
        target = self.back_target()
        if target:
            return await self._enter(target, "back")
        return self._deny("this is the first step")

    def back_target(self) -> str:
        """The step `back` goes to (the one walked before this one), or "" (none: the first step)."""
        here = self.current_id
        for earlier in reversed(self.record.visits):
            if earlier.step != here and earlier.step != END and self.runbook.has_step(earlier.step):
                return earlier.step
        return ""

    async def goto(self, step_id: str) -> Denied | None:
        """Jump to a step walked before (the list's cursor); like back, a check step runs again."""
        self._operator_turn()
        if self.follow or self.closed or self.busy:
            return self._deny("not now")
        visit = self.visit
        if visit is not None and visit.state in ("running", "unknown"):
            return self._deny("the action's outcome is unknown: check what it did and record it first")
        if not any(v.step == step_id for v in self.record.visits):
            return self._deny("only steps already walked can be gone back to; the others come in their turn")
        return await self._enter(step_id, "back")

    # -- check steps -------------------------------------------------------------------------
    def stop_waiting(self) -> None:
        self._stop_wait.set()

    async def rerun(self) -> Denied | None:
        """Run the current check step (or the closing checks) again, now."""
        self._operator_turn()
        denied = self._gate("run")
        if denied is not None:
            return denied
        if self.at_end:
            return await self._finish()
        if self.mode() is not Mode.CHECK:
            return self._deny("this is not a check step")
        return await self._start_checks()

    async def _round(self, checks: list[Check], into: dict[str, LiveCheck]) -> None:
        for c in checks:
            into.setdefault(c.id, LiveCheck(c.id)).running = True
        self._notify()

        async def one(check: Check) -> None:
            result = await self.runner.run_one(check)
            live = into.setdefault(check.id, LiveCheck(check.id))
            live.result, live.running = result, False
            if self.on_result is not None:
                self.on_result(result)
            self._notify()

        await asyncio.gather(*(one(c) for c in checks))

    def _unmeasured_results(self, step_checks: Sequence[str], built: set[str], into: dict[str, LiveCheck]) -> None:
        for cid in step_checks:
            if cid not in built:
                system = cid.split(".")[0]
                into[cid] = LiveCheck(cid, CheckResult(cid, system, cid, Status.OFF,
                                                       f"not configured here (no [{system}] section)"))

    async def _context_checks(self, step: Step) -> None:
        """A manual step's checks, measured once for the operator to see (they decide nothing)."""
        checks = self._built_checks(step)
        self._unmeasured_results(step.checks, {c.id for c in checks}, self.t.live)
        if not checks:
            return
        self.busy = "checks"
        try:
            await self._round(checks, self.t.live)
        finally:
            self.busy = ""
            self._notify()

    async def _start_checks(self) -> Denied | None:
        step = self.step
        if step is None:
            return None
        checks = self._built_checks(step)
        built = {c.id for c in checks}
        self._unmeasured_results(step.checks, built, self.t.live)
        self.busy = "checks"
        self._stop_wait = asyncio.Event()
        started = time.monotonic()
        deadline = started + step.wait_s
        self.t.wait_deadline = deadline if step.wait_s else None
        try:
            return await self._check_rounds(step, checks, built, started, deadline)
        finally:
            self.busy = ""
            self.t.waiting_until = None

    async def _check_rounds(self, step: Step, checks: list[Check], built: set[str], started: float,
                            deadline: float) -> Denied | None:
        """The rounds of a check step, then its journal event; busy until that is written (the screen
        never shows a finished round as still pending)."""
        while True:
            await self._round(checks, self.t.live)
            self.t.rounds += 1
            passed = all(self.t.live[c.id].result is not None and
                         self.t.live[c.id].result.status is Status.OK for c in checks)  # type: ignore[union-attr]
            if passed or not step.wait_s or self._stop_wait.is_set():
                break
            if time.monotonic() + step.every_s > deadline:
                break
            self.t.waiting_until = time.monotonic() + step.every_s
            self._notify()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_wait.wait(), step.every_s)
            self.t.waiting_until = None
            if self._stop_wait.is_set():
                break
        results = [{"id": cid, "status": (live.result.status.value if live.result else "unknown"),
                    "summary": _short(live.result.summary if live.result else "no result", 240)}
                   for cid, live in self.t.live.items()]
        failing = [r for r in results if r["status"] != "ok" and r["id"] in built]
        elapsed = round((time.monotonic() - started) * 1000, 1)
        if passed:
            denied = await self._guarded("passed", step.id, results=results, rounds=self.t.rounds,
                                         detail="all ok", duration_ms=self._duration_ms(), checks_ms=elapsed)
            self.busy = ""
            return denied or await self._advance("next")
        why = "; ".join(f"{r['id']} {r['status'].upper()}: {r['summary']}" for r in failing)
        if self.t.rounds > 1:
            why += f" (still after {self.t.rounds} rounds over {elapsed / 1000:.0f} s)"
        denied = await self._guarded("failed", step.id, results=results, rounds=self.t.rounds, detail=why,
                                     duration_ms=self._duration_ms(), checks_ms=elapsed)
        self.busy = ""
        if denied is not None:
            return denied
        if step.on_fail:
            return await self._enter(step.on_fail, "on_fail")
        self.message = "the step did not pass: n goes on to the next step, r runs the checks again, s skips"
        self._notify()
        return None

    # -- manual steps (and steps done by hand because their action is not here) ----------------
    async def manual(self, outcome: str, note: str = "") -> Denied | None:
        """`done` (go on) or `failed` (it did not work / the answer is no: `on_fail`, or stay)."""
        self._operator_turn()
        denied = self._gate("passed" if outcome == "done" else "answered")
        if denied is not None:
            return denied
        step = self.step
        if step is None or self.mode() not in (Mode.MANUAL, Mode.FALLBACK):
            return self._deny("this step is not done by hand: it runs in the console")
        note = printable(note, single_line=True, limit=MAX_TEXT).strip()
        if outcome == "done":
            detail = note or ("done by hand" + (f" ({self.fallback_reason(step)})" if self.mode() is Mode.FALLBACK
                                                 else ""))
            denied = await self._guarded("done", step.id, detail=detail, duration_ms=self._duration_ms(),
                                         by_hand=self.mode() is Mode.FALLBACK)
            return denied or await self._advance("next")
        denied = await self._guarded("failed", step.id, detail=note or "it did not work (or the answer is no)",
                                     duration_ms=self._duration_ms())
        if denied is not None:
            return denied
        if step.on_fail:
            return await self._enter(step.on_fail, "on_fail")
        return None

    # -- action steps ------------------------------------------------------------------------
    async def resolve_params(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any] | Denied:
        """The action's parameters: the file's, those taken from a check (run now), and `extra`."""
        step = self.step
        if step is None:
            return self._deny("no step")
        params: dict[str, Any] = dict(step.params)
        for name, source in step.params_from.items():
            check_id, path = source.split(":", 1)
            checks = [c for c in self.runner.select([check_id]) if c.id == check_id]
            if not checks:
                return self._deny(f"{name} comes from {check_id}, which is not available here")
            await self._round(checks, self.t.live)
            live = self.t.live[check_id]
            values = extract(live.result.details, path) if live.result is not None else []
            # A parameter that takes one value gets the first (the checks list newest first).
            params[name] = values[0] if values and not self._takes_a_list(name) else values
        for name, value in (extra or {}).items():
            params[name] = value
        missing = [p.name for p in self.missing_params(step) if p.name not in params or params[p.name] in ("", None)]
        if missing:
            return self._deny(f"the action needs {', '.join(missing)}")
        self.t.params = params
        return params

    async def prepare(self, extra: Mapping[str, Any] | None = None) -> Preview | Refusal | Denied:
        """The preview of the current step's action (through the kernel), or why there is none."""
        from opsconsole.actions.model import Refusal, RefusalReason

        self._operator_turn()
        denied = self._gate("started")
        if denied is not None:
            return denied
        step = self.step
        if step is None or self.mode() is not Mode.ACTION or self.kernel is None:
            return self._deny("this step has no action to run here")
        if self.visit is not None and self.visit.state == "unknown":
            return self._deny(self.unknown_text(self.visit))
        self.busy = "preview"
        self._notify()
        try:
            params = await self.resolve_params(extra)
            if isinstance(params, Denied):
                return params
            empty = [name for name in step.params_from if params.get(name) == []]
            if empty:
                source = step.params_from[empty[0]].split(":", 1)[0]
                refusal: Preview | Refusal = Refusal(RefusalReason.NOTHING_TO_DO,
                                                     f"nothing to do: {source} lists nothing for {empty[0]}")
            else:
                refusal = await self.kernel.prepare(step.action, params)
        finally:
            self.busy = ""
        if isinstance(refusal, Refusal):
            self.t.refusal = refusal.message
            if refusal.reason is RefusalReason.NOTHING_TO_DO:
                denied = await self._guarded("done", step.id, detail=_short(refusal.message),
                                             duration_ms=self._duration_ms(), nothing_to_do=True)
                if denied is not None:
                    return denied
                await self._advance("next")
                return refusal
            denied = await self._guarded("refused", step.id, detail=_short(refusal.message),
                                         reason=refusal.reason.value)
            return denied or refusal
        self.t.preview = refusal
        self.t.refusal = ""
        self._notify()
        return refusal

    async def cancel_preview(self, preview: Preview) -> None:
        """The operator dismissed the confirmation: the kernel records it, the step stays."""
        if self.kernel is not None:
            await self.kernel.cancelled(preview)
        self.t.preview = None
        step = self.step
        if step is not None:
            await self._guarded("cancelled", step.id, preview_id=preview.preview_id,
                                detail="the operator cancelled the confirmation; nothing was done")

    def cancel_running(self) -> None:
        """Ask a long action (with hooks) to stop between chunks."""
        if self._cancel_action is not None:
            self._cancel_action.set()

    async def confirm(self, preview: Preview, confirmation: Confirmation,
                      progress: Callable[[Any], None] | None = None) -> Outcome | Refusal | Denied:
        """Run the confirmed preview through the kernel; journal the outcome; move on when done."""
        from opsconsole.actions.model import Outcome, OutcomeStatus, Refusal

        self._operator_turn()
        denied = self._gate("started")
        if denied is not None:
            return denied
        step = self.step
        if step is None or self.kernel is None or preview.action_id != step.action:
            return self._deny("this preview does not belong to the current step")
        denied = await self._guarded("running", step.id, preview_id=preview.preview_id, action=preview.action_id,
                                     detail=_short(preview.target, 200))
        if denied is not None:
            return denied
        action = self.action_here(step)
        hooks_table = getattr(action, "hooks", None)
        if isinstance(hooks_table, dict):
            from opsconsole.actions.dlq import RunHooks

            hooks = RunHooks(progress=progress)
            self._cancel_action = hooks.cancel
            hooks_table[preview.preview_id] = hooks
        self.busy = "action"
        self._notify()
        try:
            result = await self.kernel.run(preview, confirmation)
        finally:
            self.busy = ""
            self._cancel_action = None
            self.t.preview = None
        recent = await asyncio.to_thread(_recent_events, self.journal.path)
        own = attempt_events(recent, preview.preview_id)
        attempt = str(own[-1].get("attempt") or "") if own else ""
        if isinstance(result, Refusal):
            self.t.refusal = result.message
            denied = await self._guarded("refused", step.id, detail=_short(result.message), attempt=attempt,
                                         preview_id=preview.preview_id, reason=result.reason.value)
            return denied or result
        assert isinstance(result, Outcome)
        self.t.outcome_text = result.summary + (f" (JOURNAL: {result.journal_error})" if result.journal_error else "")
        status = "ok" if result.status is OutcomeStatus.OK else result.status.value
        denied = await self._apply_outcome(status, _short(result.summary if result.ok else
                                                          (result.summary or result.error)), attempt,
                                           preview_id=preview.preview_id)
        return denied or result

    async def _apply_outcome(self, outcome: str, detail: str, attempt: str, *, note: str = "",
                             preview_id: str = "") -> Denied | None:
        step = self.step
        if step is None:
            return None
        text = f"{note}: {detail}" if note and detail else (note or detail)
        if outcome == "ok":
            denied = await self._guarded("done", step.id, detail=text, attempt=attempt, preview_id=preview_id,
                                         duration_ms=self._duration_ms())
            return denied or await self._advance("next")
        if outcome in ("refused", "cancelled"):
            return await self._guarded("refused" if outcome == "refused" else "cancelled", step.id, detail=text,
                                       attempt=attempt, preview_id=preview_id)
        denied = await self._guarded("failed", step.id, detail=f"{outcome}: {text}" if text else outcome,
                                     attempt=attempt, preview_id=preview_id, duration_ms=self._duration_ms())
        if denied is not None:
            return denied
        if step.on_fail:
            return await self._enter(step.on_fail, "on_fail")
        self.message = "the action did not fully work: x tries again (a new preview), n goes on, s skips"
        self._notify()
        return None

    async def verify(self, verdict: str, reason: str) -> Denied | None:
        """After "outcome unknown": what the operator found when they checked (journaled for the
        attempt too, `Journal.record_verified`). done goes on; not_done/partial leave it failed."""
        self._operator_turn()
        if self.follow or self.closed:
            return self._deny("not here")
        visit, step = self.visit, self.step
        if visit is None or step is None or visit.state != "unknown":
            return self._deny("nothing to verify: the step's outcome is known")
        reason = printable(reason, single_line=True, limit=MAX_TEXT).strip()
        if len(reason) < MIN_REASON:
            return self._deny("say what you checked (at least 3 characters): it goes into the journal")
        if verdict not in ("done", "not_done", "partial"):
            return self._deny("the verdict is done, not_done or partial")
        if visit.attempt:
            try:
                await asyncio.to_thread(self.journal.record_verified, visit.attempt, verdict=verdict, reason=reason)
            except (JournalError, OSError) as exc:
                return self._deny(f"not recorded: {exc}")
        denied = await self._guarded("verified", step.id, outcome=verdict, detail=reason, attempt=visit.attempt)
        if denied is not None:
            return denied
        if verdict == "done":
            return await self._advance("next")
        self.message = "recorded; x runs the action again (a new preview), s skips, n goes on"
        self._notify()
        return None

    # -- the end -----------------------------------------------------------------------------
    async def _finish(self) -> Denied | None:
        """Every step walked: run the closing checks; all ok closes the run as resolved."""
        self.busy = "closing"
        try:
            return await self._closing_checks()
        finally:
            self.busy = ""

    async def _closing_checks(self) -> Denied | None:
        ids = self.runbook.closing_checks
        checks = [c for c in self.runner.select(ids) if c.id in set(ids)] if ids else []
        built = {c.id for c in checks}
        self.t.closing = {}
        self._unmeasured_results(ids, built, self.t.closing)
        if checks:
            await self._round(checks, self.t.closing)
        results = [{"id": cid, "status": live.result.status.value if live.result else "unknown",
                    "summary": _short(live.result.summary if live.result else "", 240)}
                   for cid, live in self.t.closing.items()]
        bad = [r for r in results if r["status"] != "ok" and r["id"] in built]
        if not bad:
            denied = await self._guarded("passed", END, results=results, detail="the incident's checks are ok")
            if denied is not None:
                return denied
            what = ", ".join(r["id"] for r in results if r["id"] in built) or "no check to re-run"
            return await self._close("resolved", f"all steps walked; {what} ok")
        why = "; ".join(f"{r['id']} {r['status'].upper()}: {r['summary']}" for r in bad)
        denied = await self._guarded("failed", END, results=results, detail=why)
        if denied is not None:
            return denied
        self.message = ("every step is walked but the incident's checks are not all ok: r re-checks, b goes back "
                        "to a step, c closes the run anyway (with a reason)")
        self._notify()
        return None

    async def close(self, reason: str, *, abandon: bool = False) -> Denied | None:
        """Close the run by hand: unresolved (at the end, checks not ok) or abandoned (mid-way)."""
        self._operator_turn()
        if self.follow:
            return self._deny("following read-only: only the console that holds the run closes it")
        if self.closed:
            return self._deny("this run is closed already")
        if self.busy:
            return self._deny(f"wait: {self.busy} running")
        visit = self.visit
        if visit is not None and visit.state in ("running", "unknown"):
            return self._deny("the action's outcome is unknown: check what it did and record it first")
        reason = printable(reason, single_line=True, limit=MAX_TEXT).strip()
        if len(reason) < MIN_REASON:
            return self._deny("closing a run by hand needs a reason (at least 3 characters)")
        return await self._close("unresolved" if self.at_end and not abandon else "abandoned", reason)

    async def _close(self, outcome: str, detail: str) -> Denied | None:
        denied = await self._guarded("closed", self.current_id, outcome=outcome, detail=detail)
        if denied is not None:
            return denied
        await self.release()
        self._notify()
        return None

    # -- following another console's run ----------------------------------------------------
    def refresh(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild the run from the (shared) journal: how a follower sees the holder's steps."""
        for record in wizard_runs(events):
            if record.run == self.record.run:
                self.record = record
                break
        self._notify()


OpenWizard = Callable[[], Awaitable[Wizard]]
