"""The audit journal: append-only JSONL, one event per line, and the incident timeline built from it.

Why a plain file: on a bastion at 3 a.m. the record must survive the console crashing, be readable with
`tail`/`jq`, and be shared by several consoles at once. Every `append` takes an exclusive `flock`, writes the
whole line with one `os.write` on an `O_APPEND` descriptor and `fsync`s before returning, so concurrent
writers never interleave and an event is on disk before the action's result is shown. A journal that cannot
be written raises `JournalError`; the caller stops mutating actions (checks keep running).

Event format (stable: tools and postmortems read it). Every line is one JSON object with, set by `Journal`:

    ts           UTC time with milliseconds, e.g. "2026-11-27T03:12:09.123Z"
    id           uuid4 hex, unique per event
    environment  the environment name (one journal per environment)
    operator     {"user", "sudo_user", "ssh_client", "host"} (see `Operator`)
    kind         "action" | "manual_step" | "note"

`kind = "action"` (a guarded action; written ahead: a `started` event before it changes anything, then the
final event with the same `attempt`; refused and cancelled attempts have only the final event):

    attempt  id shared by the started and the final event   pid      the console process that ran it
    action   stable action id, e.g. "vercel.promote"        title    what the operator saw, e.g. "Promote deployment"
    tier     "reversible" | "disruptive" | "destructive"    target   what it acted on (deployment, queue, PIDs...)
    params   the parameters (object)                        preview  the preview shown (text, list or object)
    typed    what the operator typed or pressed to confirm (null when never asked)
    outcome  "started" | "ok" | "partial" | "failed" | "refused" | "cancelled"
    error    why it failed or was refused (null when ok)    result   what the action reported (object or text)

An attempt with a `started` event and no final one was interrupted (kill -9, an SSH drop, the OOM killer):
its outcome is unknown until someone checks; `unfinished_attempts` finds them. `kind = "verified"` closes one:
`attempt`, `verdict` ("done" | "not_done" | "partial" | "unknown") and `reason` (what the operator checked).

`kind = "manual_step"` (a runbook step done outside the console): `step` (its id or title), `outcome`
("done" | "skipped"), `reason` (why skipped, or a note).  `kind = "note"`: `text`.

`kind = "wizard"` (one transition of a guided runbook run; a run's state is rebuilt from these alone, so a
console killed mid-run can resume it, on any bastion sharing the journal; `wizard_runs` folds them):

    run         id of the run, shared by all its events    runbook     the runbook id, e.g. "api-down"
    title       the runbook's title                        step        the step id ("" for run-level events)
    step_title  the step's title                           index/total the step's position (1-based) and count
    what        "opened" | "resumed" | "entered" | "passed" | "failed" | "running" | "done" | "refused"
                | "skipped" | "acknowledged" | "cancelled" | "unknown" | "verified" | "back" | "closed"
    detail      why (a failed check's summary, a refusal, a skip reason, the operator's note)
    results     check steps: [{"id", "status", "summary"}]  duration_ms  how long the step took (when it ended)
    preview_id  action steps: the preview confirmed (the `preview.preview_id` of the action's own events)
    attempt     action steps: the action's attempt id, once known (links to its `kind = "action"` events)
    outcome     "closed": "resolved" | "unresolved" | "abandoned"; "verified": the verdict

"running" is written before the action is handed to the kernel: a run whose last event for a step is "running"
and whose action has a `started` event and no final one was interrupted mid-action (outcome unknown).

Secrets never reach the file: the values of every resolvable Secret in the settings (and passwords inside
DSN-shaped secrets) are replaced by `***` wherever they appear, values under keys named like
password/token/secret/api_key/dsn/database_url/... become `***`, and DSN passwords (`scheme://user:pw@`),
`password=...`, bearer tokens and JWT/Supabase-key-shaped strings are masked in any text.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import re
import socket
import stat
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from opsconsole import paths
from opsconsole.domain.text import printable
from opsconsole.settings import Secret, SecretError, Settings

__all__ = [
    "ACTION_OUTCOMES",
    "KINDS",
    "MANUAL_STEP_OUTCOMES",
    "WIZARD_WHATS",
    "ActionOutcome",
    "Journal",
    "JournalError",
    "JournalRead",
    "ManualStepOutcome",
    "Operator",
    "StepVisit",
    "TimelineEntry",
    "UnfinishedAttempt",
    "WizardRunRecord",
    "duration_text",
    "fold_wizard_event",
    "format_ts",
    "journal_path",
    "open_wizard_runs",
    "parse_duration",
    "parse_ts",
    "render_timeline",
    "run_outcome_text",
    "runbook_runs_markdown",
    "timeline_entries",
    "timeline_jsonl",
    "timeline_markdown",
    "unfinished_attempts",
    "visit_outcome_text",
    "wizard_runs",
]

KINDS: tuple[str, ...] = ("action", "manual_step", "note", "verified", "wizard")
ActionOutcome = Literal["started", "ok", "partial", "failed", "refused", "cancelled"]
ACTION_OUTCOMES: tuple[str, ...] = ("started", "ok", "partial", "failed", "refused", "cancelled")
FINAL_OUTCOMES: tuple[str, ...] = ("ok", "partial", "failed", "refused", "cancelled")
VERDICTS: tuple[str, ...] = ("done", "not_done", "partial", "unknown")
OUTCOME_UNKNOWN = "outcome unknown"
ManualStepOutcome = Literal["done", "skipped"]
MANUAL_STEP_OUTCOMES: tuple[str, ...] = ("done", "skipped")

MASK = "***"
_RESERVED = ("ts", "id", "environment", "operator")
_MIN_SECRET_LEN = 4  # shorter values are not credentials; masking them would shred every event


# --------------------------------------------------------------------------------------------- operator


def _clean(value: str | None) -> str | None:
    """Environment values are untrusted: trimmed and bounded; empty means absent."""
    if value is None:
        return None
    value = value.strip()[:256]
    return value or None


@dataclass(frozen=True, slots=True)
class Operator:
    """Who is at the keyboard and where from: the 'who' of every journal event."""

    user: str
    sudo_user: str | None = None
    ssh_client: str | None = None
    host: str = ""

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> Operator:
        """From the login session: `os.getlogin()` (the tty's owner, which survives `sudo`/`su`), else the
        effective user's passwd entry, else `$USER`; plus `SUDO_USER`, `SSH_CONNECTION` and the host name."""
        env = os.environ if environ is None else environ
        user: str | None = None
        try:
            user = _clean(os.getlogin())
        except OSError:
            user = None
        if user is None:
            try:
                user = _clean(pwd.getpwuid(os.geteuid()).pw_name)
            except (KeyError, OSError):
                user = None
        if user is None:
            user = _clean(env.get("USER")) or _clean(env.get("LOGNAME")) or "unknown"
        ssh = (env.get("SSH_CONNECTION") or "").split()
        try:
            host = socket.gethostname()
        except OSError:
            host = ""
        return cls(
            user=user,
            sudo_user=_clean(env.get("SUDO_USER")),
            ssh_client=_clean(ssh[0]) if ssh else None,
            host=_clean(host) or "",
        )

    @property
    def label(self) -> str:
        """One line for people: `alice (sudo from bob) from 203.0.113.7 on bastion-1`."""
        text = self.user
        if self.sudo_user and self.sudo_user != self.user:
            text += f" (sudo from {self.sudo_user})"
        elif self.sudo_user:
            text += " (via sudo)"
        if self.ssh_client:
            text += f" from {self.ssh_client}"
        if self.host:
            text += f" on {self.host}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "sudo_user": self.sudo_user, "ssh_client": self.ssh_client, "host": self.host}

    @classmethod
    def from_json(cls, data: Any) -> Operator:
        """Tolerant inverse of `to_json`, for reading journals written by any version (or by hand)."""
        if not isinstance(data, Mapping):
            return cls(user=str(data) if data else "unknown")

        def opt(key: str) -> str | None:
            value = data.get(key)
            return str(value) if value not in (None, "") else None

        return cls(user=opt("user") or "unknown", sudo_user=opt("sudo_user"), ssh_client=opt("ssh_client"),
                   host=opt("host") or "")


# --------------------------------------------------------------------------------------------- errors


class JournalError(Exception):
    """The journal cannot be written (or read). The message says where, why, and what to do about it."""

    def __init__(self, path: Path, reason: str, *, operation: str = "write") -> None:
        self.path = path
        self.reason = reason
        self.operation = operation
        if operation == "write":
            message = (
                f"cannot write the audit journal {path}: {reason}. "
                "Mutating actions are stopped until every action can be recorded (checks keep running). "
                f"Fix the permissions of {path.parent} (it and the file must be writable by this user), "
                'or set [audit] path = "..." in the config file to a writable location.'
            )
        else:
            message = (
                f"cannot read the audit journal {path}: {reason}. "
                f"Check the permissions of {path}, or point [audit] path at the journal to read."
            )
        super().__init__(message)


def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


# --------------------------------------------------------------------------------------------- masking

_SENSITIVE_KEY = re.compile(
    r"password|passwd|token|secret|api_?key|service_role_key|dsn|database_url|pooler_url|authorization"
    r"|credential|private_key|cookie"
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'<>]*:)[^\s\"'<>]*@")
_ASSIGNED = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|pwd|sslpassword|token|access_token|auth_token|secret|api_?key"
    r"|service_role_key)[\"']?\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)"
)
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
_TOKEN_SHAPES = re.compile(
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWT (Supabase anon/service_role keys)
    r"|\bsbp_[A-Za-z0-9]{20,}"  # Supabase personal access token
    r"|\bsb_secret_[A-Za-z0-9_\-]{10,}"  # Supabase secret API key
)
_KEYWORD_DSN_PASSWORD = re.compile(r"(?i)\bpassword\s*=\s*('[^']*'|\S+)")


