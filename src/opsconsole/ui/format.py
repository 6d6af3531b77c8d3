"""Formatting shared by widgets: ages, latencies, status glyphs, check details; all plain text.

Everything here is pure (no Textual), so what a widget shows is unit-tested without a screen.
Two rules keep the console cheap on a slow link: a value is formatted as coarsely as a person
reads it (ages: seconds under a minute, then minutes, then hours), and an age is shown only when
it says something (`Freshness`: a result that is overdue or stale), so a healthy screen does not
repaint every second.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsconsole.domain.models import Status
from opsconsole.domain.text import format_age, printable

GLYPH = {Status.OK: "✔", Status.WARN: "▲", Status.FAIL: "✖", Status.UNKNOWN: "?", Status.OFF: "○"}
LABEL = {Status.OK: "OK", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.UNKNOWN: "UNKN", Status.OFF: "OFF"}


fmt_age = format_age


def fmt_latency(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s" if ms < 10_000 else f"{ms / 1000:.0f} s"


def slow_latency(ms: float | None) -> str:
    """A latency worth a glance in the status strip: only when over a second, in whole seconds
    (">1s", ">4s"), so a check hovering around 1.5 s does not repaint its badge on every poll."""
    if ms is None or ms < 1000:
        return ""
    return f">{int(ms // 1000)}s"


def age_of(ts: datetime, now: datetime) -> float:
    return (now - ts).total_seconds()


def fmt_time(ts: datetime) -> str:
    """A wall-clock time in UTC, as an operator quotes it in an incident channel."""
    return ts.astimezone(UTC).strftime("%H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a result is against its own check's schedule.

    `late`: the next result should have arrived (older than the check's interval plus its
    timeout): the age is worth showing. `stale`: older than two of the check's intervals
    (`ChecksSettings.stale_after_s`): the data may no longer describe the system.
    """

    age_s: float
    late: bool
    stale: bool

    @property
    def note(self) -> str:
        """"" while fresh; "25s old" once late; "STALE 3m" once stale."""
        if self.stale:
            return f"STALE {format_age(self.age_s)}"
        if self.late:
            return f"{format_age(self.age_s)} old"
        return ""


def freshness(checked_at: datetime, now: datetime, *, interval_s: float, timeout_s: float,
              stale_after_s: float) -> Freshness:
    age = age_of(checked_at, now)
    return Freshness(age_s=age, late=age > interval_s + timeout_s, stale=age > stale_after_s)


def cell(value: Any, limit: int = 80) -> str:
    """One table cell or detail value as safe single-line text."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return printable(", ".join(str(v) for v in value), single_line=True, limit=limit)
    if isinstance(value, dict):
        return printable(", ".join(f"{k}={v}" for k, v in value.items()), single_line=True, limit=limit)
    return printable(str(value), single_line=True, limit=limit)


# -- check details in a form a person reads --------------------------------------------------

_WORDS = {"http": "HTTP", "url": "URL", "id": "ID", "ids": "IDs", "pitr": "PITR", "walg": "WAL-G", "cpu": "CPU",
          "cpus": "CPUs", "sha": "SHA", "pid": "PID", "sid": "SID", "api": "API", "jwt": "JWT", "dlq": "DLQ",
          "pg": "PostgreSQL", "ram": "RAM", "ok": "OK", "mem": "memory"}
# counts get digit grouping (1,680 messages); identifiers never do (PID 123456, port 6543, code 30008)
_COUNT = re.compile(r"(count|total|waiting|failed|crashed|recent|capped|clients|connections|messages|rows|size)")
# unit suffix -> how the value is written; the suffix is dropped from the label
_UNITS: tuple[tuple[str, str], ...] = (("_pct", "%"), ("_ms", "ms"), ("_s", "s"), ("_h", "h"), ("_days", "days"),
                                       ("_minutes", "min"), ("_bytes", "bytes"))
_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")


def label(key: str) -> str:
    """`http_status` -> "HTTP status", `connect_ms` -> "Connect", `expires_in_days` -> "Expires in"."""
    base = _unit_of(key)[0]
    words = [w for w in base.replace("-", "_").split("_") if w]
    if not words:
        return printable(key, single_line=True, limit=40)
    out = [_WORDS.get(w.lower(), w.lower()) for w in words]
    first = out[0]
    out[0] = first[:1].upper() + first[1:]
    return printable(" ".join(out), single_line=True, limit=40)


def _unit_of(key: str) -> tuple[str, str]:
    for suffix, unit in _UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], unit
    return key, ""


def _number(value: float, grouped: bool) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}" if grouped else str(int(value))
    return f"{value:,.1f}" if grouped else f"{value:.1f}"


def value_text(key: str, value: Any, limit: int = 80, *, in_list: bool = False) -> str:
    """One value, with its unit from the key's suffix, timestamps in UTC, booleans as yes/no."""
    unit = _unit_of(key)[1]
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if unit == "ms":
            return fmt_latency(float(value))
        if unit == "s":
            return f"{value:g} s" if value < 60 else format_age(float(value))
        if unit == "%":
            return f"{value:.0f} %"
        return f"{_number(value, not in_list and bool(_COUNT.search(key.lower())))} {unit}".strip()
    if isinstance(value, str):
        if _ISO.match(value.strip()):
            return _iso_text(value.strip())
        return printable(value, single_line=True, limit=limit) if value else "–"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        return printable(", ".join(value_text(key, v, limit, in_list=True) for v in value), single_line=True,
                         limit=limit)
    if isinstance(value, Mapping):
        return printable(", ".join(f"{label(str(k))} {value_text(key, v, limit, in_list=True)}"
                                   for k, v in value.items()), single_line=True, limit=limit)
    return printable(str(value), single_line=True, limit=limit)


