"""Guarded actions on Vercel: redeploy production (cycles its instances) and promote a deployment
(instant rollback), each followed until Vercel says how it ended.

Both take the operator lock `vercel:<project>` (one deploy change at a time across consoles) and
report their progress through per-preview hooks (the pattern of `actions.dlq`): the Deploy tab
shows the new deployment's state live, `opsconsole action run` prints it to stderr. A POST is
never retried: after a timeout or a 5xx nobody knows whether the build or promotion started, and
the outcome says so. The journal's final event records the new deployment and its final state
(redeploy) or what served before (promote), which is what `u` (undo: promote that one back) reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamRule, ParamSpec, ParamType
from opsconsole.adapters.http import HttpOutcome
from opsconsole.domain.deploys import BuildEvent, Deployment, PromotionJob
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import format_age, printable
from opsconsole.settings import SecretError, Settings

REDEPLOY_TIMEOUT_S = 50 * 60.0  # Vercel stops a build after 45 minutes; plus time in the queue
PROMOTE_TIMEOUT_S = 15 * 60.0  # a promotion of a preview deployment rebuilds it first
MAX_POLL_FAILURES = 30  # consecutive failed status reads before the follow gives up


class DeployApi(Protocol):
    """What the actions need of `adapters.vercel.VercelAdapter` (UI tests pass a fake)."""

    @property
    def project_id(self) -> str: ...

    def token_problem(self, exc: SecretError) -> str: ...

    async def get_deployment(self, ident: str) -> tuple[Deployment | None, HttpOutcome]: ...

    async def fetch_deployments(self, limit: int, *, target: str | None = None,
                                page_size: int = 100) -> tuple[list[Deployment], HttpOutcome]: ...

    async def rollback_info(self) -> tuple[PromotionJob | None, Deployment | None, HttpOutcome]: ...

    async def redeploy(self, source: Deployment, *, reason: str = ...) -> tuple[Deployment | None, HttpOutcome]: ...

    async def build_events(self, ident: str, limit: int = ...) -> tuple[list[BuildEvent], HttpOutcome]: ...

    async def promote(self, deployment_id: str) -> HttpOutcome: ...


@dataclass(frozen=True, slots=True)
class DeployProgress:
    """Where a redeploy or promotion is. `state` is the deployment's (QUEUED, BUILDING, READY,
    ERROR) or the promotion job's (pending, in-progress, succeeded, failed)."""

    action: str
    deployment: Deployment | None
    state: str
    elapsed_s: float
    message: str = ""
    final: bool = False

    def line(self) -> str:
        who = self.deployment.id if self.deployment is not None else "?"
        text = f"{self.action}: {who} {self.state} after {format_age(self.elapsed_s)}"
        return text + (f" — {self.message}" if self.message else "")


ProgressFn = Callable[[Any], Awaitable[None] | None]


@dataclass
class DeployHooks:
    """What the UI (or the CLI) passes for one run: a progress callback and a stop-following flag."""

    progress: ProgressFn | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class PromotionRecord:
    """A successful promote found in the journal: what served before (`from_id`) and after."""

    from_id: str
    to_id: str
    at: str
    operator: str
    attempt: str = ""
    from_label: str = ""


def last_promotion(events: Iterable[Mapping[str, Any]], project_id: str = "") -> PromotionRecord | None:
    """The newest journaled `vercel.promote` that succeeded (for `u`: the way back)."""
    found: PromotionRecord | None = None
    for event in events:
        if event.get("kind") != "action" or event.get("action") != "vercel.promote" or event.get("outcome") != "ok":
            continue
        result = event.get("result")
        items = result.get("items") if isinstance(result, Mapping) else None
        item = items[0] if isinstance(items, list) and items and isinstance(items[0], Mapping) else None
        if item is None or not isinstance(item.get("from"), str) or not isinstance(item.get("to"), str):
            continue
        if project_id and item.get("project") not in (None, project_id):
            continue
        operator = event.get("operator")
        who = operator.get("user") if isinstance(operator, Mapping) else None
        found = PromotionRecord(from_id=item["from"], to_id=item["to"], at=str(event.get("ts") or ""),
                                operator=str(who or "?"), attempt=str(event.get("attempt") or ""),
                                from_label=str(item.get("from_label") or ""))
    return found


def _when(ts: str) -> str:
    """A journal timestamp as '2026-11-27 03:12 UTC'."""
    return ts[:16].replace("T", " ") + " UTC" if len(ts) >= 16 else ts