def _is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key.lower().replace("-", "_").replace(" ", "_")))


def _derived_secrets(value: str) -> set[str]:
    """The value plus the parts that leak alone: a DSN's password, raw and percent-decoded."""
    out = {value}
    if "://" in value:
        try:
            password = urlsplit(value.strip()).password
        except ValueError:
            password = None
        if password:
            out.update({password, unquote(password)})
    for match in _KEYWORD_DSN_PASSWORD.finditer(value):
        out.add(match.group(1).strip("'"))
    return {v for v in out if len(v) >= _MIN_SECRET_LEN}


def _mask_text(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:  # longest first, so a secret containing another is masked whole
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    text = _ASSIGNED.sub(lambda m: f"{m.group('head')}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", text)
    return _TOKEN_SHAPES.sub(MASK, text)


def _jsonable(value: Any) -> Any:
    """Anything a caller may pass (domain objects, enums, datetimes, paths) as plain JSON data."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, Secret):
        return str(value)  # "<secret from env X>": the source, never the value
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime):
        return format_ts(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)
        if callable(to_json):
            return _jsonable(to_json())
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value) if f.repr}
    return str(value)


def _mask(value: Any, secrets: tuple[str, ...]) -> Any:
    """Mask a JSON tree (output of `_jsonable`)."""
    if isinstance(value, str):
        return _mask_text(value, secrets)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            masked_key = _mask_text(key, secrets)
            if _is_sensitive_key(key) and item not in (None, "") and not isinstance(item, bool):
                out[masked_key] = MASK
            else:
                out[masked_key] = _mask(item, secrets)
        return out
    if isinstance(value, list):
        return [_mask(v, secrets) for v in value]
    return value


# Raw in a ensure_ascii=False dump but unsafe in a line-oriented, terminal-read file: DEL and C1 controls
# (U+009B is CSI), NEL/LS/PS (str.splitlines breaks on them) and lone surrogates (not encodable as UTF-8).
_UNSAFE_RAW = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _dumps_line(event: Mapping[str, Any]) -> str:
    """One line of JSON, no raw newline or control character anywhere in it."""
    text = json.dumps(event, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
    return _UNSAFE_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


# --------------------------------------------------------------------------------------------- time


def format_ts(moment: datetime) -> str:
    """`2026-11-27T03:12:09.123Z`: UTC, milliseconds, sortable as text."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(value: Any) -> datetime | None:
    """An event's `ts` as an aware UTC datetime, or None when absent or unparseable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1h30m` (units w d h m s, largest first) -> timedelta; ValueError otherwise."""
    compact = "".join(str(text).split()).lower()
    match = _DURATION.fullmatch(compact)
    if not compact or match is None or not any(match.groups()):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, largest unit first, "
            "e.g. 90s, 30m, 2h, 1d or 1h30m"
        )
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    try:
        delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"invalid duration {text!r}: too long") from None
    if delta <= timedelta(0):
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return delta


