"""Making untrusted text safe to show: no terminal control sequences survive."""

from __future__ import annotations

import re

# C0 controls except tab/newline, DEL and the C1 range (0x80-0x9f, which includes CSI 0x9b).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    return "␛" if ch == "\x1b" else f"\\x{ord(ch):02x}"


def printable(text: str, *, single_line: bool = False, limit: int | None = None) -> str:
    """Untrusted text with control characters made visible (ESC becomes ␛, others \\xNN).

    The result is still to be rendered *without* markup: this only defuses terminal escapes.
    """
    out = _CONTROL.sub(_escape, text)
    if single_line:
        out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)] + "…"
    return out


def format_age(seconds: float) -> str:
    """A compact age for tables and badges: 42s, 7m, 3h05m, 2d4h, 140d (hours stop mattering)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s < 10 * 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h"
    return f"{s // 86400}d"
