"""Dead-letter queue triage: what the DLQ tab shows and acts on. Plain data, no I/O.

The adapter (`opsconsole.adapters.dlq.DlqStore`) returns these objects, or a `DlqError` for every
expected failure; nothing here talks to a database.

Vocabulary:

* A message is `waiting` (in the dead-letter queue), `requeued` (sent back to the campaign queue
  exactly once) or `discarded` (set aside with a reason; can be undone). Nothing is deleted.
* A *valid payload* is what the campaign queue can send again: a JSON object whose
  `REQUIRED_PAYLOAD_FIELDS` are non-empty strings, whose `To` is an E.164 number (optionally
  `whatsapp:`-prefixed) and whose `Body` fits Twilio's 1,600-character limit. The same rules
  run in SQL (`adapters.dlq`) for lists, previews and the re-queue itself, and in Python
  (`payload_problem`) for the payload editor; tests keep the two in agreement.
* A `Selection` is explicit ids (space / range selection) or "everything matching a filter"
  (minus ids the operator unticked). A filter selection is resolved in SQL chunk by chunk and
  never materialised in Python.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from opsconsole.domain import twilio_codes
from opsconsole.domain.text import printable

# -- statuses, columns ------------------------------------------------------------------------

WAITING = "waiting"
REQUEUED = "requeued"
DISCARDED = "discarded"
STATUSES: tuple[str, ...] = (WAITING, REQUEUED, DISCARDED)

GroupBy = Literal["error_code", "endpoint", "workflow"]
GROUP_BYS: tuple[GroupBy, ...] = ("error_code", "endpoint", "workflow")
Direction = Literal["older", "newer"]

# Logical column names. The physical names default to the same; `[dlq] columns` maps others.
REQUIRED_COLUMNS: tuple[str, ...] = ("id", "received_at", "status", "error_code", "payload")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "payload_raw",      # the body verbatim when it did not parse as JSON
    "error_message",
    "message_sid",      # else payload->>'MessageSid'
    "endpoint",
    "workflow",
    "account_sid",
    "attempts",
    "last_attempt_at",
    "requeued_at",      # set by a re-queue; also how an interrupted commit is verified
    "requeued_by",
    "requeue_ref",      # where the message went: 'campaign_queue:<id>' / 'pgmq:<queue>:<msg_id>'
    "discarded_at",
    "discarded_by",
    "discard_reason",   # needed to discard
    "payload_bytes",    # else the stored size (pg_column_size)
    "history",          # jsonb array; needed to fix a payload (the original is kept there)
)
LOGICAL_COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """How the configured table is shaped: logical column -> physical column (present ones
    only) and each one's type, as `DlqStore.introspect` found them. `notes` name what is off
    because an optional column is missing (e.g. no `history`: payload fixes are refused)."""

    table: str
    columns: Mapping[str, str]
    types: Mapping[str, str]
    can_update: bool = True
    notes: tuple[str, ...] = ()

    def has(self, logical: str) -> bool:
        return logical in self.columns

    def __getitem__(self, logical: str) -> str:
        return self.columns[logical]

    @property
    def missing_optional(self) -> tuple[str, ...]:
        return tuple(c for c in OPTIONAL_COLUMNS if c not in self.columns)


# -- payload validity -------------------------------------------------------------------------

# The fields the campaign queue needs to send the message again (the demo's Twilio status
# callback shape, `demo.seed._Gen.payload`): the queue row takes `To` and `Body`, `From`
# says which sender, `MessageSid` ties the retry to the failed message.
REQUIRED_PAYLOAD_FIELDS: tuple[str, ...] = ("MessageSid", "To", "From", "Body")
MAX_BODY_CHARS = 1600  # Twilio refuses longer bodies (error 21617)
E164_PATTERN = r"(whatsapp:)?\+[1-9][0-9]{6,14}"  # whole-string match, in SQL too
_E164 = re.compile(E164_PATTERN)
BLANK_CHARS = " \t\n\r\f\v"  # what counts as blank around a required field (SQL btrim uses the same)

# A re-queued payload travels inline in the queue row / pgmq message; a Twilio callback is ~1 KB.
# Checked first, from the stored size, so a list never has to unpack a 5 MB payload to judge it.
MAX_PAYLOAD_BYTES = 256 * 1024

PROBLEM_NOT_JSON = "payload is not valid JSON"
PROBLEM_TOO_LARGE = f"payload is larger than {MAX_PAYLOAD_BYTES // 1024} KB"
PROBLEM_EMPTY = "empty request body"
PROBLEM_NOT_OBJECT = "payload is not a JSON object"
PROBLEM_BAD_TO = "To is not an E.164 phone number"
PROBLEM_EMPTY_BODY = "Body is empty"
PROBLEM_LONG_BODY = f"Body is longer than {MAX_BODY_CHARS:,} characters"


def problem_missing(name: str) -> str:
    return f"{name} is missing or not a string"


def payload_problem(value: object, size_bytes: int | None = None) -> str | None:
    """Why `value` (a parsed payload) cannot be re-queued, or None when it can. `size_bytes` is
    its stored size (default: its JSON text in UTF-8).

    Mirrors the SQL expression `adapters.dlq.sql.TableSql.problem` check for check and message for message.
    """
    if size_bytes is None:
        size_bytes = len(json.dumps(value, ensure_ascii=False).encode())
    if size_bytes > MAX_PAYLOAD_BYTES:
        return PROBLEM_TOO_LARGE
    if not isinstance(value, dict):
        return PROBLEM_NOT_OBJECT
    for name in REQUIRED_PAYLOAD_FIELDS:
        item = value.get(name)
        if name == "Body":
            if not isinstance(item, str):
                return problem_missing(name)
            if item == "":
                return PROBLEM_EMPTY_BODY
            if len(item) > MAX_BODY_CHARS:
                return PROBLEM_LONG_BODY
            continue
        if not isinstance(item, str) or item.strip(BLANK_CHARS) == "":
            return problem_missing(name)
        if name == "To" and not _E164.fullmatch(item):
            return PROBLEM_BAD_TO
    return None


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (PostgreSQL's jsonb refuses it)")


@dataclass(frozen=True, slots=True)
class PayloadCheck:
    """The result of checking edited payload text (`check_payload_text`)."""

    value: dict[str, Any] | None
    problem: str | None  # None: valid and re-queueable
    canonical: str = ""  # compact JSON to store when valid

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_payload_text(text: str) -> PayloadCheck:
    """Parse an operator's edited payload: strict JSON (no NaN/Infinity), an object, and
    `payload_problem` clean. The message says where the JSON is broken."""
    if not text.strip():
        return PayloadCheck(None, PROBLEM_EMPTY)
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            where = f" at line {exc.lineno}, column {exc.colno}"
            msg = exc.msg
        else:
            msg = str(exc)
        return PayloadCheck(None, f"{PROBLEM_NOT_JSON}{where}: {printable(msg, single_line=True, limit=120)}")
    if _has_nul(value):
        return PayloadCheck(None, "payload contains a NUL character (PostgreSQL's jsonb refuses it)")
    problem = payload_problem(value)
    if problem is not None:
        return PayloadCheck(value if isinstance(value, dict) else None, problem)
    assert isinstance(value, dict)
    return PayloadCheck(value, None, json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


# -- showing untrusted text literally -----------------------------------------------------------

# Invisible format characters that reorder or hide text (bidi overrides, zero-width characters,
# BOM). `printable` handles C0/C1 controls; these are escaped as \uXXXX so an operator sees them.
_INVISIBLE = re.compile("[\u061c\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def literal(text: str, *, single_line: bool = False, limit: int | None = None) -> str:
    """Untrusted text made safe to show verbatim: terminal controls (`printable`) and invisible
    bidi / zero-width characters escaped. Render it without markup (Rich `Text`, not markup)."""
    out = _INVISIBLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    return printable(out, single_line=single_line, limit=limit)


# -- errors -------------------------------------------------------------------------------------

ErrorKind = Literal["config", "connection", "timeout", "permission", "not_found", "invalid", "conflict",
                    "locked", "query"]


@dataclass(frozen=True, slots=True)
class DlqError:
    """An expected failure, as data. `message` is safe to show (no secrets, printable)."""

    kind: ErrorKind
    message: str

    def __str__(self) -> str:
        return self.message


# -- rows ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DlqMessage:
    """One row of the list. Text fields are already `literal` and single-line."""

    id: int
    received_at: datetime
    error_code: int | None
    error_message: str
    message_sid: str
    endpoint: str
    workflow: str
    status: str
    attempts: int | None
    payload_bytes: int
    payload_valid: bool
    payload_problem: str | None  # why it cannot be re-queued, when not valid

    @property
    def cursor(self) -> PageCursor:
        return PageCursor(self.received_at, self.id)

    @property
    def meaning(self) -> str:
        return twilio_codes.meaning(self.error_code) if self.error_code is not None else "no error code"

    @property
    def transient(self) -> bool | None:
        return twilio_codes.is_transient(self.error_code)


@dataclass(frozen=True, slots=True)
class RelatedAlert:
    """The Twilio Monitor alert about this message (its resource_sid is the MessageSid)."""

    sid: str
    error_code: str
    date: datetime | None
    text: str
    request_url: str = ""


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One console edit kept in the row's history column (payloads left out of this view)."""

    action: str  # fix_payload | discard | undo_discard
    at: str
    by: str
    detail: str


