"""Writing config files: the commented template `config init` writes (every key explained,
with values that validate), settings-like data dumped as TOML, and the atomic mode-0600 write
both go through.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from opsconsole.config.errors import ConfigError, ConfigExists, Problem
from opsconsole.settings import Secret


def _toml_value(value: object) -> str:
    """One TOML value serialized by tomli-w; dicts become inline tables (as in design.md)."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):  # one line, as in design.md (tomli-w would split it)
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


def _toml_key(key: str) -> str:
    """A bare key when TOML allows one; quoted otherwise (a check id has a dot: "supabase.resources")."""
    return key if key.replace("_", "").replace("-", "").isalnum() else tomli_w.dumps({"v": key})[4:].rstrip("\n")


_Entry = tuple[str, object, str]  # key, example value, comment (may be multi-line)

_TEMPLATE_HEADER = """\
# opsconsole configuration
#
# Written by `opsconsole config init`; validate it with `opsconsole config check`.
# Full reference: docs/configuration.md.
#
# Every section below is filled with example values: replace them with yours.
# Delete a whole section to turn its checks and actions off (shown as "not configured",
# never as a failure). [environment] is the only section that must stay.
#
# Secrets take one of three forms:
#   token = { env = "VERCEL_TOKEN" }          read from an environment variable (recommended)
#   token = { file = "~/.secrets/vercel" }    read from a file only you can read (chmod 600);
#                                             a relative path is relative to this file
#   token = "the value itself"                allowed, but keep this file at mode 600
# Secret values are never shown on screen, logged, or written to the audit journal.
"""

_TEMPLATE: tuple[tuple[str, str, tuple[_Entry, ...]], ...] = (
    (
        "environment",
        "Which environment this file points at.",
        (
            (
                "name",
                "production",
                "Shown in the header and names the audit journal. Names containing prod, live or prd\n"
                "get the danger styling.",
            ),
            (
                "read_only",
                False,
                "true: every mutating action is refused and hidden (the --read-only flag forces it).",
            ),
        ),
    ),
    (
        "api",
        "The product API. Turns on the api.health check.",
        (
            ("health_url", "https://api.example.com/health", "Polled with GET; any 2xx is healthy."),
            ("timeout_s", 5, "Seconds before the health request counts as failed."),
        ),
    ),
    (
        "vercel",
        "Vercel deployments and status page: vercel.deployment, vercel.status_page, redeploy/rollback.",
        (
            ("api_url", "https://api.vercel.com", "Vercel REST API."),
            ("project_id", "prj_replace_me", "Project id (Project Settings > General), e.g. prj_..."),
            (
                "team_id",
                "",
                'Team id (team_...) if the project belongs to a team; "" for a personal account.',
            ),
            ("token", {"env": "VERCEL_TOKEN"}, "Access token (Account Settings > Tokens)."),
            ("status_url", "https://www.vercel-status.com", "Public status page."),
            ("log_lines", 10000, "Runtime log entries the log view keeps in memory (oldest dropped)."),
        ),
    ),
    (
        "supabase",
        "Supabase project: supabase.* checks, db.long_running, backups, database actions.",
        (
            ("project_ref", "abcdefghijklmnopqrst", "The 20 lowercase letters in https://<ref>.supabase.co."),
            ("api_url", "", 'Project API URL; "" derives https://<project_ref>.supabase.co.'),
            ("management_url", "https://api.supabase.com", "Management API (resources, backups, restarts)."),
            ("status_url", "https://status.supabase.com", "Public status page."),
            (
                "access_token",
                {"env": "SUPABASE_ACCESS_TOKEN"},
                "Management API personal access token. Optional.",
            ),
            (
                "service_role_key",
                {"env": "SUPABASE_SERVICE_ROLE_KEY"},
                "Service-role key, used by supabase.service_key. Optional.",
            ),
            (
                "database_url",
                {"env": "DATABASE_URL"},
                "postgresql:// URL, direct or session-mode connection (db.long_running, the DLQ). Optional.",
            ),
            (
                "pooler_url",
                {"env": "SUPABASE_POOLER_URL"},
                "postgresql:// URL of the transaction-mode pooler, port 6543 (supabase.pooler). Optional.",
            ),
        ),
    ),
    (
        "n8n",
        "n8n sync workflows: the n8n.executions check.",
        (
            ("api_url", "https://n8n.example.com/api/v1", "Public API base URL, ending in /api/v1."),
            ("api_key", {"env": "N8N_API_KEY"}, "API key (Settings > n8n API)."),
            ("workflows", [], 'Ids of the sync workflows to watch, as strings, e.g. ["aBc123"]; [] = all.'),
        ),
    ),
    (
        "twilio",
        "Twilio: the twilio.alerts check and message lookups.",
        (
            ("account_sid", {"env": "TWILIO_ACCOUNT_SID"}, "Account SID (AC...)."),
            ("auth_token", {"env": "TWILIO_AUTH_TOKEN"}, "Auth token."),
            ("api_url", "https://api.twilio.com", "REST API."),
            ("monitor_url", "https://monitor.twilio.com", "Monitor API (alerts)."),
        ),
    ),
    (
        "dlq",
        "Dead-letter queue in the database (needs [supabase] database_url): dlq.depth, requeue.",
        (
            ("table", "public.dead_letter_messages", "The dead-letter table, name or schema.name."),
            (
                "requeue",
                {"kind": "table", "target": "public.campaign_queue"},
                'Where requeued messages go: { kind = "table", target = "schema.table" }\n'
                'or { kind = "pgmq", queue = "campaign_processing" }.',
            ),
            (
                "never_requeue_error_codes",
                [21610, 30004, 30005, 30006, 30007],
                "Twilio error codes that are never requeued (21610 = recipient unsubscribed;\n"
                "3000x = unreachable, blocked or carrier-rejected).",
            ),
            (
                "columns",
                {},
                "Only if your table's columns are named differently: logical = physical, e.g.\n"
                '{ error_code = "err_code", received_at = "created_at" }. Logical names: id, received_at,\n'
                "status, error_code, payload (required), payload_raw, error_message, message_sid, endpoint,\n"
                "workflow, attempts, requeued_at, discard_reason, history, ... (see docs/configuration.md).",
            ),
        ),
    ),
    (
        "audit",
        "The append-only journal of every action and manual step.",
        (("path", "", '"" = <state dir>/audit/<environment name>.jsonl (see `opsconsole config path`).'),),
    ),
    (
        "checks",
        "How often and how long the live checks run.",
        (
            ("interval_s", 10, "Seconds between two rounds of checks."),
            ("timeout_s", 8, "Seconds before a single check gives up (UNKNOWN); keep it below interval_s."),
            ("long_running_s", 60, "Queries running longer than this are flagged by db.long_running."),
            (
                "intervals",
                {"supabase.resources": 60},
                "Per-check polling interval in seconds (others use interval_s). Supabase asks for at most\n"
                "one metrics scrape a minute. Staleness is judged against each check's own interval.",
            ),
        ),
    ),
    (
        "actions",
        "Guarded actions (cancel/terminate queries, re-queue, ...).",
        (
            (
                "max_preview_age_s",
                30,
                "An action is refused when the data its preview was built on is older than this;\n"
                "refresh and confirm again.",
            ),
        ),
    ),
    (
        "migrations",
        "Reverting a migration (Deploy tab, migrations.revert).",
        (
            (
                "revert_dir",
                "",
                'Folder of revert scripts named <version>_<name>.down.sql; "" = none (the rollback\n'
                "statements schema_migrations may hold are used where they exist).",
            ),
        ),
    ),
    (
        "runbooks",
        "The incident runbooks (wizards).",
        (("dir", "", 'Folder of your own runbook files (*.toml); "" = <config dir>/runbooks.'),),
    ),
    (
        "ui",
        "Appearance.",
        (
            (
                "theme",
                "",
                'Theme name (built-in or a file in <config dir>/themes); "" = the default theme.\n'
                "The --theme flag overrides it.",
            ),
        ),
    ),
)


