"""Reading, validating and writing the TOML configuration.

Every problem in a file is collected and reported at once (an operator fixing a config at
3 a.m. should not discover its errors one run at a time), each naming the file, the key,
what was expected and what was found. A secret's value is never part of any message.

`load_settings` fails only on what makes the file unusable; `check_config` additionally
looks at the machine it runs on (secrets resolvable, file permissions, audit directory).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import tomli_w

from opsconsole import paths
from opsconsole.domain.text import printable
from opsconsole.settings import (
    ActionsSettings,
    ApiSettings,
    AuditSettings,
    ChecksSettings,
    DlqSettings,
    EnvironmentSettings,
    N8nSettings,
    RequeueTarget,
    Secret,
    SecretError,
    Settings,
    SupabaseSettings,
    TwilioSettings,
    UiSettings,
    VercelSettings,
)

__all__ = [
    "SECTIONS",
    "ConfigError",
    "ConfigExists",
    "ConfigNotFound",
    "Problem",
    "Severity",
    "check_config",
    "dump_settings_toml",
    "format_problems",
    "load_settings",
    "read_settings",
    "template_text",
    "write_config",
    "write_template",
]

Severity = Literal["error", "warning"]
_T = TypeVar("_T")

SECTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "environment": ("name", "read_only"),
    "api": ("health_url", "timeout_s"),
    "vercel": ("api_url", "project_id", "team_id", "token", "status_url"),
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
    "checks": ("interval_s", "timeout_s", "long_running_s"),
    "actions": ("max_preview_age_s",),
    "ui": ("theme",),
}
"""Every section and key the file may contain (design.md's contract plus [checks] and [ui])."""

_SECRET_FORMS = '{ env = "NAME" }, { file = "PATH" } or a literal string'
_MISSING_FOUND = "nothing (the key is missing)"
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_PGMQ_QUEUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROJECT_REF = re.compile(r"^[a-z]{20}$")
_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)
_TOML_HINTS: Final[Mapping[str, str]] = {
    "Invalid value": 'a value is missing or malformed; strings need double quotes, e.g. name = "staging"',
    "Cannot overwrite a value": "a key is set twice",
    "Cannot declare": "a section or key is declared twice",
    "Unterminated string": "a string is missing its closing quote",
    "Expected '=' after a key": "each line must be key = value; a key with spaces needs quotes",
}


class _Missing:
    """Marks a key that is absent (distinct from any TOML value)."""


_MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file. Its text never contains a secret's value.

    `str()` is `file: key: expected X, found Y` (plus `; hint`). When `expected` is empty the
    problem is a free-form sentence in `found` (e.g. invalid TOML, a permissions warning).
    """

    file: str
    key: str
    expected: str
    found: str
    severity: Severity = "error"
    hint: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        head = f"{where}: {self.key}: " if self.key else f"{where}: "
        body = f"expected {self.expected}, found {self.found}" if self.expected else self.found
        return head + body + (f"; {self.hint}" if self.hint else "")


class ConfigError(Exception):
    """The config cannot be used. `problems` lists every error; `str()` shows one per line."""

    def __init__(self, problems: Sequence[Problem], message: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self._message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self._message is not None:
            return self._message
        return "\n".join(str(p) for p in self.problems)


class ConfigNotFound(ConfigError):
    """There is no file at the path; the message tells a first-time user what to run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        init = "opsconsole config init"
        if _same_path(path, _default_config_path_or_none()):
            init_cmd = init
        else:
            init_cmd = f"{init} --path {shlex.quote(str(path))}"
        message = (
            f"no configuration file at {path}\n"
            f"  {init_cmd}\n"
            f"      writes a commented template there (mode 0600) for you to fill in\n"
            f"  opsconsole demo\n"
            f"      tries the console on the embedded demo environment, no configuration needed"
        )
        problem = Problem(
            file=str(path),
            key="",
            expected="",
            found="no configuration file here",
            hint=f"run `{init_cmd}` to write a template, or `opsconsole demo` to try the console",
        )
        super().__init__([problem], message)


