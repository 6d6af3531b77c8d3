"""Runtime log entries: parsing a newline-delimited JSON stream, filtering, a bounded buffer.

Shared by the console's log view and `opsconsole logs`, and free of I/O so every edge case
(a stream cut mid-line, a 5 MB line, markup and escape sequences in messages, a reconnect that
replays what was already shown) is unit-tested without a network. Log text is untrusted: the
entries keep it as sent (bounded); whoever shows it renders it literally (`display_message`).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.domain.text import printable

LEVELS: tuple[str, ...] = ("trace", "debug", "info", "warning", "error", "fatal")
_RANK = {name: i for i, name in enumerate(LEVELS)}
MAX_LINE_BYTES = 1024 * 1024  # a longer line is cut: its start is kept, the rest skipped unread
OVERSIZE_KEEP = 16 * 1024  # how much of an over-long line is kept to salvage its fields
MAX_MESSAGE = 8 * 1024  # characters of a message kept in memory (the buffer is bounded in bytes too)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class LogFilterError(ValueError):
    """A filter the operator typed is not valid; the message says why."""


@dataclass(slots=True)
class LogEntry:
    """One runtime log line. `status` is None when the line is not about a request."""

    timestamp_ms: float
    level: str
    message: str
    status: int | None = None
    method: str = ""
    path: str = ""
    source: str = ""
    domain: str = ""
    row_id: str = ""
    truncated: bool = False  # Vercel cut the message (messageTruncated) or we did
    oversized_bytes: int = 0  # the line was longer than MAX_LINE_BYTES (we cut it)
    seq: int = 0  # set by LogBuffer: arrival order

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def time_text(self, *, date: bool = False) -> str:
        moment = self.at
        base = moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
        return f"{base}.{int(self.timestamp_ms % 1000):03d}"

    @property
    def status_text(self) -> str:
        return str(self.status) if self.status else "-"

    def display_message(self, limit: int | None = None) -> str:
        """The message as safe single-line text (escapes made visible; still render without markup)."""
        return printable(self.message, single_line=True, limit=limit)

    def search_text(self) -> str:
        """What a text filter looks at: the columns as shown."""
        return f"{self.level} {self.status_text} {self.method} {self.path} {self.message}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": self.at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "timestampInMs": self.timestamp_ms, "level": self.level, "status": self.status,
            "method": self.method, "path": self.path, "message": self.message, "source": self.source,
            "domain": self.domain, "rowId": self.row_id, "truncated": self.truncated,
        }
        if self.oversized_bytes:
            out["oversized_bytes"] = self.oversized_bytes
        return out


def _str(data: Mapping[str, Any], key: str, limit: int = 300) -> str:
    value = data.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _level(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else ""
    if text == "warn":
        return "warning"
    return text if text in _RANK else ("info" if not text else printable(text, single_line=True, limit=10))


def entry_from_json(data: Any) -> LogEntry | None:
    """An entry from one decoded line of the runtime-logs stream; None when it is not one."""
    if not isinstance(data, Mapping):
        return None
    ts = _number(data.get("timestampInMs"))
    message = data.get("message")
    if ts is None or not isinstance(message, str):
        return None
    status_raw = _number(data.get("responseStatusCode"))
    status = int(status_raw) if status_raw is not None and 100 <= status_raw < 1000 else None
    truncated = data.get("messageTruncated") is True or len(message) > MAX_MESSAGE
    return LogEntry(timestamp_ms=ts, level=_level(data.get("level")), message=message[:MAX_MESSAGE],
                    status=status, method=_str(data, "requestMethod", 16), path=_str(data, "requestPath", 2000),
                    source=_str(data, "source", 40), domain=_str(data, "domain", 300),
                    row_id=_str(data, "rowId", 200), truncated=truncated)


def parse_line(raw: bytes) -> LogEntry | None:
    """One complete NDJSON line; None for a blank or unusable line (the caller counts those)."""
    text = raw.strip()
    if not text:
        return None
    try:
        data = json.loads(text.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return entry_from_json(data)


_SALVAGE = {
    "timestampInMs": re.compile(rb'"timestampInMs"\s*:\s*(\d+(?:\.\d+)?)'),
    "level": re.compile(rb'"level"\s*:\s*"(\w{1,10})"'),
    "responseStatusCode": re.compile(rb'"responseStatusCode"\s*:\s*(\d{3})'),
    "requestMethod": re.compile(rb'"requestMethod"\s*:\s*"([A-Za-z]{1,10})"'),
    "requestPath": re.compile(rb'"requestPath"\s*:\s*"((?:[^"\\]|\\.){0,500})"'),
    "rowId": re.compile(rb'"rowId"\s*:\s*"((?:[^"\\]|\\.){0,200})"'),
}
_MESSAGE_START = re.compile(rb'"message"\s*:\s*"((?:[^"\\]|\\.){0,2000})')


def _unescape(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    try:
        value = json.loads(f'"{text}"')
        return value if isinstance(value, str) else text
    except ValueError:
        return text


def salvage_oversized(prefix: bytes, size: int, *, limit: int = MAX_LINE_BYTES, tail: bytes = b"") -> LogEntry:
    """What can be read from the start and end of a line too long to keep: its small fields and the
    start of its message, marked as cut (a single 5 MB line must not cost 5 MB, nor be lost silently)."""
    found: dict[str, str] = {}
    for key, pattern in _SALVAGE.items():
        m = pattern.search(prefix) or pattern.search(tail)
        if m:
            found[key] = _unescape(m.group(1))
    m = _MESSAGE_START.search(prefix)
    start = _unescape(m.group(1)) if m else ""
    ts = float(found["timestampInMs"]) if "timestampInMs" in found else 0.0
    status = int(found["responseStatusCode"]) if "responseStatusCode" in found else None
    note = f"[line of {size / 1e6:.1f} MB cut: over the {limit / 1e6:.0f} MB line limit]"
    return LogEntry(timestamp_ms=ts, level=_level(found.get("level", "warning")),
                    message=(start[:500] + "… " if start else "") + note, status=status,
                    method=found.get("requestMethod", "")[:16], path=found.get("requestPath", ""),
                    row_id=found.get("rowId", ""), truncated=True, oversized_bytes=size)


@dataclass
class LineSplitter:
    """Splits a byte stream into lines, never holding more than `max_line` bytes of one line.

    `feed` returns complete lines (bytes) and, for a line over the limit, an entry salvaged from
    its start. `close` discards a partial last line (a stream cut mid-line) and says how long it was.
    """

    max_line: int = MAX_LINE_BYTES
    keep: int = OVERSIZE_KEEP
    _buf: bytearray = field(default_factory=bytearray)
    _over_prefix: bytes | None = None
    _over_tail: bytes = b""
    _over_size: int = 0

    def feed(self, chunk: bytes) -> list[bytes | LogEntry]:
        out: list[bytes | LogEntry] = []
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                self._append_partial(chunk[start:])
                return out
            piece = chunk[start:nl]
            if self._over_prefix is not None:
                self._over_size += len(piece)
                tail = (self._over_tail + piece)[-self.keep:]
                out.append(salvage_oversized(self._over_prefix, self._over_size, limit=self.max_line, tail=tail))
                self._over_prefix, self._over_tail, self._over_size = None, b"", 0
            elif self._buf:
                if len(self._buf) + len(piece) > self.max_line:
                    whole = bytes(self._buf[: self.keep])
                    prefix = whole if len(whole) >= self.keep else whole + piece[: self.keep - len(whole)]
                    tail = (bytes(self._buf[-self.keep:]) + piece)[-self.keep:]
                    out.append(salvage_oversized(prefix, len(self._buf) + len(piece), limit=self.max_line,
                                                 tail=tail))
                else:
                    self._buf += piece
                    out.append(bytes(self._buf))
                self._buf.clear()
            elif len(piece) > self.max_line:
                out.append(salvage_oversized(bytes(piece[: self.keep]), len(piece), limit=self.max_line,
                                             tail=bytes(piece[-self.keep:])))
            else:
                out.append(bytes(piece))
            start = nl + 1

    def _append_partial(self, rest: bytes) -> None:
        if not rest:
            return
        if self._over_prefix is not None:
            self._over_size += len(rest)
            self._over_tail = (self._over_tail + rest)[-self.keep:]
            return
        self._buf += rest
        if len(self._buf) > self.max_line:  # over the limit: keep the start and the end, count the rest
            self._over_prefix = bytes(self._buf[: self.keep])
            self._over_tail = bytes(self._buf[-self.keep:])
            self._over_size = len(self._buf)
            self._buf = bytearray()

    def close(self) -> int:
        """Forget a partial last line (the stream ended mid-line); returns its length in bytes."""
        cut = len(self._buf) + self._over_size
        self._buf = bytearray()
        self._over_prefix, self._over_tail, self._over_size = None, b"", 0
        return cut

    @property
    def pending_bytes(self) -> int:
        return len(self._buf) + self._over_size


def parse_chunks(splitter: LineSplitter, chunk: bytes) -> tuple[list[LogEntry], int]:
    """The entries in `chunk` (complete lines only) and how many lines could not be read."""
    entries: list[LogEntry] = []
    bad = 0
    for item in splitter.feed(chunk):
        if isinstance(item, LogEntry):
            entries.append(item)
            continue
        entry = parse_line(item)
        if entry is not None:
            entries.append(entry)
        elif item.strip():
            bad += 1
    return entries, bad


# ----------------------------------------------------------------------------------------- filters
def parse_status_filter(text: str) -> str:
    """'5xx', '4xx', ... or a code such as '503' (normalised); LogFilterError otherwise."""
    value = text.strip().lower()
    if not value:
        return ""
    if value in STATUS_CLASSES or re.fullmatch(r"[1-5]\d\d", value):
        return value
    raise LogFilterError(f"status {printable(text, single_line=True, limit=20)!r}: expected 5xx, 4xx, 3xx, 2xx, "
                         "1xx or a code such as 503")


def parse_level(text: str) -> str:
    value = _level(text.strip()) if text.strip() else ""
    if value and value not in _RANK:
        raise LogFilterError(f"level {printable(text, single_line=True, limit=20)!r}: expected one of "
                             f"{', '.join(LEVELS)} (that level and above are shown)")
    return value


def compile_pattern(text: str) -> tuple[re.Pattern[str] | None, bool]:
    """A text filter: a regular expression, case-insensitive unless it has a capital letter;
    a leading `!` inverts it. LogFilterError when it does not compile."""
    invert = text.startswith("!")
    body = text[1:] if invert else text
    if not body:
        return None, False
    flags = 0 if any(ch.isupper() for ch in body) else re.IGNORECASE
    try:
        return re.compile(body, flags), invert
    except re.error as exc:
        raise LogFilterError(f"not a valid regular expression: {exc}") from None


@dataclass(frozen=True)
class LogFilter:
    """What the log view and `opsconsole logs` show: a status class or code, a minimum level,
    a text pattern (regex, `!` inverts). Build it with `LogFilter.make` to validate."""

    status: str = ""
    min_level: str = ""
    text: str = ""
    pattern: re.Pattern[str] | None = None
    invert: bool = False

    @classmethod
    def make(cls, *, status: str = "", min_level: str = "", text: str = "") -> LogFilter:
        pattern, invert = compile_pattern(text)
        return cls(status=parse_status_filter(status), min_level=parse_level(min_level), text=text,
                   pattern=pattern, invert=invert)

    def with_(self, **changes: str) -> LogFilter:
        return LogFilter.make(status=changes.get("status", self.status),
                              min_level=changes.get("min_level", self.min_level), text=changes.get("text", self.text))

    @property
    def active(self) -> bool:
        return bool(self.status or self.min_level or self.pattern is not None)

    def matches(self, entry: LogEntry) -> bool:
        if self.status:
            if entry.status is None:
                return False
            if self.status.endswith("xx"):
                if entry.status // 100 != int(self.status[0]):
                    return False
            elif entry.status != int(self.status):
                return False
        if self.min_level and _RANK.get(entry.level, _RANK["info"]) < _RANK[self.min_level]:
            return False
        if self.pattern is not None:
            found = self.pattern.search(entry.search_text()) is not None
            if found == self.invert:
                return False
        return True

    def describe(self) -> str:
        parts = []
        if self.status:
            parts.append(f"status {self.status}")
        if self.min_level:
            parts.append(f"level ≥ {self.min_level}")
        if self.pattern is not None:
            parts.append(("not /" if self.invert else "/") + printable(self.text.removeprefix("!"),
                                                                        single_line=True, limit=40) + "/")
        return ", ".join(parts) or "none"


def next_level(current: str) -> str:
    """The level filter's cycle: all -> warning+ -> error+ -> info+ -> all."""
    order = ("", "warning", "error", "info")
    return order[(order.index(current) + 1) % len(order)] if current in order else ""