def label(dep: Deployment, now: datetime | None = None) -> str:
    """'dpl_x  a1b2c3d "Fix pool size" (main) · 47m old'."""
    parts = [dep.id]
    if dep.short_sha:
        parts.append(dep.short_sha)
    if dep.message:
        parts.append(f'"{printable(dep.message, single_line=True, limit=60)}"')
    if dep.ref:
        parts.append(f"({printable(dep.ref, single_line=True, limit=40)})")
    return " ".join(parts) + f" · {format_age(dep.age_s(now))} old"


def _target_kind(dep: Deployment) -> str:
    return {"production": "production", "staging": "staging"}.get(dep.target or "", "preview")


def describe_refusal(outcome: HttpOutcome, what: str, *, post: bool) -> tuple[str, bool]:
    """(message, nothing_done) for a failed Vercel call, with what it means for the operator.

    4xx: Vercel refused, nothing was done. 5xx, timeouts and broken connections on a POST: it may
    or may not have started (a POST is never retried), so the operator is told to look first."""
    problem = outcome.problem or f"{what} failed"
    code = outcome.status_code
    if outcome.kind == "http" and code is not None:
        if code == 402:
            return (f"{what} refused: HTTP 402 from Vercel: the team's plan or billing does not allow it "
                    f"({problem}); nothing was done. Check the team's billing and plan on vercel.com", True)
        if code == 403:
            return f"{what} refused: {problem}; nothing was done", True
        if code == 409:
            return f"{what} refused by Vercel (409 conflict): {problem}; nothing was done", True
        if code == 429:
            wait = f"retry after {outcome.retry_after_s:.0f} s" if outcome.retry_after_s is not None else \
                "retry in a minute"
            return f"{what} refused: Vercel is rate limiting this token (HTTP 429); {wait}; nothing was done", True
        if 400 <= code < 500:
            return f"{what} refused: {problem}; nothing was done", True
    if not post:
        return f"{what}: {problem}", True
    return (f"{what}: {problem}. Vercel may or may not have started it (a POST is never retried): check the "
            "Deploy tab (r refreshes) before trying again", False)


async def _report(hooks: DeployHooks, progress: DeployProgress) -> None:
    if hooks.progress is None:
        return
    got = hooks.progress(progress)
    if asyncio.iscoroutine(got) or isinstance(got, asyncio.Future):
        await got


_DEPLOYMENT = ParamSpec("deployment", ParamType.STR, "a Vercel deployment id (dpl_...)", max_len=100)


def _deployment_param(params: Mapping[str, Any]) -> str | Refusal | None:
    raw = params.get("deployment")
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip()
    if not value.startswith("dpl_") or len(value) > 100 or not value[4:].isalnum():
        return Refusal(RefusalReason.INVALID, f"deployment={printable(value, single_line=True, limit=60)!r} is not "
                                              "a Vercel deployment id (dpl_ followed by letters and digits)")
    return value


class _VercelAction:
    needs = "[vercel]"

    def __init__(self, api: DeployApi | Callable[[], DeployApi], *, clock: Callable[[], datetime] = utcnow,
                 poll_s: float = 2.0) -> None:
        self._api_source = api
        self._api: DeployApi | None = None
        self.clock = clock
        self.poll_s = poll_s
        self.hooks: dict[str, DeployHooks] = {}  # preview_id -> hooks, set by the UI/CLI before kernel.run
        self._plans: dict[str, dict[str, Deployment]] = {}

    @property
    def api(self) -> DeployApi:
        """The adapter; built on first use (registering the action must not build every adapter)."""
        if self._api is None:
            source = self._api_source
            is_api = hasattr(source, "rollback_info")
            self._api = source if is_api else source()  # type: ignore[assignment,operator]
        assert self._api is not None
        return self._api

    @property
    def lock_key(self) -> str:
        return f"vercel:{self.api.project_id}"

    def hooks_for(self, preview: Preview) -> DeployHooks:
        found = self.hooks.pop(preview.preview_id, None)
        if found is None:
            return DeployHooks()
        if isinstance(found, DeployHooks):
            return found
        # the CLI passes a generic hooks object (progress + cancel): take what it has
        return DeployHooks(progress=getattr(found, "progress", None),
                           cancel=getattr(found, "cancel", None) or asyncio.Event())

    async def _production(self) -> tuple[Deployment | None, PromotionJob | None, str | None]:
        """(serving deployment, last promotion job, problem)."""
        try:
            job, prod, outcome = await self.api.rollback_info()
        except SecretError as exc:
            return None, None, self.api.token_problem(exc)
        if outcome.problem is not None:
            return None, None, outcome.problem
        if prod is None:
            return None, job, "Vercel reports no deployment serving production"
        full, _ = await self._deployment(prod.id)  # the project's copy lacks build times
        return full or prod, job, None

    async def _deployment(self, ident: str) -> tuple[Deployment | None, HttpOutcome | str]:
        try:
            dep, outcome = await self.api.get_deployment(ident)
        except SecretError as exc:
            return None, self.api.token_problem(exc)
        return dep, outcome


