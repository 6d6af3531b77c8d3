"""The file's schema: every section and key it may contain, and one builder per section that
turns a validated `[section]` table into its settings dataclass (or None when it has errors).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from opsconsole.config.errors import MISSING_FOUND, describe, quote, suggest
from opsconsole.config.fields import MISSING, Missing, Reader, Section, relative_to_config
from opsconsole.config.secrets import read_secret
from opsconsole.domain.text import printable
from opsconsole.settings import (
    ActionsSettings,
    ApiSettings,
    AuditSettings,
    ChecksSettings,
    DlqSettings,
    EnvironmentSettings,
    MigrationsSettings,
    N8nSettings,
    RequeueTarget,
    RunbooksSettings,
    Secret,
    Settings,
    SupabaseSettings,
    TwilioSettings,
    UiSettings,
    VercelSettings,
)

_T = TypeVar("_T")

SECTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "environment": ("name", "read_only"),
    "api": ("health_url", "timeout_s"),
    "vercel": ("api_url", "project_id", "team_id", "token", "status_url", "log_lines"),
    "supabase": (
        "project_ref",
        "api_url",
        "management_url",
        "status_url",
        "access_token",
        "service_role_key",
        "database_url",
        "pooler_url",
    ),
    "n8n": ("api_url", "api_key", "workflows"),
    "twilio": ("account_sid", "auth_token", "api_url", "monitor_url"),
    "dlq": ("table", "requeue", "never_requeue_error_codes", "columns"),
    "audit": ("path",),
    "checks": ("interval_s", "timeout_s", "long_running_s", "intervals"),
    "actions": ("max_preview_age_s",),
    "migrations": ("revert_dir",),
    "runbooks": ("dir",),
    "ui": ("theme",),
}
"""Every section and key the file may contain (design.md's contract plus [actions] and [ui])."""

_CHECK_ID = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
MAX_LOG_LINES = 1_000_000

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_PGMQ_QUEUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROJECT_REF = re.compile(r"^[a-z]{20}$")


def _environment(r: Reader, table: object) -> EnvironmentSettings:
    if not isinstance(table, dict):
        r.failed.add("environment")
        if table is not None:
            return EnvironmentSettings()  # reported by build_settings as "not a table"
        r.add(
            "[environment]",
            'an [environment] section with name = "..." (shown in the header, names the audit journal)',
            "no such section",
        )
        return EnvironmentSettings()
    s = Section(r, "environment", table, SECTIONS["environment"])
    name = s.text("name", 'the environment\'s name, e.g. "production" or "staging"', required=True)
    if printable(name) != name or "\n" in name or "\t" in name:
        s.fail(s.key("name"), "printable text on one line", "control characters or line breaks")
    read_only = s.boolean("read_only", False)
    return EnvironmentSettings(name=name.strip(), read_only=read_only) if s.ok else EnvironmentSettings()


def _api(s: Section) -> ApiSettings | None:
    url = s.url("health_url", required=True, example="https://api.example.com/health")
    timeout = s.seconds("timeout_s", 5.0)
    return ApiSettings(health_url=url, timeout_s=timeout) if s.ok else None


def _vercel(s: Section) -> VercelSettings | None:
    d = VercelSettings(project_id="", token=Secret.literal(""))
    api_url = s.url("api_url", default=d.api_url, carries_credentials=True)
    project_id = s.text("project_id", "the Vercel project id (prj_...) or name", required=True)
    team_id = s.text("team_id", 'a string: the team id (team_...), or "" for a personal account')
    token = read_secret(s, "token", required=True)
    status_url = s.url("status_url", default=d.status_url)
    log_lines = d.log_lines
    raw_lines = s.get("log_lines")
    if not isinstance(raw_lines, Missing):
        if isinstance(raw_lines, bool) or not isinstance(raw_lines, int) or not 100 <= raw_lines <= MAX_LOG_LINES:
            s.fail(s.key("log_lines"), f"a whole number from 100 to {MAX_LOG_LINES:,}", describe(raw_lines))
        else:
            log_lines = raw_lines
    if not s.ok or token is None:
        return None
    return VercelSettings(
        project_id=project_id.strip(),
        token=token,
        api_url=api_url,
        team_id=team_id.strip() or None,
        status_url=status_url,
        log_lines=log_lines,
    )


def _supabase(s: Section) -> SupabaseSettings | None:
    d = SupabaseSettings(project_ref="")
    ref = s.text("project_ref", "the project ref: 20 lowercase letters", required=True)
    if ref and not _PROJECT_REF.match(ref):
        s.fail(
            s.key("project_ref"),
            "the project ref: 20 lowercase letters, as in https://<ref>.supabase.co",
            f"{describe(ref)} ({len(ref)} characters)",
        )
    api_url = s.url("api_url", example="https://<project_ref>.supabase.co", carries_credentials=True)
    if api_url and s.ok:
        host = (urlsplit(api_url).hostname or "").lower()
        if host.endswith(".supabase.co") and host != f"{ref}.supabase.co":
            s.warn(
                s.key("api_url"),
                f"https://{ref}.supabase.co (the project of project_ref)",
                quote(api_url),
                hint='leave api_url = "" to derive it from project_ref',
            )
    management_url = s.url("management_url", default=d.management_url, carries_credentials=True)
    status_url = s.url("status_url", default=d.status_url)
    access_token = read_secret(s, "access_token", required=False)
    service_role_key = read_secret(s, "service_role_key", required=False)
    database_url = read_secret(s, "database_url", required=False)
    pooler_url = read_secret(s, "pooler_url", required=False)
    if not s.ok:
        return None
    return SupabaseSettings(
        project_ref=ref,
        api_url=api_url,
        management_url=management_url,
        status_url=status_url,
        access_token=access_token,
        service_role_key=service_role_key,
        database_url=database_url,
        pooler_url=pooler_url,
    )


def _n8n(s: Section) -> N8nSettings | None:
    api_url = s.url(
        "api_url", required=True, example="https://n8n.example.com/api/v1", carries_credentials=True
    )
    api_key = read_secret(s, "api_key", required=True)
    workflows = s.str_list("workflows", "a workflow id (a string)")
    if not s.ok or api_key is None:
        return None
    return N8nSettings(api_url=api_url, api_key=api_key, workflows=workflows)


def _twilio(s: Section) -> TwilioSettings | None:
    d = TwilioSettings(account_sid=Secret.literal(""), auth_token=Secret.literal(""))
    account_sid = read_secret(s, "account_sid", required=True)
    auth_token = read_secret(s, "auth_token", required=True)
    api_url = s.url("api_url", default=d.api_url, carries_credentials=True)
    monitor_url = s.url("monitor_url", default=d.monitor_url, carries_credentials=True)
    if not s.ok or account_sid is None or auth_token is None:
        return None
    return TwilioSettings(
        account_sid=account_sid, auth_token=auth_token, api_url=api_url, monitor_url=monitor_url
    )


def _requeue(s: Section) -> RequeueTarget:
    value = s.get("requeue")
    k = s.key("requeue")
    if isinstance(value, Missing):
        return RequeueTarget()
    expected = '{ kind = "table", target = "schema.table" } or { kind = "pgmq", queue = "name" }'
    if not isinstance(value, dict):
        s.fail(k, expected, describe(value))
        return RequeueTarget()
    kind = value.get("kind", MISSING)
    if isinstance(kind, Missing):
        s.fail(f"{k}.kind", '"table" or "pgmq"', MISSING_FOUND)
        return RequeueTarget()
    if kind not in ("table", "pgmq"):
        s.fail(f"{k}.kind", '"table" or "pgmq"', describe(kind), hint=suggest(str(kind), ("table", "pgmq")))
        return RequeueTarget()
    wanted = "target" if kind == "table" else "queue"
    other = "queue" if kind == "table" else "target"
    for name in value:
        if name == other:
            s.fail(f"{k}.{name}", f'only {wanted} with kind = "{kind}"', f"{name} (used with the other kind)")
        elif name not in ("kind", "target", "queue"):
            s.fail(
                f"{k}.{printable(name, single_line=True, limit=30)}",
                f'kind and {wanted} (kind = "{kind}")',
                "an unknown key",
                hint=suggest(name, ("kind", wanted)),
            )
    ref = value.get(wanted, MISSING)
    pattern, what = (
        (_SQL_NAME, "a table name, e.g. public.campaign_queue")
        if kind == "table"
        else (_PGMQ_QUEUE, "a pgmq queue name (letters, digits, _)")
    )
    if isinstance(ref, Missing):
        s.fail(f"{k}.{wanted}", what, MISSING_FOUND)
        return RequeueTarget()
    if not isinstance(ref, str) or not pattern.match(ref):
        s.fail(f"{k}.{wanted}", what, describe(ref))
        return RequeueTarget()
    if kind == "table":
        return RequeueTarget(kind="table", target=ref, queue="")
    return RequeueTarget(kind="pgmq", target="", queue=ref)


def _dlq(s: Section) -> DlqSettings | None:
    d = DlqSettings()
    table = s.text(
        "table", "a table name, e.g. public.dead_letter_messages", default=d.table, required=s.has("table")
    )
    if s.has("table") and table and not _SQL_NAME.match(table):
        s.fail(s.key("table"), "a table name: name or schema.name (letters, digits, _)", describe(table))
    requeue = _requeue(s)
    codes = s.int_list(
        "never_requeue_error_codes", "a positive Twilio error code (integer)", d.never_requeue_error_codes
    )
    if (
        s.has("never_requeue_error_codes")
        and isinstance(s.get("never_requeue_error_codes"), list)
        and not codes
    ):
        s.warn(
            s.key("never_requeue_error_codes"),
            "the Twilio codes that must never be retried, e.g. [21610, 30004, 30005, 30006, 30007]",
            "an empty list",
            hint="messages to unsubscribed (21610) or unreachable numbers could be requeued",
        )
    columns = _dlq_columns(s)
    if not s.ok:
        return None
    return DlqSettings(table=table, requeue=requeue, never_requeue_error_codes=codes, columns=columns)


def _dlq_columns(s: Section) -> dict[str, str]:
    """`columns = { error_code = "err_code", ... }`: logical names from domain.dlq -> physical."""
    if not s.has("columns"):
        return {}
    from opsconsole.domain.dlq import LOGICAL_COLUMNS  # only when a mapping is configured
    raw = s.get("columns")
    if not isinstance(raw, dict):
        s.fail(s.key("columns"), 'a table such as { error_code = "err_code" }', describe(raw))
        return {}
    out: dict[str, str] = {}
    for logical, physical in raw.items():
        if logical not in LOGICAL_COLUMNS:
            s.fail(s.key("columns") + f".{logical}", f"one of {', '.join(LOGICAL_COLUMNS)}", describe(logical))
        elif not isinstance(physical, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", physical):
            s.fail(s.key("columns") + f".{logical}", "a column name (letters, digits, _)", describe(physical))
        else:
            out[str(logical)] = physical
    return out


def _audit(s: Section) -> AuditSettings:
    raw = s.text("path", 'a file path, or "" for the default location')
    if not s.ok or not raw.strip():
        return AuditSettings()
    return AuditSettings(path=str(relative_to_config(s.r.path, raw.strip())))


def _checks(s: Section) -> ChecksSettings:
    d = ChecksSettings()
    interval = s.seconds("interval_s", d.interval_s)
    timeout = s.seconds("timeout_s", d.timeout_s)
    long_running = s.seconds("long_running_s", d.long_running_s)
    if s.ok and timeout > interval:
        s.warn(
            s.key("timeout_s"),
            f"at most interval_s ({interval:g})",
            f"{timeout:g}",
            hint="a slow round would still be running when the next one starts",
        )
    intervals = dict(d.intervals)
    raw = s.get("intervals")
    if not isinstance(raw, Missing):
        if not isinstance(raw, dict):
            s.fail(s.key("intervals"), 'a table of check id = seconds, e.g. { "supabase.resources" = 60 }',
                   describe(raw))
        else:
            # `supabase.resources = 60` unquoted is a nested table in TOML: read it as the check id it means
            flat: dict[str, object] = {}
            for name, value in raw.items():
                if isinstance(value, dict):
                    flat.update({f"{name}.{sub}": v for sub, v in value.items()})
                else:
                    flat[str(name)] = value
            for check_id, value in flat.items():
                key = f"{s.key('intervals')}.{printable(str(check_id), single_line=True, limit=40)}"
                if not _CHECK_ID.match(str(check_id)):
                    s.fail(key, 'a check id such as "supabase.resources"', quote(str(check_id)))
                elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 86400:
                    s.fail(key, "a positive number of seconds (under a day)", describe(value))
                else:
                    intervals[str(check_id)] = float(value)
    if not s.ok:
        return d
    return ChecksSettings(interval_s=interval, timeout_s=timeout, long_running_s=long_running,
                          intervals=intervals)


def _migrations(s: Section) -> MigrationsSettings:
    raw = s.text("revert_dir", 'a folder of <version>_<name>.down.sql files, or "" for none')
    if not s.ok or not raw.strip():
        return MigrationsSettings()
    return MigrationsSettings(revert_dir=str(relative_to_config(s.r.path, raw.strip())))


def _runbooks(s: Section) -> RunbooksSettings:
    raw = s.text("dir", 'a folder of runbook files (*.toml), or "" for <config dir>/runbooks')
    if not s.ok or not raw.strip():
        return RunbooksSettings()
    return RunbooksSettings(dir=str(relative_to_config(s.r.path, raw.strip())))


def _actions(s: Section) -> ActionsSettings:
    d = ActionsSettings()
    age = s.seconds("max_preview_age_s", d.max_preview_age_s)
    return ActionsSettings(max_preview_age_s=age) if s.ok else d


def _ui(s: Section) -> UiSettings:
    theme = s.text("theme", 'a theme name, or "" for the built-in theme')
    return UiSettings(theme=theme.strip()) if s.ok else UiSettings()


def build_settings(r: Reader, data: Mapping[str, Any]) -> Settings:
    """Validate every section (all problems go into `r`) and return what could be built."""
    for name, value in data.items():
        if name not in SECTIONS:
            label = printable(name, single_line=True, limit=40)
            r.add(
                f"[{label}]",
                f"a known section ({', '.join(SECTIONS)})",
                "an unknown section",
                hint=suggest(name, SECTIONS, "[{}]"),
            )
        elif not isinstance(value, dict):
            r.failed.add(name)
            r.add(name, f"a [{name}] section (a table)", describe(value))

    def section(name: str) -> Section | None:
        value = data.get(name)
        return Section(r, name, value, SECTIONS[name]) if isinstance(value, dict) else None

    def optional(name: str, build: Callable[[Section], _T | None]) -> _T | None:
        s = section(name)
        return build(s) if s is not None else None

    environment = _environment(r, data.get("environment"))
    # One statement per section, in SECTIONS order, so problems come out in a predictable order.
    api = optional("api", _api)
    vercel = optional("vercel", _vercel)
    supabase = optional("supabase", _supabase)
    n8n = optional("n8n", _n8n)
    twilio = optional("twilio", _twilio)
    dlq = optional("dlq", _dlq)
    audit = optional("audit", _audit) or AuditSettings()
    checks = optional("checks", _checks) or ChecksSettings()
    actions = optional("actions", _actions) or ActionsSettings()
    migrations = optional("migrations", _migrations) or MigrationsSettings()
    runbooks = optional("runbooks", _runbooks) or RunbooksSettings()
    ui = optional("ui", _ui) or UiSettings()
    return Settings(
        environment=environment,
        api=api,
        vercel=vercel,
        supabase=supabase,
        n8n=n8n,
        twilio=twilio,
        dlq=dlq,
        audit=audit,
        checks=checks,
        actions=actions,
        migrations=migrations,
        runbooks=runbooks,
        ui=ui,
        source=r.path,
    )