# ----------------------------------------------------------------------------------------- buffer
class LogBuffer:
    """At most `capacity` entries (oldest dropped and counted), the ones the filter shows, and a
    bounded memory of row ids so a reconnect that replays recent lines adds no duplicates."""

    def __init__(self, capacity: int, flt: LogFilter | None = None) -> None:
        self.capacity = max(1, capacity)
        self.entries: deque[LogEntry] = deque(maxlen=self.capacity)
        self.shown: deque[LogEntry] = deque(maxlen=self.capacity)
        self.filter = flt or LogFilter()
        self.received = 0
        self.dropped = 0
        self.duplicates = 0
        self.version = 0  # bumped on every change the view must paint
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._seq = 0

    def __len__(self) -> int:
        return len(self.entries)

    def _remember(self, row_id: str) -> bool:
        """False when `row_id` was seen recently (a replayed line)."""
        if not row_id:
            return True
        if row_id in self._seen:
            return False
        self._seen[row_id] = None
        if len(self._seen) > 2 * self.capacity:
            self._seen.popitem(last=False)
        return True

    def add(self, entry: LogEntry) -> bool:
        """Keep `entry`; True when the filter shows it."""
        if not self._remember(entry.row_id):
            self.duplicates += 1
            return False
        self.received += 1
        self._seq += 1
        entry.seq = self._seq
        if len(self.entries) == self.capacity:
            oldest = self.entries[0]
            self.dropped += 1
            if self.shown and self.shown[0] is oldest:
                self.shown.popleft()
        self.entries.append(entry)
        self.version += 1
        if self.filter.matches(entry):
            self.shown.append(entry)
            return True
        return False

    def extend(self, entries: Iterable[LogEntry]) -> int:
        return sum(1 for e in entries if self.add(e))

    def set_filter(self, flt: LogFilter) -> None:
        self.filter = flt
        self.shown = deque((e for e in self.entries if flt.matches(e)), maxlen=self.capacity)
        self.version += 1

    def clear(self) -> None:
        self.entries.clear()
        self.shown.clear()
        self.version += 1

    def window(self, start: int, count: int) -> Iterator[LogEntry]:
        """`count` shown entries from index `start` (what is on screen)."""
        shown = self.shown
        end = min(len(shown), start + count)
        for i in range(max(0, start), end):
            yield shown[i]


def format_line(entry: LogEntry, *, date: bool = False, message_limit: int | None = 2000) -> str:
    """One entry as one line of text (the `logs` command's default output)."""
    method = entry.method or "-"
    path = printable(entry.path, single_line=True, limit=200) if entry.path else "-"
    return (f"{entry.time_text(date=date)} {entry.level.upper():<7} {entry.status_text:>3} {method:<6} {path} "
            f" {entry.display_message(message_limit)}")