class RedeployProduction(_VercelAction):
    """A new build of the deployment serving production (same commit and settings): fresh instances."""

    id = "vercel.redeploy"
    title = "Redeploy production"
    tier = RiskTier.DISRUPTIVE  # a new build replaces the serving instances when READY
    start_key = "R"
    tab = "deploy"
    description = "Redeploy the deployment serving production (same commit): a new build cycles its instances"
    params = (ParamSpec("deployment", ParamType.STR, "the deployment to redeploy, dpl_... (default: the one "
                        "serving production)", max_len=100),)
    param_rules: tuple[ParamRule, ...] = ()
    execute_timeout_s = REDEPLOY_TIMEOUT_S

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        wanted = _deployment_param(params)
        if isinstance(wanted, Refusal):
            return wanted
        prod, _job, problem = await self._production()
        if problem is not None or prod is None:
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: {problem}")
        source = prod
        if wanted is not None and wanted != prod.id:
            found, outcome = await self._deployment(wanted)
            if found is None:
                why = outcome if isinstance(outcome, str) else (outcome.problem or "not found")
                return Refusal(RefusalReason.INVALID, f"{self.title}: deployment {wanted}: {why}")
            source = found
        now = self.clock()
        lines = [f"redeploy: {label(source, now)}",
                 f"state {source.state}, {_target_kind(source)}"
                 + (", serving production now" if source.id == prod.id else f"; production serves {prod.id}"),
                 "a new build of the same commit and settings starts (withLatestCommit=false); when it is "
                 "READY it serves production on fresh instances",
                 "nothing changes for users until the new build is READY; if it fails, production keeps "
                 "serving " + prod.id]
        build = source.build_s()
        if build is not None and source.final:
            lines.append(f"its own build took {format_age(build)}")
        if source.id != prod.id and source.target != "production":
            lines.append(f"note: {source.id} is a {_target_kind(source)} deployment: the new build serves "
                         "production with the production environment")
        recent, _listed = await self._recent_production()
        running = [d for d in recent if d.in_progress]
        if running:
            d = running[0]
            lines.append(f"note: a production build is already running: {d.id} {d.state} for "
                         f"{format_age(d.age_s(now))}")
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier,
                          target=f"{source.id} ({source.short_sha or 'no sha'})",
                          confirm_text=source.short_sha or source.id, data_as_of=now, lines=tuple(lines),
                          params={"deployment": source.id}, lock_key=self.lock_key)
        self._plans[preview.preview_id] = {"source": source, "production": prod}
        return preview

    async def _recent_production(self) -> tuple[list[Deployment], HttpOutcome | None]:
        try:
            found, outcome = await self.api.fetch_deployments(5, target="production")
        except SecretError:
            return [], None
        return found, outcome

    async def execute(self, preview: Preview) -> Outcome:
        plan = self._plans.pop(preview.preview_id, None)
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        source, before = plan["source"], plan["production"]
        hooks = self.hooks_for(preview)
        started = time.monotonic()
        try:
            new, outcome = await self.api.redeploy(source)
        except SecretError as exc:
            text = self.api.token_problem(exc)
            return Outcome(OutcomeStatus.FAILED, f"not redeployed: {text}", error=text)
        if new is None:
            message, nothing = describe_refusal(outcome, "redeploy", post=True)
            return Outcome(OutcomeStatus.FAILED, message, error=message,
                           items=({"result": "refused" if nothing else "unknown", "source": source.id,
                                   "http_status": outcome.status_code},))
        await _report(hooks, DeployProgress(self.id, new, new.state, 0.0, "build requested"))
        final, note = await self._follow(new, hooks, started)
        base: dict[str, Any] = {"source": source.id, "sha": source.sha, "new_deployment": final.id,
                                "final_state": final.state, "served_before": before.id,
                                "build_s": round(final.build_s() or 0.0, 1),
                                "project": self.api.project_id}
        if final.state == "READY":
            serving = await self._serving_id()
            base["serving_now"] = serving
            where = "and serves production" if serving == final.id else \
                f"(production still serves {serving or '?'}: Vercel assigns the domains shortly)"
            summary = f"redeployed {source.short_sha or source.id}: {final.id} READY in " \
                      f"{format_age(final.build_s() or time.monotonic() - started)} {where}"
            await _report(hooks, DeployProgress(self.id, final, "READY", time.monotonic() - started, where,
                                                final=True))
            return Outcome(OutcomeStatus.OK, summary, items=({"result": "ready", **base},))
        if final.state == "ERROR" or final.failed:
            error = await self._build_error(final)
            base["error"] = error
            summary = f"redeploy of {source.short_sha or source.id} failed: {final.id} {final.state}: {error}; " \
                      f"production still serves {before.id}"
            await _report(hooks, DeployProgress(self.id, final, final.state, time.monotonic() - started, error,
                                                final=True))
            return Outcome(OutcomeStatus.FAILED, summary, items=({"result": final.state.lower(), **base},),
                           error=error)
        summary = f"redeploy started: {final.id} is {final.state}; {note} (the build continues on Vercel: the " \
                  "Deploy tab shows how it ends)"
        await _report(hooks, DeployProgress(self.id, final, final.state, time.monotonic() - started, note,
                                            final=True))
        return Outcome(OutcomeStatus.PARTIAL, summary, items=({"result": "following_stopped", **base},),
                       error=note)

    async def _serving_id(self) -> str:
        try:
            _job, prod, _ = await self.api.rollback_info()
        except SecretError:
            return ""
        return prod.id if prod is not None else ""

    async def _follow(self, dep: Deployment, hooks: DeployHooks, started: float) -> tuple[Deployment, str]:
        """Poll the new deployment until its state is final (or the operator stops following)."""
        current, failures, last_state = dep, 0, dep.state
        while not current.final:
            if await _wait(hooks.cancel, self.poll_s):
                return current, "following stopped by the operator"
            found, outcome = await self._deployment(dep.id)
            if found is None:
                failures += 1
                why = outcome if isinstance(outcome, str) else (outcome.problem or "no answer")
                await _report(hooks, DeployProgress(self.id, current, current.state, time.monotonic() - started,
                                                    f"could not read the state ({why}); retrying"))
                if failures >= MAX_POLL_FAILURES:
                    return current, f"its state could not be read {failures} times in a row ({why})"
                continue
            failures = 0
            current = found
            if current.state != last_state or not current.final:
                last_state = current.state
                await _report(hooks, DeployProgress(self.id, current, current.state, time.monotonic() - started))
        return current, ""

    async def _build_error(self, dep: Deployment) -> str:
        """The build's own error lines (stderr, fatal), else Vercel's errorMessage."""
        try:
            events, outcome = await self.api.build_events(dep.id, 200)
        except SecretError:
            events, outcome = [], None
        errors = [e.text for e in events if e.is_error and e.text]
        if errors:
            return printable(" | ".join(errors[-4:]), single_line=True, limit=400)
        fallback = dep.error_message or dep.error_code or "no error text"
        if outcome is not None and outcome.problem:
            return f"{fallback} (build events unavailable: {outcome.problem})"
        return fallback


