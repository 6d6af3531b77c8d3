"""The typed settings every layer receives. Built by `config.load_settings`; frozen.

A section that is absent in the file is `None` here: its checks and actions are off.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class SecretError(Exception):
    """A secret could not be resolved. The message names the source, never the value."""


@dataclass(frozen=True)
class Secret:
    """A credential from `{env=NAME}`, `{file=PATH}` or a literal. Never printed.

    The value is resolved on use (`reveal`), so a rotated file or env var is picked up and
    a missing one is reported by `config check` rather than crashing at start.
    """

    kind: str  # "env" | "file" | "literal"
    ref: str = ""  # env var name or file path; empty for literals
    _literal: str = field(default="", repr=False)

    @property
    def source(self) -> str:
        """Where the value comes from, safe to show: 'env VERCEL_TOKEN', 'file /x', 'literal'."""
        return "literal value in the config file" if self.kind == "literal" else f"{self.kind} {self.ref}"

    @property
    def hint(self) -> str:
        """What an operator should check when the credential is rejected."""
        if self.kind == "env":
            return self.ref
        if self.kind == "file":
            return f"the secret file {self.ref}"
        return "the literal secret in the config file"

    def reveal(self) -> str:
        if self.kind == "literal":
            return self._literal
        if self.kind == "env":
            value = os.environ.get(self.ref)
            if value is None or value == "":
                raise SecretError(f"environment variable {self.ref} is not set")
            return value
        if self.kind == "file":
            path = Path(self.ref).expanduser()
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise SecretError(f"secret file {path} is readable by group or others; run chmod 600 {path}")
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from None
        raise SecretError(f"unknown secret kind {self.kind}")

    def available(self) -> bool:
        try:
            return bool(self.reveal())
        except SecretError:
            return False

    def masked(self) -> str:
        """At most a short prefix: enough to tell two keys apart, never enough to use one."""
        try:
            value = self.reveal()
        except SecretError:
            return "(unavailable)"
        prefix = value[:4] if len(value) >= 12 else ""
        return f"{prefix}…({len(value)} chars)"

    def __str__(self) -> str:
        return f"<secret from {self.source}>"

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    @classmethod
    def literal(cls, value: str) -> Secret:
        return cls(kind="literal", _literal=value)

    @classmethod
    def env(cls, name: str) -> Secret:
        return cls(kind="env", ref=name)

    @classmethod
    def file(cls, path: str) -> Secret:
        return cls(kind="file", ref=path)


@dataclass(frozen=True)
class EnvironmentSettings:
    name: str = "production"
    read_only: bool = False

    @property
    def production_like(self) -> bool:
        low = self.name.lower()
        return any(word in low for word in ("prod", "live", "prd"))


@dataclass(frozen=True)
class ApiSettings:
    health_url: str
    timeout_s: float = 5.0


@dataclass(frozen=True)
class VercelSettings:
    project_id: str
    token: Secret
    api_url: str = "https://api.vercel.com"
    team_id: str | None = None
    status_url: str = "https://www.vercel-status.com"
    log_lines: int = 10_000  # runtime log entries kept in memory by the log view (oldest dropped)


@dataclass(frozen=True)
class SupabaseSettings:
    project_ref: str
    api_url: str = ""  # derived from project_ref when empty
    management_url: str = "https://api.supabase.com"
    status_url: str = "https://status.supabase.com"
    access_token: Secret | None = None
    service_role_key: Secret | None = None
    database_url: Secret | None = None
    pooler_url: Secret | None = None

    @property
    def project_api_url(self) -> str:
        return (self.api_url or f"https://{self.project_ref}.supabase.co").rstrip("/")


@dataclass(frozen=True)
class N8nSettings:
    api_url: str
    api_key: Secret
    workflows: tuple[str, ...] = ()


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: Secret
    auth_token: Secret
    api_url: str = "https://api.twilio.com"
    monitor_url: str = "https://monitor.twilio.com"


@dataclass(frozen=True)
class RequeueTarget:
    kind: str = "table"  # "table" | "pgmq"
    target: str = "public.campaign_queue"  # table name when kind == "table"
    queue: str = ""  # queue name when kind == "pgmq"


@dataclass(frozen=True)
class DlqSettings:
    table: str = "public.dead_letter_messages"
    requeue: RequeueTarget = field(default_factory=RequeueTarget)
    never_requeue_error_codes: tuple[int, ...] = (21610, 30004, 30005, 30006, 30007)
    # logical column -> physical column, for tables shaped differently from the demo's
    columns: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditSettings:
    path: str = ""  # empty: platformdirs user_state_dir/audit/<environment>.jsonl


@dataclass(frozen=True)
class ChecksSettings:
    """Polling and thresholds (not in design.md's list; added, not renamed)."""

    interval_s: float = 10.0
    timeout_s: float = 8.0
    long_running_s: float = 60.0
    # per-check polling interval (seconds); Supabase asks for at most one metrics scrape a minute
    intervals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS))

    def interval_for(self, check_id: str) -> float:
        """How often `check_id` runs: its own interval, or `interval_s`."""
        return float(self.intervals.get(check_id, self.interval_s))

    def stale_after_s(self, check_id: str) -> float:
        """A result of `check_id` older than two of its own intervals is stale (badges, cards, and
        the action kernel for previews built on that check's data)."""
        return 2 * self.interval_for(check_id)


DEFAULT_INTERVALS: Mapping[str, float] = {"supabase.resources": 60.0}


@dataclass(frozen=True)
class MigrationsSettings:
    """Where revert scripts live (`<version>_<name>.down.sql`), besides schema_migrations' rollback column."""

    revert_dir: str = ""


@dataclass(frozen=True)
class RunbooksSettings:
    """The team's own runbook files (add to or override the built-in ones); "" = <config dir>/runbooks."""

    dir: str = ""


@dataclass(frozen=True)
class ActionsSettings:
    """Guarded actions (added beside design.md's keys): how fresh a preview must be."""

    max_preview_age_s: float = 30.0


@dataclass(frozen=True)
class UiSettings:
    theme: str = ""  # empty: the built-in dark theme


@dataclass(frozen=True)
class Settings:
    environment: EnvironmentSettings = field(default_factory=EnvironmentSettings)
    api: ApiSettings | None = None
    vercel: VercelSettings | None = None
    supabase: SupabaseSettings | None = None
    n8n: N8nSettings | None = None
    twilio: TwilioSettings | None = None
    dlq: DlqSettings | None = None
    audit: AuditSettings = field(default_factory=AuditSettings)
    checks: ChecksSettings = field(default_factory=ChecksSettings)
    actions: ActionsSettings = field(default_factory=ActionsSettings)
    migrations: MigrationsSettings = field(default_factory=MigrationsSettings)
    runbooks: RunbooksSettings = field(default_factory=RunbooksSettings)
    ui: UiSettings = field(default_factory=UiSettings)
    source: Path | None = None  # the file these came from
