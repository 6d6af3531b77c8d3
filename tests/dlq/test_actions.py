"""The DLQ guarded actions through the kernel: previews, refusals, journal records, undo."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from opsconsole.actions.dlq import DiscardMessages, FixPayload, RequeueMessages, UndoDiscard, id_ranges
from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.model import Confirmation, Outcome, Preview, Refusal, RefusalReason
from opsconsole.audit import Journal
from opsconsole.settings import AuditSettings, EnvironmentSettings
from tests.dlq.conftest import DlqEnv


def _kernel(env: DlqEnv, tmp_path: Path, dlq: str, queue: str, *, read_only: bool = False) -> ActionKernel:
    settings = dataclasses.replace(env.settings(dlq, target=queue),
                                   environment=EnvironmentSettings(name="test", read_only=read_only),
                                   audit=AuditSettings(path=str(tmp_path / "journal.jsonl")))
    store = env.store(dlq, target=queue)
    kernel = ActionKernel(settings, Journal.for_settings(settings), locks=None)
    for action in (RequeueMessages(store), DiscardMessages(store), UndoDiscard(store), FixPayload(store)):
        kernel.register(action)
    return kernel


def _yes(start_key: str) -> Confirmation:
    return Confirmation(key="y", start_key=start_key, elapsed_s=1.0)


def _events(tmp_path: Path) -> list[dict[str, Any]]:
    """The final event of every attempt (not the write-ahead `started` ones)."""
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["outcome"] != "started"]


def test_id_ranges_are_compact_and_bounded() -> None:
    assert id_ranges([5, 1, 2, 3, 9, 10]) == "1-3,5,9-10"
    assert id_ranges([]) == ""
    text = id_ranges(range(0, 2_000_000, 2), limit=100)
    assert len(text) < 140 and "1,000,000 ids in all" in text


async def test_requeue_preview_counts_per_code_and_refuses_never_requeue(env: DlqEnv, tmp_path: Path) -> None:
    dlq, queue = env.copy_tables("act")
    kernel = _kernel(env, tmp_path, dlq, queue)
    ids = [r[0] for r in env.admin.execute(
        f"select id from {dlq} where status = 'waiting' and error_code in (21610, 30008) order by id limit 40")]
    never = {r[0] for r in env.admin.execute(f"select id from {dlq} where id = any(%s) and error_code = 21610",
                                             [ids])}
    preview = await kernel.prepare("dlq.requeue", {"ids": ids})
    assert isinstance(preview, Preview)
    text = "\n".join(preview.lines) + json.dumps([dict(e) for e in preview.excluded])
    assert "21610" in text and "never" in text.lower()
    result = await kernel.run(preview, _yes("R"))
    assert isinstance(result, Outcome)
    done = {r[0] for r in env.admin.execute(f"select id from {dlq} where id = any(%s) and status = 'requeued'",
                                            [ids])}
    assert done and not done & never  # 21610 (the recipient said STOP) is never re-queued
    queued = [r[0] for r in env.admin.execute(f"select dlq_message_id from {queue} where dlq_message_id = any(%s)",
                                              [ids])]
    assert sorted(queued) == sorted(done)
    event = _events(tmp_path)[-1]
    assert event["action"] == "dlq.requeue" and event["outcome"] in ("ok", "partial")
    assert event["result"]["items"][0]["ids"] == id_ranges(done)
    again = await kernel.prepare("dlq.requeue", {"ids": sorted(done)})  # already handled: nothing to do
    assert isinstance(again, Refusal) and again.reason is RefusalReason.NOTHING_TO_DO


async def test_discard_needs_a_reason_and_undo_restores(env: DlqEnv, tmp_path: Path) -> None:
    dlq, queue = env.copy_tables("disc")
    kernel = _kernel(env, tmp_path, dlq, queue)
    ids = [r[0] for r in env.admin.execute(f"select id from {dlq} where status = 'waiting' order by id limit 5")]
    no_reason = await kernel.prepare("dlq.discard", {"ids": ids, "reason": "  "})
    assert isinstance(no_reason, Refusal) and "reason" in no_reason.message
    preview = await kernel.prepare("dlq.discard", {"ids": ids, "reason": "duplicates of an earlier send"})
    assert isinstance(preview, Preview)
    assert isinstance(await kernel.run(preview, _yes("D")), Outcome)
    rows = env.admin.execute(f"select status, discard_reason from {dlq} where id = any(%s)", [ids]).fetchall()
    assert rows and all(r == ("discarded", "duplicates of an earlier send") for r in rows)
    assert env.admin.execute(f"select count(*) from {dlq} where id = any(%s)", [ids]).fetchone() == (5,)
    undo = await kernel.prepare("dlq.undo_discard", {"ids": ids})
    assert isinstance(undo, Preview)
    assert isinstance(await kernel.run(undo, _yes("U")), Outcome)
    statuses = {r[0] for r in env.admin.execute(f"select status from {dlq} where id = any(%s)", [ids])}
    assert statuses == {"waiting"}
    assert [e["action"] for e in _events(tmp_path)] == ["dlq.discard", "dlq.undo_discard"]


async def test_fix_payload_validates_then_requeues(env: DlqEnv, tmp_path: Path) -> None:
    dlq, queue = env.copy_tables("fix")
    kernel = _kernel(env, tmp_path, dlq, queue)
    row = env.admin.execute(f"select id from {dlq} where status = 'waiting' and payload is null "
                            "and error_code is distinct from 21610 order by id limit 1").fetchone()
    assert row is not None
    bad = await kernel.prepare("dlq.fix_payload", {"id": row[0], "payload": '{"To": "+1555"'})
    assert isinstance(bad, Refusal) and "not accepted" in bad.message
    good_json = json.dumps({"MessageSid": "SM" + "a" * 32, "To": "+14155550123", "From": "+14155550100",
                            "Body": "Your code is 12345"})
    fix = await kernel.prepare("dlq.fix_payload", {"id": row[0], "payload": good_json})
    assert isinstance(fix, Preview)
    outcome = await kernel.run(fix, _yes("e"))
    assert isinstance(outcome, Outcome) and outcome.ok, outcome
    history = env.admin.execute(f"select history from {dlq} where id = %s", [row[0]]).fetchone()
    assert history is not None and history[0]  # the original is kept
    requeue = await kernel.prepare("dlq.requeue", {"ids": [row[0]]})
    assert isinstance(requeue, Preview)
    assert isinstance(await kernel.run(requeue, _yes("R")), Outcome)
    assert env.admin.execute(f"select status from {dlq} where id = %s", [row[0]]).fetchone() == ("requeued",)


async def test_every_dlq_action_is_refused_read_only(env: DlqEnv, tmp_path: Path) -> None:
    dlq, queue = env.copy_tables("ro")
    kernel = _kernel(env, tmp_path, dlq, queue, read_only=True)
    assert len(kernel.actions()) == 4 and kernel.visible_actions() == []
    for action in kernel.actions():
        refusal = await kernel.prepare(action.id, {"ids": [1], "reason": "x", "id": 1, "payload": "{}"})
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.READ_ONLY
