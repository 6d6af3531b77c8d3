"""Runtime logs: the NDJSON parsing, filters and bounded buffer (pure), and the follower through the real
adapter against the simulator's chunked stream: a stream cut mid-line, a 5 MB line, markup and escape
sequences, a stall, a refusal, reconnects without duplicates, and following production after a promote."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from opsconsole.adapters.vercel import VercelAdapter
from opsconsole.adapters.vercel_logs import LogFollower, StreamEvent
from opsconsole.demo.sim import Fault
from opsconsole.domain.logs import (
    MAX_LINE_BYTES,
    LineSplitter,
    LogBuffer,
    LogEntry,
    LogFilter,
    LogFilterError,
    parse_chunks,
    parse_line,
)
from opsconsole.domain.models import utcnow
from tests.vercel.conftest import SECRETS, VercelEnv


def line(i: int, status: int = 200, message: str = "ok", **extra: Any) -> bytes:
    data = {"level": "error" if status >= 500 else "info", "message": message, "rowId": f"row-{i}",
            "source": "serverless", "timestampInMs": 1_796_000_000_000 + i, "domain": "api.example",
            "messageTruncated": False, "requestMethod": "GET", "requestPath": "/api/x", "responseStatusCode": status,
            **extra}
    return json.dumps(data).encode() + b"\n"


# -------------------------------------------------------------------------------------------- pure parts
def test_splitter_keeps_partial_lines_until_complete() -> None:
    splitter = LineSplitter()
    raw = line(1) + line(2)
    entries, bad = parse_chunks(splitter, raw[:10])
    assert entries == [] and splitter.pending_bytes == 10
    entries, bad = parse_chunks(splitter, raw[10:len(line(1)) + 5])
    assert [e.row_id for e in entries] == ["row-1"] and bad == 0
    entries, _ = parse_chunks(splitter, raw[len(line(1)) + 5:])
    assert [e.row_id for e in entries] == ["row-2"]
    parse_chunks(splitter, b'{"level": "error", "mess')
    assert splitter.close() == len(b'{"level": "error", "mess')  # cut mid-line: dropped, counted


def test_oversized_line_is_cut_and_salvaged_without_holding_it() -> None:
    splitter = LineSplitter()
    big = line(7, 500, "x" * (5 * 1024 * 1024))
    out: list[LogEntry] = []
    for i in range(0, len(big), 65536):
        entries, bad = parse_chunks(splitter, big[i:i + 65536])
        out += entries
        assert bad == 0
        assert splitter.pending_bytes <= len(big)
        assert len(splitter._buf) <= MAX_LINE_BYTES  # never more than the limit in memory
    assert len(out) == 1
    entry = out[0]
    assert entry.oversized_bytes == len(big) - 1 and entry.status == 500 and entry.row_id == "row-7"
    assert "line of 5.2 MB cut" in entry.message and len(entry.message) < 1000


def test_unusable_lines_are_counted_not_fatal() -> None:
    entries, bad = parse_chunks(LineSplitter(), b"not json\n" + line(1) + b"[1,2]\n\n" + b'{"message": 3}\n')
    assert [e.row_id for e in entries] == ["row-1"] and bad == 3
    assert parse_line(b"   ") is None


def test_filters() -> None:
    e500 = parse_line(line(1, 500, "Pool Exhausted"))
    e404 = parse_line(line(2, 404, "not found"))
    e200 = parse_line(line(3, 200, "ok"))
    assert e500 and e404 and e200
    assert [LogFilter.make(status="5xx").matches(e) for e in (e500, e404, e200)] == [True, False, False]
    assert [LogFilter.make(status="404").matches(e) for e in (e500, e404, e200)] == [False, True, False]
    assert [LogFilter.make(min_level="error").matches(e) for e in (e500, e404, e200)] == [True, False, False]
    assert LogFilter.make(text="pool exh").matches(e500)  # case-insensitive without capitals
    assert not LogFilter.make(text="pool Exh").matches(e500)  # smart case
    assert [LogFilter.make(text="!ok").matches(e) for e in (e500, e404, e200)] == [True, True, False]
    for bad in ({"status": "7xx"}, {"min_level": "loud"}, {"text": "(["}):
        with pytest.raises(LogFilterError):
            LogFilter.make(**bad)


def test_buffer_is_bounded_counts_drops_and_skips_replays() -> None:
    buffer = LogBuffer(100, LogFilter.make(status="5xx"))
    for i in range(1000):
        entry = parse_line(line(i, 500 if i % 10 == 0 else 200))
        assert entry is not None
        buffer.add(entry)
    assert len(buffer) == 100 and buffer.dropped == 900 and buffer.received == 1000
    assert all(e.status == 500 for e in buffer.shown) and len(buffer.shown) == 10
    assert buffer.shown[0] is next(e for e in buffer.entries if e.status == 500)
    replay = parse_line(line(999))
    assert replay is not None and not buffer.add(replay) and buffer.duplicates == 1
    buffer.set_filter(LogFilter())
    assert len(buffer.shown) == 100


# -------------------------------------------------------------------------------------------- the stream
@asynccontextmanager
async def follower(env: VercelEnv, **kwargs: Any) -> AsyncIterator[LogFollower]:
    adapter = VercelAdapter(env.settings())

    async def no_wait(seconds: float) -> None:
        return None

    try:
        yield LogFollower(adapter, sleep=kwargs.pop("sleep", no_wait), **kwargs)
    finally:
        await adapter.aclose()


async def collect(f: LogFollower, *, follow: bool, until: Any, limit: int = 200) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    async for event in f.events(follow=follow):
        events.append(event)
        if until(events) or len(events) >= limit:
            break
    return events


def entries_of(events: list[StreamEvent]) -> list[LogEntry]:
    return [e for ev in events if ev.kind == "entries" for e in ev.entries]


@pytest.mark.scenario("bad-deploy")
async def test_backlog_has_the_bad_deployments_500s(vercel_env: VercelEnv) -> None:
    async with follower(vercel_env, idle_s=1.0) as f:
        events = await collect(f, follow=False, until=lambda ev: False)
    got = entries_of(events)
    assert events[0].kind == "connecting" and events[1].kind == "connected"
    assert len(got) > 100 and any(e.status == 500 for e in got)
    assert "pool exhausted" in next(e.message for e in got if e.status == 500)
    assert f.deployment is not None and f.deployment.id == vercel_env.state.production_id


@pytest.mark.scenario("bad-deploy")
async def test_cut_mid_line_reconnects_without_duplicates(vercel_env: VercelEnv) -> None:
    env = vercel_env
    env.state.logs.backlog_s = 5
    env.state.logs.inject = [line(1) + line(2, 500, "boom") + b'{"level": "error", "message": "half a li']
    env.state.logs.after_inject = "cut"
    buffer = LogBuffer(1000)
    async with follower(env) as f:
        events = await collect(f, follow=True, until=lambda ev: sum(e.kind == "connected" for e in ev) >= 2
                               and ev[-1].kind == "entries")
    kinds = [e.kind for e in events]
    assert "cut" in kinds and kinds.index("retrying") > kinds.index("cut")
    cut = next(e for e in events if e.kind == "cut")
    assert "unfinished line dropped" in cut.message
    for entry in entries_of(events):
        buffer.add(entry)
    assert buffer.duplicates > 0  # the replayed backlog and injected lines were recognised
    ids = [e.row_id for e in buffer.entries]
    assert len(ids) == len(set(ids)) and "row-1" in ids and "row-2" in ids
    assert all("half a li" not in e.message for e in buffer.entries)


@pytest.mark.scenario("bad-deploy")
async def test_five_megabyte_line_and_hostile_text(vercel_env: VercelEnv) -> None:
    env = vercel_env
    env.state.logs.backlog_s = 0
    hostile = "[bold red]boom[/] \x1b[2J\x1b]0;owned\x07 \x9b31m [/x]"
    env.state.logs.inject = [line(1, 500, "y" * (5 * 1024 * 1024)), line(2, 500, hostile), line(3)]
    env.state.logs.after_inject = "cut"
    async with follower(env) as f:
        events = await collect(f, follow=False, until=lambda ev: False)
    got = {e.row_id: e for e in entries_of(events)}
    assert set(got) >= {"row-1", "row-2", "row-3"}
    assert got["row-1"].oversized_bytes > 5_000_000 and len(got["row-1"].message) < 1000
    assert got["row-2"].message == hostile  # kept as sent ...
    shown = got["row-2"].display_message()
    assert "[bold red]boom[/]" in shown and "\x1b" not in shown and "\x9b" not in shown  # ... shown literally


@pytest.mark.scenario("bad-deploy")
async def test_stall_is_reported_and_reconnected(vercel_env: VercelEnv) -> None:
    env = vercel_env
    env.state.logs.backlog_s = 1
    env.state.logs.after_inject = "stall"
    env.state.logs.stream_s = 5
    async with follower(env, stall_s=0.5) as f:
        events = await collect(f, follow=True, until=lambda ev: ev[-1].kind == "retrying")
    stalled = next(e for e in events if e.kind == "stalled")
    assert "no data for 0.5 s" in stalled.message
    assert events[-1].retry_in_s == 1.0


@pytest.mark.scenario("bad-deploy")
async def test_refused_stream_says_why_without_the_token(vercel_env: VercelEnv) -> None:
    env = vercel_env
    env.faults.set("vercel", Fault(kind="status", status=403, path="/v1/projects/",
                                   body=json.dumps({"error": {"code": "forbidden", "message": "Not authorized",
                                                              "invalidToken": True}})))
    async with follower(env) as f:
        events = await collect(f, follow=True, until=lambda ev: ev[-1].kind == "retrying")
    refused = next(e for e in events if e.kind == "refused")
    assert "token rejected" in refused.message and SECRETS.vercel_token not in refused.message
    assert events[-1].retry_in_s == 30.0  # a rejected token is not retried every second


@pytest.mark.scenario("bad-deploy")
async def test_follows_production_after_a_promote(vercel_env: VercelEnv) -> None:
    env = vercel_env
    env.state.logs.backlog_s = 2
    bad = env.state.production_id
    good = next(d["uid"] for d in env.state.deployments if d["target"] == "production"
                and d["readyState"] == "READY" and d["uid"] != bad)
    promoted = []

    def until(events: list[StreamEvent]) -> bool:
        if not promoted and sum(e.kind == "entries" for e in events) >= 3:
            with env.state.lock:
                env.state._serve(good, utcnow().timestamp() * 1000)
            promoted.append(True)
        return bool(promoted) and events[-1].kind == "entries" and events[-1].deployment is not None \
            and events[-1].deployment.id == good

    async with follower(env, recheck_s=0.3) as f:
        events = await collect(f, follow=True, until=until, limit=500)
    switched = next(e for e in events if e.kind == "switched")
    assert good in switched.message
    after = [e for ev in events[events.index(switched):] if ev.kind == "entries" for e in ev.entries]
    assert after and all(e.status != 500 for e in after)  # the 500s stop with the bad deployment
