"""Guarded actions on the dead-letter queue: re-queue, discard, undo a discard, fix a payload.

They wrap `adapters.dlq.DlqStore`, whose chunked, conditional state transitions give the
guarantees (atomic per message, exactly once across consoles); this module adds the preview
(counts per error code, what is refused and why), the journal record (with the message ids,
as compact ranges) and progress/cancel hooks for the UI's progress bar.

Parameters are plain data: `{"ids": [...]}` for an explicit selection, or
`{"filter": "<the / filter text>", "excluded": [...]}` for "every message matching the filter"
(resolved in SQL, chunk by chunk, bounded to the messages that existed at preview time).
No operator lock is taken: two consoles may re-queue overlapping selections at once, and each
message still goes exactly once (the store's conditional transitions decide, not luck).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamRule, ParamSpec, ParamType, one_of
from opsconsole.adapters.dlq import DlqStore, ProgressCallback
from opsconsole.domain.dlq import (
    BatchResult,
    DiscardPlan,
    DlqError,
    RequeuePlan,
    Selection,
    check_payload_text,
    parse_filter,
)
from opsconsole.domain.models import utcnow
from opsconsole.settings import Settings

MAX_DISCARD_REASON = 300

_IDS = ParamSpec("ids", ParamType.INT_LIST, "the message ids (the DLQ tab's id column)")
_FILTER = ParamSpec("filter", ParamType.DLQ_FILTER, "every message matching this filter (bounded to those "
                    "that exist when the preview is made)")
_EXCLUDED = ParamSpec("excluded", ParamType.INT_LIST, "with filter: message ids to leave out")
_REASON = ParamSpec("reason", ParamType.STR, "why (goes into the journal and the message's history)")
SELECTION_PARAMS = (_IDS, _FILTER, _EXCLUDED)
SELECTION_RULES = (one_of("ids", "filter"),)


def id_ranges(ids: Iterable[int], *, limit: int = 20_000) -> str:
    """Ids as compact ranges ("1-40,42,50-51"): the journal names every message, even 10,000."""
    ordered = sorted(set(ids))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    text = ",".join(parts)
    if len(text) > limit:  # a million scattered ids: keep the record bounded, say so
        cut = text[:limit].rsplit(",", 1)[0]
        return f"{cut},… ({len(ordered):,} ids in all)"
    return text


@dataclass
class RunHooks:
    """What the UI passes for one run: a progress callback and a cancel flag."""

    progress: ProgressCallback | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


def selection_from(params: Mapping[str, Any]) -> Selection | str:
    """The selection described by plain `params`, or why they are wrong."""
    if "ids" in params:
        raw = params["ids"]
        if not isinstance(raw, (list, tuple)) or not raw:
            return "no messages selected"
        try:
            return Selection.of_ids(int(i) for i in raw)
        except (TypeError, ValueError):
            return "message ids must be integers"
    if "filter" in params:
        parsed = parse_filter(str(params["filter"]))
        if isinstance(parsed, DlqError):
            return parsed.message
        excluded = params.get("excluded") or []
        return Selection.matching(parsed, excluded)
    return "give ids or a filter"


def _outcome(result: BatchResult, *, good: int) -> Outcome:
    status = OutcomeStatus.OK if result.ok and good else (OutcomeStatus.PARTIAL if good else OutcomeStatus.FAILED)
    if result.ok and not good and not result.errors:
        status = OutcomeStatus.OK if not result.refused_count else OutcomeStatus.PARTIAL
    item: dict[str, Any] = {"result": result.action, "changed": result.changed, "target": result.target,
                            "ids": id_ranges(result.ids), "refused": result.refused_count,
                            "already_handled": result.skipped_already_handled, "chunks": result.chunks_done,
                            "cancelled": result.cancelled, "uncertain": result.uncertain,
                            "elapsed_s": round(result.elapsed_s, 3)}
    if result.refused:
        item["refusals"] = [{"kind": r.kind, "reason": r.reason, "count": r.count, "sample_ids": list(r.sample_ids)}
                            for r in result.refused]
    error = "; ".join(e.message for e in result.errors)
    return Outcome(status=status, summary=result.summary(), items=(item,), error=error)


class _DlqAction:
    start_key = ""
    tab = "dlq"
    description = ""
    needs = "[dlq] and [supabase] database_url"
    params: tuple[ParamSpec, ...] = SELECTION_PARAMS
    param_rules: tuple[ParamRule, ...] = SELECTION_RULES

    def __init__(self, store: DlqStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self.hooks: dict[str, RunHooks] = {}  # preview_id -> hooks, set by the UI before kernel.run

    def hooks_for(self, preview: Preview) -> RunHooks:
        return self.hooks.pop(preview.preview_id, RunHooks())


class RequeueMessages(_DlqAction):
    """Re-insert valid, transient failures into the campaign queue (sends messages again)."""

    id = "dlq.requeue"
    title = "Re-queue messages"
    tier = RiskTier.DISRUPTIVE  # the queue will send these SMS again: not undoable once sent
    start_key = "R"
    description = "Re-insert the selected messages into the configured queue"

    def __init__(self, store: DlqStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(store, clock=clock)
        self._plans: dict[str, RequeuePlan] = {}

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        selection = selection_from(params)
        if isinstance(selection, str):
            return Refusal(RefusalReason.INVALID, f"{self.title}: {selection}")
        plan = await self.store.plan_requeue(selection)
        if isinstance(plan, DlqError):
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: {plan.message}")
        if plan.will_requeue == 0:
            why = "; ".join(f"{r.reason}: {r.count:,}" for r in plan.refused) or "nothing waiting"
            return Refusal(RefusalReason.NOTHING_TO_DO, f"{self.title}: none of {plan.selected:,} can be re-queued "
                                                        f"({why})")
        lines = [f"{plan.will_requeue:,} of {plan.selected:,} messages go into {plan.target}",
                 f"selection: {selection.describe()}"]
        for c in plan.by_code:
            kind = "never re-queued" if c.never_requeue else ("transient" if c.transient else
                                                               "not transient" if c.transient is False else "?")
            lines.append(f"  {c.error_code if c.error_code is not None else 'none'}: {c.will_requeue:,} go, "
                         f"{c.refused:,} refused — {c.meaning} ({kind})")
        excluded = tuple({"id": f"{r.count:,} messages", "reason": r.reason, "kind": r.kind,
                          "sample_ids": list(r.sample_ids)} for r in plan.refused)
        items = tuple({"error_code": c.error_code, "count": c.selected, "will_requeue": c.will_requeue,
                       "refused": c.refused, "meaning": c.meaning} for c in plan.by_code)
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier,
                          target=f"{plan.will_requeue:,} messages into {plan.target}",
                          confirm_text=f"{plan.will_requeue} messages", data_as_of=plan.planned_at,
                          lines=tuple(lines), items=items, excluded=excluded, params=dict(params))
        self._plans[preview.preview_id] = plan
        return preview

    async def execute(self, preview: Preview) -> Outcome:
        plan = self._plans.pop(preview.preview_id, None)
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        hooks = self.hooks_for(preview)
        result = await self.store.requeue(plan, on_progress=hooks.progress, cancel=hooks.cancel)
        return _outcome(result, good=result.requeued)


class DiscardMessages(_DlqAction):
    """Mark messages discarded with a reason; nothing is deleted and it can be undone."""

    id = "dlq.discard"
    title = "Discard messages"
    tier = RiskTier.REVERSIBLE
    start_key = "D"
    description = "Mark the selected messages discarded (with a reason; undo with U)"
    params = (*SELECTION_PARAMS, ParamSpec("reason", ParamType.STR, _REASON.help, required=True))

    def __init__(self, store: DlqStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(store, clock=clock)
        self._plans: dict[str, tuple[DiscardPlan, str]] = {}

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        reason = str(params.get("reason", "")).strip()
        if not reason:
            return Refusal(RefusalReason.INVALID, "Discard needs a reason (it goes into the journal and the row)")
        if len(reason) > MAX_DISCARD_REASON:
            return Refusal(RefusalReason.INVALID, f"the reason is longer than {MAX_DISCARD_REASON} characters")
        selection = selection_from(params)
        if isinstance(selection, str):
            return Refusal(RefusalReason.INVALID, f"{self.title}: {selection}")
        plan = await self.store.plan_discard(selection)
        if isinstance(plan, DlqError):
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: {plan.message}")
        if plan.will_discard == 0:
            return Refusal(RefusalReason.NOTHING_TO_DO, f"{self.title}: none of {plan.selected:,} is waiting")
        lines = [f"{plan.will_discard:,} of {plan.selected:,} messages will be marked discarded (not deleted; "
                 "U undoes it)", f"reason: {reason}", f"selection: {selection.describe()}"]
        lines += [f"  {c.error_code if c.error_code is not None else 'none'}: {c.will_requeue:,} — {c.meaning}"
                  for c in plan.by_code]
        excluded = tuple({"id": f"{r.count:,} messages", "reason": r.reason} for r in plan.refused)
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier,
                          target=f"{plan.will_discard:,} messages", confirm_text=f"{plan.will_discard} messages",
                          data_as_of=plan.planned_at, lines=tuple(lines), excluded=excluded, params=dict(params))
        self._plans[preview.preview_id] = (plan, reason)
        return preview

    async def execute(self, preview: Preview) -> Outcome:
        found = self._plans.pop(preview.preview_id, None)
        if found is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        plan, reason = found
        hooks = self.hooks_for(preview)
        result = await self.store.discard(plan, reason, on_progress=hooks.progress, cancel=hooks.cancel)
        return _outcome(result, good=result.discarded)


class UndoDiscard(_DlqAction):
    """Put discarded messages back to waiting (their history keeps the discard)."""

    id = "dlq.undo_discard"
    title = "Undo discard"
    tier = RiskTier.REVERSIBLE
    start_key = "U"
    description = "Put the selected discarded messages back to waiting"
    params = (ParamSpec("ids", ParamType.INT_LIST, "the ids of discarded messages (filter status:discarded)",
                        required=True),)
    param_rules = ()

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        raw = params.get("ids")
        if not isinstance(raw, (list, tuple)) or not raw:
            return Refusal(RefusalReason.INVALID, "select the discarded messages to restore (filter status:discarded)")
        ids = sorted({int(i) for i in raw})
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target=f"{len(ids):,} messages",
                       confirm_text=f"{len(ids)} messages", data_as_of=self.clock(),
                       lines=(f"{len(ids):,} discarded messages go back to waiting: {id_ranges(ids, limit=200)}",),
                       params={"ids": ids})

    async def execute(self, preview: Preview) -> Outcome:
        hooks = self.hooks_for(preview)
        result = await self.store.undo_discard(preview.params["ids"], on_progress=hooks.progress,
                                               cancel=hooks.cancel)
        return _outcome(result, good=result.restored)


class FixPayload(_DlqAction):
    """Replace one waiting message's payload with validated JSON; the original is kept."""

    id = "dlq.fix_payload"
    title = "Fix payload"
    tier = RiskTier.REVERSIBLE
    start_key = "e"
    description = "Replace a message's payload with corrected JSON (the original is kept in its history)"
    params = (ParamSpec("id", ParamType.INT, "the message id", required=True),
              ParamSpec("payload", ParamType.STR, "the corrected payload: JSON with MessageSid, To, From and Body",
                        required=True, max_len=4 * 256 * 1024),
              ParamSpec("expected_digest", ParamType.STR, "the payload digest the edit started from: refused if "
                        "the message changed since"))
    param_rules = ()

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        try:
            message_id = int(params["id"])
        except (KeyError, TypeError, ValueError):
            return Refusal(RefusalReason.INVALID, "which message? (id missing)")
        text = str(params.get("payload", ""))
        check = check_payload_text(text)
        if not check.ok:
            return Refusal(RefusalReason.INVALID, f"not accepted: {check.problem}; nothing was changed")
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target=f"message {message_id}",
                       confirm_text=str(message_id), data_as_of=self.clock(),
                       lines=(f"message {message_id}: new payload of {len(check.canonical):,} characters, "
                              "valid JSON with the fields the queue needs", "the original stays in the row's history"),
                       params={"id": message_id, "payload": check.canonical,
                               "expected_digest": str(params.get("expected_digest", ""))})

    async def execute(self, preview: Preview) -> Outcome:
        result = await self.store.fix_payload(int(preview.params["id"]), str(preview.params["payload"]),
                                              expected_digest=preview.params.get("expected_digest") or None)
        if isinstance(result, DlqError):
            return Outcome(OutcomeStatus.FAILED, f"not fixed: {result.message}", error=result.message)
        return Outcome(OutcomeStatus.OK, f"message {result.id}: payload replaced ({result.bytes_before:,} -> "
                                         f"{result.bytes_after:,} bytes); the original is in its history",
                       items=({"id": result.id, "result": "fixed"},))


def dlq_actions(settings: Settings, store: DlqStore | None) -> Sequence[GuardedAction]:
    """The DLQ actions, or none without `[dlq]` and a database."""
    if store is None or settings.dlq is None or settings.supabase is None or settings.supabase.database_url is None:
        return []
    return [RequeueMessages(store), DiscardMessages(store), UndoDiscard(store), FixPayload(store)]
