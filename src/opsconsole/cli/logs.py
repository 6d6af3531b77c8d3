"""`opsconsole logs`: the Vercel runtime logs of production, headless, for grep and pipes.

The same stream, parsing and filters as the console's log view (`domain.logs`,
`adapters.vercel_logs`): one line per entry (`--json`: one JSON object per line), newest last.
Without `--follow` it prints the lines of the last `--since` (default 15 minutes) that the stream
has and stops at the first line newer than the moment it started (or when the stream ends or is
quiet for 3 s); with `--follow` it keeps streaming, reconnecting with backoff when the stream ends
or stalls (said on stderr), until interrupted. The token is never printed: errors name where it
comes from. Exit codes: 0 done, 2 the logs could not be read (or not configured), 64 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from opsconsole.domain.logs import LogEntry, LogFilter
    from opsconsole.settings import Settings

EX_DONE, EX_FAILED, EX_USAGE, EX_INTERRUPTED = 0, 2, 64, 130
QUIET_S = 3.0  # without --follow: stop when the stream has been quiet this long
_C1 = re.compile(r"[\x80-\x9f]")


def add_logs_parser(sub: Any, shared: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs", parents=shared, help="Vercel runtime logs of production (one line per entry)",
        description="The runtime logs of the deployment serving production (or --deployment), as the console's "
                    "log view shows them: time, level, status, method, path, message. Without --follow: the "
                    "lines of the last --since, then exit; with --follow: keep streaming (reconnecting when the "
                    "stream ends or stalls) until interrupted. Exit codes: 0 done, 2 not readable or not "
                    "configured, 64 bad usage, 130 interrupted.")
    p.add_argument("--since", metavar="DURATION", default="15m", help="only entries newer than this (default 15m)")
    p.add_argument("--status", metavar="5xx|4xx|CODE", default="", help="only responses of this class or code")
    p.add_argument("--level", metavar="LEVEL", default="",
                   help="only this level and above (trace, debug, info, warning, error, fatal)")
    p.add_argument("--follow", "-f", action="store_true", help="keep streaming new entries until interrupted")
    p.add_argument("--json", action="store_true", help="one JSON object per entry (NDJSON)")
    p.add_argument("--deployment", metavar="dpl_...", default=None,
                   help="this deployment instead of the one serving production")


def _err(text: str) -> None:
    from opsconsole.domain.text import printable

    print(f"opsconsole logs: {printable(text, single_line=True, limit=400)}", file=sys.stderr, flush=True)


def json_line(entry: LogEntry) -> str:
    """The entry as one NDJSON line; C0 controls are escaped by json, C1 ones (CSI 0x9b) here too."""
    text = json.dumps(entry.to_json(), ensure_ascii=False)
    return _C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


async def stream_logs(settings: Settings, *, flt: LogFilter, since_s: float, follow: bool, as_json: bool,
                      deployment: str | None, out: TextIO) -> int:
    from opsconsole.adapters.vercel import VercelAdapter
    from opsconsole.adapters.vercel_logs import LogFollower
    from opsconsole.domain.logs import LogBuffer, format_line

    assert settings.vercel is not None
    adapter = VercelAdapter(settings)
    follower = LogFollower(adapter, deployment_id=deployment, idle_s=None if follow else QUIET_S)
    started_ms = time.time() * 1000
    threshold = started_ms - since_s * 1000
    buffer = LogBuffer(settings.vercel.log_lines, flt)  # dedupes replayed lines; keeps memory bounded
    try:
        async for event in follower.events(follow=follow):
            if event.kind == "entries":
                lines: list[str] = []
                done = False
                for entry in event.entries:
                    if entry.timestamp_ms and entry.timestamp_ms < threshold:
                        continue
                    if not follow and entry.timestamp_ms > started_ms:
                        done = True  # live from here on: without --follow, stop
                        break
                    if buffer.add(entry):
                        lines.append(json_line(entry) if as_json else format_line(entry, date=True))
                if lines:
                    out.write("\n".join(lines) + "\n")
                    out.flush()
                if event.bad_lines:
                    _err(f"{event.bad_lines} line(s) of the stream were not log entries (skipped)")
                if done:
                    return EX_DONE
            elif event.kind == "refused":
                _err(event.message)
                if not follow:
                    return EX_FAILED
            elif event.kind in ("ended", "idle") and not follow:
                return EX_DONE
            elif event.kind in ("ended", "stalled", "cut", "switched", "retrying"):
                _err(event.message)
            elif event.kind == "connected" and follower.reconnects:
                _err(f"reconnected: {event.message}")
        return EX_DONE
    finally:
        await adapter.aclose()


def cmd_logs(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    from opsconsole.audit import parse_duration
    from opsconsole.cli import _load
    from opsconsole.domain.logs import LogFilter, LogFilterError

    try:
        since_s = parse_duration(str(args.since)).total_seconds()
        if since_s <= 0:
            raise ValueError("must be longer than zero")
    except ValueError as exc:
        _err(f"--since {args.since!r}: {exc} (e.g. 90s, 15m, 2h)")
        return EX_USAGE
    try:
        flt = LogFilter.make(status=args.status or "", min_level=args.level or "")
    except LogFilterError as exc:
        _err(str(exc))
        return EX_USAGE
    deployment = args.deployment
    if deployment is not None and not re.fullmatch(r"dpl_[A-Za-z0-9]{1,96}", deployment):
        _err("--deployment: expected a Vercel deployment id (dpl_ followed by letters and digits)")
        return EX_USAGE
    settings = _load(args)
    if settings is None:
        return EX_FAILED
    if settings.vercel is None:
        _err("not configured: [vercel] (see `opsconsole config check`)")
        return EX_FAILED
    try:
        return asyncio.run(stream_logs(settings, flt=flt, since_s=since_s, follow=bool(args.follow),
                                       as_json=bool(args.json), deployment=deployment, out=out or sys.stdout))
    except KeyboardInterrupt:
        return EX_INTERRUPTED


__all__ = ["add_logs_parser", "cmd_logs", "json_line", "stream_logs"]
