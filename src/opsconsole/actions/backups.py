"""`backups.restore`: restore the database from a daily backup or to a point in time (runbook
"Backups & Restore Plan": severity check, initiate the restore, the DOWNTIME WARNING).

Params: `backup=ID` (a completed physical daily backup, `POST .../database/backups/restore`) or
`pitr=2026-12-01T03:00:00Z` (with the PITR add-on, `POST .../restore-pitr` with
`recovery_time_target_unix`); `reason=` (required: the runbook's severity check, why SQL updates
cannot fix the corruption; journaled).

The preview says exactly what is lost: every write after the restore point (the time span, and
the rows the live database can count since then in its tables with timestamp columns), the
database size (`pg_database_size`), an expected downtime range with its basis, and the runbook's
DOWNTIME WARNING in full, which must stay on screen `WARNING_HOLD_S` seconds before the confirm
key does anything. Destructive: the operator types the project ref. Lock `backups:<ref>`.

Execute re-checks the project status (never two restores), sends the request, publishes the
restore in `RestoreState` (the database checks then say "restore in progress"), and follows the
project status (RESTORING -> ACTIVE_HEALTHY or RESTORE_FAILED) with the elapsed time against the
estimate, reporting progress to a hook (the console's Backups tab, the CLI's stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamRule, ParamSpec, ParamType, one_of
from opsconsole.actions.policy import WARNING_HOLD_S
from opsconsole.domain.backups import (
    ACTIVE_HEALTHY,
    DOWNTIME_WARNING,
    RESTORE_FAILED,
    RESTORING,
    Backup,
    BackupInventory,
)
from opsconsole.domain.models import utcnow
from opsconsole.domain.restore import THIS_CONSOLE, RestoreInProgress, RestoreState
from opsconsole.domain.text import format_age
from opsconsole.settings import Settings

if TYPE_CHECKING:
    from opsconsole.adapters.restore_impact import RestoreImpact
    from opsconsole.adapters.supabase import SupabaseAdapter

LOCK_PREFIX = "backups:"
MIN_REASON = 10
MAX_REASON = 1000
POLL_S = 3.0
START_GRACE_S = 120.0  # after the request was accepted, how long to wait to see RESTORING
EXECUTE_TIMEOUT_S = 6 * 3600.0

# The downtime estimate: a stated rule of thumb, not a promise. Fixed overhead (stop, provision,
# start, health checks) plus the size at a fast and a slow restore rate; PITR replays WAL on top.
FIXED_LOW_S, FIXED_HIGH_S = 2 * 60.0, 10 * 60.0
RATE_FAST_BPS, RATE_SLOW_BPS = 400e6, 40e6
PITR_EXTRA_HIGH_S = 10 * 60.0

ProgressHook = Callable[[RestoreInProgress], None]
# Statuses on the way back from a restore: keep following (anything else after RESTORING ends it).
_STILL_GOING = frozenset({RESTORING, "COMING_UP", "RESTARTING", "UNKNOWN", "GOING_DOWN", "UPGRADING", "RESIZING"})


def estimate_downtime(size_bytes: int | None, *, pitr: bool) -> tuple[tuple[float, float], str]:
    """(low, high) seconds and the basis in words."""
    from opsconsole.adapters.restore_impact import human_bytes

    if size_bytes is None:
        low, high = FIXED_LOW_S, 4 * 3600.0
        basis = ("the database size could not be read: a rule of thumb for an unknown size (the runbook: "
                 "minutes to hours)")
    else:
        low = FIXED_LOW_S + size_bytes / RATE_FAST_BPS
        high = FIXED_HIGH_S + size_bytes / RATE_SLOW_BPS + (PITR_EXTRA_HIGH_S if pitr else 0.0)
        basis = (f"{human_bytes(size_bytes)} (pg_database_size) at {RATE_SLOW_BPS / 1e6:.0f}–{RATE_FAST_BPS / 1e6:.0f} "
                 f"MB/s plus {FIXED_LOW_S / 60:.0f}–{FIXED_HIGH_S / 60:.0f} min to stop, provision and start"
                 + (f", plus up to {PITR_EXTRA_HIGH_S / 60:.0f} min of WAL replay for a point in time" if pitr else "")
                 + "; a rule of thumb, not Supabase's figure")
    return (low, high), basis


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class _Plan:
    kind: str  # "backup" | "pitr"
    backup_id: int | None
    target: datetime
    what: str
    estimate: tuple[float, float]
    basis: str


class RestoreBackup:
    """Restore the whole database to a daily backup or a point in time (Supabase Management API)."""

    id = "backups.restore"
    title = "Restore the database"
    tier = RiskTier.DESTRUCTIVE
    start_key = "R"
    tab = "backups"
    description = ("Restore the database from a daily backup or to a point in time: every write after it is lost "
                   "and the database is OFFLINE for the duration")
    needs = "[supabase] access_token"
    params = (
        ParamSpec("backup", ParamType.INT, "the id of a completed daily backup (Backups tab)"),
        ParamSpec("pitr", ParamType.TIMESTAMP, "a point in time inside the PITR window, e.g. 2026-12-01T03:00:00Z"),
        ParamSpec("reason", ParamType.STR, "the severity check: why SQL updates cannot fix the corruption "
                  "(journaled)", required=True, max_len=MAX_REASON),
    )
    param_rules: tuple[ParamRule, ...] = (one_of("backup", "pitr"),)
    execute_timeout_s = EXECUTE_TIMEOUT_S

    def __init__(self, settings: Settings, supabase: SupabaseAdapter, state: RestoreState, *,
                 operator: str = "", clock: Callable[[], datetime] = utcnow, poll_s: float = POLL_S,
                 start_grace_s: float = START_GRACE_S) -> None:
        self.settings = settings
        self.supabase = supabase
        self.state = state
        self.operator = operator
        self.clock = clock
        self.poll_s = poll_s
        self.start_grace_s = start_grace_s
        self.progress_hooks: dict[str, ProgressHook] = {}  # preview_id -> hook, set before kernel.run
        self._plans: dict[str, _Plan] = {}

    @property
    def project_ref(self) -> str:
        assert self.settings.supabase is not None
        return self.settings.supabase.project_ref

    # -- preview ----------------------------------------------------------------------------
    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        reason = " ".join(str(params.get("reason", "")).split())
        if len(reason) < MIN_REASON:
            return Refusal(RefusalReason.INVALID,
                           "a restore needs the reason: the runbook's severity check is to restore only if the "
                           "corruption cannot be fixed with SQL updates; say why it cannot (reason=..., at least "
                           f"{MIN_REASON} characters; it goes into the journal)")
        now = self.clock()
        status, problem = await self.supabase.project_status()
        if status is None:
            return Refusal(RefusalReason.UNAVAILABLE, f"the project status cannot be read: {problem}; no restore "
                                                      "without knowing the project's state")
        if status == RESTORING or self.state.current() is not None:
            current = self.state.current()
            seen = f" ({current.describe(now)})" if current is not None else ""
            return Refusal(RefusalReason.NOTHING_TO_DO, f"a restore is already in progress: the project is "
                                                        f"{status}{seen}; wait for it to end")
        listing = await self.supabase.list_backups()
        if listing.inventory is None:
            return Refusal(RefusalReason.UNAVAILABLE, f"the backups cannot be read: {listing.problem}")
        inv = listing.inventory
        plan = self._plan(params, inv, now)
        if isinstance(plan, Refusal):
            return plan
        impact = await self._impact(plan.target)
        size = impact.size_bytes if impact is not None else None
        estimate, basis = estimate_downtime(size, pitr=plan.kind == "pitr")
        plan = _Plan(plan.kind, plan.backup_id, plan.target, plan.what, estimate, basis)
        return self._preview(plan, inv, impact, reason, status, now)

    def _plan(self, params: Mapping[str, Any], inv: BackupInventory, now: datetime) -> _Plan | Refusal:
        if "backup" in params:
            wanted = int(params["backup"])
            backup = next((b for b in inv.backups if b.id == wanted), None)
            if backup is None:
                ids = ", ".join(str(b.id) for b in inv.backups[:8]) or "none"
                return Refusal(RefusalReason.INVALID, f"no backup {wanted} in this project's list (newest: {ids})")
            if not backup.completed:
                return Refusal(RefusalReason.INVALID, f"backup {wanted} is {backup.status}, not COMPLETED: it cannot "
                                                      "be restored")
            if not backup.is_physical:
                return Refusal(RefusalReason.INVALID, f"backup {wanted} is a logical backup; the Management API "
                                                      "restores physical backups only (use the dashboard)")
            return _Plan("backup", backup.id, backup.inserted_at, self._backup_words(backup, inv, now), (0, 0), "")
        target = datetime.fromisoformat(str(params["pitr"]).replace("Z", "+00:00"))
        if not inv.pitr_enabled:
            return Refusal(RefusalReason.INVALID, "PITR is not enabled for this project: restore a daily backup "
                                                  "(backup=ID) instead")
        window = inv.pitr_window
        if target > now:
            return Refusal(RefusalReason.INVALID, f"{_stamp(target)} is in the future")
        if window is not None and window.earliest is not None and target < window.earliest:
            return Refusal(RefusalReason.INVALID, f"{_stamp(target)} is before the PITR window (earliest "
                                                  f"{_stamp(window.earliest)})")
        if window is not None and window.latest is not None and target > window.latest:
            return Refusal(RefusalReason.INVALID, f"{_stamp(target)} is after the newest restorable point "
                                                  f"({_stamp(window.latest)})")
        return _Plan("pitr", None, target, f"the point in time {_stamp(target)} (PITR)", (0, 0), "")

    @staticmethod
    def _backup_words(backup: Backup, inv: BackupInventory, now: datetime) -> str:
        words = f"daily backup {backup.id} taken {_stamp(backup.inserted_at)}"
        newer = inv.newest_completed
        if newer is not None and newer.id != backup.id and newer.inserted_at > backup.inserted_at:
            words += f" (a newer one exists: {newer.id}, {_stamp(newer.inserted_at)})"
        return words

    async def _impact(self, since: datetime) -> RestoreImpact | None:
        from opsconsole.adapters.postgres import ConfigProblem, reveal_dsn
        from opsconsole.adapters.restore_impact import RestoreImpact, measure

        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            return RestoreImpact(problem="no [supabase] database_url: the database cannot be asked")
        try:
            dsn = reveal_dsn(sb.database_url)
        except ConfigProblem as exc:
            return RestoreImpact(problem=f"database URL unusable: {exc}")
        return await measure(dsn, since, timeout_s=float(self.settings.checks.timeout_s))

    def _preview(self, plan: _Plan, inv: BackupInventory, impact: RestoreImpact | None, reason: str, status: str,
                 now: datetime) -> Preview:
        from opsconsole.adapters.restore_impact import human_bytes

        ref = self.project_ref
        span = (now - plan.target).total_seconds()
        low, high = plan.estimate
        lines = [f"Restore project {ref} ({inv.region or 'region ?'}, now {status}) to {plan.what}.",
                 f"LOST: every write after {_stamp(plan.target)}: {format_age(span)} of writes "
                 f"(until {_stamp(now)}, and whatever is written until the restore starts)."]
        items: list[dict[str, Any]] = []
        if impact is None or impact.problem:
            lines.append(f"Rows written since then: NOT COUNTED: {impact.problem if impact else 'no database'}.")
        else:
            counted = [t for t in impact.tables if t.rows is not None]
            lines.append(f"Rows written or changed since then, counted in {len(counted)} table(s) with timestamp "
                         f"columns: {impact.rows_since:,} in all.")
            for t in sorted(impact.tables, key=lambda t: -(t.rows or 0)):
                if t.rows:
                    lines.append(f"  {t.table}: {t.rows:,} rows (by {', '.join(t.columns)})")
                elif t.rows is None:
                    lines.append(f"  {t.table}: {t.note}")
                items.append(t.to_json())
            if impact.uncountable:
                shown = ", ".join(impact.uncountable[:8]) + (" …" if len(impact.uncountable) > 8 else "")
                lines.append(f"  Without a timestamp column (their changes are lost too, uncounted): {shown}")
            if impact.truncated:
                lines.append("  Only the first 200 tables were looked at.")
        size = impact.size_bytes if impact is not None else None
        lines.append(f"Database size: {human_bytes(size)} (pg_database_size).")
        lines.append(f"Expected downtime: {format_age(low)}–{format_age(high)}; basis: {plan.basis}.")
        lines.append(f"Severity check (journaled): {reason}")
        lines.append("While it runs the database is OFFLINE: the API's queries fail, and the console's database "
                     "checks say \"restore in progress\".")
        params: dict[str, Any] = {"reason": reason}
        if plan.kind == "backup":
            params["backup"] = plan.backup_id
        else:
            params["pitr"] = plan.target.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier, target=f"project {ref}",
                          confirm_text=ref, data_as_of=now, lines=tuple(lines), items=tuple(items),
                          warning=f"DOWNTIME WARNING: {DOWNTIME_WARNING}", params=params,
                          lock_key=f"{LOCK_PREFIX}{ref}", warning_hold_s=WARNING_HOLD_S)
        self._plans[preview.preview_id] = plan
        return preview

    # -- execute ----------------------------------------------------------------------------
    async def execute(self, preview: Preview) -> Outcome:
        plan = self._plans.pop(preview.preview_id, None)
        hook = self.progress_hooks.pop(preview.preview_id, None)
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's plan is gone: preview again", error="no plan")
        status, problem = await self.supabase.project_status()
        if status is None:
            return Outcome(OutcomeStatus.FAILED, f"nothing was sent: the project status cannot be read ({problem})",
                           error=problem or "status unknown")
        if status == RESTORING:
            return Outcome(OutcomeStatus.FAILED, "nothing was sent: a restore is already in progress "
                                                 "(project RESTORING)", error="already restoring")
        if plan.kind == "backup":
            assert plan.backup_id is not None
            answer = await self.supabase.restore_backup(plan.backup_id)
        else:
            answer = await self.supabase.restore_pitr(int(plan.target.timestamp()))
        item: dict[str, Any] = {"restore_to": plan.target.isoformat(), "what": plan.what,
                                "request_status": answer.status_code}
        if not answer.ok:
            item["result"] = "refused"
            return Outcome(OutcomeStatus.FAILED, f"Supabase refused the restore: {answer.problem}; nothing changed",
                           items=(item,), error=answer.problem or "refused")
        started = self.clock()
        self.state.begin(RestoreInProgress(project_ref=self.project_ref, started_at=started, source=THIS_CONSOLE,
                                           what=plan.what, operator=self.operator, estimate_s=plan.estimate,
                                           estimate_basis=plan.basis, attempt=preview.preview_id))
        final = "console stopped following"
        try:
            final, seen, last_problem = await self._follow(hook)
        finally:
            self.state.end(final, self.clock())
        elapsed = (self.clock() - started).total_seconds()
        low, high = plan.estimate
        item.update(result=final, elapsed_s=round(elapsed, 1), estimate_s=[round(low), round(high)])
        against = f"{format_age(elapsed)} (expected {format_age(low)}–{format_age(high)})"
        if final == ACTIVE_HEALTHY:
            item["result"] = "restored"
            return Outcome(OutcomeStatus.OK, f"restore finished: project {ACTIVE_HEALTHY} after {against}; the "
                                             f"database is as of {_stamp(plan.target)}", items=(item,))
        if final == RESTORE_FAILED:
            return Outcome(OutcomeStatus.FAILED, f"the restore FAILED after {against} (project {RESTORE_FAILED}): "
                                                 "open the Supabase dashboard and contact Supabase support",
                           items=(item,), error=RESTORE_FAILED)
        if not seen:
            return Outcome(OutcomeStatus.PARTIAL, f"Supabase accepted the restore (HTTP {answer.status_code}) but the "
                                                  f"project never showed {RESTORING} within "
                                                  f"{self.start_grace_s:g} s (it is {final}): check the dashboard",
                           items=(item,), error="not seen restoring")
        return Outcome(OutcomeStatus.PARTIAL, f"the restore ended in {final} after {against}"
                                              + (f" ({last_problem})" if last_problem else ""), items=(item,),
                       error=final)

    async def _follow(self, hook: ProgressHook | None) -> tuple[str, bool, str]:
        """Poll the project status until the restore ends: (final status, RESTORING seen, last problem)."""
        seen_restoring = False
        accepted_at = time.monotonic()
        last_problem = ""
        while True:
            status, problem = await self.supabase.project_status()
            if status is None:
                last_problem = problem or "status unknown"  # a flaky API is not the end of a restore
            else:
                self.state.update(status)
                if status == RESTORING:
                    seen_restoring = True
                elif status == RESTORE_FAILED:
                    return status, seen_restoring, last_problem
                elif seen_restoring and status not in _STILL_GOING:
                    return status, True, last_problem
                elif not seen_restoring and time.monotonic() - accepted_at > self.start_grace_s:
                    return status, False, last_problem
            current = self.state.current()
            if hook is not None and current is not None:
                with contextlib.suppress(Exception):  # a display problem never stops the follow
                    hook(current)
            await asyncio.sleep(self.poll_s)


def backup_actions(settings: Settings, supabase: Any, state: RestoreState, *,
                   operator: str = "") -> list[GuardedAction]:
    """The restore action, or none without the Management API ([supabase] access_token)."""
    sb = settings.supabase
    if sb is None or sb.access_token is None or supabase is None:
        return []
    return [RestoreBackup(settings, supabase, state, operator=operator)]


__all__ = ["RestoreBackup", "backup_actions", "estimate_downtime"]