class ConfigExists(ConfigError):
    """`write_template` refused to overwrite an existing file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        message = (
            f"{path} already exists; not overwriting it. Check it with `opsconsole config check`, "
            f"or move it away first to write a fresh template there"
        )
        problem = Problem(str(path), "", "", "the file already exists; not overwriting it")
        super().__init__([problem], message)


# --------------------------------------------------------------------------- describing values


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if value == "" else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return "a date/time"
    return type(value).__name__


def _quote(text: str) -> str:
    return '"' + printable(text, single_line=True, limit=60) + '"'


def _describe(value: object) -> str:
    """A non-secret value as shown in a problem: its TOML type and (short) value."""
    if isinstance(value, bool):
        return f"a boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{_kind(value)} {value}"
    if isinstance(value, str):
        return "an empty string" if value == "" else f"a string {_quote(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return _describe_table(value)
    return _kind(value)


def _describe_table(value: Mapping[str, object]) -> str:
    if not value:
        return "an empty table"
    names = ", ".join(printable(k, single_line=True, limit=30) for k in value)
    return f"a table with key{'s' if len(value) != 1 else ''} {names}"


def _suggest(word: str, choices: Iterable[str], fmt: str = '"{}"') -> str:
    import difflib  # only when there is a typo to explain

    match = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f"did you mean {fmt.format(match[0])}?" if match else ""


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- the validator


class _Reader:
    """Collects problems for one file; sections report into it and never raise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)
        self.problems: list[Problem] = []
        self.secrets: list[tuple[str, Secret]] = []  # every secret that parsed, for check_config
        self.failed: set[str] = set()  # sections with at least one error

    def add(
        self, key: str, expected: str, found: str, *, hint: str = "", severity: Severity = "error"
    ) -> None:
        self.problems.append(Problem(self.file, key, expected, found, severity, hint))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


