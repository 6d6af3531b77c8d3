"""Drills, end to end: each drill scenario of the demo, walked in the console with the matching
wizard, from the first failing check to green; then the journal must hold the whole run.

The demo environment is real (PostgreSQL, the simulators) and reacts to the actions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsconsole.audit import Journal, Operator, timeline_markdown, wizard_runs
from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.domain.models import Status, utcnow
from opsconsole.settings import AuditSettings, Settings
from opsconsole.ui.app import OpsApp
from tests.drills.driver import walk, wizard_screen

pytestmark = pytest.mark.slow


def _settings(env: DemoEnvironment, tmp_path: Path, **checks: Any) -> Settings:
    assert env.config_path is not None
    settings = load_settings(env.config_path)
    return dataclasses.replace(settings, audit=AuditSettings(path=str(tmp_path / "drill.jsonl")),
                               checks=dataclasses.replace(settings.checks, **checks))


def _events(settings: Settings) -> list[dict[str, Any]]:
    journal = Journal(Path(settings.audit.path), environment=settings.environment.name, operator=Operator("-"))
    return journal.read().events


def assert_whole_run(events: list[dict[str, Any]], runbook_id: str, *, actions: tuple[str, ...]) -> None:
    """One run of `runbook_id`, opened, every step visit ended, closed resolved; each action step's
    wizard events name the kernel attempt, which has its started and final events."""
    runs = [r for r in wizard_runs(events) if r.runbook == runbook_id]
    assert len(runs) == 1, runs
    run = runs[0]
    whats = [e["what"] for e in run.events]
    assert whats[0] == "opened" and whats[-1] == "closed" and run.outcome == "resolved", whats
    assert all(v.ended for v in run.visits), [(v.step, v.state) for v in run.visits]
    by_attempt: dict[str, list[str]] = {}
    for e in events:
        if e.get("kind") == "action":
            by_attempt.setdefault(e["attempt"], []).append(e["outcome"])
    for action in actions:
        done = [e for e in run.events if e.get("what") in ("done", "failed") and e.get("attempt")
                and any(a.get("action") == action and a.get("attempt") == e["attempt"]
                        for a in events if a.get("kind") == "action")]
        assert done, f"no wizard step ran {action}"
        for e in done:
            assert by_attempt[e["attempt"]][0] == "started" and len(by_attempt[e["attempt"]]) == 2
    md = timeline_markdown(events, environment="drill", since=None, now=utcnow())
    assert f"### {run.title.replace('&', chr(92) + '&')} (run {run.run})" in md  # Markdown-escaped


async def _drill(env: DemoEnvironment, tmp_path: Path, runbook_id: str, *, patience_s: float = 120.0,
                 reasons: dict[str, str] | None = None, by_hand: dict[str, Any] | None = None,
                 **checks: Any) -> tuple[list[str], Settings, Any]:
    settings = _settings(env, tmp_path, **checks)
    app = OpsApp(build_services(settings), live=False, start_runbook=runbook_id, offer_resume=False)
    async with app.run_test(size=(100, 30)) as pilot:
        log = await walk(pilot, patience_s=patience_s, reasons=reasons, by_hand=by_hand)
        screen = wizard_screen(app)
        assert screen is not None
        wizard = screen.wizard
        board = dict(app.services.board.results)
    return log, settings, (wizard, board)


@pytest.fixture
def supabase_queries() -> Iterator[DemoEnvironment]:
    with DemoEnvironment("supabase-queries") as env:
        yield env


async def test_drill_supabase_queries(supabase_queries: DemoEnvironment, tmp_path: Path) -> None:
    """CPU over 90 %: the wizard terminates the long-running sessions db.long_running lists and the
    metrics come down (the simulator follows the database's load)."""
    log, settings, (wizard, board) = await _drill(supabase_queries, tmp_path, "supabase-queries",
                                                  long_running_s=1.0)
    assert wizard.record.outcome == "resolved", log
    visits = [(v.step, v.state) for v in wizard.record.visits]
    assert visits[:3] == [("status", "passed"), ("resources", "failed"), ("kill", "failed")], visits
    assert ("recheck", "passed") in visits and ("credentials", "passed") in visits
    # the first failing check was the CPU; it is ok now
    resources = next(v for v in wizard.record.visits if v.step == "resources")
    assert any(r["id"] == "supabase.resources" and r["status"] == "fail" for r in resources.results)
    assert board["supabase.resources"].status is Status.OK
    kill = next(v for v in wizard.record.visits if v.step == "kill")
    assert "permission denied" in kill.detail  # the metabase session belongs to a role ops may not signal
    assert_whole_run(_events(settings), "supabase-queries", actions=("db.terminate",))


@pytest.fixture
def twilio_webhooks() -> Iterator[DemoEnvironment]:
    with DemoEnvironment("twilio-webhooks", sessions=False) as env:
        yield env


async def test_drill_twilio_webhooks(twilio_webhooks: DemoEnvironment, tmp_path: Path) -> None:
    """A dead-letter backlog of transient failures: re-queued, the rest discarded with a reason,
    and dlq.depth turns ok. Twilio's alerts of the last hour stay (its log is immutable): the
    wizard takes that failing check as the runbook's "transient: re-queue" branch."""
    log, settings, (wizard, board) = await _drill(
        twilio_webhooks, tmp_path, "twilio-webhooks",
        reasons={"reason": "drill: not transient (opt-outs, blocked numbers, no valid payload)"})
    assert wizard.record.outcome == "resolved", log
    visits = [(v.step, v.state) for v in wizard.record.visits]
    assert visits[0] == ("dlq", "failed") and visits[1] == ("twilio-logs", "failed"), visits
    assert ("requeue", "done") in visits and ("discard", "done") in visits and ("verify", "passed") in visits
    assert board["dlq.depth"].status is Status.OK
    twilio = next(v for v in wizard.record.visits if v.step == "twilio-logs")
    assert "30008" in twilio.detail
    events = _events(settings)
    assert_whole_run(events, "twilio-webhooks", actions=("dlq.requeue", "dlq.discard"))
    requeued = [e for e in events if e.get("kind") == "action" and e.get("action") == "dlq.requeue"
                and e.get("outcome") == "ok"]
    assert requeued and requeued[0]["result"]["items"][0]["changed"] > 500


# -- the drills of the Vercel, n8n, migration and restore actions ----------------------------------------

@pytest.mark.parametrize("scenario,runbook_id,actions", [
    ("api-down", "api-down", ("vercel.redeploy",)),
    ("n8n-sync", "n8n-sync", ("n8n.retry",)),
    ("bad-deploy", "rollback", ("vercel.promote",)),
    ("bad-migration", "rollback", ("migrations.revert",)),
    ("data-corruption", "backup-restore", ("backups.restore",)),
])
async def test_drill_walked_to_green(scenario: str, runbook_id: str, actions: tuple[str, ...],
                                     tmp_path: Path) -> None:
    """Each drill from its first failing check to green, the action run by the wizard step. n8n-sync:
    the retries fail on the rotated Supabase key until the operator pastes the new one into n8n (done
    here through the simulator's control path, as the operator would in n8n's UI), then succeed."""
    with DemoEnvironment(scenario, sessions=False, messages=200) as env:
        n8n_base = env.sims["n8n"].base_url

        def fix_credential() -> None:
            httpx.post(f"{n8n_base}/__sim/n8n/credentials/sbProdSvcRole7Kq/fix", json={}).raise_for_status()

        # a restore keeps the project RESTORING for env.restore_s, and retried n8n executions take a
        # moment to finish: the verify step's re-checks wait for them (on a loaded machine too)
        slow = scenario in ("data-corruption", "n8n-sync")
        log, settings, (wizard, _board) = await _drill(env, tmp_path, runbook_id, patience_s=60.0 if slow else 5.0,
                                                       by_hand={"fix-credentials": fix_credential})
        left = env.world.active  # what the demo world still holds broken: the cause, not just a check
    events = _events(settings)
    ran = {e.get("action") for e in events if e.get("kind") == "action" and e.get("outcome") == "ok"}
    assert set(actions) <= ran, (log, sorted(a for a in ran if a))
    assert not left, (log, sorted(left))
    assert wizard.record.outcome == "resolved", log
    assert_whole_run(events, runbook_id, actions=actions)