# --------------------------------------------------------------------------------------------- journal


@dataclass(frozen=True, slots=True)
class JournalRead:
    """What `Journal.read` found: the events (file order) and how many lines it could not use."""

    events: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0
    path: Path | None = None
    exists: bool = True


def journal_path(settings: Settings) -> Path:
    """`[audit] path`, or `<state dir>/audit/<environment>.jsonl`."""
    if settings.audit.path:
        return Path(settings.audit.path).expanduser()
    return paths.default_audit_path(settings.environment.name)


def _settings_secrets(node: Any) -> list[Secret]:
    """Every Secret anywhere in the (nested, frozen) settings."""
    if isinstance(node, Secret):
        return [node]
    if is_dataclass(node) and not isinstance(node, type):
        return [s for f in fields(node) for s in _settings_secrets(getattr(node, f.name))]
    if isinstance(node, list | tuple):
        return [s for item in node for s in _settings_secrets(item)]
    return []


class Journal:
    """One environment's append-only journal. Blocking (flock + fsync): from async code, `await
    asyncio.to_thread(journal.append, event)` before showing the action's result."""

    def __init__(
        self,
        path: Path,
        *,
        environment: str,
        operator: Operator | None = None,
        secrets: Iterable[str] = (),
        secret_sources: Iterable[Secret] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.environment = environment
        self.operator = operator if operator is not None else Operator.detect()
        self._secret_values: set[str] = set()
        for value in secrets:
            if value:
                self._secret_values |= _derived_secrets(value)
        # Re-revealed on every append, so a secret file rotated mid-incident is still masked.
        self._secret_sources = tuple(secret_sources)
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, environment={self.environment!r})"

    @classmethod
    def for_settings(cls, settings: Settings, operator: Operator | None = None) -> Journal:
        """The journal `settings` name, masking the value of every Secret in them that resolves."""
        sources = _settings_secrets(settings)
        values: list[str] = []
        for secret in sources:
            with contextlib.suppress(SecretError):
                values.append(secret.reveal())
        return cls(journal_path(settings), environment=settings.environment.name, operator=operator,
                   secrets=values, secret_sources=sources)

    # ------------------------------------------------------------------ writing

    def _secrets(self) -> tuple[str, ...]:
        values = set(self._secret_values)
        for secret in self._secret_sources:
            try:
                value = secret.reveal()
            except SecretError:
                continue
            if value:
                values |= _derived_secrets(value)
        return tuple(sorted(values, key=len, reverse=True))

    def _ensure_parent(self) -> None:
        """Create missing parent directories, each 0700 (the journal says who did what: not for others)."""
        missing: list[Path] = []
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)

    def _open_for_append(self) -> int:
        # Read access only lets `_write_line` see a torn last line; a write-only shared journal works without it.
        # NONBLOCK: a FIFO at the path fails at once instead of hanging the console.
        flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            try:
                fd = os.open(self.path, flags | os.O_RDWR, 0o600)
            except PermissionError:
                fd = os.open(self.path, flags | os.O_WRONLY, 0o600)
        except FileNotFoundError:
            self._ensure_parent()
            fd = os.open(self.path, flags | os.O_WRONLY, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise JournalError(self.path, "it is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def check_writable(self) -> str | None:
        """None when events can be appended; otherwise the full, actionable reason (shown to the operator).

        Creates the parent directories (0700) and the empty file (0600) so the first action does not fail late.
        """
        try:
            existed = self.path.exists()
            fd = self._open_for_append()
            os.close(fd)
            if not existed:
                with contextlib.suppress(OSError):  # make the new directory entry durable
                    dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fsync(dir_fd)
                    finally:
                        os.close(dir_fd)
        except JournalError as exc:
            return str(exc)
        except OSError as exc:
            return str(JournalError(self.path, _os_reason(exc)))
        return None

    def append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Record one event (see the module docstring for keys) and return it exactly as written.

        The line is on disk (fsync) when this returns. Raises JournalError if it is not.
        """
        secrets = self._secrets()
        body = _mask(_jsonable({k: v for k, v in event.items() if k not in _RESERVED}), secrets)
        record: dict[str, Any] = {
            "ts": format_ts(self._clock()),
            "id": uuid.uuid4().hex,
            "environment": _mask_text(self.environment, secrets),
            "operator": _mask(self.operator.to_json(), secrets),
            **body,
        }
        line = _dumps_line(record) + "\n"
        self._write_line(line.encode("utf-8"))
        written: dict[str, Any] = json.loads(line)
        return written

    @staticmethod
    def _last_byte(fd: int, size: int) -> bytes | None:
        try:
            return os.pread(fd, 1, size - 1)
        except OSError:  # opened write-only
            return None

    def _write_line(self, data: bytes) -> None:
        try:
            fd = self._open_for_append()
        except OSError as exc:
            raise JournalError(self.path, _os_reason(exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            start = os.fstat(fd).st_size
            if start > 0 and self._last_byte(fd, start) not in (b"\n", None):
                data = b"\n" + data  # a torn line from a crash stays one malformed line, not two
            try:
                view = memoryview(data)
                while view:  # one write in practice; looped only for a short write (we hold the lock)
                    count = os.write(fd, view)
                    view = view[count:]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # e.g. disk full: leave no half line behind
                    os.ftruncate(fd, start)
                raise
        except OSError as exc:
            raise JournalError(self.path, _os_reason(exc)) from None
        finally:
            os.close(fd)  # also releases the lock

    # Thin helpers so callers cannot misspell the stable keys.

    def record_action(
        self,
        *,
        action: str,
        title: str,
        tier: str,
        target: Any,
        outcome: ActionOutcome,
        params: Mapping[str, Any] | None = None,
        preview: Any = None,
        typed: str | None = None,
        error: str | None = None,
        result: Any = None,
    ) -> dict[str, Any]:
        return self.append({
            "kind": "action", "action": action, "title": title, "tier": tier, "target": target,
            "params": dict(params or {}), "preview": preview, "typed": typed, "outcome": outcome,
            "error": error, "result": result,
        })

    def record_manual_step(self, *, step: str, outcome: ManualStepOutcome, reason: str = "") -> dict[str, Any]:
        return self.append({"kind": "manual_step", "step": step, "outcome": outcome, "reason": reason})

    def record_note(self, text: str) -> dict[str, Any]:
        return self.append({"kind": "note", "text": text})

    def record_verified(self, attempt: str, *, verdict: str, reason: str) -> dict[str, Any]:
        """Close an attempt whose outcome was unknown: what the operator found when they checked."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        return self.append({"kind": "verified", "attempt": attempt, "verdict": verdict, "reason": reason})

    # ------------------------------------------------------------------ reading

    def read(self, since: datetime | None = None) -> JournalRead:
        """Every well-formed event (file order), optionally only those at or after `since`.

        A missing journal is an empty one. Lines that are not a JSON object with a valid `ts` are counted in
        `malformed` and skipped, never fatal: a postmortem needs what is readable.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return JournalRead([], 0, self.path, exists=False)
        except OSError as exc:
            raise JournalError(self.path, _os_reason(exc), operation="read") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise JournalError(self.path, "it is not a regular file", operation="read")
            fcntl.flock(fd, fcntl.LOCK_SH)
            chunks: list[bytes] = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        except OSError as exc:
            raise JournalError(self.path, _os_reason(exc), operation="read") from None
        finally:
            os.close(fd)
        threshold = _utc(since) if since is not None else None
        events: list[dict[str, Any]] = []
        malformed = 0
        for raw in b"".join(chunks).split(b"\n"):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                malformed += 1
                continue
            moment = parse_ts(event.get("ts")) if isinstance(event, dict) else None
            if moment is None:
                malformed += 1
                continue
            if threshold is None or moment >= threshold:
                events.append(event)
        return JournalRead(events, malformed, self.path)


# --------------------------------------------------------------------------------------------- attempts


@dataclass(frozen=True, slots=True)
class UnfinishedAttempt:
    """An action that wrote its `started` event and never its final one."""

    attempt: str
    action: str
    title: str
    target: str
    started_at: datetime | None
    operator: Operator
    pid: int | None
    event: Mapping[str, Any]

    def running_here(self, host: str | None = None) -> bool:
        """Whether the process that started it is still alive on this host (then it is in progress,
        not lost). A reused pid is told apart by its command line."""
        here = host if host is not None else socket.gethostname()
        if self.pid is None or not self.operator.host or self.operator.host != here:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return True
        return b"opsconsole" in cmdline

    def message(self) -> str:
        """`outcome unknown: dlq.requeue of 40,000 messages, started 03:12 by alice from 10.1.2.3: …`"""
        when = self.started_at.strftime("%Y-%m-%d %H:%M UTC") if self.started_at else "at an unknown time"
        who = self.operator.user + (f" from {self.operator.ssh_client}" if self.operator.ssh_client else "") + (
            f" on {self.operator.host}" if self.operator.host else "")
        what = _text(self.action, limit=60) + (f" of {_text(self.target, limit=120)}" if self.target else "")
        return (f"{OUTCOME_UNKNOWN}: {what}, started {when} by {_text(who, limit=120)}: it never recorded how it "
                "ended (the console was killed or disconnected). Check before retrying.")


def unfinished_attempts(events: Iterable[Mapping[str, Any]]) -> list[UnfinishedAttempt]:
    """Attempts with a `started` event, no final event and no `verified` record, oldest first."""
    started: dict[str, Mapping[str, Any]] = {}
    closed: set[str] = set()
    for event in events:
        attempt = event.get("attempt")
        if not isinstance(attempt, str) or not attempt:
            continue
        kind = event.get("kind")
        if kind == "action" and event.get("outcome") == "started":
            started.setdefault(attempt, event)
        elif kind == "verified" or (kind == "action" and event.get("outcome") in FINAL_OUTCOMES):
            closed.add(attempt)
    out: list[UnfinishedAttempt] = []
    for attempt, event in started.items():
        if attempt in closed:
            continue
        pid = event.get("pid")
        out.append(UnfinishedAttempt(
            attempt=attempt, action=_text(event.get("action")), title=_text(event.get("title")),
            target=_text(event.get("target")), started_at=parse_ts(event.get("ts")),
            operator=Operator.from_json(event.get("operator")),
            pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None, event=event))
    return sorted(out, key=lambda u: u.started_at or _FAR_FUTURE)


# --------------------------------------------------------------------------------------------- wizard runs

WIZARD_WHATS: tuple[str, ...] = ("opened", "resumed", "entered", "passed", "failed", "running", "done", "refused",
                                 "skipped", "acknowledged", "cancelled", "unknown", "verified", "back", "closed")
WIZARD_END_STATES: tuple[str, ...] = ("passed", "failed", "done", "refused", "skipped", "unknown")
CLOSE_OUTCOMES: tuple[str, ...] = ("resolved", "unresolved", "abandoned")


@dataclass(slots=True)
class StepVisit:
    """One visit of a step in a wizard run: entered, then (maybe) ended in a state.

    `state` is "current" while the step is open, "running" while its action is with the kernel,
    then one of WIZARD_END_STATES ("unknown": the console died with the action in flight)."""

    step: str
    title: str
    index: int
    entered_at: datetime | None
    operator: str
    state: str = "current"
    ended_at: datetime | None = None
    detail: str = ""
    attempt: str = ""
    preview_id: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    acked: bool = False
    how: str = ""  # how the step was entered: start, next, on_fail, back, resume

    @property
    def duration_s(self) -> float | None:
        if self.entered_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.entered_at).total_seconds())

    @property
    def ended(self) -> bool:
        return self.state in WIZARD_END_STATES


@dataclass(slots=True)
class WizardRunRecord:
    """A wizard run as the journal tells it (see `kind = "wizard"` in the module docstring)."""

    run: str
    runbook: str
    title: str
    total: int
    opened_at: datetime | None
    opened_by: Operator
    visits: list[StepVisit] = field(default_factory=list)
    closed_at: datetime | None = None
    outcome: str = ""  # "" while open; resolved | unresolved | abandoned
    close_detail: str = ""
    last_at: datetime | None = None
    resumed: int = 0
    pid: int | None = None  # the process of the last event
    host: str = ""
    events: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return not self.outcome

    @property
    def current(self) -> StepVisit | None:
        return self.visits[-1] if self.visits else None

    def message(self) -> str:
        """`API Down / 500 Errors at step 3 of 4 (started 03:12 by alice from 10.1.2.3)`, printable."""
        cur = self.current
        at = f" at step {cur.index} of {self.total}" if cur is not None and cur.index else ""
        when = self.opened_at.strftime("%H:%M") if self.opened_at else "at an unknown time"
        who = self.opened_by.user + (f" from {self.opened_by.ssh_client}" if self.opened_by.ssh_client else "")
        return _text(f"{self.title}{at} (started {when} by {who})", limit=200)


def fold_wizard_event(run: WizardRunRecord, event: Mapping[str, Any]) -> None:
    """Apply one `kind = "wizard"` event to `run` (the rules `wizard_runs` folds the journal with)."""
    what = str(event.get("what") or "")
    when = parse_ts(event.get("ts"))
    operator = printable(Operator.from_json(event.get("operator")).label, single_line=True)
    run.last_at = when or run.last_at
    pid = event.get("pid")
    run.pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else run.pid
    run.host = Operator.from_json(event.get("operator")).host
    run.events.append(event)
    step = _text(event.get("step"), limit=80)
    cur = run.current
    if what == "entered":
        if cur is not None and not cur.ended and cur.state != "running":
            cur.state, cur.ended_at = "left", when  # moved on (back, or a restart) before the step was finished
        index = event.get("index")
        run.visits.append(StepVisit(step=step, title=_text(event.get("step_title"), limit=200),
                                    index=index if isinstance(index, int) and not isinstance(index, bool) else 0,
                                    entered_at=when, operator=operator, how=_text(event.get("how"), limit=20)))
        return
    if what == "resumed":
        run.resumed += 1
        return
    if what == "closed":
        run.closed_at = when
        outcome = _text(event.get("outcome"), limit=20)
        run.outcome = outcome if outcome in CLOSE_OUTCOMES else "abandoned"
        run.close_detail = _text(event.get("detail"), limit=500)
        if cur is not None and not cur.ended and cur.state != "running":
            # The run ends here: so does the visit of the step it was at (left unfinished, its time stops).
            cur.state, cur.ended_at = "left", when
            cur.detail = cur.detail or f"the run was closed here ({run.outcome})"
        return
    if cur is None or (step and cur.step != step):
        return  # a step event without its visit (a hand-edited journal): nothing to attach it to
    detail = _text(event.get("detail"), limit=500)
    if what in WIZARD_END_STATES:
        cur.state, cur.ended_at, cur.detail = what, when, detail
        cur.operator = operator
        results = event.get("results")
        if isinstance(results, list):
            cur.results = [r for r in results if isinstance(r, dict)]
    elif what == "running":
        cur.state = "running"
        cur.preview_id = _text(event.get("preview_id"), limit=40)
        cur.detail = detail
    elif what == "cancelled":
        cur.state, cur.detail = "current", detail
    elif what == "acknowledged":
        cur.acked = True
    elif what == "verified":
        verdict = _text(event.get("outcome"), limit=20)
        cur.state = "done" if verdict == "done" else "failed"
        cur.ended_at = when
        cur.detail = f"checked after an interruption: {verdict}" + (f": {detail}" if detail else "")
    attempt = _text(event.get("attempt"), limit=40)
    if attempt:
        cur.attempt = attempt


def wizard_runs(events: Iterable[Mapping[str, Any]]) -> list[WizardRunRecord]:
    """Every wizard run in `events` (journal order), oldest first."""
    runs: dict[str, WizardRunRecord] = {}
    for event in events:
        if event.get("kind") != "wizard":
            continue
        run_id = event.get("run")
        if not isinstance(run_id, str) or not run_id:
            continue
        run = runs.get(run_id)
        if run is None:
            total = event.get("total")
            run = WizardRunRecord(run=_text(run_id, limit=40), runbook=_text(event.get("runbook"), limit=80),
                                  title=_text(event.get("title") or event.get("runbook"), limit=200),
                                  total=total if isinstance(total, int) and not isinstance(total, bool) else 0,
                                  opened_at=parse_ts(event.get("ts")),
                                  opened_by=Operator.from_json(event.get("operator")))
            runs[run_id] = run
        fold_wizard_event(run, event)
    return sorted(runs.values(), key=lambda r: r.opened_at or _FAR_FUTURE)


def open_wizard_runs(events: Iterable[Mapping[str, Any]]) -> list[WizardRunRecord]:
    """The runs that were never closed, newest first (the resume offer)."""
    return sorted((r for r in wizard_runs(events) if r.open), key=lambda r: r.last_at or _FAR_FUTURE, reverse=True)


# --------------------------------------------------------------------------------------------- timeline


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One timeline row as plain, printable, single-line text (the in-app view renders these without markup)."""

    time: datetime | None
    operator: str
    kind: str
    what: str
    target: str
    outcome: str
    detail: str  # the error of an action, the reason of a manual step
    event: Mapping[str, Any]


def _text(value: Any, *, limit: int | None = None) -> str:
    """Untrusted journal content as one printable line."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return printable(value, single_line=True, limit=limit)


def _entry(event: Mapping[str, Any]) -> TimelineEntry:
    kind = str(event.get("kind") or "")
    operator = printable(Operator.from_json(event.get("operator")).label, single_line=True)
    if kind == "action":
        name = _text(event.get("title") or event.get("action") or "action")
        tier = _text(event.get("tier"))
        what = f"{name} ({tier})" if tier else name
        detail = _text(event.get("error"))
    elif kind == "manual_step":
        what = f"Manual step: {_text(event.get('step'))}"
        detail = _text(event.get("reason"))
    elif kind == "note":
        what = f"Note: {_text(event.get('text'))}"
        detail = ""
    elif kind == "verified":
        what = f"Checked an interrupted action (attempt {_text(event.get('attempt'), limit=20)})"
        detail = _text(event.get("reason"))
    elif kind == "wizard":
        step = _text(event.get("step_title") or event.get("step"), limit=120)
        what = f"Runbook {_text(event.get('title') or event.get('runbook'), limit=80)}"
        index = event.get("index")
        if step and isinstance(index, int):  # index 0: a step the wizard adds (the closing checks)
            what += f", step {index}: {step}" if index else f": {step}"
        detail = _text(event.get("detail"))
        outcome = _text(event.get("outcome") if event.get("what") in ("closed", "verified") else event.get("what"))
        return TimelineEntry(time=parse_ts(event.get("ts")), operator=operator, kind=kind, what=what, target="",
                             outcome=outcome, detail=detail, event=event)
    else:
        what = f"{_text(kind) or 'event'}: {_text(event.get('text') or event.get('action'))}".rstrip(": ")
        detail = _text(event.get("error"))
    return TimelineEntry(
        time=parse_ts(event.get("ts")),
        operator=operator,
        kind=kind,
        what=what,
        target=_text(event.get("target")),
        outcome=_text(event.get("verdict") if kind == "verified" else event.get("outcome")),
        detail=detail,
        event=event,
    )


_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_WIZARD_QUIET = frozenset({"entered", "running", "acknowledged", "back", "cancelled"})


def timeline_entries(events: Iterable[Mapping[str, Any]]) -> list[TimelineEntry]:
    """Events as rows in time order (stable; events without a valid `ts` last).

    An action is one row: its final event, or, when it never wrote one, its `started` event shown as
    "outcome unknown" (the time is when it started)."""
    events = list(events)
    unknown = {u.attempt for u in unfinished_attempts(events)}
    entries: list[TimelineEntry] = []
    for event in events:
        if event.get("kind") == "wizard" and event.get("what") in _WIZARD_QUIET:
            continue  # the run's own section tells those (entered, running, acknowledged, back)
        if event.get("kind") == "action" and event.get("outcome") == "started":
            if event.get("attempt") not in unknown:
                continue  # its final event (or a verification) tells the story
            entry = _entry(event)
            entries.append(replace(entry, outcome=OUTCOME_UNKNOWN,
                                   detail="started, never finished: the console was killed or disconnected; "
                                          "check before retrying"))
            continue
        entries.append(_entry(event))
    return sorted(entries, key=lambda e: e.time or _FAR_FUTURE)


# `_` inside a word cannot start emphasis (CommonMark), so `dead_letter_messages` stays readable as raw text.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~&#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _md(value: Any, *, limit: int | None = None) -> str:
    """Inline Markdown for untrusted text: printable, one line, every special character backslash-escaped
    (so `|` cannot split a table cell and backticks, links or HTML cannot form)."""
    text = value if isinstance(value, str) else _text(value)
    return _MD_SPECIAL.sub(r"\\\1", printable(text, single_line=True, limit=limit))


def _md_block(value: Any) -> str:
    """A fenced code block for multi-line untrusted text; the fence outgrows any backtick run inside."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list | tuple):
        text = "\n".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    text = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _hm(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "?"


def timeline_markdown(
    events: Iterable[Mapping[str, Any]],
    *,
    environment: str,
    since: datetime | None,
    now: datetime,
    skipped: int = 0,
    source: Path | None = None,
    source_exists: bool = True,
) -> str:
    """A Markdown incident timeline a postmortem can start from: table, summary, details of each action."""
    entries = timeline_entries(events)
    now = _utc(now)
    window = (f"{_hm(_utc(since))} to {_hm(now)} UTC" if since is not None
              else f"everything recorded up to {_hm(now)} UTC")
    out: list[str] = [f"# Incident timeline: {_md(environment)}", "", f"- Window: {window}"]
    if source is not None:
        out.append(f"- Source: {_md(str(source))}" + ("" if source_exists else " (no journal there yet)"))
    if entries:
        first, last = entries[0].time, entries[-1].time
        out.append(f"- Events: {len(entries)}, from {_hm(first)} to {_hm(last)} UTC")
        operators = sorted({e.operator for e in entries})
        out.append(f"- Operators: {', '.join(_md(o) for o in operators)}")
    if skipped:
        out.append(f"- Skipped {skipped} unreadable line{'s' if skipped != 1 else ''} of the journal")
    out.append("")
    out += ["## Timeline", ""]
    if not entries:
        out += ["No events in this window.", ""]
    else:
        out += ["| Time (UTC) | Operator | What | Target | Outcome | Error / reason |",
                "| --- | --- | --- | --- | --- | --- |"]
        for e in entries:
            cells = [_hm(e.time), _md(e.operator), _md(e.what, limit=200), _md(e.target, limit=120),
                     _md(e.outcome), _md(e.detail, limit=300)]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")

    actions = [e for e in entries if e.kind == "action"]
    steps = [e for e in entries if e.kind == "manual_step"]
    notes = [e for e in entries if e.kind == "note"]
    out += ["## Summary", ""]

    def counts(items: list[TimelineEntry]) -> str:
        tally = Counter(e.outcome or "unknown" for e in items)
        return ", ".join(f"{_md(k)} {v}" for k, v in sorted(tally.items()))

    out.append(f"- Actions: {len(actions)}" + (f" ({counts(actions)})" if actions else ""))
    out.append(f"- Manual steps: {len(steps)}" + (f" ({counts(steps)})" if steps else ""))
    out.append(f"- Notes: {len(notes)}")
    runs = wizard_runs(events)
    if runs:
        out.append(f"- Runbook runs: {len(runs)}" + f" ({', '.join(_md(r.outcome or 'open') for r in runs)})")
    out.append("")

    def listing(title: str, items: list[TimelineEntry]) -> None:
        if not items:
            return
        out.extend([f"### {title}", ""])
        for e in items:
            line = f"- {_hm(e.time)}: {_md(e.what)}"
            if e.target:
                line += f" on {_md(e.target)}"
            if e.outcome:
                line += f" ({_md(e.outcome)})"
            if e.detail:
                line += f": {_md(e.detail)}"
            out.append(line)
        out.append("")

    listing("Outcome unknown (check before retrying)", [e for e in actions if e.outcome == OUTCOME_UNKNOWN])
    listing("Refused actions", [e for e in actions if e.outcome == "refused"])
    listing("Failures", [e for e in actions if e.outcome in ("failed", "partial")])
    listing("Skipped manual steps", [e for e in steps if e.outcome == "skipped"])

    out.extend(runbook_runs_markdown(runs))

    detailed = [e for e in actions if e.event.get("preview") or e.event.get("params") or e.event.get("result")]
    if detailed:
        out += ["## Action details", ""]
        for e in detailed:
            ev = e.event
            out += [f"### {_hm(e.time)}: {_md(e.what)}", ""]
            out.append(f"- Operator: {_md(e.operator)}")
            if e.target:
                out.append(f"- Target: {_md(e.target)}")
            out.append(f"- Outcome: {_md(e.outcome)}" + (f": {_md(e.detail)}" if e.detail else ""))
            if ev.get("typed") is not None:
                out.append(f"- Typed to confirm: {_md(_text(ev.get('typed')))}")
            if ev.get("params"):
                out.append(f"- Parameters: {_md(_text(ev.get('params')), limit=500)}")
            out.append("")
            if ev.get("preview"):
                out += ["Preview shown:", "", _md_block(ev.get("preview")), ""]
            if ev.get("result"):
                out += ["Result:", "", _md_block(ev.get("result")), ""]

    out += ["## Impact", "", "_To be written._", "", "## Root cause", "", "_To be written._", "",
            "## Follow-ups", "", "_To be written._", ""]
    return "\n".join(out)


def duration_text(seconds: float | None) -> str:
    """`42s`, `3m05s`, `1h12m`; `–` when unknown."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def run_outcome_text(run: WizardRunRecord) -> str:
    """`resolved`, `open at step 3 of 4`, `abandoned: reason`: one line for people."""
    if run.open:
        cur = run.current
        return f"open at step {cur.index} of {run.total}" if cur is not None else "open"
    return run.outcome + (f": {run.close_detail}" if run.close_detail else "")


def visit_outcome_text(visit: StepVisit) -> str:
    state = {"current": "open", "running": "action running", "unknown": OUTCOME_UNKNOWN,
             "left": "left unfinished"}.get(visit.state, visit.state)
    return state


def runbook_runs_markdown(runs: Iterable[WizardRunRecord]) -> list[str]:
    """One section per wizard run, step by step: the first draft of the postmortem's timeline."""
    runs = list(runs)
    if not runs:
        return []
    out = ["## Runbook runs", ""]
    for run in runs:
        end = run.closed_at or run.last_at
        total = (end - run.opened_at).total_seconds() if end and run.opened_at else None
        out += [f"### {_md(run.title)} (run {_md(run.run)})", "",
                f"- Started {_hm(run.opened_at)} UTC by {_md(run.opened_by.label)}"
                + (f"; resumed {run.resumed} time{'s' if run.resumed != 1 else ''}" if run.resumed else ""),
                f"- Outcome: {_md(run_outcome_text(run))} after {duration_text(total)}", "",
                "| Step | Outcome | Operator | Started (UTC) | Duration | Detail |",
                "| --- | --- | --- | --- | --- | --- |"]
        for visit in run.visits:
            detail = visit.detail
            if visit.attempt:
                detail = (detail + " " if detail else "") + f"(action attempt {visit.attempt})"
            out.append("| " + " | ".join([
                _md(f"{visit.index}. {visit.title}" if visit.index else visit.title, limit=120),
                _md(visit_outcome_text(visit)), _md(visit.operator, limit=80), _hm(visit.entered_at),
                duration_text(visit.duration_s), _md(detail, limit=300)]) + " |")
        out.append("")
    return out


def timeline_jsonl(events: Iterable[Mapping[str, Any]]) -> str:
    """The events in time order, one JSON object per line (as in the journal, control characters escaped)."""
    return "".join(_dumps_line(e.event) + "\n" for e in timeline_entries(events))


def render_timeline(settings: Settings, *, since: str | None, fmt: str, now: datetime | None = None) -> str:
    """What `opsconsole timeline [--since DURATION] [--format md|jsonl]` prints.

    Raises ValueError for a bad `since`/`fmt` and JournalError when the journal exists but cannot be read.
    """
    fmt = fmt.lower()
    if fmt == "markdown":
        fmt = "md"
    if fmt not in ("md", "jsonl"):
        raise ValueError(f"unknown timeline format {fmt!r}: use md or jsonl")
    moment = _utc(now) if now is not None else datetime.now(UTC)
    start = moment - parse_duration(since) if since else None
    path = journal_path(settings)
    # Reading needs no secrets: build the Journal without revealing any (and without detecting an operator).
    journal = Journal(path, environment=settings.environment.name, operator=Operator(user="-"))
    found = journal.read(since=start)
    if fmt == "jsonl":
        return timeline_jsonl(found.events)
    return timeline_markdown(found.events, environment=settings.environment.name, since=start, now=moment,
                             skipped=found.malformed, source=path, source_exists=found.exists)
