"""Services: what the UI (and `opsconsole check`) receive. No Textual here.

`CheckRunner` runs checks concurrently, each under its own deadline, and turns anything a
check did not expect into an UNKNOWN result so one broken check never stops the others.
`StatusBoard` keeps the latest result per check and a short latency history.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.domain.db import ActivitySnapshot
from opsconsole.domain.models import SYSTEMS, CheckResult, Status, utcnow, worst
from opsconsole.domain.ports import Adapter, Check
from opsconsole.domain.restore import RestoreInProgress, RestoreState
from opsconsole.domain.text import format_age, printable
from opsconsole.settings import Settings

if TYPE_CHECKING:
    from opsconsole.actions.kernel import ActionKernel
    from opsconsole.actions.locks import OperatorLocks
    from opsconsole.adapters.dlq import DlqStore
    from opsconsole.adapters.vercel_logs import LogFollower
    from opsconsole.audit import Journal, UnfinishedAttempt, WizardRunRecord
    from opsconsole.domain.backups import BackupListing
    from opsconsole.domain.deploys import Deployment
    from opsconsole.domain.dlq import RelatedAlert
    from opsconsole.domain.migrations import MigrationListing
    from opsconsole.domain.n8n import ExecutionError, ExecutionFilter, ExecutionPage, PagePosition
    from opsconsole.runbooks.engine import Wizard
    from opsconsole.runbooks.loader import RunbookCatalog
    from opsconsole.runbooks.vocabulary import Vocabulary

# Stable check ids (design.md), with their system and title, in display order.
CHECK_CATALOG: tuple[tuple[str, str, str], ...] = (
    ("api.health", "api", "API /health"),
    ("vercel.deployment", "vercel", "Vercel production deployment"),
    ("vercel.status_page", "vercel", "Vercel status page"),
    ("supabase.status_page", "supabase", "Supabase status page"),
    ("supabase.health", "supabase", "Supabase services"),
    ("supabase.resources", "supabase", "Supabase CPU / memory / disk"),
    ("supabase.pooler", "supabase", "Connection pooler (6543)"),
    ("supabase.service_key", "supabase", "Service-role key"),
    ("db.long_running", "db", "Long-running queries"),
    ("db.migrations", "db", "Recent migrations"),
    ("n8n.executions", "n8n", "n8n sync executions"),
    ("n8n.credentials", "n8n", "n8n credentials"),
    ("twilio.alerts", "twilio", "Twilio error alerts"),
    ("dlq.depth", "dlq", "Dead-letter queue"),
    ("backups.latest", "backups", "Latest backup"),
)
CHECK_IDS = tuple(c[0] for c in CHECK_CATALOG)
N8N_SCAN_LIMIT = 500  # executions a filtered page of the n8n tab looks at before it says "] looks further"

# Checks that need the database itself: while a restore runs they say "restore in progress" instead of FAIL.
NEEDS_DATABASE = frozenset({"supabase.pooler", "db.long_running", "db.migrations", "dlq.depth"})
RESTORE_ACTION = "backups.restore"

# Who started a restore (operator, started_at, attempt id, target), from the journal: blocking, for a thread.
RestoreStarter = Callable[[], "tuple[str, datetime | None, str, str] | None"]


def restore_result(check: Check, restore: RestoreInProgress, now: datetime,
                   seen: CheckResult | None = None) -> CheckResult:
    """What a database check reports while a restore runs (WARN: expected, not a failure to chase)."""
    details: dict[str, Any] = {"restore": {"status": restore.status, "source": restore.source,
                                           "started_at": restore.started_at.isoformat(),
                                           "operator": restore.operator, "what": restore.what}}
    if seen is not None:
        details["while_restoring"] = {"status": seen.status.value, "summary": seen.summary}
    return CheckResult(check.id, check.system, check.title, Status.WARN,
                       f"{restore.describe(now)}; the database is offline: this check waits for it",
                       details=details)


@dataclass(frozen=True)
class OffCheck:
    """A check whose configuration section is absent: reported as 'not configured'."""

    id: str
    system: str
    title: str
    reason: str

    async def run(self) -> CheckResult:
        return CheckResult(self.id, self.system, self.title, Status.OFF, f"not configured: {self.reason}")


class CheckRunner:
    """Runs checks concurrently; a round lasts as long as the slowest check, not the sum."""

    def __init__(self, checks: Iterable[Check], *, timeout_s: float, restore: RestoreState | None = None,
                 project_ref: str = "", restore_starter: RestoreStarter | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.checks: dict[str, Check] = {c.id: c for c in checks}
        self.timeout_s = timeout_s
        self.restore = restore
        self.project_ref = project_ref
        self.restore_starter = restore_starter
        self.clock = clock

    def select(self, only: Iterable[str] | None = None) -> list[Check]:
        """Checks whose id or system is in `only` (all when None)."""
        if not only:
            return list(self.checks.values())
        wanted = set(only)
        return [c for c in self.checks.values() if c.id in wanted or c.system in wanted
                or c.id.split(".")[0] in wanted]

    async def run_one(self, check: Check) -> CheckResult:
        """One check; while a restore is in progress the database checks say so instead of running."""
        state = self.restore
        if state is not None and check.id in NEEDS_DATABASE:
            current = state.current()
            if current is not None:
                return restore_result(check, current, self.clock())
        result = await self._run_one(check)
        if state is None:
            return result
        await self._observe(result)
        current = state.current()
        if current is not None and check.id in NEEDS_DATABASE and result.status in (Status.FAIL, Status.UNKNOWN):
            return restore_result(check, current, self.clock(), result)
        return result

    async def _observe(self, result: CheckResult) -> None:
        """A project status seen by a check feeds the restore state (a restore by another console too)."""
        if result.id != "supabase.health" or self.restore is None:
            return
        status = result.details.get("project_status") if isinstance(result.details, Mapping) else None
        if not isinstance(status, str):
            return
        if self.restore.observe(self.project_ref, status, self.clock()) and self.restore_starter is not None:
            try:
                found = await asyncio.to_thread(self.restore_starter)
            except Exception:  # the journal is a courtesy here: the restore is shown either way
                found = None
            if found is not None:
                operator, started_at, attempt, target = found
                self.restore.enrich(operator=operator, started_at=started_at, attempt=attempt, what=target)

    async def _run_one(self, check: Check) -> CheckResult:
        started = time.perf_counter()
        # A little slack over the adapters' own deadlines, so their clearer summaries win.
        limit = self.timeout_s + 1.0
        try:
            async with asyncio.timeout(limit):
                result = await check.run()
        except TimeoutError:
            return CheckResult(check.id, check.system, check.title, Status.FAIL,
                               f"no answer within {limit:g} s (check timed out)",
                               latency_ms=(time.perf_counter() - started) * 1000)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an adapter bug must not take down the round
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else ""
            return CheckResult(check.id, check.system, check.title, Status.UNKNOWN,
                               printable(f"check crashed: {type(exc).__name__}: {exc}{where}",
                                         single_line=True, limit=240),
                               latency_ms=(time.perf_counter() - started) * 1000)
        if not isinstance(result, CheckResult):
            return CheckResult(check.id, check.system, check.title, Status.UNKNOWN,
                               f"check returned {type(result).__name__}, not a result")
        return result

    async def stream(self, checks: Iterable[Check]) -> AsyncIterator[CheckResult]:
        """Results in completion order, so a slow check never delays the fast ones."""
        tasks = [asyncio.create_task(self.run_one(c)) for c in checks]
        try:
            for fut in asyncio.as_completed(tasks):
                yield await fut
        finally:
            for t in tasks:
                t.cancel()

    async def run_all(self, only: Iterable[str] | None = None) -> list[CheckResult]:
        selected = self.select(only)
        results = list(await asyncio.gather(*(self.run_one(c) for c in selected)))
        waited = [r.id for r in results if r.id in NEEDS_DATABASE and "restore" in r.details]
        if waited and self.restore is not None and self.restore.current() is None:
            # the restore ended during this round (the project status said so): ask the database now
            again = {r.id: r for r in await asyncio.gather(*(self.run_one(self.checks[cid]) for cid in waited))}
            results = [again.get(r.id, r) for r in results]
        current = self.restore.current() if self.restore is not None else None
        if current is not None:  # a check that failed before the round saw the project RESTORING
            by_id = {c.id: c for c in selected}
            results = [restore_result(by_id[r.id], current, self.clock(), r)
                       if r.id in NEEDS_DATABASE and r.status in (Status.FAIL, Status.UNKNOWN) else r
                       for r in results]
        order = {cid: i for i, cid in enumerate(CHECK_IDS)}
        return sorted(results, key=lambda r: order.get(r.id, len(order)))


@dataclass
class StatusBoard:
    """Latest result per check plus a latency history for sparklines."""

    history_len: int = 60
    results: dict[str, CheckResult] = field(default_factory=dict)
    latencies: dict[str, deque[float]] = field(default_factory=dict)

    def record(self, result: CheckResult) -> None:
        self.results[result.id] = result
        if result.latency_ms is not None and result.status is not Status.OFF:
            self.latencies.setdefault(result.id, deque(maxlen=self.history_len)).append(result.latency_ms)

    def system_status(self, system: str) -> Status:
        statuses = [r.status for r in self.results.values() if r.system == system]
        if statuses and all(s is Status.OFF for s in statuses):
            return Status.OFF
        return worst(statuses)

    def for_system(self, system: str) -> list[CheckResult]:
        return [r for r in self.results.values() if r.system == system]

    @staticmethod
    def is_stale(result: CheckResult, interval_s: float, now: datetime) -> bool:
        """Data older than two of its check's polling intervals is stale (`interval_s`: that check's
        own interval, `ChecksSettings.interval_for(result.id)`; see `Services.is_stale`)."""
        return (now - result.checked_at).total_seconds() > 2 * interval_s


@dataclass(frozen=True)
class DetailRows:
    """What a tab's detail view shows: records, or why there are none."""

    rows: Sequence[Mapping[str, object]] = ()
    problem: str | None = None
    status: Status = Status.OK
    fetched_at: datetime | None = None
    latency_ms: float | None = None
    note: str = ""
    key: str = "id"  # the field that identifies a row (keyed updates); rows without it go by position

    @classmethod
    def off(cls, why: str) -> DetailRows:
        return cls(problem=why, status=Status.OFF)

    @classmethod
    def failed(cls, why: str) -> DetailRows:
        return cls(problem=why, status=Status.FAIL)


