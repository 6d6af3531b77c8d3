"""Supabase: service health, CPU/memory/disk, the service-role key and backups.

Runbook "Supabase Queries Failing" (status, resource usage with the CPU > 90 % rule, credentials)
and "Backups & Restore Plan" become four live checks here:

- `supabase.health`: Management API `GET /v1/projects/{ref}/health` for db, pooler, rest, auth.
- `supabase.resources`: the project's Prometheus endpoint; CPU busy % is a counter rate, so it
  needs two scrapes (the first round takes a second one ~1 s later, later rounds use the previous).
- `supabase.service_key`: decodes a legacy JWT's claims (expiry, ref, role) and probes `/rest/v1/`.
- `backups.latest`: age of the newest completed backup, the last attempt, PITR.

Secrets are revealed only while building a request and never reach a summary, details or an
exception: every result is also passed through a redaction of the revealed values.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsconsole.adapters.http import HttpOutcome, describe_status, fetch, new_client
from opsconsole.domain.backups import (
    FAILED,
    ApiAnswer,
    Backup,
    BackupInventory,
    BackupListing,
    PitrWindow,
    RestorePoint,
)
from opsconsole.domain.models import CheckResult, Status, utcnow, worst
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import Secret, SecretError, Settings, SupabaseSettings

# Thresholds (runbook: "If CPU > 90%, kill long-running queries"; warn a step earlier).
CPU_WARN_PCT = 80.0
CPU_FAIL_PCT = 90.0
USAGE_WARN_PCT = 80.0  # memory, disk per mount, connections used/max
USAGE_FAIL_PCT = 90.0
KEY_WARN_DAYS = 14
BACKUP_WARN_H = 26.0
BACKUP_FAIL_H = 48.0

HEALTH_SERVICES: tuple[str, ...] = ("db", "pooler", "rest", "auth")
METRICS_PATH = "/customer/v1/privileged/metrics"
REST_ROOT_PATH = "/rest/v1/"
MGMT_SERVICE = "Supabase Management API"
METRICS_SERVICE = "Supabase metrics endpoint"
REST_SERVICE = "Supabase REST API"
# Filesystems that say nothing about the database's disk.
_PSEUDO_FS = frozenset({"tmpfs", "devtmpfs", "ramfs", "squashfs", "overlay", "nsfs", "proc", "sysfs"})
_PROJECT_FAILED = frozenset({"INIT_FAILED", "RESTORE_FAILED", "PAUSE_FAILED", "REMOVED", "INACTIVE"})
_BACKUP_DETAILS_MAX = 30


# -- small helpers ---------------------------------------------------------------------------

def _ago(seconds: float) -> str:
    """A compact age for an 80-column summary: '4 min', '40 h', '3.5 d'."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} d"