def _comment(text: str) -> list[str]:
    return [f"# {line}" if line else "#" for line in text.splitlines()]


def template_text() -> str:
    """The commented template `config init` writes: every key, explained, with values that validate.

    tomli-w cannot write comments, so each value is serialized by tomli-w and the comments
    are placed around it.
    """
    out = [_TEMPLATE_HEADER.rstrip("\n")]
    for section, about, entries in _TEMPLATE:
        out.append("")
        out.extend(_comment(about))
        out.append(f"[{section}]")
        for key, value, comment in entries:
            out.extend(_comment(comment))
            out.append(f"{key} = {_toml_value(value)}")
    return "\n".join(out) + "\n"


def _plain(value: object) -> Any:
    """Settings-like data made TOML-serializable: None dropped, Path/tuple/Secret converted."""
    if isinstance(value, Secret):
        if value.kind == "literal":
            return value.reveal()
        return {value.kind: value.ref}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def dump_settings_toml(data: Mapping[str, Any]) -> str:
    """`data` (sections of plain values, `Secret`s or `{env=...}` tables) as TOML, via tomli-w."""
    return tomli_w.dumps(_plain(data))


def _atomic_write(path: Path, text: str, *, overwrite: bool) -> Path:
    """Write `text` to `path` with mode 0600 via a temp file, so no reader sees half a file.

    Without `overwrite`, the final step is a hard link, which fails if the path appeared meanwhile.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError([Problem(str(path), "", "", "this is a directory", hint="give a file path")])
    if not overwrite and path.exists():
        raise ConfigExists(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import secrets

    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # exact, whatever the umask
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ConfigExists(path) from None
            except OSError:  # filesystem without hard links
                if path.exists():
                    raise ConfigExists(path) from None
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def write_template(path: Path, *, force: bool = False) -> Path:
    """Write the commented template to `path` (mode 0600), creating parent directories.

    Refuses (ConfigExists) to replace an existing file unless `force`.
    """
    return _atomic_write(path, template_text(), overwrite=force)


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    """Write `data` as TOML (tomli-w) to `path` with mode 0600, replacing any existing file.

    For generated configs (the demo); secrets may be literal, hence 0600.
    """
    return _atomic_write(path, dump_settings_toml(data), overwrite=True)