@dataclass(frozen=True, slots=True)
class DlqMessageDetail:
    """Everything about one message. `payload_text` is the pretty JSON (or, for a malformed
    body, the raw text), made `literal` and cut at `payload_limit` characters; `truncated` says
    so, `payload_bytes` is the whole size, and `get_full_payload` returns all of it."""

    id: int
    received_at: datetime
    status: str
    error_code: int | None
    meaning: str
    transient: bool | None
    never_requeue: bool
    error_message: str
    message_sid: str
    account_sid: str
    endpoint: str
    workflow: str
    attempts: int | None
    last_attempt_at: datetime | None
    payload_parsed: bool  # False: the body did not parse as JSON (payload_text is the raw body)
    payload_text: str
    payload_chars: int  # length of the full text payload_text was cut from
    payload_bytes: int
    truncated: bool
    payload_problem: str | None
    payload_digest: str  # md5 of the stored payload; pass to fix_payload to detect concurrent edits
    requeued_at: datetime | None = None
    requeued_by: str = ""
    requeue_ref: str = ""
    discarded_at: datetime | None = None
    discarded_by: str = ""
    discard_reason: str = ""
    history: tuple[HistoryEvent, ...] = ()
    related_alert: RelatedAlert | None = None
    alert_note: str = ""  # why there is no alert: not looked up / none found / lookup failed

    @property
    def payload_valid(self) -> bool:
        return self.payload_problem is None


