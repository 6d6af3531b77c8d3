"""The wizard engine on its own (no Textual): every step kind, every way of failing, the journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.audit import Journal, open_wizard_runs, timeline_markdown, unfinished_attempts, wizard_runs
from opsconsole.domain.models import Status, utcnow
from opsconsole.runbooks.engine import Denied, Mode, Wizard, extract
from opsconsole.runbooks.model import END
from tests.runbooks.helpers import BOB, PokeAction, World, checks, confirm, runbook

FOUR = runbook("""
id = "api-down"
title = "API Down / 500 Errors"
triggers = ["api.health"]
[[steps]]
id = "status"
title = "Check status"
kind = "check"
checks = ["api.health", "vercel.deployment"]
[[steps]]
id = "logs"
title = "Check logs"
kind = "manual"
link = "vercel_logs"
[[steps]]
id = "restart"
title = "Restart"
kind = "action"
action = "test.poke"
params = { target = "the API" }
[[steps]]
id = "pooler"
title = "Pooler"
kind = "check"
checks = ["supabase.pooler"]
""")


def world(tmp_path: Path, **kwargs: object) -> World:
    fake = checks(api_health=Status.FAIL)
    return World(tmp_path, kwargs.pop("rb", FOUR), kwargs.pop("fake", fake), kwargs.pop("action", PokeAction()),
                 **kwargs)  # type: ignore[arg-type]


async def test_a_run_walked_end_to_end_is_journaled_step_by_step(tmp_path: Path) -> None:
    w = world(tmp_path)
    wiz = w.wizard()
    assert await wiz.open() is None
    # the check failed (api.health) and has no on_fail: it stays, offering the next step
    [status] = [v for v in wiz.steps() if v.step.id == "status"]
    assert status.state == "failed" and "api.health FAIL" in (status.visit.detail if status.visit else "")
    assert wiz.current_id == "status"
    assert await wiz.next() is None
    assert wiz.current_id == "logs" and wiz.mode() is Mode.MANUAL
    assert await wiz.manual("done", "looked at the runtime logs: pool exhausted") is None
    assert wiz.current_id == "restart" and wiz.mode() is Mode.ACTION
    w.fake_checks["api.health"].status = Status.OK  # the restart will fix it
    preview = await wiz.prepare()
    assert isinstance(preview, Preview) and preview.target == "the API"
    outcome = await wiz.confirm(preview, confirm())
    assert isinstance(outcome, Outcome) and outcome.ok
    assert w.action.done == [{"target": "the API"}]
    # pooler passed, then the closing check (api.health) is ok: resolved
    assert wiz.closed and wiz.record.outcome == "resolved"
    assert w.whats() == [("", "opened"), ("status", "entered"), ("status", "failed"), ("logs", "entered"),
                         ("logs", "done"), ("restart", "entered"), ("restart", "running"), ("restart", "done"),
                         ("pooler", "entered"), ("pooler", "passed"), (END, "entered"), (END, "passed"),
                         (END, "closed")]
    events = w.wizard_events()
    assert all(e["run"] == wiz.run_id and e["runbook"] == "api-down" for e in events)
    done = next(e for e in events if e["step"] == "restart" and e["what"] == "done")
    action_events = [e for e in w.events() if e.get("kind") == "action"]
    assert done["attempt"] == action_events[-1]["attempt"] and done["preview_id"] == preview.preview_id
    [run] = wizard_runs(w.events())
    assert [v.state for v in run.visits] == ["failed", "done", "done", "passed", "passed"]
    md = timeline_markdown(w.events(), environment="drill", since=None, now=utcnow())
    assert "## Runbook runs" in md and "### API Down / 500 Errors (run " in md
    assert "| 3. Restart | done | alice from 10.1.2.3 on bastion-1 |" in md


async def test_a_check_that_times_out_fails_the_step_with_why(tmp_path: Path) -> None:
    fake = checks()
    fake["vercel.deployment"].hang = True
    w = world(tmp_path, fake=fake, timeout_s=0.2)
    wiz = w.wizard()
    await wiz.open()
    visit = wiz.visit
    assert visit is not None and visit.state == "failed"
    assert "vercel.deployment FAIL: no answer within 1.2 s (check timed out)" in visit.detail


async def test_on_fail_branches_and_a_pass_follows_next(tmp_path: Path) -> None:
    rb = runbook("""