def _stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_stamp(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _level(value: float, warn: float, fail: float) -> Status:
    if value > fail:
        return Status.FAIL
    if value > warn:
        return Status.WARN
    return Status.OK


_TOKEN = re.compile(r"[A-Za-z0-9_\-.+/=]{12,}")
_WINDOW = 12


def _redact_text(text: str, values: Iterable[str]) -> str:
    """Replace every token that shares 12 characters with a secret (also a truncated echo of one)."""
    windows = {v[i:i + _WINDOW] for v in values for i in range(len(v) - _WINDOW + 1)}
    if not windows:
        return text

    def scrub(match: re.Match[str]) -> str:
        token = match.group(0)
        hit = any(token[i:i + _WINDOW] in windows for i in range(len(token) - _WINDOW + 1))
        return "[redacted]" if hit else token

    return _TOKEN.sub(scrub, text)


def _redact_any(obj: Any, values: tuple[str, ...]) -> Any:
    if isinstance(obj, str):
        return _redact_text(obj, values)
    if isinstance(obj, Mapping):
        return {k: _redact_any(v, values) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_redact_any(v, values) for v in obj]
    return obj


def _redacted(result: CheckResult, values: tuple[str, ...]) -> CheckResult:
    """Defence in depth: a service could echo a credential back in an error message."""
    if not any(values):
        return result
    return CheckResult(id=result.id, system=result.system, title=result.title, status=result.status,
                       summary=_redact_text(result.summary, values), latency_ms=result.latency_ms,
                       checked_at=result.checked_at, details=_redact_any(dict(result.details), values))


def _secret_values(value: str | None) -> tuple[str, ...]:
    """The strings that must never be shown (any 12-character piece of them counts)."""
    return (value,) if value else ()


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _service_message(data: Any) -> str | None:
    """The `message` of a Supabase/PostgREST error body, made safe to show."""
    if isinstance(data, dict):
        msg = data.get("message") or data.get("msg")
        if isinstance(msg, str) and msg:
            return printable(msg, single_line=True, limit=100)
    return None


@dataclass(frozen=True, slots=True)
class _Revealed:
    value: str | None
    problem: str | None


def _reveal(secret: Secret) -> _Revealed:
    try:
        value = secret.reveal()
    except SecretError as exc:  # the message names the source, never the value
        return _Revealed(None, str(exc))
    if not value:
        return _Revealed(None, f"{secret.source} is empty")
    return _Revealed(value, None)


# -- the adapter -----------------------------------------------------------------------------

class SupabaseAdapter:
    """One Supabase project: a Management API client and a client for the project host."""

    system = "supabase"

    def __init__(self, settings: Settings, *, cpu_sample_s: float = 1.0) -> None:
        self.settings = settings
        self.config: SupabaseSettings | None = settings.supabase
        self.timeout_s = float(settings.checks.timeout_s)
        # Clients are created once (connection reuse); credentials go in per request, so a
        # rotated env var or file is picked up without restarting the console.
        self.mgmt: httpx.AsyncClient | None = None
        self.project: httpx.AsyncClient | None = None
        if self.config is not None:
            self.mgmt = new_client(timeout_s=self.timeout_s)
            self.project = new_client(timeout_s=self.timeout_s)
        self._checks: list[Check] = [
            HealthCheck(self),
            ResourcesCheck(self, cpu_sample_s=cpu_sample_s),
            ServiceKeyCheck(self),
            BackupsCheck(self),
        ]

    def checks(self) -> list[Check]:
        return list(self._checks)

    async def aclose(self) -> None:
        for client in (self.mgmt, self.project):
            if client is not None:
                await client.aclose()

    # -- Management API ----------------------------------------------------------------------
    def mgmt_url(self, suffix: str = "") -> str:
        assert self.config is not None
        base = self.config.management_url.rstrip("/")
        return f"{base}/v1/projects/{quote(self.config.project_ref, safe='')}{suffix}"

    async def mgmt_get(self, suffix: str, *, params: Any = None) -> tuple[HttpOutcome | None, str | None]:
        """GET a project-scoped Management API path: (outcome, None) or (None, credential problem)."""
        assert self.config is not None and self.config.access_token is not None and self.mgmt is not None
        token = self.config.access_token
        revealed = _reveal(token)
        if revealed.value is None:
            return None, f"Management API token unavailable: {revealed.problem}"
        outcome = await fetch(self.mgmt, self.mgmt_url(suffix), service=MGMT_SERVICE, credential=token.hint,
                              params=params, headers={"Authorization": f"Bearer {revealed.value}"},
                              timeout_s=self.timeout_s)
        return outcome, None

    def mgmt_secret_values(self) -> tuple[str, ...]:
        """The access token's value, for redacting results (empty when it cannot be read)."""
        if self.config is None or self.config.access_token is None:
            return ()
        return _secret_values(_reveal(self.config.access_token).value)

    async def mgmt_send(self, method: str, suffix: str, body: Any, *, params: Any = None) -> ApiAnswer:
        """POST (or another changing method) to a project-scoped path, once (never retried: not idempotent).
        2xx is accepted whatever the body (a restore answers 201 with an empty one)."""
        if self.config is None or self.config.access_token is None or self.mgmt is None:
            return ApiAnswer(False, problem="not configured: [supabase] access_token")
        token = self.config.access_token
        revealed = _reveal(token)
        if revealed.value is None:
            return ApiAnswer(False, problem=f"Management API token unavailable: {revealed.problem}")
        outcome = await fetch(self.mgmt, self.mgmt_url(suffix), service=MGMT_SERVICE, credential=token.hint,
                              method=method, params=params, json_body=body, expect="text",
                              headers={"Authorization": f"Bearer {revealed.value}"}, timeout_s=self.timeout_s)
        values = _secret_values(revealed.value)
        data: Any = None
        if outcome.text.strip():
            try:
                data = json.loads(outcome.text)
            except ValueError:
                data = None
        if not outcome.ok:
            problem = outcome.problem or "request failed"
            if outcome.kind == "http" and outcome.status_code is not None:
                problem = describe_status(MGMT_SERVICE, outcome.status_code, credential=token.hint, data=data,
                                          retry_after=outcome.retry_after_s, url=outcome.url)
                if data is None and outcome.text.strip():
                    problem += f": {printable(outcome.text, single_line=True, limit=120)}"
            return ApiAnswer(False, outcome.status_code, _redact_text(problem, values), data)
        return ApiAnswer(True, outcome.status_code, None, data)

    async def project_status(self) -> tuple[str | None, str | None]:
        """The project's status (ACTIVE_HEALTHY, RESTORING, RESTORE_FAILED, ...) or (None, why not)."""
        if self.config is None or self.config.access_token is None:
            return None, "not configured: [supabase] access_token"
        outcome, problem = await self.mgmt_get("")
        if outcome is None:
            return None, problem
        if not outcome.ok:
            return None, _redact_text(outcome.problem or "request failed", self.mgmt_secret_values())
        status = outcome.data.get("status") if isinstance(outcome.data, Mapping) else None
        if not isinstance(status, str):
            return None, f"{MGMT_SERVICE} sent a project without a status"
        return printable(status, single_line=True, limit=40), None

    async def restore_backup(self, backup_id: int) -> ApiAnswer:
        """Restore the daily (physical) backup `backup_id` (`POST .../database/backups/restore`)."""
        return await self.mgmt_send("POST", "/database/backups/restore", {"id": int(backup_id)})

    async def restore_pitr(self, target_unix: int) -> ApiAnswer:
        """Point-in-time restore (`POST .../database/backups/restore-pitr`); needs the PITR add-on."""
        return await self.mgmt_send("POST", "/database/backups/restore-pitr",
                                    {"recovery_time_target_unix": int(target_unix)})

    async def create_restore_point(self, name: str) -> tuple[RestorePoint | None, str | None]:
        """Take a named restore point (`POST .../backups/restore-point`, name at most 20 characters)."""
        answer = await self.mgmt_send("POST", "/database/backups/restore-point", {"name": name})
        if not answer.ok:
            return None, answer.problem
        return parse_restore_point(answer.data) or RestorePoint(name=name, status="PENDING"), None

    async def restore_point(self, name: str) -> tuple[RestorePoint | None, str | None]:
        """The restore point `name` as the Management API reports it now."""
        if self.config is None or self.config.access_token is None:
            return None, "not configured: [supabase] access_token"
        outcome, problem = await self.mgmt_get("/database/backups/restore-point", params={"name": name})
        if outcome is None:
            return None, problem
        if not outcome.ok:
            return None, _redact_text(outcome.problem or "request failed", self.mgmt_secret_values())
        data = outcome.data
        if isinstance(data, list):  # tolerate a list answer: pick the one asked for
            data = next((d for d in data if isinstance(d, Mapping) and d.get("name") == name), None)
        point = parse_restore_point(data)
        if point is None:
            return None, f"{MGMT_SERVICE} sent no restore point named {name}"
        return point, None

    async def list_backups(self) -> BackupListing:
        """The project's backups and PITR state; every failure comes back as `problem`."""
        if self.config is None:
            return BackupListing(None, "not configured: [supabase]", Status.OFF)
        if self.config.access_token is None:
            return BackupListing(None, "not configured: access_token", Status.OFF)
        outcome, problem = await self.mgmt_get("/database/backups")
        if outcome is None:
            return BackupListing(None, problem, Status.FAIL)
        if not outcome.ok:
            return BackupListing(None, outcome.problem, outcome.status, outcome.latency_ms)
        parsed = parse_backups(outcome.data)
        if isinstance(parsed, str):
            return BackupListing(None, f"{MGMT_SERVICE} sent an unexpected backups answer: {parsed}",
                                 Status.FAIL, outcome.latency_ms)
        return BackupListing(parsed, None, Status.OK, outcome.latency_ms)


class _BaseCheck:
    """Shared identity and result helpers for the four checks."""

    id = ""
    system = "supabase"
    title = ""

    def __init__(self, adapter: SupabaseAdapter) -> None:
        self.adapter = adapter

    def result(self, status: Status, summary: str, *, latency_ms: float | None = None,
               details: Mapping[str, Any] | None = None) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status, summary=summary,
                           latency_ms=latency_ms, details=dict(details or {}))

    def off(self, what: str) -> CheckResult:
        return self.result(Status.OFF, f"not configured: {what}")