class _Section:
    """Typed access to one `[section]` table: each getter validates and records problems."""

    def __init__(self, reader: _Reader, name: str, table: Mapping[str, Any]) -> None:
        self.r = reader
        self.name = name
        self.table = table
        known = SECTIONS[name]
        for key in table:
            if key not in known:
                self.fail(
                    self.key(printable(key, single_line=True, limit=40)),
                    f"one of the keys of [{name}] ({', '.join(known)})",
                    "an unknown key",
                    hint=_suggest(key, known),
                )

    @property
    def ok(self) -> bool:
        return self.name not in self.r.failed

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def fail(self, key: str, expected: str, found: str, *, hint: str = "") -> None:
        self.r.failed.add(self.name)
        self.r.add(key, expected, found, hint=hint)

    def warn(self, key: str, expected: str, found: str, *, hint: str = "") -> None:
        self.r.add(key, expected, found, hint=hint, severity="warning")

    def get(self, key: str) -> Any:
        return self.table.get(key, _MISSING)

    def has(self, key: str) -> bool:
        return key in self.table

    # -- scalars

    def text(self, key: str, expected: str, *, default: str = "", required: bool = False) -> str:
        """A string. Required keys must be present and non-blank; optional ones may be ""."""
        value = self.get(key)
        if isinstance(value, _Missing):
            if required:
                self.fail(self.key(key), expected, _MISSING_FOUND)
            return default
        if not isinstance(value, str):
            self.fail(self.key(key), expected, _describe(value))
            return default
        if required and not value.strip():
            self.fail(self.key(key), expected, _describe(value) if value else "an empty string")
            return default
        return value

    def url(
        self,
        key: str,
        *,
        default: str = "",
        required: bool = False,
        example: str = "",
        carries_credentials: bool = False,
    ) -> str:
        """An http(s) URL. `carries_credentials`: plain http to a non-local host gets a warning."""
        expected = "an http:// or https:// URL" + (f", e.g. {example}" if example else "")
        value = self.text(key, expected, default=default, required=required)
        if not value:
            return value
        try:
            parts = urlsplit(value)
            host = parts.hostname or ""
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError as exc:
            self.fail(self.key(key), expected, f"{_quote(value)}, which is not a valid URL ({exc})")
            return default
        if parts.username is not None or parts.password is not None:
            self.fail(
                self.key(key),
                expected + " without user:password@",
                "a URL with credentials in it (not shown)",
                hint="put credentials in the section's secret keys instead",
            )
            return default
        if parts.scheme not in ("http", "https"):
            scheme = f'scheme "{parts.scheme}"' if parts.scheme else "no scheme"
            self.fail(self.key(key), expected, f"{_quote(value)} ({scheme})")
            return default
        if not host:
            self.fail(self.key(key), expected, f"{_quote(value)} (no host name)")
            return default
        if carries_credentials and parts.scheme == "http" and not _is_loopback(host):
            self.warn(
                self.key(key),
                "https:// for a host other than localhost",
                f"{_quote(value)}",
                hint="the API token would travel unencrypted",
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if isinstance(value, _Missing):
            return default
        if not isinstance(value, bool):
            hint = "write true or false without quotes" if isinstance(value, str) else ""
            self.fail(self.key(key), "true or false", _describe(value), hint=hint)
            return default
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.get(key)
        if isinstance(value, _Missing):
            return default
        expected = "a positive number of seconds"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = "write the number without quotes" if isinstance(value, str) else ""
            self.fail(self.key(key), expected, _describe(value), hint=hint)
            return default
        if not math.isfinite(value) or value <= 0:
            self.fail(self.key(key), expected, _describe(value))
            return default
        return float(value)

    # -- lists

    def str_list(self, key: str, expected_item: str) -> tuple[str, ...]:
        value = self.get(key)
        if isinstance(value, _Missing):
            return ()
        if not isinstance(value, list):
            self.fail(self.key(key), f"a list of {expected_item}s", _describe(value))
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                hint = 'quote it: "123"' if isinstance(item, int) and not isinstance(item, bool) else ""
                self.fail(f"{self.key(key)}[{i}]", expected_item, _describe(item), hint=hint)
            else:
                out.append(item)
        return tuple(out)

    def int_list(self, key: str, expected_item: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.get(key)
        if isinstance(value, _Missing):
            return default
        if not isinstance(value, list):
            self.fail(self.key(key), f"a list of {expected_item}s", _describe(value))
            return default
        out: list[int] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
                hint = "write the number without quotes" if isinstance(item, str) else ""
                self.fail(f"{self.key(key)}[{i}]", expected_item, _describe(item), hint=hint)
            else:
                out.append(item)
        return tuple(out)

    # -- secrets

    def secret(self, key: str, *, required: bool) -> Secret | None:
        """`{ env = "NAME" }`, `{ file = "PATH" }` or a literal string. Never echoes the value."""
        value = self.get(key)
        k = self.key(key)
        if isinstance(value, _Missing):
            if required:
                self.fail(k, f"a secret: {_SECRET_FORMS}", _MISSING_FOUND)
            return None
        result = self._parse_secret(k, value, required=required)
        if result is not None:
            self.r.secrets.append((k, result))
        return result

    def _parse_secret(self, k: str, value: object, *, required: bool) -> Secret | None:
        if isinstance(value, str):
            if not value.strip():
                self.fail(
                    k,
                    f"a secret: {_SECRET_FORMS}",
                    "an empty string",
                    hint="" if required else "remove the key if there is no such credential",
                )
                return None
            return Secret.literal(value)
        if not isinstance(value, dict):
            # Only the type: a number here may well be the credential itself.
            self.fail(k, f"a secret: {_SECRET_FORMS}", _kind(value))
            return None
        if len(value) != 1 or not (set(value) <= {"env", "file"}):
            unknown = [name for name in value if name not in ("env", "file")]
            hint = _suggest(unknown[0], ("env", "file")) if len(unknown) == 1 else ""
            if len(value) > 1 and not unknown:
                hint = "use either env or file, not both"
            self.fail(
                k,
                'a secret table with exactly one key, env or file: { env = "NAME" }',
                _describe_table(value),
                hint=hint,
            )
            return None
        ((form, ref),) = value.items()
        if not isinstance(ref, str) or not ref.strip():
            what = "an environment variable name" if form == "env" else "a file path"
            found = f"{form} = {_kind(ref)}" if not isinstance(ref, str) else f'{form} = ""'
            self.fail(k, f"{form} = {what} (a non-empty string)", found)
            return None
        if form == "env":
            if not _ENV_VAR_NAME.match(ref):
                # Not echoed: a pasted credential here is a common mistake.
                self.fail(
                    k,
                    "env = the NAME of an environment variable (letters, digits, _)",
                    "a string that is not a variable name (not shown)",
                    hint='write the variable\'s name, e.g. { env = "VERCEL_TOKEN" }, not its value',
                )
                return None
            return Secret.env(ref)
        return Secret.file(str(_relative_to_config(self.r.path, ref)))


def _relative_to_config(config_path: Path, value: str) -> Path:
    """`~` expanded; a relative path is taken relative to the config file's directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (config_path.parent / p).absolute()


# --------------------------------------------------------------------------- sections


def _environment(r: _Reader, table: object) -> EnvironmentSettings:
    if not isinstance(table, dict):
        r.failed.add("environment")
        if table is not None:
            return EnvironmentSettings()  # reported by _build as "not a table"
        r.add(
            "[environment]",
            'an [environment] section with name = "..." (shown in the header, names the audit journal)',
            "no such section",
        )
        return EnvironmentSettings()
    s = _Section(r, "environment", table)
    name = s.text("name", 'the environment\'s name, e.g. "production" or "staging"', required=True)
    if printable(name) != name or "\n" in name or "\t" in name:
        s.fail(s.key("name"), "printable text on one line", "control characters or line breaks")
    read_only = s.boolean("read_only", False)
    return EnvironmentSettings(name=name.strip(), read_only=read_only) if s.ok else EnvironmentSettings()


def _api(s: _Section) -> ApiSettings | None:
    url = s.url("health_url", required=True, example="https://api.example.com/health")
    timeout = s.seconds("timeout_s", 5.0)
    return ApiSettings(health_url=url, timeout_s=timeout) if s.ok else None


def _vercel(s: _Section) -> VercelSettings | None:
    d = VercelSettings(project_id="", token=Secret.literal(""))
    api_url = s.url("api_url", default=d.api_url, carries_credentials=True)
    project_id = s.text("project_id", "the Vercel project id (prj_...) or name", required=True)
    team_id = s.text("team_id", 'a string: the team id (team_...), or "" for a personal account')
    token = s.secret("token", required=True)
    status_url = s.url("status_url", default=d.status_url)
    if not s.ok or token is None:
        return None
    return VercelSettings(
        project_id=project_id.strip(),
        token=token,
        api_url=api_url,
        team_id=team_id.strip() or None,
        status_url=status_url,
    )


def _supabase(s: _Section) -> SupabaseSettings | None:
    d = SupabaseSettings(project_ref="")
    ref = s.text("project_ref", "the project ref: 20 lowercase letters", required=True)
    if ref and not _PROJECT_REF.match(ref):
        s.fail(
            s.key("project_ref"),
            "the project ref: 20 lowercase letters, as in https://<ref>.supabase.co",
            f"{_describe(ref)} ({len(ref)} characters)",
        )
    api_url = s.url("api_url", example="https://<project_ref>.supabase.co", carries_credentials=True)
    if api_url and s.ok:
        host = (urlsplit(api_url).hostname or "").lower()
        if host.endswith(".supabase.co") and host != f"{ref}.supabase.co":
            s.warn(
                s.key("api_url"),
                f"https://{ref}.supabase.co (the project of project_ref)",
                _quote(api_url),
                hint='leave api_url = "" to derive it from project_ref',
            )
    management_url = s.url("management_url", default=d.management_url, carries_credentials=True)
    status_url = s.url("status_url", default=d.status_url)
    access_token = s.secret("access_token", required=False)
    service_role_key = s.secret("service_role_key", required=False)
    database_url = s.secret("database_url", required=False)
    pooler_url = s.secret("pooler_url", required=False)
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


def _n8n(s: _Section) -> N8nSettings | None:
    api_url = s.url(
        "api_url", required=True, example="https://n8n.example.com/api/v1", carries_credentials=True
    )
    api_key = s.secret("api_key", required=True)
    workflows = s.str_list("workflows", "a workflow id (a string)")
    if not s.ok or api_key is None:
        return None
    return N8nSettings(api_url=api_url, api_key=api_key, workflows=workflows)


def _twilio(s: _Section) -> TwilioSettings | None:
    d = TwilioSettings(account_sid=Secret.literal(""), auth_token=Secret.literal(""))
    account_sid = s.secret("account_sid", required=True)
    auth_token = s.secret("auth_token", required=True)
    api_url = s.url("api_url", default=d.api_url, carries_credentials=True)
    monitor_url = s.url("monitor_url", default=d.monitor_url, carries_credentials=True)
    if not s.ok or account_sid is None or auth_token is None:
        return None
    return TwilioSettings(
        account_sid=account_sid, auth_token=auth_token, api_url=api_url, monitor_url=monitor_url
    )


def _requeue(s: _Section) -> RequeueTarget:
    value = s.get("requeue")
    k = s.key("requeue")
    if isinstance(value, _Missing):
        return RequeueTarget()
    expected = '{ kind = "table", target = "schema.table" } or { kind = "pgmq", queue = "name" }'
    if not isinstance(value, dict):
        s.fail(k, expected, _describe(value))
        return RequeueTarget()
    kind = value.get("kind", _MISSING)
    if isinstance(kind, _Missing):
        s.fail(f"{k}.kind", '"table" or "pgmq"', _MISSING_FOUND)
        return RequeueTarget()
    if kind not in ("table", "pgmq"):
        s.fail(f"{k}.kind", '"table" or "pgmq"', _describe(kind), hint=_suggest(str(kind), ("table", "pgmq")))
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
                hint=_suggest(name, ("kind", wanted)),
            )
    ref = value.get(wanted, _MISSING)
    pattern, what = (
        (_SQL_NAME, "a table name, e.g. public.campaign_queue")
        if kind == "table"
        else (_PGMQ_QUEUE, "a pgmq queue name (letters, digits, _)")
    )
    if isinstance(ref, _Missing):
        s.fail(f"{k}.{wanted}", what, _MISSING_FOUND)
        return RequeueTarget()
    if not isinstance(ref, str) or not pattern.match(ref):
        s.fail(f"{k}.{wanted}", what, _describe(ref))
        return RequeueTarget()
    if kind == "table":
        return RequeueTarget(kind="table", target=ref, queue="")
    return RequeueTarget(kind="pgmq", target="", queue=ref)


def _dlq(s: _Section) -> DlqSettings | None:
    d = DlqSettings()
    table = s.text(
        "table", "a table name, e.g. public.dead_letter_messages", default=d.table, required=s.has("table")
    )
    if s.has("table") and table and not _SQL_NAME.match(table):
        s.fail(s.key("table"), "a table name: name or schema.name (letters, digits, _)", _describe(table))
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


def _dlq_columns(s: _Section) -> dict[str, str]:
    """`columns = { error_code = "err_code", ... }`: logical names from domain.dlq -> physical."""
    if not s.has("columns"):
        return {}
    from opsconsole.domain.dlq import LOGICAL_COLUMNS  # only when a mapping is configured
    raw = s.get("columns")
    if not isinstance(raw, dict):
        s.fail(s.key("columns"), 'a table such as { error_code = "err_code" }', _describe(raw))
        return {}
    out: dict[str, str] = {}
    for logical, physical in raw.items():
        if logical not in LOGICAL_COLUMNS:
            s.fail(s.key("columns") + f".{logical}", f"one of {', '.join(LOGICAL_COLUMNS)}", _describe(logical))
        elif not isinstance(physical, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", physical):
            s.fail(s.key("columns") + f".{logical}", "a column name (letters, digits, _)", _describe(physical))
        else:
            out[str(logical)] = physical
    return out


def _audit(s: _Section) -> AuditSettings:
    raw = s.text("path", 'a file path, or "" for the default location')
    if not s.ok or not raw.strip():
        return AuditSettings()
    return AuditSettings(path=str(_relative_to_config(s.r.path, raw.strip())))


def _checks(s: _Section) -> ChecksSettings:
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
    if not s.ok:
        return d
    return ChecksSettings(interval_s=interval, timeout_s=timeout, long_running_s=long_running)


def _actions(s: _Section) -> ActionsSettings:
    d = ActionsSettings()
    age = s.seconds("max_preview_age_s", d.max_preview_age_s)
    return ActionsSettings(max_preview_age_s=age) if s.ok else d


def _ui(s: _Section) -> UiSettings:
    theme = s.text("theme", 'a theme name, or "" for the built-in theme')
    return UiSettings(theme=theme.strip()) if s.ok else UiSettings()


def _build(r: _Reader, data: Mapping[str, Any]) -> Settings:
    """Validate every section (all problems go into `r`) and return what could be built."""
    for name, value in data.items():
        if name not in SECTIONS:
            label = printable(name, single_line=True, limit=40)
            r.add(
                f"[{label}]",
                f"a known section ({', '.join(SECTIONS)})",
                "an unknown section",
                hint=_suggest(name, SECTIONS, "[{}]"),
            )
        elif not isinstance(value, dict):
            r.failed.add(name)
            r.add(name, f"a [{name}] section (a table)", _describe(value))

    def section(name: str) -> _Section | None:
        value = data.get(name)
        return _Section(r, name, value) if isinstance(value, dict) else None

    def optional(name: str, build: Callable[[_Section], _T | None]) -> _T | None:
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
        ui=ui,
        source=r.path,
    )


# --------------------------------------------------------------------------- reading


def _default_config_path_or_none() -> Path | None:
    try:
        return paths.default_config_path(None)
    except Exception:  # platformdirs cannot fail in practice; a message must never crash
        return None


def _same_path(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    return os.path.abspath(a.expanduser()) == os.path.abspath(b.expanduser())


def _toml_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    line: int | None = None
    column: int | None = None
    m = _TOML_POSITION.match(message)
    if m:
        message = m.group("msg")
        if m.group("line"):
            line, column = int(m.group("line")), int(m.group("col"))
        else:  # "at end of document": point at the last line
            lines = text.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
    hint = next((h for prefix, h in _TOML_HINTS.items() if message.startswith(prefix)), "")
    hint = (hint + "; " if hint else "") + "fix it, then run `opsconsole config check`"
    return Problem(str(path), "", "", f"invalid TOML: {message}", "error", hint, line, column)


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or ConfigError/ConfigNotFound saying exactly why not."""

    def fail(found: str, hint: str = "") -> ConfigError:
        return ConfigError([Problem(str(path), "", "", found, hint=hint)])

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigNotFound(path) from None
    except IsADirectoryError:
        raise fail("this is a directory, not a TOML file", "pass the file's path with --config") from None
    except PermissionError:
        raise fail(
            "cannot be read by this user (permission denied)", "check the file's owner and mode"
        ) from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (invalid byte at offset {exc.start})", "save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(path, text, exc)]) from None


