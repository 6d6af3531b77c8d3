"""`n8n.retry`: run failed n8n executions again — the runbook's "Manually retry failed workflow execution".

Disruptive: a retry runs the sync's writes again (upserts into the CRM, updates of the campaign queue),
and n8n has no undo. Params: `execution=ID[,ID...]`, `load_workflow=true|false` (true: n8n runs the
workflow as saved now instead of the snapshot the execution ran; for a workflow fixed since).

The preview reads each execution and lists it (workflow, when it failed, the failing node and n8n's
error). It leaves out, with the reason: executions that succeeded, those already retried successfully
(n8n's `retrySuccessId`, also through a retry of a retry), those still running (or queued, or
waiting), and ids n8n does not know. It is honest about what will happen: when executions failed on
a credential that n8n's own test fails right now (the `n8n.credentials` check's test, run again for
the credentials concerned), its warning says their retries will fail again until the credential is
fixed in n8n.

Execution runs them one at a time: `POST /executions/{id}/retry`, then the new execution is followed
(polled) until it succeeds or fails. Each result is reported to the progress hook (the console's
progress screen, `opsconsole action run`'s stderr) with the new execution id, and journaled as it
happens (a `note` event naming the preview, so a console killed mid-way leaves a record of every
retry it started). A bulk retry stops after three consecutive failures, and at once on a 404 from an
n8n older than 1.112 (no retry endpoint: every other retry would fail the same way), on a retry
whose start cannot be confirmed (it is never sent twice), and when the operator asks it to stop
(after the execution in progress). Operator lock: `n8n:execution:<id>` per execution.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.adapters.n8n import RETRY_TIMEOUT_S, N8nAdapter
from opsconsole.audit import Journal, JournalError
from opsconsole.domain.models import utcnow
from opsconsole.domain.n8n import FINISHED_STATUSES, CredentialRef, CredentialTest, Execution, ExecutionError
from opsconsole.domain.text import format_age, printable
from opsconsole.settings import SecretError, Settings

MAX_EXECUTIONS = 100
STOP_AFTER = 3  # consecutive failures end a bulk retry
FOLLOW_TIMEOUT_S = 300.0  # how long one new execution is followed
BULK_BUDGET_S = 50 * 60.0  # no new retry starts after this long (the kernel's limit is an hour)
LOCK_PREFIX = "n8n:execution:"
MAX_PLANS = 32
LISTED = 25  # executions named one per line in the preview (all of them are in its items)

SUCCEEDED = "succeeded"
FAILED_AGAIN = "failed_again"
NOT_STARTED = "not_started"  # n8n refused or failed the retry request
STILL_RUNNING = "still_running"  # followed for FOLLOW_TIMEOUT_S without an end
UNKNOWN = "unknown"  # the request got no answer and no new execution can be found
NOT_RETRIED = "not_retried"  # the bulk retry stopped before this one

AdapterGetter = Callable[[], N8nAdapter | None]
ProgressHook = Callable[[Any], Awaitable[None] | None]


def _when(moment: datetime, now: datetime) -> str:
    return f"{moment.strftime('%Y-%m-%d %H:%M:%S UTC')} ({format_age((now - moment).total_seconds())} ago)"


def _line(text: str, limit: int = 200) -> str:
    return printable(text, single_line=True, limit=limit)


@dataclass(frozen=True, slots=True)
class RetryProgress:
    """One step of a retry run, for the progress hook. `line` is what to show; `changed`, `expected`
    and `chunks_done` are the fields `opsconsole action run` prints for any bulk action."""

    event: str  # start | started | finished | stopped
    index: int  # 1-based position in the run
    total: int
    execution_id: str
    line: str
    new_execution_id: str | None = None
    status: str | None = None
    succeeded: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    action: str = "n8n.retry"

    @property
    def changed(self) -> int:
        return self.succeeded + self.failed

    @property
    def expected(self) -> int:
        return self.total

    @property
    def chunks_done(self) -> int:
        return self.index


@dataclass
class RetryHooks:
    """What the console passes for one run (same shape as the DLQ actions' hooks)."""

    progress: ProgressHook | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class _Planned:
    execution: Execution
    workflow: str
    error: ExecutionError


@dataclass(frozen=True, slots=True)
class _Plan:
    items: tuple[_Planned, ...]
    load_workflow: bool


class RetryExecutions:
    """Retry failed n8n executions, one at a time, following each to success or error."""

    id = "n8n.retry"
    title = "Retry n8n executions"
    tier = RiskTier.DISRUPTIVE  # the sync's writes run again
    start_key = "R"
    tab = "n8n"
    description = ("Run the selected failed n8n executions again, one at a time, following each until it "
                   "succeeds or fails (stops after 3 consecutive failures)")
    needs = "[n8n]"
    params = (
        ParamSpec("execution", ParamType.STR_LIST, "the n8n execution ids (the n8n tab's id column)", required=True),
        ParamSpec("load_workflow", ParamType.BOOL, "true: run the workflow as saved now instead of the snapshot "
                  "each execution ran (default false)"),
    )
    execute_timeout_s = 3600.0

    def __init__(self, adapter: AdapterGetter, *, journal: Journal | None = None,
                 clock: Callable[[], datetime] = utcnow, follow_timeout_s: float = FOLLOW_TIMEOUT_S,
                 retry_timeout_s: float = RETRY_TIMEOUT_S) -> None:
        self._adapter_getter = adapter
        self.journal = journal
        self.clock = clock
        self.follow_timeout_s = follow_timeout_s
        self.retry_timeout_s = retry_timeout_s
        self.hooks: dict[str, Any] = {}  # preview_id -> hooks (progress, cancel), set by the UI or CLI
        self._plans: OrderedDict[str, _Plan] = OrderedDict()

    def adapter(self) -> N8nAdapter | None:
        found = self._adapter_getter()
        return found if isinstance(found, N8nAdapter) else None

    # -- preview -----------------------------------------------------------------------------
    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        adapter = self.adapter()
        if adapter is None:
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: n8n is not configured ([n8n])")
        raw = params.get("execution") or []
        if isinstance(raw, str):
            raw = [raw]
        ids: list[str] = []
        for value in raw:
            text = str(value).strip()
            if not text.isdigit():
                return Refusal(RefusalReason.INVALID, f"{self.title}: {_line(text, 40)!r} is not an n8n execution "
                                                      "id (digits expected)")
            ids.append(text)
        ids = list(dict.fromkeys(ids))
        if not ids:
            return Refusal(RefusalReason.INVALID, f"{self.title}: no execution selected (execution=ID[,ID...])")
        if len(ids) > MAX_EXECUTIONS:
            return Refusal(RefusalReason.INVALID, f"{self.title}: {len(ids)} executions selected; at most "
                                                  f"{MAX_EXECUTIONS} per retry")
        load_workflow = bool(params.get("load_workflow", False))
        try:
            return await self._preview(adapter, ids, load_workflow, dict(params))
        except SecretError as exc:
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: {adapter.key_problem(exc)}")

    async def _preview(self, adapter: N8nAdapter, ids: list[str], load_workflow: bool,
                       params: dict[str, Any]) -> Preview | Refusal:
        limit = asyncio.Semaphore(6)

        async def read(ident: str) -> tuple[str, Execution | None, str | None, int | None]:
            async with limit:
                ex, outcome = await adapter.get_execution(ident)
            return ident, ex, outcome.problem, outcome.status_code

        as_of = self.clock()
        reads = await asyncio.gather(*(read(i) for i in ids))
        excluded: list[dict[str, Any]] = []
        found: list[Execution] = []
        for ident, ex, problem, code in reads:
            if ex is not None:
                found.append(ex)
            elif code == 404:
                excluded.append({"id": ident, "reason": "not found in n8n (deleted, pruned, or not visible to "
                                                        "this API key)"})
            else:
                excluded.append({"id": ident, "reason": f"could not be read: {problem or 'no execution returned'}"})
        if not found:
            unreadable = [e for e in excluded if e["reason"].startswith("could not be read")]
            why = "; ".join(f"{e['id']}: {e['reason']}" for e in excluded[:5])
            kind = RefusalReason.UNAVAILABLE if unreadable else RefusalReason.NOTHING_TO_DO
            return Refusal(kind, f"{self.title}: nothing to retry ({why})", {"excluded": excluded})
        families, names = await asyncio.gather(adapter.families(found),
                                               adapter.workflow_names(time.monotonic() + adapter.timeout_s))
        retryable: list[Execution] = []
        for ex in found:
            reason = self._exclusion(ex, families.succeeded_by(ex.id))
            if reason:
                excluded.append({"id": ex.id, "reason": reason, "status": ex.status})
            else:
                retryable.append(ex)
        if not retryable:
            why = "; ".join(f"{e['id']}: {e['reason']}" for e in excluded[:5])
            more = f"; +{len(excluded) - 5} more" if len(excluded) > 5 else ""
            return Refusal(RefusalReason.NOTHING_TO_DO, f"{self.title}: none of {len(ids)} can be retried ({why}"
                                                        f"{more})", {"excluded": excluded})
        errors = {e.execution_id: e async for e in adapter.errors([ex.id for ex in retryable])}
        planned_list: list[_Planned] = []
        for ex in retryable:
            error = errors.get(ex.id) or ExecutionError(ex.id, problem="the error could not be read")
            workflow = names.get(ex.workflow_id) or error.workflow_name or f"workflow {ex.workflow_id}"
            planned_list.append(_Planned(ex, workflow, error))
        planned = tuple(planned_list)
        warning, warning_head, credential_lines = await self._credentials(adapter, planned)
        lines = [f"{len(planned)} execution{'s' if len(planned) != 1 else ''}, run again one at a time, each followed "
                 f"to its end (stops after {STOP_AFTER} consecutive failures); the sync's writes run again: n8n "
                 "cannot undo them"]
        if warning:
            lines.insert(0, f"⚠ {warning_head}")
        for p in planned[:LISTED]:
            text = p.error.first_line or p.error.problem or "no error text"
            node = f"{p.error.node}: " if p.error.node else ""
            lines.append(f"  {p.execution.id} · {p.workflow} · {p.execution.status} "
                         f"{_when(p.execution.started_at, as_of)} · {node}{text}")
        if len(planned) > LISTED:
            lines.append(f"  … and {len(planned) - LISTED} more (each one is in the table and the journal)")
        if load_workflow:
            lines.append("runs each workflow as saved now (load_workflow=true), not the snapshot its execution ran")
        else:
            lines.append("runs the snapshot each execution ran (load_workflow=false); load_workflow=true runs the "
                         "workflow as saved now (n8n tab: L)")
        lines.extend(credential_lines)
        items = tuple({"execution": p.execution.id, "workflow": p.workflow,
                       "failed": p.execution.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                       "error": _line(f"{p.error.node + ': ' if p.error.node else ''}"
                                      f"{p.error.first_line or p.error.problem or ''}", 160)}
                      for p in planned)
        shown = [p.execution.id for p in planned]
        if len(planned) == 1:
            target, confirm = f"execution {shown[0]} ({planned[0].workflow})", shown[0]
        else:
            listed = ", ".join(shown[:6]) + (", …" if len(shown) > 6 else "")
            target, confirm = f"{len(planned)} executions ({listed})", f"{len(planned)} executions"
        keys = tuple(LOCK_PREFIX + i for i in shown)
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier, target=target, confirm_text=confirm,
                          data_as_of=as_of, lines=tuple(_line(line, 400) for line in lines), items=items,
                          excluded=tuple(excluded), warning=warning,
                          params={"execution": ids, "load_workflow": load_workflow},
                          lock_key=keys[0] if len(keys) == 1 else f"{LOCK_PREFIX}{{{shown[0]},…}} ({len(keys)})",
                          lock_keys=keys)
        self._plans[preview.preview_id] = _Plan(planned, load_workflow)
        while len(self._plans) > MAX_PLANS:
            self._plans.popitem(last=False)
        return preview

    @staticmethod
    def _exclusion(ex: Execution, succeeded_by: str | None) -> str:
        if ex.running:
            return f"still running (status {ex.status}): retry it once it has finished"
        if ex.status == "success":
            return "succeeded: there is nothing to retry"
        if ex.retry_success_id:
            return f"already retried successfully (execution {ex.retry_success_id})"
        if succeeded_by:
            return f"already retried successfully through a retry of it (execution {succeeded_by})"
        return ""

    async def _credentials(self, adapter: N8nAdapter, planned: Sequence[_Planned]) -> tuple[str, str, list[str]]:
        """The warning (its short form, and lines) about credentials the executions failed on that fail
        n8n's test now."""
        refs: dict[str, CredentialRef] = {}
        for p in planned:
            for ref in p.error.credentials:
                if ref.id:
                    refs.setdefault(ref.id, ref)
        if not refs:
            return "", "", []
        deadline = time.monotonic() + adapter.timeout_s
        tests: list[CredentialTest] = [t for t, _ in await adapter.test_credentials(
            [(r, ()) for r in sorted(refs.values(), key=lambda r: (r.rank, r.name))], deadline)]
        warnings: list[str] = []
        heads: list[str] = []
        lines: list[str] = []
        for test in tests:
            affected = [p.execution.id for p in planned if any(c.id == test.ref.id for c in p.error.credentials)]
            if test.status == "fail":
                their = "its retry" if len(affected) == 1 else "their retries"
                if len(planned) == 1:
                    who = "This execution"
                elif len(affected) == len(planned):
                    who = f"All {len(planned)} executions"
                else:
                    who = f"{len(affected)} of the {len(planned)} executions ({', '.join(affected[:5])})"
                warnings.append(f"{who} failed on the credential {test.ref.label}, which fails n8n's own test right "
                                f"now ({test.message}): {their} will fail again until the credential is fixed in "
                                f"n8n ({adapter.credentials_url}; runbook n8n step 3, check n8n.credentials).")
                heads.append(f"{their} will fail again: {test.ref.name or test.ref.id} fails n8n's credential test "
                             "(see the warning)")
            elif test.status == "unknown":
                lines.append(f"credential {test.ref.label} (failing node of {len(affected)}) could not be tested: "
                             f"{test.message}")
            else:
                lines.append(f"credential {test.ref.label} passes n8n's test now")
        return " ".join(warnings), "; ".join(heads), lines

    # -- execution ---------------------------------------------------------------------------
    def hooks_for(self, preview: Preview) -> tuple[ProgressHook | None, asyncio.Event | None]:
        hooks = self.hooks.pop(preview.preview_id, None)
        progress = getattr(hooks, "progress", None)
        cancel = getattr(hooks, "cancel", None)
        return (progress if callable(progress) else None), (cancel if isinstance(cancel, asyncio.Event) else None)

    async def execute(self, preview: Preview) -> Outcome:
        plan = self._plans.pop(preview.preview_id, None)
        adapter = self.adapter()
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        if adapter is None:
            return Outcome(OutcomeStatus.FAILED, "n8n is not configured", error="no adapter")
        progress, cancel = self.hooks_for(preview)
        run = _Run(self, adapter, plan, preview, progress, cancel)
        return await run.go()

    async def record(self, preview: Preview, item: Mapping[str, Any]) -> str | None:
        """One retried execution into the journal as it happens (the kernel records the whole attempt
        too); returns why it could not be written."""
        if self.journal is None:
            return None
        text = f"{self.id}: execution {item['id']} ({item.get('workflow', '')}): {item['detail']}"
        event = {"kind": "note", "text": _line(text, 400), "action": self.id, "preview_id": preview.preview_id,
                 "execution": item["id"], "new_execution": item.get("new_execution"), "result": item["result"]}
        try:
            await asyncio.to_thread(self.journal.append, event)
        except (JournalError, OSError) as exc:
            return str(exc)
        return None