id = "q"
title = "Queries"
[[steps]]
id = "resources"
title = "Resources"
kind = "check"
checks = ["supabase.resources"]
on_fail = "kill"
next = "credentials"
[[steps]]
id = "kill"
title = "Kill"
kind = "action"
action = "test.poke"
next = "resources"
[[steps]]
id = "credentials"
title = "Credentials"
kind = "check"
checks = ["supabase.service_key"]
""")
    fake = checks(supabase_resources=Status.FAIL)
    w = world(tmp_path, rb=rb, fake=fake)
    wiz = w.wizard()
    await wiz.open()
    assert wiz.current_id == "kill"  # the failure went to on_fail
    fake["supabase.resources"].status = Status.OK
    preview = await wiz.prepare()
    assert isinstance(preview, Preview)
    await wiz.confirm(preview, confirm())
    # back to resources (next = resources): it ran again, passed, and next = credentials passed too
    assert [s for s, what in w.whats() if what == "entered"] == ["resources", "kill", "resources", "credentials", END]
    assert wiz.closed and wiz.record.outcome == "resolved"


async def test_refusals_read_only_stale_and_a_failing_action(tmp_path: Path) -> None:
    w = world(tmp_path, read_only=True)
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    await wiz.manual("done")
    refused = await wiz.prepare()
    assert isinstance(refused, Refusal) and refused.reason is RefusalReason.READ_ONLY
    assert wiz.visit is not None and wiz.visit.state == "refused" and wiz.current_id == "restart"
    assert isinstance(await wiz.next(), Denied)  # a refused action is not passed by "next"

    w2 = world(tmp_path / "stale", max_age_s=5, action=PokeAction(data_as_of=utcnow().replace(year=2020)))
    wiz2 = w2.wizard()
    await wiz2.open()
    await wiz2.next()
    await wiz2.manual("done")
    preview = await wiz2.prepare()
    assert isinstance(preview, Preview)
    stale = await wiz2.confirm(preview, confirm())
    assert isinstance(stale, Refusal) and stale.reason is RefusalReason.STALE
    assert wiz2.visit is not None and wiz2.visit.state == "refused" and wiz2.current_id == "restart"
    assert w2.action.done == []

    failing = PokeAction(outcomes=[Outcome(OutcomeStatus.FAILED, "the service said no", error="HTTP 503")])
    w3 = world(tmp_path / "fail", action=failing)
    wiz3 = w3.wizard()
    await wiz3.open()
    await wiz3.next()
    await wiz3.manual("done")
    preview = await wiz3.prepare()
    assert isinstance(preview, Preview)
    await wiz3.confirm(preview, confirm())
    assert wiz3.visit is not None and wiz3.visit.state == "failed" and "the service said no" in wiz3.visit.detail
    assert wiz3.current_id == "restart"  # no on_fail: it stays; x tries again, n goes on
    again = await wiz3.prepare()
    assert isinstance(again, Preview)
    await wiz3.confirm(again, confirm())
    assert wiz3.current_id != "restart"


async def test_skipping_needs_a_reason_and_nothing_is_skipped_without_one(tmp_path: Path) -> None:
    w = world(tmp_path)
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    for reason in ("", "  ", "ok"):
        denied = await wiz.skip(reason)
        assert isinstance(denied, Denied) and "needs a reason" in denied.message
    assert wiz.current_id == "logs"
    assert not any(what == "skipped" for _s, what in w.whats())
    assert await wiz.skip("logs are not piped anywhere yet") is None
    skipped = [e for e in w.wizard_events() if e["what"] == "skipped"]
    assert skipped[0]["step"] == "logs" and skipped[0]["detail"] == "logs are not piped anywhere yet"


ACKED = runbook("""
id = "restore"
title = "Restore"
[[steps]]
id = "restore"
title = "Initiate the restore"
kind = "action"
action = "test.poke"
warning = "DOWNTIME WARNING: the database goes OFFLINE."
ack = "OFFLINE"
[[steps]]
id = "after"
title = "After"
kind = "manual"
""")


async def test_an_ack_step_cannot_be_started_passed_or_skipped_before_the_ack(tmp_path: Path) -> None:
    w = world(tmp_path, rb=ACKED, action=PokeAction(tier=RiskTier.DESTRUCTIVE))
    wiz = w.wizard()
    await wiz.open()
    assert wiz.needs_ack()
    for attempt in (wiz.prepare(), wiz.skip("no time for this"), wiz.next(), wiz.manual("done")):
        assert isinstance(await attempt, Denied)
    assert isinstance(await wiz.acknowledge("offline"), Denied)  # exact text only
    assert isinstance(await wiz.acknowledge("OFFLINE "), Denied)
    assert wiz.current_id == "restore" and w.action.done == []
    assert await wiz.acknowledge("OFFLINE") is None
    preview = await wiz.prepare()
    assert isinstance(preview, Preview)
    await wiz.confirm(preview, confirm(typed="the service"))
    assert wiz.current_id == "after"
    assert ("restore", "acknowledged") in w.whats()


async def test_an_action_not_configured_here_is_a_manual_step_that_says_so(tmp_path: Path) -> None:
    rb = runbook("""