def _parse(path: Path) -> tuple[Settings, _Reader]:
    path = Path(path).expanduser()
    data = _read_toml(path)
    reader = _Reader(path)
    settings = _build(reader, data)
    return settings, reader


def read_settings(path: Path) -> tuple[Settings, list[Problem]]:
    """Settings plus the warnings found while validating; ConfigError if there is any error."""
    settings, reader = _parse(path)
    if reader.errors:
        raise ConfigError(reader.errors)
    return settings, [p for p in reader.problems if not p.is_error]


def load_settings(path: Path) -> Settings:
    """Read and validate `path`. Raises ConfigError listing every problem (ConfigNotFound if absent)."""
    return read_settings(path)[0]


# --------------------------------------------------------------------------- config check


def _check_secret(r: _Reader, key: str, secret: Secret, config_mode: int | None) -> None:
    if secret.kind == "env":
        value = os.environ.get(secret.ref)
        if value is None or not value.strip():
            state = "it unset" if value is None else "it set but empty"
            r.add(
                key,
                f"the environment variable {secret.ref} to be set",
                state,
                hint=f"export {secret.ref} in the environment that runs opsconsole",
            )
            return
    elif secret.kind == "file":
        p = Path(secret.ref)
        expected = f"a readable secret file {p}"
        try:
            st = p.stat()
        except FileNotFoundError:
            r.add(key, expected, "no such file")
            return
        except OSError as exc:
            r.add(key, expected, f"it cannot be accessed ({exc.strerror})")
            return
        if not stat.S_ISREG(st.st_mode):
            r.add(key, expected, "something that is not a regular file")
            return
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            r.add(
                key,
                f"secret file {p} readable only by its owner (mode 0600)",
                f"mode {stat.S_IMODE(st.st_mode):04o}",
                hint=f"chmod 600 {shlex.quote(str(p))}",
            )
            return
        if not os.access(p, os.R_OK):
            r.add(key, expected, "a file this user cannot read", hint="check the file's owner")
            return
    elif secret.kind == "literal" and config_mode is not None and config_mode & (stat.S_IRWXG | stat.S_IRWXO):
        r.add(
            key,
            "",
            f"literal secret in a config file readable by others (mode {config_mode:04o}); "
            f'chmod 600 {shlex.quote(r.file)} or use {{ env = "NAME" }}',
            severity="warning",
        )
    _check_secret_value(r, key, secret)