@dataclass(frozen=True)
class DeployListing:
    """The Deploy tab's deployments (newest first) and which one serves production, or why not."""

    deployments: Sequence[Deployment] = ()
    current_id: str | None = None
    problem: str | None = None
    status: Status = Status.OK
    fetched_at: datetime | None = None
    latency_ms: float | None = None

    def previous_working(self) -> Deployment | None:
        """The default promote target: the newest READY production deployment older than the current one."""
        current = next((d for d in self.deployments if d.id == self.current_id), None)
        if current is None:
            return None
        return next((d for d in self.deployments if d.state == "READY" and d.is_production
                     and d.id != current.id and d.created_at < current.created_at), None)


def _age(now: datetime, then: datetime) -> str:
    return format_age((now - then).total_seconds())


class Services:
    """The one object the UI receives: settings, adapters, the runner and the board.

    Adapters are built on first use so the first frame is not delayed by SDK imports.
    """

    def __init__(self, settings: Settings, *, adapter_factory: Callable[[Settings], list[Adapter]],
                 extra_checks: Callable[[Settings], list[Check]] | None = None,
                 kernel_factory: Callable[[Services], ActionKernel] | None = None,
                 dlq_factory: Callable[[Services], DlqStore | None] | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self._kernel_factory = kernel_factory
        self._kernel: ActionKernel | None = None
        self._dlq_factory = dlq_factory
        self._dlq: DlqStore | None = None
        self._dlq_built = False
        self._alerts_cache: tuple[float, dict[str, Any]] | None = None
        self.board = StatusBoard()
        self.clock = clock
        self._adapter_factory = adapter_factory
        self._extra_checks = extra_checks
        self._adapters: list[Adapter] | None = None
        self._runner: CheckRunner | None = None
        self.restore_state = RestoreState()  # published by backups.restore, consulted by the runner
        self._runbooks: RunbookCatalog | None = None
        self._vocabulary: Vocabulary | None = None
        self._runbook_locks: OperatorLocks | None = None
        self._runbook_locks_built = False
        self.wizards: dict[str, Wizard] = {}  # runs open in this console (they hold their runbook's lock)

    @property
    def systems(self) -> tuple[str, ...]:
        return SYSTEMS

    def interval_for(self, check_id: str) -> float:
        """How often the console polls `check_id` (`[checks] intervals`, else `interval_s`)."""
        return self.settings.checks.interval_for(check_id)

    def is_stale(self, result: CheckResult, now: datetime | None = None) -> bool:
        """Older than two of its own check's intervals (a 60 s check is stale after 120 s, a 10 s
        one after 20 s)."""
        return StatusBoard.is_stale(result, self.interval_for(result.id), now or self.clock())

    @property
    def adapters(self) -> list[Adapter]:
        if self._adapters is None:
            self._adapters = self._adapter_factory(self.settings)
        return self._adapters

    @property
    def runner(self) -> CheckRunner:
        if self._runner is None:
            checks: list[Check] = [c for a in self.adapters for c in a.checks()]
            if self._extra_checks is not None:
                checks.extend(self._extra_checks(self.settings))
            have = {c.id for c in checks}
            for cid, system, title in CHECK_CATALOG:
                if cid not in have:
                    checks.append(OffCheck(cid, system, title, _section_for(cid)))
            order = {cid: i for i, cid in enumerate(CHECK_IDS)}
            checks.sort(key=lambda c: order.get(c.id, len(order)))
            ref = self.settings.supabase.project_ref if self.settings.supabase is not None else ""
            self._runner = CheckRunner(checks, timeout_s=self.settings.checks.timeout_s, restore=self.restore_state,
                                       project_ref=ref, restore_starter=self.restore_starter, clock=self.clock)
        return self._runner

    @property
    def kernel(self) -> ActionKernel | None:
        """The guarded-action kernel (None when no factory was given, e.g. in UI fakes)."""
        if self._kernel is None and self._kernel_factory is not None:
            self._kernel = self._kernel_factory(self)
        return self._kernel

    @property
    def dlq_store(self) -> DlqStore | None:
        """The dead-letter table (None without [dlq] and a database_url)."""
        if not self._dlq_built and self._dlq_factory is not None:
            self._dlq = self._dlq_factory(self)
            self._dlq_built = True
        return self._dlq

    async def related_alert(self, message_sid: str) -> RelatedAlert | None:
        """The Twilio Monitor alert about `message_sid` among the last day's error alerts
        (fetched once a minute at most: the DLQ inspector asks per message)."""
        from opsconsole.adapters.twilio import TwilioAdapter
        from opsconsole.domain.dlq import RelatedAlert

        adapter = self.get_adapter("twilio")
        if not isinstance(adapter, TwilioAdapter) or not message_sid:
            return None
        now = time.monotonic()
        if self._alerts_cache is None or now - self._alerts_cache[0] > 60:
            try:
                collected = await adapter.error_alerts(timedelta(hours=24))
            except Exception:  # no alert is shown; the inspector says the lookup failed
                return None
            self._alerts_cache = (now, {a.resource_sid: a for a in collected.alerts if a.resource_sid})
        row = self._alerts_cache[1].get(message_sid)
        if row is None:
            return None
        return RelatedAlert(sid=row.sid, error_code=row.error_code, date=row.date, text=row.text,
                            request_url=row.request_url)

    async def activity(self) -> ActivitySnapshot:
        """pg_stat_activity for the Database tab's live view."""
        restoring = self.restore_state.current()
        if restoring is not None:
            return ActivitySnapshot(taken_at=self.clock(), error=f"{restoring.describe(self.clock())}; the "
                                                                 "database is offline until it ends")
        adapter = self.get_adapter("db")
        if adapter is None:
            return ActivitySnapshot(taken_at=self.clock(), error="not configured: [supabase] database_url")
        from opsconsole.adapters.postgres import PostgresAdapter

        assert isinstance(adapter, PostgresAdapter)
        return await adapter.activity()

    def get_adapter(self, system: str) -> Adapter | None:
        for adapter in self.adapters:
            if adapter.system == system:
                return adapter
        return None

    # -- detail views: richer data than a check, fetched only while its tab is visible --------
    async def deployments(self, limit: int = 20) -> DetailRows:
        """Recent deployments for the Deploy tab, newest first, the current one marked."""
        adapter = self.get_adapter("vercel")
        if adapter is None:
            return DetailRows.off("not configured: [vercel]")
        from opsconsole.adapters.vercel import VercelAdapter

        assert isinstance(adapter, VercelAdapter)
        started = time.perf_counter()
        try:
            found, outcome = await adapter.fetch_deployments(limit)
            current, _ = await adapter.current_production()
        except Exception as exc:  # SecretError and adapter bugs alike: shown, not raised
            return DetailRows.failed(printable(f"{type(exc).__name__}: {exc}", single_line=True, limit=200))
        if outcome.problem is not None:
            return DetailRows.failed(outcome.problem)
        current_id = (current or {}).get("id")
        now = self.clock()
        rows = [{"": "▶" if d.id == current_id else "", "age": _age(now, d.created_at), "state": d.state,
                 "target": d.target or "preview", "sha": d.short_sha, "message": d.message, "ref": d.ref,
                 "creator": d.creator, "id": d.id} for d in found]
        return DetailRows(rows=rows, fetched_at=now, latency_ms=(time.perf_counter() - started) * 1000,
                          note="▶ = serving production now")

    async def deploy_listing(self, limit: int = 20) -> DeployListing:
        """The Deploy tab's deployments as domain objects (its table is keyed by deployment id)."""
        adapter = self.get_adapter("vercel")
        if adapter is None:
            return DeployListing(problem="not configured: [vercel]", status=Status.OFF)
        from opsconsole.adapters.vercel import VercelAdapter

        assert isinstance(adapter, VercelAdapter)
        started = time.perf_counter()
        try:
            (found, outcome), (current, _) = await asyncio.gather(adapter.fetch_deployments(limit),
                                                                  adapter.current_production())
        except Exception as exc:  # SecretError and adapter bugs alike: shown, not raised
            return DeployListing(problem=printable(f"{type(exc).__name__}: {exc}", single_line=True, limit=200),
                                 status=Status.FAIL)
        if outcome.problem is not None:
            return DeployListing(problem=outcome.problem, status=outcome.status)
        current_id = (current or {}).get("id")
        return DeployListing(deployments=tuple(found), current_id=current_id if isinstance(current_id, str) else None,
                             fetched_at=self.clock(), latency_ms=(time.perf_counter() - started) * 1000)

    def log_follower(self, deployment_id: str | None = None) -> LogFollower | None:
        """A follower of production's runtime logs (None without [vercel])."""
        adapter = self.get_adapter("vercel")
        if adapter is None:
            return None
        from opsconsole.adapters.vercel import VercelAdapter
        from opsconsole.adapters.vercel_logs import LogFollower

        assert isinstance(adapter, VercelAdapter)
        return LogFollower(adapter, deployment_id=deployment_id)

    @property
    def log_lines(self) -> int:
        """How many runtime log entries the log view keeps (`[vercel] log_lines`)."""
        return self.settings.vercel.log_lines if self.settings.vercel is not None else 10_000

    async def backups(self) -> DetailRows:
        """Backups and the PITR window for the Backups tab."""
        adapter = self.get_adapter("supabase")
        if adapter is None:
            return DetailRows.off("not configured: [supabase]")
        from opsconsole.adapters.supabase import SupabaseAdapter

        assert isinstance(adapter, SupabaseAdapter)
        listing = await adapter.list_backups()
        if listing.inventory is None:
            return DetailRows.failed(listing.problem or "no backup inventory")
        inv = listing.inventory
        now = self.clock()
        rows = [{"id": b.id, "status": b.status, "taken": b.inserted_at.strftime("%Y-%m-%d %H:%M UTC"),
                 "age": _age(now, b.inserted_at), "kind": "physical" if b.is_physical else "logical"}
                for b in inv.backups]
        if inv.pitr_enabled and inv.pitr_window is not None and inv.pitr_window.earliest and inv.pitr_window.latest:
            note = (f"PITR on: restorable from {inv.pitr_window.earliest:%Y-%m-%d %H:%M} to "
                    f"{inv.pitr_window.latest:%Y-%m-%d %H:%M} UTC")
        else:
            note = "PITR off: only the daily backups below can be restored"
        return DetailRows(rows=rows, fetched_at=now, latency_ms=listing.latency_ms, note=f"{inv.region} · {note}")

    async def migrations(self) -> MigrationListing:
        """The migration history (newest first, classified) for the Deploy tab's migrations view."""
        from opsconsole.domain.migrations import MigrationListing

        restoring = self.restore_state.current()
        if restoring is not None:
            return MigrationListing(problem=f"{restoring.describe(self.clock())}; the database is offline",
                                    details={"status": "restore"})
        adapter = self.get_adapter("migrations")
        if adapter is None:
            return MigrationListing(problem="not configured: [supabase] database_url", details={"status": "off"})
        from opsconsole.adapters.migrations.check import MigrationsAdapter

        assert isinstance(adapter, MigrationsAdapter)
        return await adapter.listing()

    async def backup_listing(self) -> BackupListing:
        """The backups and the PITR window, as domain objects (the Backups tab's restore view)."""
        from opsconsole.domain.backups import BackupListing

        adapter = self.get_adapter("supabase")
        if adapter is None:
            return BackupListing(None, "not configured: [supabase]", Status.OFF)
        from opsconsole.adapters.supabase import SupabaseAdapter

        assert isinstance(adapter, SupabaseAdapter)
        return await adapter.list_backups()

    def restore_starter(self) -> tuple[str, datetime | None, str, str] | None:
        """Who started the newest unfinished restore in this environment's journal, and when (blocking)."""
        found = [a for a in self.unfinished_attempts() if a.action == RESTORE_ACTION]
        if not found:
            return None
        newest = found[-1]
        who = newest.operator.user + (f"@{newest.operator.host}" if newest.operator.host else "")
        return who, newest.started_at, newest.attempt, newest.target

    # -- the n8n tab's failed executions -------------------------------------------------------
    async def n8n_failed_page(self, start: PagePosition | None = None, size: int = 50,
                              flt: ExecutionFilter | None = None) -> ExecutionPage:
        """A page of the watched workflows' failed and crashed executions, newest first, from `start`
        (None: the newest). With a filter, pages are read until `size` match or `N8N_SCAN_LIMIT`
        executions were looked at; the errors the filter needs are read (and cached) on the way."""
        from opsconsole.adapters.n8n import N8nAdapter
        from opsconsole.domain.n8n import ExecutionPage, RetryFamilies

        adapter = self.get_adapter("n8n")
        if not isinstance(adapter, N8nAdapter):
            return ExecutionPage(problem="not configured: [n8n]")
        if flt is None or flt.empty:
            return await adapter.failed_page(start, size)
        started = time.perf_counter()
        rows: list[Any] = []
        scanned = requests = 0
        pos = start
        while True:
            page = await adapter.failed_page(pos, size)
            requests += page.requests
            if page.problem is not None:
                return page
            errors = {e.execution_id: e async for e in adapter.errors([r.id for r in page.rows])}
            families = RetryFamilies(page.rows)
            rows += [r for r in page.rows if flt.matches(r, page.names.get(r.workflow_id, ""), errors.get(r.id),
                                                         resolved=families.resolved(r.id))]
            scanned += len(page.rows)
            if len(rows) >= size or page.next is None or scanned >= N8N_SCAN_LIMIT:
                break
            pos = page.next
        note = page.note
        if page.next is not None and len(rows) < size:
            note = f"looked at {scanned:,} executions for this page; ] looks further"
        return ExecutionPage(rows=tuple(rows), start=start, next=page.next, names=page.names,
                             fetched_at=page.fetched_at, latency_ms=(time.perf_counter() - started) * 1000,
                             requests=requests, scanned=scanned, note=note)

    async def n8n_errors(self, execution_ids: Sequence[str]) -> AsyncIterator[ExecutionError]:
        """The failing node and error of each execution as it arrives (bounded reads, cached)."""
        from opsconsole.adapters.n8n import N8nAdapter

        adapter = self.get_adapter("n8n")
        if not isinstance(adapter, N8nAdapter):
            return
        async for error in adapter.errors(execution_ids):
            yield error

    async def n8n_inspect(self, execution_id: str) -> tuple[ExecutionError, dict[str, Any]]:
        """One execution's error in full (node, message, description, stack; up to 4 MB read), and
        facts about it (the execution's summary, the link to it in n8n)."""
        from opsconsole.adapters.n8n import N8nAdapter
        from opsconsole.domain.n8n import ExecutionError

        adapter = self.get_adapter("n8n")
        if not isinstance(adapter, N8nAdapter):
            return ExecutionError(execution_id, problem="not configured: [n8n]"), {}
        found = await adapter.inspect(execution_id)
        facts: dict[str, Any] = {}
        if found.execution is not None:
            ex = found.execution
            facts = {"execution": ex, "url": adapter.execution_url(ex.workflow_id, ex.id)}
        return found.error, facts

    def unfinished_attempts(self) -> list[UnfinishedAttempt]:
        """Actions in this environment's journal that started and never recorded an end (blocking: read
        the journal from a thread). A missing or unreadable journal has none to report."""
        from opsconsole.audit import Journal, JournalError, Operator, journal_path, unfinished_attempts

        journal = Journal(journal_path(self.settings), environment=self.settings.environment.name,
                          operator=Operator(user="-"))
        try:
            return unfinished_attempts(journal.read().events)
        except JournalError:
            return []

    # -- runbooks (wizards) -----------------------------------------------------------------
    def runbook_vocabulary(self) -> Vocabulary:
        """The check, action and link ids runbook files may name here (imports the action catalog:
        call it from a thread in the console)."""
        if self._vocabulary is None:
            from opsconsole.runbooks.catalog import LINK_KEYS
            from opsconsole.runbooks.vocabulary import build_vocabulary

            self._vocabulary = build_vocabulary(CHECK_IDS, LINK_KEYS)
        return self._vocabulary

    def runbook_catalog(self, *, reload: bool = False) -> RunbookCatalog:
        """The built-in runbooks plus the team's (`[runbooks] dir`), each team file linted; a broken
        file is left out and named in `notices`. Blocking (reads files): call it from a thread."""
        if self._runbooks is None or reload:
            from opsconsole.runbooks.lint import lint_runbook
            from opsconsole.runbooks.loader import load_catalog, user_runbooks_dir

            vocab = self.runbook_vocabulary()
            self._runbooks = load_catalog(user_runbooks_dir(self.settings.runbooks.dir),
                                          lambda rb: lint_runbook(rb, vocab))
        return self._runbooks

    def wizard_journal(self) -> Journal:
        """The journal the wizard writes to: the kernel's (same operator), or this environment's."""
        kernel = self.kernel
        if kernel is not None:
            return kernel.journal
        from opsconsole.audit import Journal

        return Journal.for_settings(self.settings)

    def journal_events(self) -> list[dict[str, Any]]:
        """Every event of this environment's journal (blocking); none when it cannot be read."""
        from opsconsole.audit import Journal, JournalError, Operator, journal_path

        journal = Journal(journal_path(self.settings), environment=self.settings.environment.name,
                          operator=Operator(user="-"))
        try:
            return journal.read().events
        except JournalError:
            return []

    def open_runs(self, events: list[dict[str, Any]] | None = None) -> list[WizardRunRecord]:
        """Wizard runs the journal holds open (newest first): offered for resume at start."""
        from opsconsole.audit import open_wizard_runs

        return open_wizard_runs(self.journal_events() if events is None else events)

    def runbook_locks(self) -> OperatorLocks | None:
        """Operator locks for runbook runs (`runbook:<id>`), on the kernel's database."""
        if not self._runbook_locks_built:
            kernel = self.kernel
            if kernel is not None and kernel.locks is not None:
                self._runbook_locks = kernel.locks
            else:
                from opsconsole.actions.locks import OperatorLocks
                from opsconsole.audit import Operator

                self._runbook_locks = OperatorLocks.for_settings(self.settings, Operator.detect())
            self._runbook_locks_built = True
        return self._runbook_locks

    async def aclose(self) -> None:
        for wizard in list(self.wizards.values()):
            try:
                await wizard.release()
            except Exception:
                pass
        if self._dlq is not None:
            try:
                await self._dlq.aclose()
            except Exception:
                pass
        for adapter in self._adapters or []:
            try:
                await adapter.aclose()
            except Exception:  # closing must never mask the real exit reason
                pass


def _section_for(check_id: str) -> str:
    prefix = check_id.split(".")[0]
    return {
        "api": "[api] health_url",
        "vercel": "[vercel]",
        "supabase": "[supabase]",
        "db": "[supabase] database_url",
        "n8n": "[n8n]",
        "twilio": "[twilio]",
        "dlq": "[dlq] and [supabase] database_url",
        "backups": "[supabase] access_token",
    }.get(prefix, prefix)