class PromoteDeployment(_VercelAction):
    """Point production at another READY deployment (Vercel instant rollback: no rebuild)."""

    id = "vercel.promote"
    title = "Promote to production"
    tier = RiskTier.DISRUPTIVE
    start_key = "P"
    tab = "deploy"
    description = ("Promote a READY deployment to production (default: the previous working one); "
                   "undo=true promotes what served before the last promote")
    params = (ParamSpec("deployment", ParamType.STR, "the deployment to promote, dpl_... (default: the newest "
                        "READY production deployment before the one serving)", max_len=100),
              ParamSpec("undo", ParamType.BOOL, "promote what served before the last promote recorded in the "
                        "journal (the way back)"))
    param_rules: tuple[ParamRule, ...] = (
        ParamRule("deployment or undo, not both",
                  lambda v: "give deployment or undo=true, not both" if "deployment" in v and v.get("undo") else None),
    )
    execute_timeout_s = PROMOTE_TIMEOUT_S

    def __init__(self, api: DeployApi | Callable[[], DeployApi], *, clock: Callable[[], datetime] = utcnow,
                 poll_s: float = 1.0,
                 last_promotion: Callable[[], Awaitable[PromotionRecord | None]] | None = None) -> None:
        super().__init__(api, clock=clock, poll_s=poll_s)
        self.last_promotion = last_promotion

    async def _previous_working(self, current: Deployment) -> Deployment | str:
        try:
            found, outcome = await self.api.fetch_deployments(40, target="production")
        except SecretError as exc:
            return self.api.token_problem(exc)
        if outcome.problem is not None:
            return outcome.problem
        older = [d for d in found if d.state == "READY" and d.id != current.id and d.created_at < current.created_at]
        if not older:
            return "no READY production deployment older than the one serving: pick one on the Deploy tab"
        return older[0]

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        wanted = _deployment_param(params)
        if isinstance(wanted, Refusal):
            return wanted
        prod, job, problem = await self._production()
        if problem is not None or prod is None:
            return Refusal(RefusalReason.UNAVAILABLE, f"{self.title}: {problem}")
        record: PromotionRecord | None = None
        why = "the previous working deployment"
        if params.get("undo"):
            record = await self.last_promotion() if self.last_promotion is not None else None
            if record is None:
                return Refusal(RefusalReason.NOTHING_TO_DO, "nothing to undo: the journal has no successful promote "
                                                            "of this project")
            wanted, why = record.from_id, f"what served before the last promote, {_when(record.at)}"
        if wanted is None:
            target_or = await self._previous_working(prod)
            if isinstance(target_or, str):
                return Refusal(RefusalReason.NOTHING_TO_DO, f"{self.title}: {target_or}")
            target = target_or
            full, _ = await self._deployment(target.id)
            target = full or target
        else:
            found, outcome = await self._deployment(wanted)
            if found is None:
                text = outcome if isinstance(outcome, str) else (outcome.problem or "not found")
                return Refusal(RefusalReason.INVALID, f"{self.title}: deployment {wanted}: {text}")
            target = found
            if record is None:
                why = "picked by the operator"
        if target.id == prod.id:
            return Refusal(RefusalReason.NOTHING_TO_DO, f"{self.title}: {target.id} already serves production; "
                                                        "nothing to do")
        if target.state != "READY":
            return Refusal(RefusalReason.INVALID, f"{self.title}: {target.id} is {target.state}: only a READY "
                                                  "deployment can serve production")
        now = self.clock()
        lines = [f"from: {label(prod, now)} (serving now)",
                 f"to:   {label(target, now)} ({_target_kind(target)}, {why})",
                 "the production domains move to the target without a rebuild (Vercel instant rollback); "
                 f"the journal records that {prod.id} served before, and u on the Deploy tab promotes it back"]
        warning = ""
        if target.target != "production":
            warning = (f"{target.id} is a {_target_kind(target)} deployment: Vercel rebuilds it with the production "
                       "environment variables before it serves, which takes a build's time; check it uses the "
                       "production database and keys")
        if record is not None:
            lines.append(f"undoes the promote of {_when(record.at)} by {record.operator} ({record.from_id} -> "
                         f"{record.to_id})" + ("" if record.to_id == prod.id else
                                                f"; {record.to_id} no longer serves, {prod.id} does"))
        if job is not None and not job.final:
            lines.append(f"note: a promotion to {job.to_id} is {job.status} at Vercel")
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier,
                          target=f"{target.id} ({target.short_sha or 'no sha'}) to production",
                          confirm_text=target.short_sha or target.id, data_as_of=now, lines=tuple(lines),
                          warning=warning,
                          params={"deployment": target.id, **({"undo": True} if record is not None else {})},
                          lock_key=self.lock_key)
        self._plans[preview.preview_id] = {"target": target, "production": prod}
        return preview

    async def execute(self, preview: Preview) -> Outcome:
        plan = self._plans.pop(preview.preview_id, None)
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        target, before = plan["target"], plan["production"]
        hooks = self.hooks_for(preview)
        started = time.monotonic()
        base: dict[str, Any] = {"from": before.id, "from_sha": before.sha, "to": target.id, "to_sha": target.sha,
                                "project": self.api.project_id,
                                "from_label": f"{before.short_sha} {printable(before.message, limit=60)}".strip()}
        now_prod, _job, problem = await self._production()
        if problem is None and now_prod is not None and now_prod.id != before.id:
            text = f"production changed since the preview (now {now_prod.id}): nothing was done; preview again"
            return Outcome(OutcomeStatus.FAILED, text, error="stale", items=({"result": "stale", **base},))
        try:
            outcome = await self.api.promote(target.id)
        except SecretError as exc:
            text = self.api.token_problem(exc)
            return Outcome(OutcomeStatus.FAILED, f"not promoted: {text}", error=text)
        if outcome.problem is not None:
            message, nothing = describe_refusal(outcome, f"promote of {target.id}", post=True)
            if outcome.status_code == 409:
                message = (f"promote of {target.id} refused by Vercel (409): {outcome.problem}; it may already be "
                           "the current production deployment, or another promotion is running: nothing was done")
            return Outcome(OutcomeStatus.FAILED, message, error=message,
                           items=({"result": "refused" if nothing else "unknown",
                                   "http_status": outcome.status_code, **base},))
        await _report(hooks, DeployProgress(self.id, target, "pending", 0.0, f"Vercel accepted it "
                                            f"(HTTP {outcome.status_code})"))
        status, note = await self._follow_job(target, hooks, started)
        elapsed = time.monotonic() - started
        base["job_status"] = status
        if status == "succeeded":
            summary = f"promoted {target.id} ({target.short_sha}) to production in {format_age(elapsed)}; " \
                      f"{before.id} served before (u on the Deploy tab promotes it back)"
            await _report(hooks, DeployProgress(self.id, target, "succeeded", elapsed, "serves production",
                                                final=True))
            return Outcome(OutcomeStatus.OK, summary, items=({"result": "promoted", **base},))
        if status in ("failed", "skipped"):
            summary = f"promotion of {target.id} {status} at Vercel{': ' + note if note else ''}; production " \
                      f"still serves {before.id}"
            await _report(hooks, DeployProgress(self.id, target, status, elapsed, note, final=True))
            return Outcome(OutcomeStatus.FAILED, summary, items=({"result": status, **base},), error=summary)
        summary = f"promotion of {target.id} requested; {note} (Vercel continues: the Deploy tab shows how it ends)"
        await _report(hooks, DeployProgress(self.id, target, status, elapsed, note, final=True))
        return Outcome(OutcomeStatus.PARTIAL, summary, items=({"result": "following_stopped", **base},), error=note)

    async def _follow_job(self, target: Deployment, hooks: DeployHooks, started: float) -> tuple[str, str]:
        """Poll `rollbackInfo` until the job for `target` ends (or production is `target`)."""
        failures, last = 0, "pending"
        while True:
            if await _wait(hooks.cancel, self.poll_s):
                return last, "following stopped by the operator"
            job: PromotionJob | None = None
            prod: Deployment | None = None
            try:
                job, prod, read = await self.api.rollback_info()
                problem = read.problem
            except SecretError as exc:
                problem = self.api.token_problem(exc)
            if problem is not None:
                failures += 1
                await _report(hooks, DeployProgress(self.id, target, last, time.monotonic() - started,
                                                    f"could not read the job ({problem}); retrying"))
                if failures >= MAX_POLL_FAILURES:
                    return last, f"the job could not be read {failures} times in a row ({problem})"
                continue
            failures = 0
            if job is not None and job.to_id == target.id:
                if job.status != last:
                    last = job.status
                    await _report(hooks, DeployProgress(self.id, target, job.status, time.monotonic() - started))
                if job.status == "succeeded" or (job.final and prod is not None and prod.id == target.id):
                    return "succeeded", ""
                if job.final:
                    return job.status, f"Vercel reports the job {job.status}"
            elif prod is not None and prod.id == target.id:
                return "succeeded", ""


async def _wait(cancel: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`; True as soon as `cancel` is set."""
    try:
        await asyncio.wait_for(cancel.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def vercel_actions(settings: Settings, api: DeployApi | Callable[[], DeployApi] | None, *,
                   last_promotion: Callable[[], Awaitable[PromotionRecord | None]] | None = None,
                   ) -> Sequence[GuardedAction]:
    """The Vercel actions, or none without `[vercel]`."""
    if settings.vercel is None or api is None:
        return []
    return [RedeployProduction(api), PromoteDeployment(api, last_promotion=last_promotion)]