def _check_secret_value(r: _Reader, key: str, secret: Secret) -> None:
    """Shape checks on a resolved value; messages describe the shape, never the value."""
    try:
        value = secret.reveal()
    except SecretError:
        return  # reported above in source-specific terms
    if not value.strip():
        r.add(key, "a non-empty secret", f"an empty value from {secret.source}")
        return
    if not key.endswith(("database_url", "pooler_url")) or "://" not in value:
        return  # libpq also accepts "host=... dbname=..." strings
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        r.add(key, "a postgresql:// connection URL", f"a malformed URL from {secret.source} (not shown)")
        return
    if parts.scheme not in ("postgres", "postgresql"):
        r.add(key, "a postgresql:// connection URL", f'a "{parts.scheme}://" URL from {secret.source}')
    elif key.endswith("pooler_url") and port not in (None, 6543) and not _is_loopback(parts.hostname or ""):
        r.add(
            key,
            "the transaction-mode pooler on port 6543",
            f"port {port}",
            hint="use the pooler's transaction-mode connection string",
            severity="warning",
        )


def _check_audit(r: _Reader, settings: Settings) -> None:
    target = (
        Path(settings.audit.path)
        if settings.audit.path
        else paths.default_audit_path(settings.environment.name)
    )
    key = "audit.path"
    if target.is_dir():
        r.add(key, "a file path for the audit journal", f"{target}, which is a directory")
        return
    if target.exists():
        if not os.access(target, os.W_OK):
            r.add(key, f"an audit journal this user can append to ({target})", "a file it cannot write")
        return
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        r.add(
            key,
            f"a writable directory for the audit journal {target}",
            f"{ancestor}, which this user cannot write to",
            hint='set [audit] path = "..." to a writable location',
        )


def check_config(path: Path) -> list[Problem]:
    """Everything `load_settings` checks plus this machine: secrets resolvable, permissions, audit dir.

    Returns problems (errors and warnings) instead of raising, so `config check` can show them all.
    """
    path = Path(path).expanduser()
    try:
        settings, reader = _parse(path)
    except ConfigError as exc:
        return list(exc.problems)
    try:
        config_mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        config_mode = None
    for key, secret in reader.secrets:
        _check_secret(reader, key, secret, config_mode)
    if "audit" not in reader.failed:
        _check_audit(reader, settings)
    return list(reader.problems)


def format_problems(problems: Sequence[Problem]) -> str:
    """Lines `error: ...` / `warning: ...`, errors first, and a count, for `config check` output."""
    if not problems:
        return "no problems found"
    ordered = sorted(problems, key=lambda p: not p.is_error)
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    lines = [f"{p.severity}: {p}" for p in ordered]
    lines.append(
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def _toml_value(value: object) -> str:
    """One TOML value serialized by tomli-w; dicts become inline tables (as in design.md)."""
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):  # one line, as in design.md (tomli-w would split it)
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


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
