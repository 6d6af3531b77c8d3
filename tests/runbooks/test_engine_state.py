"""Issue #12 fixes in the engine: a message lasts as long as the state it describes; closing a run
ends the visit of the step it was at (the journal, the timeline and the screen agree)."""

from __future__ import annotations

from pathlib import Path

from opsconsole.actions.model import Outcome, OutcomeStatus, Preview
from opsconsole.audit import timeline_markdown, wizard_runs
from opsconsole.domain.models import Status
from tests.runbooks.helpers import PokeAction, World, checks, confirm, runbook

ACKED = runbook("""
id = "restore"
title = "Restore"
[[steps]]
id = "warned"
title = "Restore the backup"
kind = "action"
action = "test.poke"
params = { target = "the database" }
warning = "DOWNTIME WARNING: the database is offline while it restores."
ack = "OFFLINE"
[[steps]]
id = "after"
title = "After"
kind = "manual"
""")


def world(tmp_path: Path, action: PokeAction | None = None) -> World:
    return World(tmp_path, ACKED, checks(), action or PokeAction())


async def test_a_wrong_ack_message_goes_once_the_ack_is_right(tmp_path: Path) -> None:
    wiz = world(tmp_path).wizard()
    assert await wiz.open() is None
    assert await wiz.acknowledge("offline") is not None
    assert wiz.message.startswith("that is not OFFLINE: type it exactly")
    assert await wiz.acknowledge("OFFLINE") is None
    assert wiz.message == ""  # the ack is typed: the message about the missing ack is over


async def test_a_failed_action_message_goes_when_the_run_is_closed(tmp_path: Path) -> None:
    action = PokeAction(outcomes=[Outcome(OutcomeStatus.FAILED, "poke failed: no answer", error="timeout")])
    wiz = world(tmp_path, action).wizard()
    await wiz.open()
    await wiz.acknowledge("OFFLINE")
    preview = await wiz.prepare()
    assert isinstance(preview, Preview)
    await wiz.confirm(preview, confirm(typed="the database"))
    assert wiz.visit is not None and wiz.visit.state == "failed"
    assert wiz.message.startswith("the action did not fully work")
    assert await wiz.close("giving up: done by hand", abandon=True) is None
    assert wiz.closed and wiz.message == ""


async def test_an_abandoned_run_ends_the_visit_of_its_step(tmp_path: Path) -> None:
    w = World(tmp_path, ACKED, checks(api_health=Status.FAIL), PokeAction())
    wiz = w.wizard()
    await wiz.open()
    assert wiz.visit is not None and wiz.visit.state == "current" and wiz.visit.ended_at is None
    assert await wiz.close("wrong runbook", abandon=True) is None
    # in this console
    [view] = [v for v in wiz.steps() if v.step.id == "warned"]
    assert view.state == "left" and view.visit is not None and view.visit.ended_at is not None
    assert view.visit.duration_s is not None
    # and as the journal tells it (another console, the timeline)
    [run] = wizard_runs(w.events())
    [visit] = run.visits
    assert visit.state == "left" and visit.ended_at == run.closed_at
    assert visit.detail == "the run was closed here (abandoned)"
    md = timeline_markdown(w.events(), environment="drill", since=None, now=run.closed_at)
    row = next(line for line in md.splitlines() if line.startswith("| 1. Restore the backup"))
    assert "| left unfinished |" in row and "| open |" not in row