class _Run:
    """One execution of a retry plan (state kept here, not on the shared action)."""

    def __init__(self, action: RetryExecutions, adapter: N8nAdapter, plan: _Plan, preview: Preview,
                 progress: ProgressHook | None, cancel: asyncio.Event | None) -> None:
        self.action = action
        self.adapter = adapter
        self.plan = plan
        self.preview = preview
        self.progress = progress
        self.cancel = cancel
        self.started = time.monotonic()
        self.items: list[dict[str, Any]] = []
        self.succeeded = 0
        self.failed = 0

    async def emit(self, event: str, index: int, ex_id: str, line: str, *, new_id: str | None = None,
                   status: str | None = None) -> None:
        if self.progress is None:
            return
        report = RetryProgress(event=event, index=index, total=len(self.plan.items), execution_id=ex_id,
                               line=_line(line, 300), new_execution_id=new_id, status=status,
                               succeeded=self.succeeded, failed=self.failed,
                               elapsed_s=time.monotonic() - self.started)
        try:
            maybe = self.progress(report)
            if maybe is not None:
                await maybe
        except Exception:  # a broken progress display must not stop (or double) a retry
            self.progress = None

    async def go(self) -> Outcome:
        total = len(self.plan.items)
        consecutive = 0
        stop = ""
        journal_problem = ""
        for index, planned in enumerate(self.plan.items, start=1):
            ex = planned.execution
            if self.cancel is not None and self.cancel.is_set():
                stop = "stopped by the operator"
                break
            if time.monotonic() - self.started > BULK_BUDGET_S:
                stop = f"stopped: no new retry starts after {BULK_BUDGET_S / 60:.0f} minutes in one run"
                break
            await self.emit("start", index, ex.id, f"[{index}/{total}] retrying {ex.id} ({planned.workflow})")
            item, halt = await self.one(index, planned)
            self.items.append(item)
            if item["result"] == SUCCEEDED:
                self.succeeded += 1
                consecutive = 0
            else:
                self.failed += 1
                consecutive += 1
            await self.emit("finished", index, ex.id, f"[{index}/{total}] {ex.id}: {item['detail']}",
                            new_id=item.get("new_execution"), status=item.get("status"))
            problem = await self.action.record(self.preview, item)
            if problem is not None:
                journal_problem = problem
                stop = f"stopped: the journal cannot be written ({problem})"
                break
            if halt:
                stop = halt
                break
            if consecutive >= STOP_AFTER and index < total:
                stop = f"stopped after {STOP_AFTER} consecutive failures"
                break
        done = {item["id"] for item in self.items}
        left = [p for p in self.plan.items if p.execution.id not in done]
        for p in left:
            self.items.append({"id": p.execution.id, "workflow": p.workflow, "result": NOT_RETRIED,
                               "new_execution": None, "status": None, "detail": f"not retried: {stop}"})
        if stop and left:
            await self.emit("stopped", len(done), "", f"{stop}: {len(left)} not retried")
        outcome = Outcome.from_items(self.items, good={SUCCEEDED}, summary=self.summary(stop, len(left)))
        if journal_problem:
            return Outcome(outcome.status, outcome.summary, outcome.items, error=journal_problem)
        return outcome

    def summary(self, stop: str, left: int) -> str:
        total = len(self.plan.items)
        pairs = [f"{i['id']} → {i['new_execution']}" for i in self.items if i.get("new_execution")]
        text = f"{self.succeeded} of {total} retried execution{'s' if total != 1 else ''} succeeded"
        if self.failed:
            text += f", {self.failed} failed"
        if stop and left:
            text += f"; {stop}: {left} not retried"
        elif stop:
            text += f"; {stop}"
        if pairs:
            text += " (new executions: " + ", ".join(pairs[:10]) + (", …" if len(pairs) > 10 else "") + ")"
        return text

    async def one(self, index: int, planned: _Planned) -> tuple[dict[str, Any], str]:
        """Retry one execution and follow it. Returns its item and, when the whole run must stop, why."""
        ex = planned.execution
        total = len(self.plan.items)
        base: dict[str, Any] = {"id": ex.id, "workflow": planned.workflow, "new_execution": None, "status": None}
        result = await self.adapter.retry_execution(ex.id, load_workflow=self.plan.load_workflow, exists=True,
                                                    timeout_s=self.action.retry_timeout_s)
        new_id, new_status = result.new_execution_id, result.new_status
        if result.no_endpoint:
            return {**base, "result": NOT_STARTED, "detail": result.summary}, result.summary
        if not result.ok and result.ambiguous:
            found = await self.adapter.find_retry_of(ex.id, ex.workflow_id)
            if found is None:
                why = (f"could not tell whether the retry of {ex.id} started ({result.summary}); stopped so that "
                       "it is not run twice")
                return {**base, "result": UNKNOWN, "detail": why}, why
            new_id, new_status = found.id, found.status
        elif not result.ok:
            return {**base, "result": NOT_STARTED, "detail": result.summary}, ""
        assert new_id is not None
        await self.emit("started", index, ex.id, f"[{index}/{total}] {ex.id} → new execution {new_id} "
                        f"({new_status or 'started'})", new_id=new_id, status=new_status)
        final: Execution | None = None
        if new_status not in FINISHED_STATUSES:
            followed = await self.adapter.follow(new_id, timeout_s=self.action.follow_timeout_s)
            if not followed.finished:
                why = (f"new execution {new_id} still {followed.execution.status if followed.execution else '?'} "
                       f"after {self.action.follow_timeout_s:g} s ({followed.problem}); stopped so retries do not pile "
                       "up: follow it in n8n")
                return {**base, "new_execution": new_id, "status": "running", "result": STILL_RUNNING,
                        "detail": why}, why
            final = followed.execution
        status = final.status if final is not None else str(new_status)
        if status == "success":
            return {**base, "new_execution": new_id, "status": status, "result": SUCCEEDED,
                    "detail": f"new execution {new_id} succeeded"}, ""
        error = ""
        async for found_error in self.adapter.errors([new_id]):
            error = found_error.first_line
            if found_error.node:
                error = f"{found_error.node}: {error}"
        detail = f"new execution {new_id} ended with status {status}" + (f": {error}" if error else "")
        return {**base, "new_execution": new_id, "status": status, "result": FAILED_AGAIN, "detail": detail}, ""


def n8n_actions(settings: Settings, adapter: AdapterGetter, *, journal: Journal | None = None) -> list[GuardedAction]:
    """The n8n actions, or none without `[n8n]`. `adapter` is called when a preview is made (the
    adapters are built lazily, after the console's first frame)."""
    if settings.n8n is None:
        return []
    return [RetryExecutions(adapter, journal=journal)]