@dataclass(frozen=True, slots=True)
class PayloadText:
    """A whole payload (`get_full_payload`): pretty JSON, or the raw body when malformed."""

    id: int
    text: str
    parsed: bool
    bytes: int
    exact: bool  # True: the stored text itself (for an editor), not made `literal`


# -- filter -------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?$", re.IGNORECASE)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_CODE = re.compile(r"^\d{5}$")


def parse_duration(text: str) -> timedelta | None:
    """'90s', '15m', '2h', '1.5d', '1w' (bare numbers are minutes); None when unreadable."""
    m = _DURATION.match(text.strip())
    if not m:
        return None
    seconds = float(m.group(1)) * _UNIT_S[(m.group(2) or "m").lower()]
    if not math.isfinite(seconds) or seconds > 3650 * 86400:
        return None
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class DlqFilter:
    """What the list shows; every condition runs in SQL.

    Empty tuples mean "any"; `None` inside `error_codes`/`endpoints`/`workflows` means "none
    recorded" (SQL NULL). `max_age` keeps messages newer than it, `min_age` older than it;
    `since`/`until` are absolute bounds on received_at. `text` is a case-insensitive substring
    of the payload, the raw body or the error message (an unindexed scan at scale: bounded by a
    statement timeout). `status=None` shows every status.
    """

    error_codes: tuple[int | None, ...] = ()
    min_age: timedelta | None = None
    max_age: timedelta | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str = ""
    message_sid: str = ""
    status: str | None = WAITING
    endpoints: tuple[str | None, ...] = ()
    workflows: tuple[str | None, ...] = ()

    @property
    def is_default(self) -> bool:
        return self == DlqFilter()

    def with_group(self, by: GroupBy, key: int | str | None) -> DlqFilter:
        """This filter narrowed to one group of the grouped view (drill-down)."""
        if by == "error_code":
            code: int | None
            if key is None or isinstance(key, int):
                code = key
            else:
                code = int(key) if key.isdigit() else None
            return replace(self, error_codes=(code,))
        value = None if key is None else str(key)
        if by == "endpoint":
            return replace(self, endpoints=(value,))
        return replace(self, workflows=(value,))

    def to_query(self) -> str:
        """The `/` filter text that parses back to this filter (for the input box)."""
        parts: list[str] = []
        if self.error_codes:
            parts.append("code:" + ",".join("none" if c is None else str(c) for c in self.error_codes))
        if self.max_age is not None:
            parts.append(f"age<{format_duration(self.max_age)}")
        if self.min_age is not None:
            parts.append(f"age>{format_duration(self.min_age)}")
        if self.since is not None:
            parts.append(f"since:{self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"until:{self.until.isoformat()}")
        if self.message_sid:
            parts.append(f"sid:{self.message_sid}")
        if self.status != WAITING:
            parts.append(f"status:{self.status or 'all'}")
        for key, values in (("endpoint", self.endpoints), ("workflow", self.workflows)):
            for v in values:
                parts.append(shlex.quote(f"{key}:{'none' if v is None else v}"))
        if self.text:
            parts.append(shlex.quote(self.text))
        return " ".join(parts)

    def describe(self) -> str:
        """A short, literal, human summary for the list header."""
        parts: list[str] = [f"status {self.status}" if self.status else "all statuses"]
        if self.error_codes:
            parts.append("code " + ",".join("none" if c is None else str(c) for c in self.error_codes))
        if self.max_age is not None:
            parts.append(f"newer than {format_duration(self.max_age)}")
        if self.min_age is not None:
            parts.append(f"older than {format_duration(self.min_age)}")
        if self.since is not None:
            parts.append(f"since {self.since.isoformat(timespec='seconds')}")
        if self.until is not None:
            parts.append(f"until {self.until.isoformat(timespec='seconds')}")
        if self.message_sid:
            parts.append(f"sid {literal(self.message_sid, single_line=True, limit=40)}")
        for key, values in (("endpoint", self.endpoints), ("workflow", self.workflows)):
            if values:
                shown = ",".join("none" if v is None else literal(v, single_line=True, limit=40) for v in values)
                parts.append(f"{key} {shown}")
        if self.text:
            parts.append(f"text “{literal(self.text, single_line=True, limit=40)}”")
        return " · ".join(parts)


def parse_filter(text: str, *, base: DlqFilter | None = None) -> DlqFilter | DlqError:
    """The `/` filter syntax. Tokens (any order, shell-style quoting):

    `30008` or `code:30008,21610` or `code:none`   error codes (none = no code recorded)
    `age<15m`  newer than; `age>2d` older than (units s m h d w; bare numbers are minutes)
    `since:2026-11-27T03:00Z` / `until:…`           absolute bounds (ISO 8601)
    `SM…` (34 chars) or `sid:SM…`                   message SID
    `status:waiting|requeued|discarded|all`          default waiting
    `endpoint:/webhooks/x`, `workflow:name`          (value `none`: not recorded)
    anything else                                    text in the payload or error (joined by spaces)

    Starts from `base` (default: a fresh filter); an empty text gives `base`.
    """
    out = base if base is not None else DlqFilter()
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        return DlqError("invalid", f"cannot read the filter: {exc}")
    codes: list[int | None] = []
    words: list[str] = []
    endpoints: list[str | None] = []
    workflows: list[str | None] = []
    changes: dict[str, Any] = {}
    for token in tokens:
        low = token.lower()
        if _CODE.match(token):
            codes.append(int(token))
        elif low.startswith("code:"):
            for part in token[5:].split(","):
                part = part.strip()
                if part.lower() in ("none", "null", "-"):
                    codes.append(None)
                elif part.isdigit() and len(part) <= 9:
                    codes.append(int(part))
                elif part:
                    return DlqError("invalid", f"not an error code: {literal(part, single_line=True, limit=30)!r}")
        elif low.startswith(("age<", "age>", "newer:", "older:")):
            newer = low.startswith(("age<", "newer:"))
            raw = token[4:] if low.startswith("age") else token.split(":", 1)[1]
            duration = parse_duration(raw)
            if duration is None:
                return DlqError("invalid", f"not a duration: {literal(raw, single_line=True, limit=30)!r} "
                                           "(use e.g. 15m, 2h, 3d)")
            changes["max_age" if newer else "min_age"] = duration
        elif low.startswith(("since:", "until:")):
            raw = token.split(":", 1)[1]
            try:
                when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                return DlqError("invalid", f"not a date/time: {literal(raw, single_line=True, limit=40)!r} "
                                           "(use ISO 8601, e.g. 2026-11-27T03:00Z)")
            if when.tzinfo is None:
                return DlqError("invalid", "give the time zone, e.g. 2026-11-27T03:00Z")
            changes["since" if low.startswith("since") else "until"] = when
        elif low.startswith("sid:"):
            changes["message_sid"] = token[4:].strip()
        elif _SID.match(token):
            changes["message_sid"] = token
        elif low.startswith("status:"):
            value = low[7:]
            if value in ("all", "any", "*"):
                changes["status"] = None
            elif value in STATUSES:
                changes["status"] = value
            else:
                return DlqError("invalid", f"unknown status {literal(value, single_line=True, limit=20)!r} "
                                           "(waiting, requeued, discarded or all)")
        elif low.startswith("endpoint:"):
            value = token[9:]
            endpoints.append(None if value.lower() == "none" else value)
        elif low.startswith("workflow:"):
            value = token[9:]
            workflows.append(None if value.lower() == "none" else value)
        elif low.startswith("text:"):
            words.append(token[5:])
        else:
            words.append(token)
    if codes:
        changes["error_codes"] = tuple(dict.fromkeys(codes))
    if endpoints:
        changes["endpoints"] = tuple(dict.fromkeys(endpoints))
    if workflows:
        changes["workflows"] = tuple(dict.fromkeys(workflows))
    if words:
        changes["text"] = " ".join(w for w in words if w)
    return replace(out, **changes)


# -- pages, counts, groups ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True, order=True)
class PageCursor:
    """A keyset position: the list is ordered by (received_at, id), newest first."""

    received_at: datetime
    id: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page, newest first. `next_cursor` (direction "older") continues down the list,
    `prev_cursor` (direction "newer") goes back up; each is None at its end."""

    rows: tuple[DlqMessage, ...]
    has_more: bool  # older rows exist below this page
    has_newer: bool  # newer rows exist above this page
    filter: DlqFilter = field(default_factory=DlqFilter)
    elapsed_ms: float = 0.0

    @property
    def first(self) -> PageCursor | None:
        return self.rows[0].cursor if self.rows else None

    @property
    def last(self) -> PageCursor | None:
        return self.rows[-1].cursor if self.rows else None

    @property
    def next_cursor(self) -> PageCursor | None:
        return self.last if self.has_more else None

    @property
    def prev_cursor(self) -> PageCursor | None:
        return self.first if self.has_newer else None


@dataclass(frozen=True, slots=True)
class CountEstimate:
    """A row count; `exact=False` means the planner's estimate (shown as such)."""

    value: int
    exact: bool
    method: str = "exact"  # exact | planner estimate | planner estimate (exact count timed out)

    @property
    def label(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        return f"≈{_round_estimate(self.value):,} (estimate)"


def _round_estimate(value: int) -> int:
    if value < 1000:
        return value
    digits = len(str(value)) - 2
    return round(value, -digits)


@dataclass(frozen=True, slots=True)
class GroupRow:
    """One line of the grouped view. `meaning`/`transient`/`never_requeue` for error codes."""

    by: GroupBy
    key: int | str | None
    count: int
    newest_at: datetime | None
    meaning: str
    transient: bool | None
    never_requeue: bool = False

    @property
    def label(self) -> str:
        if self.key is None:
            return "(no error code)" if self.by == "error_code" else f"(no {self.by})"
        return literal(str(self.key), single_line=True, limit=60)


@dataclass(frozen=True, slots=True)
class GroupList:
    by: GroupBy
    rows: tuple[GroupRow, ...]
    more: bool  # more groups than listed (the smallest are left out)
    total: int  # messages in the listed groups


# -- selection and actions ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Selection:
    """Explicit ids, or every message matching `filter` except `excluded`.

    `upto_id` bounds a filter selection to the messages that existed when it was previewed, so
    a re-queue does not sweep up messages that arrived after the operator confirmed.
    """

    ids: frozenset[int] | None = None
    filter: DlqFilter | None = None
    excluded: frozenset[int] = frozenset()
    upto_id: int | None = None

    @classmethod
    def of_ids(cls, ids: Iterable[int]) -> Selection:
        return cls(ids=frozenset(int(i) for i in ids))

    @classmethod
    def matching(cls, flt: DlqFilter, excluded: Iterable[int] = ()) -> Selection:
        return cls(filter=flt, excluded=frozenset(int(i) for i in excluded))

    @property
    def by_filter(self) -> bool:
        return self.ids is None

    def describe(self) -> str:
        if self.ids is not None:
            return f"{len(self.ids):,} selected message{'s' if len(self.ids) != 1 else ''}"
        flt = self.filter or DlqFilter()
        less = f" except {len(self.excluded):,} unticked" if self.excluded else ""
        return f"all matching [{flt.describe()}]{less}"


RefusalKind = Literal["never_requeue", "invalid_payload", "already_handled", "not_found"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Messages an action will not (or did not) touch, grouped by why."""

    kind: RefusalKind
    reason: str
    count: int
    sample_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeCount:
    """Per error code: how many a re-queue will send and how many it refuses."""

    error_code: int | None
    meaning: str
    transient: bool | None
    never_requeue: bool
    selected: int
    will_requeue: int
    refused: int


@dataclass(frozen=True, slots=True)
class RequeuePlan:
    """The preview of a re-queue: counts per error code and every refusal with its reason.
    Pass the plan itself to `requeue` (its selection is bounded to what was previewed)."""

    selection: Selection
    target: str
    selected: int
    will_requeue: int
    by_code: tuple[CodeCount, ...]
    refused: tuple[Refusal, ...]
    never_requeue_codes: tuple[int, ...]
    planned_at: datetime

    @property
    def refused_count(self) -> int:
        return sum(r.count for r in self.refused)

    def refused_of(self, kind: RefusalKind) -> int:
        return sum(r.count for r in self.refused if r.kind == kind)


@dataclass(frozen=True, slots=True)
class DiscardPlan:
    selection: Selection
    selected: int
    will_discard: int
    by_code: tuple[CodeCount, ...]  # will_requeue here means "will be discarded"
    refused: tuple[Refusal, ...]
    planned_at: datetime


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Reported after every committed chunk (for the progress bar and the audit journal)."""

    action: str  # requeue | discard | undo_discard
    chunks_done: int
    changed: int  # re-queued / discarded / restored so far
    refused: int
    skipped: int
    expected: int | None  # from the plan, when known
    chunk_ids: tuple[int, ...]  # ids changed by this chunk
    elapsed_s: float

    @property
    def fraction(self) -> float | None:
        if not self.expected:
            return None
        return min(1.0, (self.changed + self.refused + self.skipped) / self.expected)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Exactly what a bulk action did. `uncertain` counts messages of a chunk whose commit could
    not be confirmed after a lost connection (0 when the store could check after reconnecting)."""

    action: str
    target: str
    requeued: int = 0
    discarded: int = 0
    restored: int = 0
    skipped_already_handled: int = 0
    refused: tuple[Refusal, ...] = ()
    errors: tuple[DlqError, ...] = ()
    chunks_done: int = 0
    cancelled: bool = False
    uncertain: int = 0
    ids: tuple[int, ...] = ()  # the messages changed, ascending
    elapsed_s: float = 0.0

    @property
    def changed(self) -> int:
        return self.requeued + self.discarded + self.restored

    @property
    def refused_count(self) -> int:
        return sum(r.count for r in self.refused)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.cancelled and self.uncertain == 0

    def summary(self) -> str:
        verb = {"requeue": f"re-queued into {self.target}", "discard": "discarded",
                "undo_discard": "restored to waiting"}.get(self.action, self.action)
        parts = [f"{self.changed:,} {verb}"]
        if self.refused_count:
            why = "; ".join(f"{r.reason}: {r.count:,}" for r in self.refused[:4])
            parts.append(f"{self.refused_count:,} refused ({why})")
        if self.skipped_already_handled:
            parts.append(f"{self.skipped_already_handled:,} already handled by someone else")
        if self.uncertain:
            parts.append(f"{self.uncertain:,} uncertain (connection lost during commit)")
        parts.append(f"{self.chunks_done} chunk{'s' if self.chunks_done != 1 else ''}")
        if self.cancelled:
            parts.append("cancelled")
        if self.errors:
            parts.append(f"stopped: {self.errors[0].message}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class FixResult:
    """A payload fixed in place; the original is the newest entry of the row's history."""

    id: int
    bytes_before: int
    bytes_after: int
    detail: DlqMessageDetail


def code_count(code: int | None, never: frozenset[int], selected: int, ok: int, refused: int) -> CodeCount:
    return CodeCount(error_code=code,
                     meaning=twilio_codes.meaning(code) if code is not None else "no error code (malformed body)",
                     transient=twilio_codes.is_transient(code), never_requeue=code is not None and code in never,
                     selected=selected, will_requeue=ok, refused=refused)


def history_events(raw: Any) -> tuple[HistoryEvent, ...]:
    """History entries (a jsonb array of objects) as display rows; unknown shapes are skipped."""
    if not isinstance(raw, list):
        return ()
    out: list[HistoryEvent] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        action = str(item.get("action", "?"))
        extra = []
        for key in ("reason", "previous_reason", "bytes_before", "bytes_after"):
            if key in item and item[key] is not None:
                extra.append(f"{key.replace('_', ' ')}: {item[key]}")
        out.append(HistoryEvent(action=literal(action, single_line=True, limit=30),
                                at=literal(str(item.get("at", "")), single_line=True, limit=40),
                                by=literal(str(item.get("by", "")), single_line=True, limit=60),
                                detail=literal("; ".join(extra), single_line=True, limit=200)))
    return tuple(out)
