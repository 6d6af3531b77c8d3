"""Fakes for UI tests and snapshots: fixed results, a fixed clock, no I/O.

Adapters themselves are never tested with these: they run against the demo simulators.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsconsole.domain.db import ActivitySnapshot, Backend
from opsconsole.domain.deploys import Deployment
from opsconsole.domain.dlq import CountEstimate, DlqMessage, Page
from opsconsole.domain.models import CheckResult, Status
from opsconsole.domain.n8n import CredentialRef, Execution, ExecutionError, ExecutionFilter, ExecutionPage
from opsconsole.domain.ports import Adapter, Check
from opsconsole.services import CHECK_CATALOG, DeployListing, DetailRows, Services
from opsconsole.settings import ChecksSettings, EnvironmentSettings, Settings

NOW = datetime(2026, 11, 27, 3, 12, 9, tzinfo=UTC)


@dataclass
class FakeCheck:
    id: str
    system: str
    title: str
    status: Status = Status.OK
    summary: str = "fine"
    latency_ms: float | None = 42.0
    details: Mapping[str, Any] = field(default_factory=dict)
    age_s: float = 3.0
    hang: bool = False
    calls: int = 0

    async def run(self) -> CheckResult:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        return CheckResult(self.id, self.system, self.title, self.status, self.summary, self.latency_ms,
                           NOW - timedelta(seconds=self.age_s), self.details)


@dataclass
class FakeAdapter:
    system: str
    fake_checks: list[FakeCheck]
    closed: bool = False

    def checks(self) -> list[Check]:
        return list(self.fake_checks)

    async def aclose(self) -> None:
        self.closed = True


INCIDENT: dict[str, tuple[Status, str, dict[str, Any]]] = {
    "api.health": (Status.FAIL, "HTTP 500 in 212 ms — database: down",
                   {"http_status": 500, "components": {"database": "down", "twilio": "ok"}}),
    "vercel.deployment": (Status.FAIL, "newest production deployment ERROR (a1b2c3d fix: pool size); "
                          "serving dpl_7 (9f8e7d6) READY, 2h10m old", {
                              "deployments": [
                                  {"id": "dpl_8", "state": "ERROR", "sha": "a1b2c3d", "message": "fix: pool size",
                                   "age": "12m"},
                                  {"id": "dpl_7", "state": "READY", "sha": "9f8e7d6", "message": "feat: campaigns",
                                   "age": "2h10m"}]}),
    "vercel.status_page": (Status.OK, "All Systems Operational", {}),
    "supabase.status_page": (Status.WARN, "Minor: Connection Pooler degraded_performance; 1 open incident "
                             "[bold red]x[/] \x1b[31mred", {"indicator": "minor"}),
    "supabase.health": (Status.OK, "db, pooler, rest, auth: ACTIVE_HEALTHY", {}),
    "supabase.resources": (Status.FAIL, "CPU 94 % · memory 85 % · disk 70 % · connections 57/60",
                           {"cpu_pct": 94.2, "mem_pct": 85.0}),
    "supabase.pooler": (Status.OK, "select 1 in 12 ms via 127.0.0.1:6543", {}),
    "supabase.service_key": (Status.WARN, "legacy service-role key expires in 5 days", {}),
    "db.long_running": (Status.FAIL, "3 sessions over 60 s; longest 14m02s; 1 blocking chain", {
        "sessions": [{"pid": 4242, "user": "service_worker", "duration_s": 842.0,
                      "query": "select * from campaign_queue [/x]"}]}),
    "db.migrations": (Status.WARN, "destructive migration 40m ago: 20261127023209 contacts_opt_out_reason_and_e164: "
                      "renames column public.contacts.phone to phone_e164 — V reverts it (dry run first)", {}),
    "n8n.executions": (Status.FAIL, "23 failed executions in the last hour; newest: Supabase: JWT expired", {}),
    "n8n.credentials": (Status.FAIL, "Supabase prod (service role) · supabaseApi fails n8n's own test: "
                        "Authorization failed - please check your credentials (401: JWT expired) (3 ok)", {
                            "credentials": [
                                {"credential": "Supabase prod (service role)", "type": "supabaseApi",
                                 "status": "fail", "message": "Authorization failed [/x]", "used_by": "Supabase → CRM"},
                                {"credential": "Campaign DB", "type": "postgres", "status": "ok",
                                 "message": "Connection successful!", "used_by": "Twilio status sync"}]}),
    "twilio.alerts": (Status.FAIL, "41 error alerts in the last hour: 30008 ×29, 11200 ×7, 11217 ×5", {}),
    "dlq.depth": (Status.FAIL, "2,911 waiting · 214 in the last 15 min", {"waiting": 2911, "last_15m": 214}),
    "backups.latest": (Status.WARN, "newest completed backup 40h ago; PITR off",
                       {"newest_completed_id": 880412, "newest_completed_age_h": 40.0, "pitr_enabled": False}),
}


def _dep(ident: str, minutes: float, state: str, target: str | None, sha: str, message: str, ref: str = "main",
         build_s: float | None = 64.0) -> Deployment:
    created = NOW - timedelta(minutes=minutes)
    building = created + timedelta(seconds=4)
    ready = building + timedelta(seconds=build_s) if build_s is not None else None
    return Deployment(id=ident, url=f"{ident}.vercel.app", state=state, target=target, created_at=created,
                      sha=sha + "0" * (40 - len(sha)), message=message, ref=ref, creator="maria-k",
                      project_name="campaign-api", building_at=building, ready_at=ready)


# Newest first; dpl_7 serves production, dpl_6 is the previous working one (hostile text included).
FAKE_DEPLOYMENTS: tuple[Deployment, ...] = (
    _dep("dpl_8", 12, "ERROR", "production", "a1b2c3d", "fix: pool size [/x]", build_s=48.0),
    _dep("dpl_9", 19, "READY", None, "b7c8d9e", "fix: cap worker concurrency ␛[31m", ref="fix/workers"),
    _dep("dpl_7", 130, "READY", "production", "9f8e7d6", "feat: campaigns"),
    _dep("dpl_6", 26 * 60, "READY", "production", "5e4d3c2", "Add retry with jitter to Twilio callbacks"),
    _dep("dpl_5", 51 * 60, "READY", "production", "4d3c2b1", "Log n8n sync batch ids on failure"),
)


class FakeDlqStore:
    """A fixed page of dead letters (hostile text included) for UI snapshots; the real store
    is tested against PostgreSQL in tests/dlq and tests/ui/test_dlq_tab.py."""

    async def page(self, flt: Any = None, cursor: Any = None, limit: int = 50, direction: str = "older", *,
                   include_cursor: bool = False) -> Page:
        rows = (
            DlqMessage(3000, NOW - timedelta(seconds=9), 30008, "Twilio 30008: Unknown error", "SMaec59d53421aa",
                       "/webhooks/twilio/status", "campaign-send", "waiting", 3, 466, True, None),
            DlqMessage(2999, NOW - timedelta(seconds=40), 21610, "Twilio 21610: [bold]STOP[/] ␛[31m",
                       "SMb8e38d8f2f8bb", "/webhooks/twilio/inbound", "opt-out-sync", "waiting", 1, 451, True, None),
            DlqMessage(2998, NOW - timedelta(minutes=3), None, "ErrorCode is not an integer", "", "/api/sms/callback",
                       "", "waiting", 2, 5_242_880, False, "payload is larger than 256 KB"),
        )
        return Page(rows=rows, has_more=True, has_newer=False, elapsed_ms=3.0)

    async def count(self, flt: Any = None) -> CountEstimate:
        return CountEstimate(value=2_911, exact=True)

    async def aclose(self) -> None:
        return None


class FakeServices(Services):
    """Fixed detail views too, so snapshots of the Deploy and Backups tabs show data."""

    async def deployments(self, limit: int = 20) -> DetailRows:
        rows = [{"": "", "age": "12m", "state": "ERROR", "target": "production", "sha": "a1b2c3d",
                 "message": "fix: pool size [/x]", "ref": "main"},
                {"": "▶", "age": "2h10m", "state": "READY", "target": "production", "sha": "9f8e7d6",
                 "message": "feat: campaigns", "ref": "main"}]
        return DetailRows(rows=rows, fetched_at=NOW, latency_ms=48.0, note="▶ = serving production now")

    async def deploy_listing(self, limit: int = 20) -> DeployListing:
        return DeployListing(deployments=FAKE_DEPLOYMENTS, current_id="dpl_7", fetched_at=NOW, latency_ms=48.0)

    @property
    def dlq_store(self) -> Any:
        return FakeDlqStore()

    async def activity(self) -> ActivitySnapshot:
        def backend(pid: int, user: str, app: str, state: str, dur: float, wait: str, query: str,
                    blocked_by: tuple[int, ...] = (), blocking: tuple[int, ...] = ()) -> Backend:
            kind, _, event = wait.partition(":")
            return Backend(pid=pid, user=user, database="postgres", application=app, client_addr="10.0.0.7",
                           state=state, backend_type="client backend", backend_start=NOW, xact_start=NOW,
                           query_start=NOW, state_change=NOW, duration_s=dur, wait_event_type=kind,
                           wait_event=event, blocked_by=blocked_by, blocking=blocking, query=query)

        return ActivitySnapshot(taken_at=NOW, backends=(
            backend(4242, "authenticator", "metabase", "active", 842.0, "Timeout:PgSleep",
                    "select count(*) from dead_letter_messages [/x] ␛[31m"),
            backend(4243, "service_worker", "campaign-worker", "idle in transaction", 301.0, "Client:ClientRead",
                    "update campaign_queue set status = 'sending' where id = 7", blocking=(4244,)),
            backend(4244, "service_worker", "campaign-worker", "active", 300.0, "Lock:transactionid",
                    "update campaign_queue set status = 'sent' where id = 7", blocked_by=(4243,)),
        ))

    async def migrations(self) -> Any:
        """A fixed history, classified by the real parser (the newest one destructive, 40 min old)."""
        from opsconsole.adapters.migrations.classify import classify_entries
        from opsconsole.domain.migrations import Migration, MigrationListing

        def mig(age: timedelta, name: str, statements: tuple[str, ...], rollback: tuple[str, ...] | None = None
                ) -> Migration:
            when = NOW - age
            return Migration(when.strftime("%Y%m%d%H%M%S"), name, statements, rollback, when, "version",
                             classified=classify_entries(statements))

        rows = (
            mig(timedelta(minutes=40), "contacts_opt_out_reason_and_e164",
                ("alter table public.contacts add column opt_out_reason text",
                 "update public.contacts set opt_out_reason = 'replied STOP' where opted_out",
                 "alter table public.contacts rename column phone to phone_e164"),
                ("alter table public.contacts rename column phone_e164 to phone",
                 "alter table public.contacts drop column opt_out_reason")),
            mig(timedelta(days=9), "contacts_first_name_varchar_and_drop_legacy",
                ("alter table public.contacts alter column first_name type varchar(40)",
                 "drop table if exists public.sms_optouts_legacy")),
            mig(timedelta(days=12), "campaign_queue_source_and_locking [/x]",
                ("alter table public.campaign_queue add column source text not null default 'app'",
                 "create index campaign_queue_pending_idx on public.campaign_queue (available_at, id)")),
            mig(timedelta(days=140), "dlq_keyset_indexes", ("selec broken",)),
        )
        reverts = {rows[0].version: "rollback", rows[2].version: "file"}
        return MigrationListing(migrations=rows, has_rollback_column=True, read_at=NOW,
                                details={"reverts": reverts, "latency_ms": 4.0})

    async def backup_listing(self) -> Any:
        from opsconsole.domain.backups import Backup, BackupInventory, BackupListing, PitrWindow

        backups = (Backup(901, "FAILED", NOW - timedelta(hours=16), True),
                   Backup(900, "COMPLETED", NOW - timedelta(hours=40), True),
                   Backup(899, "COMPLETED", NOW - timedelta(hours=64), True))
        inv = BackupInventory(region="eu-central-1", walg_enabled=True, pitr_enabled=True, backups=backups,
                              pitr_window=PitrWindow(NOW - timedelta(days=7), NOW - timedelta(minutes=2)))
        return BackupListing(inv, None, Status.OK, 31.0)

    async def n8n_failed_page(self, start: Any = None, size: int = 50, flt: ExecutionFilter | None = None,
                              ) -> ExecutionPage:
        rows = tuple(Execution(str(5230 - i), wf, status, mode, NOW - timedelta(minutes=2 * i + 1),
                               NOW - timedelta(minutes=2 * i + 1) + timedelta(milliseconds=640), retry_of,
                               retried)
                     for i, (wf, status, mode, retry_of, retried) in enumerate((
                         ("1001", "error", "trigger", None, None), ("1001", "error", "retry", "5226", None),
                         ("1002", "crashed", "trigger", None, "5231"), ("1001", "error", "trigger", None, None),
                         ("1001", "error", "trigger", None, None), ("1002", "error", "trigger", None, None))))
        return ExecutionPage(rows=rows, names={"1001": "Supabase → CRM sync", "1002": "Twilio status sync"},
                             fetched_at=NOW, latency_ms=38.0, requests=4, scanned=len(rows),
                             next=None)

    async def n8n_errors(self, execution_ids: Sequence[str]) -> AsyncIterator[ExecutionError]:
        supabase = CredentialRef("sbProdSvcRole7Kq", "Supabase prod (service role)", "supabaseApi")
        for ident in execution_ids:
            if ident == "5228":
                yield ExecutionError(ident, node="Update campaign_queue", message="Worker crashed: out of memory")
            elif ident == "5226":
                yield ExecutionError(ident, node="Upsert contacts (CRM)", message="CRM [bold]503[/] \x1b[31m: the "
                                     "service was not able to process your request")
            elif ident == "5225":
                yield ExecutionError(ident, node="List message statuses", message="The connection timed out")
            else:
                yield ExecutionError(ident, node="Fetch changed contacts (Supabase)",
                                     message="Supabase: JWT expired / 401 from REST", credentials=(supabase,))

    async def backups(self) -> DetailRows:
        rows = [{"id": 901, "status": "FAILED", "taken": "2026-11-26 11:12 UTC", "age": "16h00m"},
                {"id": 900, "status": "COMPLETED", "taken": "2026-11-25 11:12 UTC", "age": "1d16h"}]
        return DetailRows(rows=rows, fetched_at=NOW, latency_ms=31.0,
                          note="PITR off: only the daily backups below can be restored")


def fake_settings(name: str = "production", read_only: bool = False, *, timeout_s: float = 2) -> Settings:
    return Settings(environment=EnvironmentSettings(name=name, read_only=read_only),
                    checks=ChecksSettings(interval_s=10, timeout_s=timeout_s, long_running_s=60))


def fake_services(*, name: str = "production", read_only: bool = False, scenario: str = "incident",
                  prefill: bool = True, hang: bool = False, timeout_s: float = 2) -> Services:
    """`hang`: every check waits forever, until the runner's deadline (`timeout_s` + 1 s) ends it."""
    checks: list[FakeCheck] = []
    for cid, system, title in CHECK_CATALOG:
        status, summary, details = INCIDENT[cid] if scenario == "incident" else (Status.OK, "fine", {})
        checks.append(FakeCheck(cid, system, title, status, summary, 42.0, details, hang=hang))
    adapters: list[Adapter] = [FakeAdapter("fake", checks)]
    services = FakeServices(fake_settings(name, read_only, timeout_s=timeout_s), adapter_factory=lambda _s: adapters,
                            clock=lambda: NOW)
    if prefill:
        for c in checks:
            services.board.record(CheckResult(c.id, c.system, c.title, c.status, c.summary, c.latency_ms,
                                              NOW - timedelta(seconds=c.age_s), c.details))
    return services