def _iso_text(text: str) -> str:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class Fact:
    """One line of a check's details: `label: value`, indented under its group when `depth` > 0."""

    label: str
    value: str
    depth: int = 0


@dataclass(frozen=True, slots=True)
class DetailTable:
    """A list of records from a check's details: a title, column (key, label)s and rows."""

    title: str
    columns: tuple[tuple[str, str], ...]
    rows: tuple[Mapping[str, Any], ...]

    def cells(self, row: Mapping[str, Any], limit: int = 60) -> list[str]:
        return [value_text(key, row.get(key), limit) for key, _label in self.columns]


def _records(value: Any) -> list[dict[str, Any]] | None:
    """A list of dicts, or a dict of dicts (keyed by name): records for a table."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        return [dict(v) for v in value]
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
        return [{"name": k, **{ik: iv for ik, iv in v.items() if not isinstance(iv, Mapping)}}
                for k, v in value.items()]
    return None


def describe_details(details: Any, *, max_columns: int = 8) -> tuple[list[Fact], list[DetailTable]]:
    """A check's `details` as labelled facts (with units, nested groups indented) and tables."""
    facts: list[Fact] = []
    tables: list[DetailTable] = []
    if not isinstance(details, Mapping):
        return facts, tables
    for key, value in details.items():
        base = key[:-3] if key.endswith("_id") else ""
        twin = details.get(base) if base else None
        if isinstance(twin, Mapping) and twin.get("id") == value:
            continue  # `current_id` beside `current = {id: ...}` says the same twice
        records = _records(value)
        if records is not None:
            columns: list[str] = []
            for record in records:
                columns += [k for k in record if k not in columns and not isinstance(record[k], Mapping)]
            tables.append(DetailTable(label(key), tuple((c, label(c)) for c in columns[:max_columns]),
                                      tuple(records)))
            continue
        if isinstance(value, Mapping) and value and (
                len(value) > 3 or any(isinstance(v, (Mapping, list, tuple)) for v in value.values())):
            facts.append(Fact(label(key), ""))
            for sub_key, sub_value in value.items():
                facts.append(Fact(label(sub_key), value_text(sub_key, sub_value), depth=1))
            continue
        facts.append(Fact(label(key), value_text(key, value)))
    return facts, tables


def facts_text(facts: list[Fact]) -> str:
    """Facts as aligned lines: labels padded to one width per depth."""
    width = max((len(f.label) for f in facts if f.depth == 0 and f.value), default=0)
    lines = []
    for fact in facts:
        pad = "  " * fact.depth
        if not fact.value:
            lines.append(f"{pad}{fact.label}")
        elif fact.depth:
            lines.append(f"{pad}{fact.label}: {fact.value}")
        else:
            lines.append(f"{pad}{fact.label + ':':<{width + 1}} {fact.value}")
    return "\n".join(lines)


# -- latency history as one line ----------------------------------------------------------------

LEVELS = "▁▂▃▄▅▆▇█"
# fixed, doubling thresholds (ms): a bar's height depends on its own value only, so a new spike
# does not rescale (and repaint differently) every older bar
LEVEL_MS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)


def level(ms: float) -> str:
    for i, limit in enumerate(LEVEL_MS):
        if ms < limit:
            return LEVELS[i]
    return LEVELS[-1]


def latency_line(values: list[float], width: int, what: str = "/health") -> str:
    """`/health ▁▁▂▁▃  now 102 ms · median 98 ms · max 160 ms`: the newest polls that fit in
    `width`, one bar each (newest on the right), on a fixed scale (▁ < 50 ms … █ ≥ 3.2 s)."""
    if not values:
        return f"{what} latency: no data yet"
    ordered = sorted(values)
    stats = (f"now {fmt_latency(values[-1])} · median {fmt_latency(ordered[len(ordered) // 2])} · "
             f"max {fmt_latency(ordered[-1])}")
    room = width - len(what) - len(stats) - 4
    bars = "".join(level(v) for v in values[-room:]) if room >= 8 else ""
    return f"{what} {bars}  {stats}" if bars else f"{what} latency: {stats}"