# -- supabase.health -------------------------------------------------------------------------

_HEALTH_STATUS = {"ACTIVE_HEALTHY": Status.OK, "COMING_UP": Status.WARN, "UNHEALTHY": Status.FAIL}


class HealthCheck(_BaseCheck):
    """Service health from the Management API, plus the project's own status when it is not healthy."""

    id = "supabase.health"
    title = "Supabase services"

    async def run(self) -> CheckResult:
        return _redacted(await self._run(), self.adapter.mgmt_secret_values())

    async def _run(self) -> CheckResult:
        cfg = self.adapter.config
        if cfg is None:
            return self.off("[supabase]")
        if cfg.access_token is None:
            return self.off("access_token")
        params = [("services", name) for name in HEALTH_SERVICES]
        (health, problem), (project, _) = await asyncio.gather(
            self.adapter.mgmt_get("/health", params=params), self.adapter.mgmt_get(""))
        if health is None:
            return self.result(Status.FAIL, problem or "Management API token unavailable")
        if not health.ok:
            return self.result(health.status, health.problem or "request failed",
                               latency_ms=health.latency_ms)
        if not isinstance(health.data, list):
            return self.result(Status.FAIL, f"{MGMT_SERVICE} sent an unexpected health answer "
                                            "(expected a list of services)", latency_ms=health.latency_ms)
        by_name: dict[str, Mapping[str, Any]] = {}
        for item in health.data:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                by_name[item["name"]] = item

        statuses: list[Status] = []
        services: dict[str, Any] = {}
        bad: list[str] = []
        good: list[str] = []
        for name in HEALTH_SERVICES:
            item = by_name.get(name)
            if item is None:
                statuses.append(Status.UNKNOWN)
                services[name] = {"status": None, "error": "not in the answer"}
                bad.append(f"{name} not reported")
                continue
            raw = item.get("status")
            state = printable(raw, single_line=True, limit=40) if isinstance(raw, str) else "?"
            error = item.get("error")
            error_txt = (printable(error, single_line=True, limit=80)
                         if isinstance(error, str) and error else None)
            status = _HEALTH_STATUS.get(state, Status.UNKNOWN)
            if error_txt:
                status = Status.FAIL
            statuses.append(status)
            entry: dict[str, Any] = {"status": state}
            if error_txt:
                entry["error"] = error_txt
            info = item.get("info")
            if isinstance(info, Mapping):
                entry["info"] = {printable(str(k), limit=40): printable(str(v), single_line=True, limit=80)
                                 for k, v in info.items()}
            services[name] = entry
            if status is Status.OK:
                good.append(name)
            else:
                bad.append(f"{name} {state}" + (f" ({error_txt})" if error_txt else ""))

        details: dict[str, Any] = {"services": services}
        prefix = ""
        if project is not None and project.ok and isinstance(project.data, Mapping):
            raw_state = project.data.get("status")
            if isinstance(raw_state, str):
                state = printable(raw_state, single_line=True, limit=40)
                details["project_status"] = state
                if state != "ACTIVE_HEALTHY":
                    prefix = f"project {state}; "
                    statuses.append(Status.FAIL if state in _PROJECT_FAILED
                                    else Status.UNKNOWN if state == "UNKNOWN" else Status.WARN)
        elif project is not None and project.problem:
            details["project_problem"] = project.problem

        overall = worst(statuses)
        if not bad and not prefix:
            summary = f"{', '.join(HEALTH_SERVICES)}: all ACTIVE_HEALTHY"
        else:
            tail = f"; {', '.join(good)} healthy" if good else ""
            summary = prefix + "; ".join(bad) + tail
        return self.result(overall, summary, latency_ms=health.latency_ms, details=details)