id = "rollback"
title = "How to Rollback"
[[steps]]
id = "promote"
title = "Promote"
kind = "action"
action = "vercel.promote"
link = "vercel_deployments"
""")
    w = world(tmp_path, rb=rb)
    wiz = w.wizard()
    wiz.links["vercel_deployments"] = "https://vercel.example/deployments"
    await wiz.open()
    assert wiz.mode() is Mode.FALLBACK
    assert wiz.fallback_reason() == ("not configured here (needs [vercel]): do it by hand: "
                                     "https://vercel.example/deployments")
    assert isinstance(await wiz.prepare(), Denied)
    assert await wiz.manual("done", "promoted dpl_7 in the dashboard") is None
    done = next(e for e in w.wizard_events() if e["what"] == "done")
    assert done["by_hand"] is True and done["detail"] == "promoted dpl_7 in the dashboard"


async def test_going_back_to_a_check_step_runs_its_checks_again(tmp_path: Path) -> None:
    w = world(tmp_path)
    wiz = w.wizard()
    await wiz.open()
    calls = w.fake_checks["api.health"].calls
    await wiz.next()
    assert await wiz.back() is None
    assert wiz.current_id == "status" and w.fake_checks["api.health"].calls == calls + 1
    assert [s for s, what in w.whats() if what == "entered"] == ["status", "logs", "status"]


async def test_wait_s_rechecks_until_it_passes(tmp_path: Path) -> None:
    rb = runbook("""
