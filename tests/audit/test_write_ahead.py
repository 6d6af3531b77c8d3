"""The write-ahead journal: an attempt with a `started` event and no final one is "outcome unknown",
in `unfinished_attempts`, the timeline, and the console's start-up notice."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsconsole.audit import (
    Journal,
    Operator,
    timeline_entries,
    timeline_markdown,
    unfinished_attempts,
)

ALICE = Operator(user="alice", ssh_client="10.1.2.3", host="bastion-1")
T0 = datetime(2026, 11, 27, 3, 12, tzinfo=UTC)


def _journal(path: Path, clock: list[datetime], operator: Operator = ALICE) -> Journal:
    return Journal(path, environment="production", operator=operator, clock=lambda: clock[0])


def _action(attempt: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "action", "attempt": attempt, "pid": 999_999, "action": "dlq.requeue", "title": "Re-queue messages",
            "tier": "disruptive", "target": "40,000 messages into table public.campaign_queue", "outcome": outcome,
            **extra}


def test_started_without_a_final_event_is_outcome_unknown(tmp_path: Path) -> None:
    clock = [T0]
    journal = _journal(tmp_path / "j.jsonl", clock)
    journal.append(_action("a1", "started"))
    clock[0] += timedelta(seconds=30)
    journal.append(_action("a1", "ok"))
    clock[0] += timedelta(minutes=5)
    journal.append(_action("a2", "started"))  # killed mid-way: no final event
    journal.append(_action("a3", "refused"))
    events = journal.read().events
    [unknown] = unfinished_attempts(events)
    assert unknown.attempt == "a2" and unknown.started_at == T0 + timedelta(minutes=5, seconds=30)
    assert unknown.message() == (
        "outcome unknown: dlq.requeue of 40,000 messages into table public.campaign_queue, started 2026-11-27 "
        "03:17 UTC by alice from 10.1.2.3 on bastion-1: it never recorded how it ended (the console was killed "
        "or disconnected). Check before retrying.")
    rows = timeline_entries(events)
    assert [r.outcome for r in rows] == ["ok", "outcome unknown", "refused"]  # one row per attempt
    md = timeline_markdown(events, environment="production", since=None, now=T0 + timedelta(hours=1))
    assert "### Outcome unknown (check before retrying)" in md
    # the operator checked: it is closed, and the check is on the timeline
    journal.record_verified("a2", verdict="partial", reason="12,000 went, the rest still waiting")
    events = journal.read().events
    assert unfinished_attempts(events) == []
    assert [r.outcome for r in timeline_entries(events)] == ["ok", "refused", "partial"]


def test_an_attempt_still_running_on_this_host_is_in_progress_not_lost(tmp_path: Path) -> None:
    clock = [T0]
    here = Operator(user="alice", host=socket.gethostname())
    journal = _journal(tmp_path / "j.jsonl", clock, operator=here)
    sleeper = "import time; time.sleep(60)"
    console = subprocess.Popen([sys.executable, "-c", sleeper, "opsconsole", "action", "run"])
    stranger = subprocess.Popen([sys.executable, "-c", sleeper, "something-else"])  # a reused pid
    try:
        journal.append(_action("running", "started", pid=console.pid))
        journal.append(_action("reused", "started", pid=stranger.pid))
        journal.append(_action("gone", "started", pid=2**22 + 12345))
        by_id = {u.attempt: u for u in unfinished_attempts(journal.read().events)}
        assert by_id["running"].running_here()
        assert not by_id["running"].running_here(host="another-bastion")
        assert not by_id["reused"].running_here()
        assert not by_id["gone"].running_here()
    finally:
        for proc in (console, stranger):
            proc.kill()
            proc.wait()