# -- supabase.resources ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CpuCounters:
    """Sums of node_cpu_seconds_total over all CPUs at one scrape."""

    at: float  # time.monotonic() when the scrape arrived
    idle: float
    total: float
    cpus: int


@dataclass(slots=True)
class Scrape:
    """The figures one scrape of the metrics endpoint gave (None: metric absent)."""

    cpu: CpuCounters | None = None
    mem_total: float | None = None
    mem_available: float | None = None
    disks: dict[str, tuple[float, float]] = field(default_factory=dict)  # mount -> (size, avail)
    backends: float | None = None
    max_connections: float | None = None
    pg_up: float | None = None
    pooler_clients: float | None = None
    samples: int = 0
    foreign_refs: set[str] = field(default_factory=set)


_KNOWN = frozenset({
    "node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
    "node_filesystem_size_bytes", "node_filesystem_avail_bytes", "pg_stat_database_num_backends",
    "max_connections_connection_count", "pg_up", "supavisor_connections_active",
})


def parse_metrics(text: str, project_ref: str, at: float) -> Scrape | str:
    """Read the figures we need from Prometheus text (via prometheus_client); a str says why not."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError, TypeError, UnicodeError) as exc:
        return f"unreadable Prometheus text ({printable(str(exc), single_line=True, limit=60)})"
    scrape = Scrape()
    cpu_idle = 0.0
    cpu_total = 0.0
    cpus: set[str] = set()
    sizes: dict[str, float] = {}
    avails: dict[str, float] = {}
    sums: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name not in _KNOWN or not math.isfinite(value):
                continue
            ref = labels.get("supabase_project_ref")
            if ref is not None and ref != project_ref:
                scrape.foreign_refs.add(printable(ref, single_line=True, limit=40))
                continue
            scrape.samples += 1
            if name == "node_cpu_seconds_total":
                cpus.add(labels.get("cpu", ""))
                cpu_total += value
                if labels.get("mode") == "idle":
                    cpu_idle += value
            elif name in ("node_filesystem_size_bytes", "node_filesystem_avail_bytes"):
                if labels.get("fstype", "") in _PSEUDO_FS:
                    continue
                mount = printable(labels.get("mountpoint", "?"), single_line=True, limit=40)
                (sizes if name == "node_filesystem_size_bytes" else avails)[mount] = value
            else:
                sums[name] = sums.get(name, 0.0) + value
    if cpus:
        scrape.cpu = CpuCounters(at=at, idle=cpu_idle, total=cpu_total, cpus=len(cpus))
    scrape.mem_total = sums.get("node_memory_MemTotal_bytes")
    scrape.mem_available = sums.get("node_memory_MemAvailable_bytes")
    scrape.disks = {m: (sizes[m], avails[m]) for m in sorted(sizes) if m in avails and sizes[m] > 0}
    scrape.backends = sums.get("pg_stat_database_num_backends")
    scrape.max_connections = sums.get("max_connections_connection_count")
    scrape.pg_up = sums.get("pg_up")
    scrape.pooler_clients = sums.get("supavisor_connections_active")
    return scrape


def cpu_busy_pct(before: CpuCounters, after: CpuCounters) -> float | None:
    """Busy % between two scrapes = 100 × (1 − Δidle / Δall modes); None if no time passed."""
    d_total = after.total - before.total
    d_idle = after.idle - before.idle
    if d_total <= 0 or d_idle < 0 or after.cpus != before.cpus:
        return None
    return max(0.0, min(100.0, 100.0 * (1.0 - d_idle / d_total)))


class ResourcesCheck(_BaseCheck):
    """CPU, memory, disk and connections from the project's privileged metrics endpoint.

    The previous scrape's CPU counters are kept here: the busy % is their rate to the current
    scrape. With no usable previous scrape, a second one is taken `cpu_sample_s` later.
    """

    id = "supabase.resources"
    title = "Supabase CPU / memory / disk"
    MIN_WINDOW_S = 1.0
    MAX_BASELINE_AGE_S = 600.0

    def __init__(self, adapter: SupabaseAdapter, *, cpu_sample_s: float = 1.0) -> None:
        super().__init__(adapter)
        self.cpu_sample_s = cpu_sample_s
        self.previous: CpuCounters | None = None

    async def _scrape(self, key: str, timeout_s: float) -> tuple[HttpOutcome, Scrape | str]:
        cfg = self.adapter.config
        assert cfg is not None and self.adapter.project is not None and cfg.service_role_key is not None
        basic = base64.b64encode(f"service_role:{key}".encode()).decode()
        outcome = await fetch(self.adapter.project, cfg.project_api_url + METRICS_PATH,
                              service=METRICS_SERVICE, credential=cfg.service_role_key.hint,
                              timeout_s=timeout_s, expect="text",
                              headers={"Authorization": f"Basic {basic}",
                                       "Accept": "text/plain;version=0.0.4;q=1, */*;q=0.1"})
        if not outcome.ok:
            return outcome, outcome.problem or "request failed"
        ctype = outcome.headers.get("content-type", "")
        if "html" in ctype or outcome.text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
            return outcome, (f"{METRICS_SERVICE} answered HTTP {outcome.status_code} with an HTML page where "
                             "Prometheus text was expected (proxy, login or error page?)")
        parsed = parse_metrics(outcome.text, cfg.project_ref, time.monotonic())
        if isinstance(parsed, str):
            return outcome, f"{METRICS_SERVICE} sent {parsed}"
        if parsed.samples == 0:
            if parsed.foreign_refs:
                others = ", ".join(sorted(parsed.foreign_refs))
                return outcome, (f"{METRICS_SERVICE} reports project {others}, not {cfg.project_ref} "
                                 "— check api_url")
            return outcome, (f"{METRICS_SERVICE} sent no node/Postgres metrics "
                             f"({len(outcome.text)} bytes) — is api_url the project URL?")
        return outcome, parsed

    async def run(self) -> CheckResult:
        cfg = self.adapter.config
        if cfg is None:
            return self.off("[supabase]")
        if cfg.service_role_key is None:
            return self.off("service_role_key")
        revealed = _reveal(cfg.service_role_key)
        if revealed.value is None:
            return self.result(Status.FAIL, f"service-role key unavailable: {revealed.problem}")
        secrets = _secret_values(revealed.value)
        return _redacted(await self._measure(revealed.value), secrets)

    def _baseline(self, current: CpuCounters) -> CpuCounters | None:
        """The previous scrape, unless it is too old or the counters reset (restart, resize)."""
        prev = self.previous
        if prev is None or current.at - prev.at > self.MAX_BASELINE_AGE_S:
            return None
        if current.total < prev.total or current.idle < prev.idle or current.cpus != prev.cpus:
            return None
        return prev

    async def _measure(self, key: str) -> CheckResult:
        deadline = time.monotonic() + self.adapter.timeout_s
        outcome, scraped = await self._scrape(key, self.adapter.timeout_s)
        if isinstance(scraped, str):
            status = outcome.status if not outcome.ok else Status.FAIL
            return self.result(status, scraped, latency_ms=outcome.latency_ms)
        latency = outcome.latency_ms
        cpu_note: str | None = None
        cpu_pct: float | None = None
        current = scraped.cpu
        if current is None:
            return self._evaluate(scraped, None, "CPU: no node_cpu_seconds_total in the metrics", latency)
        start = self._baseline(current)
        if start is None or current.at - start.at < self.MIN_WINDOW_S:
            # No usable earlier scrape (or a very recent one): sample again shortly.
            start = start or current
            wait = max(0.0, self.cpu_sample_s - (current.at - start.at))
            if deadline - time.monotonic() - wait > 0.3:
                await asyncio.sleep(wait)
                _, second = await self._scrape(key, deadline - time.monotonic())
                if isinstance(second, Scrape) and second.cpu is not None:
                    scraped, current = second, second.cpu
                else:
                    cpu_note = "CPU: needs a second scrape (the second one failed)"
            else:
                cpu_note = "CPU: needs a second scrape (no time left this round)"
        if cpu_note is None:
            cpu_pct = cpu_busy_pct(start, current)
            if cpu_pct is None:
                cpu_note = "CPU: counters did not advance between scrapes; next round will tell"
        # Counters that stood still (the endpoint may cache between its own collections) keep the
        # older baseline, so the next round measures over the longer window.
        stood_still = cpu_pct is None and start is not current and start.total == current.total
        self.previous = start if stood_still else current
        return self._evaluate(scraped, cpu_pct, cpu_note, latency)

    def _evaluate(self, s: Scrape, cpu_pct: float | None, cpu_note: str | None,
                  latency: float | None) -> CheckResult:
        statuses: list[Status] = []
        parts: list[str] = []
        hints: list[str] = []
        details: dict[str, Any] = {"cpu_pct": None if cpu_pct is None else round(cpu_pct, 1)}

        if cpu_pct is not None:
            level = _level(cpu_pct, CPU_WARN_PCT, CPU_FAIL_PCT)
            statuses.append(level)
            parts.append(f"CPU {cpu_pct:.0f}%" + (f" (>{CPU_FAIL_PCT:.0f}%)" if level is Status.FAIL else ""))
            if level is Status.FAIL:
                hints.append("CPU > 90%: kill long-running queries")
            details["cpus"] = s.cpu.cpus if s.cpu else None
        else:
            statuses.append(Status.UNKNOWN)
            parts.append(cpu_note or "CPU: needs a second scrape")
            details["cpu_note"] = cpu_note

        if s.mem_total and s.mem_available is not None:
            mem_pct = max(0.0, min(100.0, 100.0 * (1.0 - s.mem_available / s.mem_total)))
            statuses.append(_level(mem_pct, USAGE_WARN_PCT, USAGE_FAIL_PCT))
            parts.append(f"RAM {mem_pct:.0f}%")
            details["mem_pct"] = round(mem_pct, 1)
        else:
            details["mem_pct"] = None

        disk_pct: dict[str, float] = {}
        for mount, (size, avail) in s.disks.items():
            disk_pct[mount] = round(max(0.0, min(100.0, 100.0 * (1.0 - avail / size))), 1)
            statuses.append(_level(disk_pct[mount], USAGE_WARN_PCT, USAGE_FAIL_PCT))
        if disk_pct:
            parts.append("disk " + ", ".join(f"{m} {p:.0f}%" for m, p in disk_pct.items()))
        details["disk_pct"] = disk_pct

        details["connections"] = None if s.backends is None else int(s.backends)
        details["max_connections"] = None if s.max_connections is None else int(s.max_connections)
        if s.backends is not None and s.max_connections:
            conn_pct = 100.0 * s.backends / s.max_connections
            level = _level(conn_pct, USAGE_WARN_PCT, USAGE_FAIL_PCT)
            statuses.append(level)
            parts.append(f"conns {s.backends:.0f}/{s.max_connections:.0f}")
            details["connections_pct"] = round(conn_pct, 1)
            if level is Status.FAIL:
                hints.append("connections nearly exhausted")
        elif s.backends is not None:
            parts.append(f"conns {s.backends:.0f}")
        if s.pooler_clients is not None:
            details["pooler_clients"] = int(s.pooler_clients)
        if s.pg_up is not None:
            details["pg_up"] = int(s.pg_up)
            if s.pg_up < 1:
                statuses.append(Status.FAIL)
                parts.insert(0, "Postgres DOWN (pg_up 0)")
        missing = [name for name, value in (("memory", details["mem_pct"]), ("disk", disk_pct or None),
                                            ("connections", s.backends)) if value is None]
        if missing:
            details["missing"] = missing
        summary = " · ".join(parts)
        if hints:
            summary += " — " + "; ".join(hints)
        return self.result(worst(statuses), summary, latency_ms=latency, details=details)


# -- supabase.service_key --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyClaims:
    """What a legacy JWT says about itself (decoded without a signature check)."""

    role: str | None
    ref: str | None
    exp: float | None


def decode_legacy_jwt(value: str) -> KeyClaims | None:
    """The claims of a JWT-shaped key, or None if it is not one.

    No signature check: only the project holds the JWT secret; the REST probe covers validity."""
    parts = value.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict):
        return None
    role = payload.get("role")
    ref = payload.get("ref")
    exp = payload.get("exp")
    return KeyClaims(role=role if isinstance(role, str) else None,
                     ref=ref if isinstance(ref, str) else None,
                     exp=float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None)


class ServiceKeyCheck(_BaseCheck):
    """Is SUPABASE_SERVICE_ROLE_KEY present, unexpired, for this project, and still accepted?"""

    id = "supabase.service_key"
    title = "Service-role key"

    async def run(self) -> CheckResult:
        cfg = self.adapter.config
        if cfg is None:
            return self.off("[supabase]")
        secret = cfg.service_role_key
        if secret is None:
            return self.off("service_role_key")
        revealed = _reveal(secret)
        if revealed.value is None:
            return self.result(Status.FAIL, f"service-role key unavailable: {revealed.problem}")
        return _redacted(await self._check(cfg, secret, revealed.value), _secret_values(revealed.value))

    async def _check(self, cfg: SupabaseSettings, secret: Secret, key: str) -> CheckResult:
        details: dict[str, Any] = {"key": secret.masked(), "source": secret.source}
        statuses: list[Status] = []
        notes: list[str] = []
        if key.startswith("sb_publishable_"):
            details["kind"] = "publishable"
            return self.result(Status.FAIL, f"this is a publishable key, not a service-role key — check "
                                            f"{secret.hint}", details=details)
        claims: KeyClaims | None = None
        is_jwt = False
        if key.startswith("sb_secret_"):
            details["kind"] = "secret"
            kind_txt = "sb_secret_ key (no expiry)"
        else:
            claims = decode_legacy_jwt(key)
            if claims is None:
                details["kind"] = "unrecognised"
                return self.result(Status.FAIL, f"neither a legacy JWT nor an sb_secret_ key — check "
                                                f"{secret.hint}", details=details)
            is_jwt = True
            details["kind"] = "legacy_jwt"
            kind_txt = "legacy service_role JWT"
            local = self._judge_claims(cfg, claims, details, notes)
            statuses.append(local)
            if local is Status.FAIL:
                details["probed"] = False
                return self.result(Status.FAIL, "; ".join(notes) + f" — check {secret.hint}", details=details)

        assert self.adapter.project is not None
        headers = {"apikey": key}
        if is_jwt:
            headers["Authorization"] = f"Bearer {key}"
        url = cfg.project_api_url + REST_ROOT_PATH
        outcome = await fetch(self.adapter.project, url, service=REST_SERVICE, credential=secret.hint,
                              headers=headers, timeout_s=self.adapter.timeout_s, ok_statuses=(401, 403))
        details["probed"] = True
        details["probe_status"] = outcome.status_code
        latency = outcome.latency_ms
        own = _service_message(outcome.data)
        own_txt = f" ({own})" if own else ""
        if outcome.status_code == 401:
            return self.result(Status.FAIL, f"rejected by {_host(url)} (rotated or revoked?){own_txt} — "
                                            f"check {secret.hint}", latency_ms=latency, details=details)
        if outcome.status_code == 403:
            return self.result(Status.FAIL, f"this is not a service-role key: {_host(url)} answered 403 on "
                                            f"{REST_ROOT_PATH}{own_txt} — check {secret.hint}",
                               latency_ms=latency, details=details)
        if not outcome.ok:
            return self.result(outcome.status, f"could not verify the key: {outcome.problem}",
                               latency_ms=latency, details=details)
        if not isinstance(outcome.data, Mapping):
            return self.result(Status.FAIL, f"could not verify the key: {REST_SERVICE} answered HTTP "
                                            f"{outcome.status_code} with something that is not PostgREST's "
                                            "OpenAPI document", latency_ms=latency, details=details)
        statuses.append(Status.OK)
        summary = f"{kind_txt} accepted by {REST_ROOT_PATH}"
        if notes:
            summary += "; " + "; ".join(notes)
        return self.result(worst(statuses), summary, latency_ms=latency, details=details)

    def _judge_claims(self, cfg: SupabaseSettings, claims: KeyClaims, details: dict[str, Any],
                      notes: list[str]) -> Status:
        """Expiry, ref and role from the decoded claims; appends the human-readable findings to notes."""
        status = Status.OK
        details["role"] = None if claims.role is None else printable(claims.role, single_line=True, limit=40)
        details["ref"] = None if claims.ref is None else printable(claims.ref, single_line=True, limit=40)
        if claims.role != "service_role":
            status = Status.FAIL
            notes.append(f"this is not a service-role key (role {details['role'] or 'missing'})")
        if claims.ref is not None and claims.ref != cfg.project_ref:
            status = Status.FAIL
            notes.append(f"key is for project {details['ref']}, not {cfg.project_ref}")
        if claims.exp is None:
            details["expires_at"] = None
            notes.append("no exp claim")
            return status
        try:
            expires = datetime.fromtimestamp(claims.exp, UTC)
        except (OverflowError, OSError, ValueError):
            details["expires_at"] = None
            notes.append("unreadable exp claim")
            return status
        details["expires_at"] = _stamp(expires)
        left_s = claims.exp - time.time()
        details["expires_in_days"] = round(left_s / 86400, 1)
        if left_s <= 0:
            notes.append(f"expired {_ago(-left_s)} ago ({_short_stamp(expires)})")
            return Status.FAIL
        if left_s <= KEY_WARN_DAYS * 86400:
            days = left_s / 86400
            when = f"{days:.0f} days" if days >= 1.5 else _ago(left_s)
            notes.append(f"expires in {when} ({_short_stamp(expires)}) — rotate before then")
            return worst([status, Status.WARN])
        if status is Status.OK:
            notes.append(f"valid until {expires:%Y-%m-%d}")
        return status


# -- backups.latest --------------------------------------------------------------------------

def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _unix(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_backups(data: Any) -> BackupInventory | str:
    """V1BackupsResponse → BackupInventory (newest first); a str says what was wrong with the shape."""
    if not isinstance(data, Mapping):
        return "expected an object"
    raw = data.get("backups")
    if not isinstance(raw, list):
        return "no 'backups' list"
    backups: list[Backup] = []
    unreadable = 0
    for item in raw:
        if not isinstance(item, Mapping):
            unreadable += 1
            continue
        ident, status, when = item.get("id"), item.get("status"), _parse_time(item.get("inserted_at"))
        if isinstance(ident, bool) or not isinstance(ident, int) or not isinstance(status, str) or not when:
            unreadable += 1
            continue
        backups.append(Backup(id=ident, status=printable(status, single_line=True, limit=20),
                              inserted_at=when, is_physical=item.get("is_physical_backup") is True))
    backups.sort(key=lambda b: b.inserted_at, reverse=True)
    window: PitrWindow | None = None
    physical = data.get("physical_backup_data")
    if isinstance(physical, Mapping):
        earliest = _unix(physical.get("earliest_physical_backup_date_unix"))
        latest = _unix(physical.get("latest_physical_backup_date_unix"))
        if earliest is not None or latest is not None:
            window = PitrWindow(earliest=earliest, latest=latest)
    region = data.get("region")
    region_txt = printable(region, single_line=True, limit=40) if isinstance(region, str) else ""
    return BackupInventory(region=region_txt,
                           walg_enabled=data.get("walg_enabled") is True,
                           pitr_enabled=data.get("pitr_enabled") is True,
                           backups=tuple(backups), pitr_window=window, unreadable=unreadable)


def parse_restore_point(data: Any) -> RestorePoint | None:
    if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
        return None
    status = data.get("status")
    return RestorePoint(name=printable(data["name"], single_line=True, limit=40),
                        status=printable(status, single_line=True, limit=20) if isinstance(status, str) else "?",
                        completed_on=_parse_time(data.get("completed_on")))


class BackupsCheck(_BaseCheck):
    """Is there a recent restore point? Newest completed backup, last attempt, PITR window."""

    id = "backups.latest"
    system = "backups"
    title = "Latest backup"

    async def run(self) -> CheckResult:
        listing = await self.adapter.list_backups()
        if listing.status is Status.OFF:
            return self.result(Status.OFF, listing.problem or "not configured")
        if listing.inventory is None:
            result = self.result(listing.status, listing.problem or "backups unavailable",
                                 latency_ms=listing.latency_ms)
        else:
            result = evaluate_backups(self, listing.inventory, listing.latency_ms)
        return _redacted(result, self.adapter.mgmt_secret_values())


def evaluate_backups(check: BackupsCheck, inv: BackupInventory, latency_ms: float | None) -> CheckResult:
    now = utcnow()
    statuses: list[Status] = []
    parts: list[str] = []
    details: dict[str, Any] = {
        "region": inv.region,
        "pitr_enabled": inv.pitr_enabled,
        "walg_enabled": inv.walg_enabled,
        "backups": [{"id": b.id, "status": b.status, "inserted_at": _stamp(b.inserted_at),
                     "physical": b.is_physical} for b in inv.backups[:_BACKUP_DETAILS_MAX]],
        "backup_count": len(inv.backups),
    }
    if inv.unreadable:
        details["unreadable_entries"] = inv.unreadable
    window = inv.pitr_window
    if window is not None:
        details["pitr_earliest"] = None if window.earliest is None else _stamp(window.earliest)
        details["pitr_latest"] = None if window.latest is None else _stamp(window.latest)

    newest_ok = inv.newest_completed
    recovery_point: datetime | None = None
    if newest_ok is not None:
        recovery_point = newest_ok.inserted_at
        age_s = (now - recovery_point).total_seconds()
        parts.append(f"newest completed backup {_ago(age_s)} ago")
        details["newest_completed_id"] = newest_ok.id
    elif inv.pitr_enabled and window is not None and window.latest is not None:
        # With PITR on, Supabase stops taking daily backups: the WAL archive is the restore point.
        recovery_point = window.latest
        parts.append(f"no daily backup; PITR latest point {_ago((now - recovery_point).total_seconds())} ago")
    if recovery_point is None:
        statuses.append(Status.FAIL)
        parts.append(f"no completed backup among {len(inv.backups)}")
        details["newest_completed_age_h"] = None
    else:
        age_h = (now - recovery_point).total_seconds() / 3600
        details["newest_completed_age_h"] = round(age_h, 1)
        level = _level(age_h, BACKUP_WARN_H, BACKUP_FAIL_H)
        statuses.append(level)
        if level is not Status.OK:
            parts[-1] += f" (>{BACKUP_FAIL_H if level is Status.FAIL else BACKUP_WARN_H:.0f} h)"

    newest = inv.newest
    if newest is not None and newest.status == FAILED:
        statuses.append(Status.WARN)
        parts.append(f"last backup FAILED {_ago((now - newest.inserted_at).total_seconds())} ago")

    if inv.pitr_enabled:
        pitr = "PITR on"
        if window is not None and window.earliest is not None and window.latest is not None:
            span_s = (window.latest - window.earliest).total_seconds()
            pitr += f" ({_ago(span_s)} window)"
        parts.append(pitr)
    else:
        parts.append("PITR off")
    return check.result(worst(statuses), " · ".join(parts), latency_ms=latency_ms, details=details)
