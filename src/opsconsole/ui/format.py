"""Formatting shared by widgets: ages, latencies, status glyphs; all plain text."""

from __future__ import annotations

from datetime import datetime
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


def age_of(ts: datetime, now: datetime) -> float:
    return (now - ts).total_seconds()


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