id = "w"
title = "Wait"
[[steps]]
id = "recheck"
title = "CPU back down"
kind = "check"
checks = ["supabase.resources"]
wait_s = 5
every_s = 0.5
""")
    fake = checks(supabase_resources=Status.FAIL)
    w = world(tmp_path, rb=rb, fake=fake)
    wiz = w.wizard()

    async def recover() -> None:
        for _ in range(200):
            if fake["supabase.resources"].calls >= 2:
                break
            await asyncio.sleep(0.05)
        fake["supabase.resources"].status = Status.OK

    task = asyncio.create_task(recover())
    await wiz.open()
    await task
    passed = next(e for e in w.wizard_events() if e["what"] == "passed")
    assert passed["step"] == "recheck" and passed["rounds"] >= 2


async def test_a_runbook_action_with_params_from_a_check(tmp_path: Path) -> None:
    details = {"sessions": [{"pid": 4242, "query": "select 1"}, {"pid": 4243}, {"pid": 4242}]}
    assert extract(details, "sessions.pid") == [4242, 4243]
    assert extract(details, "nothing.here") == []


async def test_resume_after_a_kill_mid_action_is_outcome_unknown_until_verified(tmp_path: Path) -> None:
    w = world(tmp_path, action=PokeAction(gate=asyncio.Event()))
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    await wiz.manual("done")
    preview = await wiz.prepare()
    assert isinstance(preview, Preview)
    running = asyncio.create_task(wiz.confirm(preview, confirm()))
    await w.action.started.wait()
    # The console "dies" here: the kernel's started event is on disk, its final one never will be.
    events = w.events()
    [open_run] = open_wizard_runs(events)
    assert open_run.message().startswith("API Down / 500 Errors at step 3 of 4 (started ")
    assert open_run.message().endswith(" by alice from 10.1.2.3)")
    [lost] = unfinished_attempts(events)
    running.cancel()  # (cleanly, for the test: a real kill would leave no final event at all)
    with pytest.raises(asyncio.CancelledError):
        await running
    # Rebuild from the journal as it was at the kill (without the kernel's "interrupted" record).
    w2 = World(tmp_path, FOUR, w.fake_checks, PokeAction(), operator=BOB)
    resumed = Wizard.from_journal(FOUR, open_run.run, events, journal=w2.journal, runner=w2.runner,
                                  kernel=w2.kernel, vocabulary=w2.vocab, links={})
    assert await resumed.resume(events) is None
    assert resumed.current_id == "restart" and resumed.visit is not None and resumed.visit.state == "unknown"
    assert resumed.visit.attempt == lost.attempt
    for attempt in (resumed.next(), resumed.skip("moving on anyway"), resumed.prepare()):
        assert isinstance(await attempt, Denied)
    assert isinstance(await resumed.verify("done", ""), Denied)  # say what was checked
    assert await resumed.verify("done", "the instances were cycled: new deployment READY") is None
    # on to the pooler (passed), then the closing check: api.health still fails, so the run stays open
    assert [v.step for v in resumed.record.visits][-2:] == ["pooler", END] and resumed.at_end
    assert not resumed.closed and "c closes the run anyway" in resumed.message
    after = w2.events()
    assert lost.attempt not in {u.attempt for u in unfinished_attempts(after)}
    verified = [e for e in after if e.get("kind") == "verified"]
    assert verified[-1]["attempt"] == lost.attempt and verified[-1]["verdict"] == "done"
    assert [e["operator"]["user"] for e in after if e.get("what") == "resumed"] == ["bob"]


async def test_resume_picks_up_a_final_event_the_wizard_did_not_see(tmp_path: Path) -> None:
    w = world(tmp_path, action=PokeAction(gate=asyncio.Event()))
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    await wiz.manual("done")
    preview = await wiz.prepare()
    assert isinstance(preview, Preview)
    running = asyncio.create_task(wiz.confirm(preview, confirm()))
    await w.action.started.wait()
    assert w.action.gate is not None
    w.action.gate.set()
    # the kernel finishes and journals "ok"; the console dies before the wizard's own "done"
    await running
    everything = w.events()
    final = next(i for i, e in enumerate(everything) if e.get("kind") == "action" and e.get("outcome") == "ok")
    events = everything[:final + 1]  # the journal as the killed console left it
    resumed = Wizard.from_journal(FOUR, wiz.run_id, events, journal=w.journal, runner=w.runner, kernel=w.kernel,
                                  vocabulary=w.vocab, links={})
    await resumed.resume(events)
    restart = [v for v in resumed.record.visits if v.step == "restart"]
    assert restart[-1].state == "done" and "recorded after the console restarted" in restart[-1].detail


async def test_nothing_to_do_is_done_and_a_preview_refusal_is_refused(tmp_path: Path) -> None:
    w = world(tmp_path, action=PokeAction(preview_refusal=Refusal(RefusalReason.UNAVAILABLE, "database down")))
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    await wiz.manual("done")
    refused = await wiz.prepare()
    assert isinstance(refused, Refusal) and wiz.visit is not None and wiz.visit.state == "refused"
    w.action.preview_refusal = Refusal(RefusalReason.NOTHING_TO_DO, "nothing to poke")
    await wiz.prepare()
    assert ("restart", "done") in w.whats() and wiz.current_id != "restart"


async def test_following_read_only_refuses_every_transition(tmp_path: Path) -> None:
    w = world(tmp_path)
    wiz = w.wizard()
    await wiz.open()
    follower = Wizard.from_journal(FOUR, wiz.run_id, w.events(), journal=w.journal, runner=w.runner,
                                   kernel=w.kernel, vocabulary=w.vocab, links={}, follow=True)
    for attempt in (follower.next(), follower.skip("not mine to skip"), follower.back(), follower.prepare(),
                    follower.close("stop it")):
        assert isinstance(await attempt, Denied)
    await wiz.next()
    follower.refresh(w.events())
    assert follower.current_id == "logs"


async def test_a_journal_that_cannot_be_written_stops_the_wizard(tmp_path: Path) -> None:
    w = world(tmp_path)
    wiz = w.wizard()
    await wiz.open()
    await wiz.next()
    (tmp_path / "not-a-file").mkdir()
    wiz.journal = Journal(tmp_path / "not-a-file", environment="drill", operator=w.operator)
    denied = await wiz.manual("done")
    assert isinstance(denied, Denied) and "not recorded, so not done" in denied.message
    assert wiz.current_id == "logs" and wiz.visit is not None and wiz.visit.state == "current"
