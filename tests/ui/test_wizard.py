"""The wizard screen in the console (Pilot): the picker, the status-area suggestion, each step kind,
acks, skips, the resume offer after a kill, outcome unknown, the in-console timeline."""

from __future__ import annotations

import asyncio
from typing import Any

from textual import events
from textual.widgets import Input, Static

from opsconsole.actions.model import OutcomeStatus, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.audit import Journal, Operator, journal_path, unfinished_attempts
from opsconsole.runbooks.catalog import BUILTIN_RUNBOOKS
from opsconsole.runbooks.engine import Mode, Wizard
from opsconsole.runbooks.loader import builtin_runbooks
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.timeline import TimelineScreen
from opsconsole.ui.wizard.dialogs import PickerScreen, PromptScreen, ResumeScreen, VerifyScreen
from opsconsole.ui.wizard.screen import WizardScreen
from tests.drills.driver import confirm_dialog, settle, wait_for, wizard_screen
from tests.fakes import NOW
from tests.ui.wizard_harness import ALICE, StandIn, terminate_stand_in, wizard_app, wizard_services


async def _to_kill(pilot: Any, screen: WizardScreen) -> None:
    """supabase-queries on the incident fakes: status WARNs (n goes on), resources fails -> kill."""
    assert screen.wizard.current_id == "status"
    await pilot.press("n")
    await wait_for(pilot, lambda: screen.wizard.current_id == "kill", what="the kill step")
    await settle(pilot, screen)


def _text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def _wizard(pilot: Any) -> WizardScreen:
    await wait_for(pilot, lambda: wizard_screen(pilot.app) is not None and wizard_screen(pilot.app).wizard.visit
                   is not None, what="the wizard")
    screen = wizard_screen(pilot.app)
    assert screen is not None
    await settle(pilot, screen)
    return screen


async def test_w_opens_the_picker_and_the_status_area_suggests_the_runbook() -> None:
    app = wizard_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        hint = str(app.query_one("#runbook-hint", Static).render())
        assert hint.startswith("api.health FAIL: w opens API Down / 500 Errors (+")
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen), what="the picker")
        picker = app.screen
        assert [rid for rid, _t, _s in picker.rows] == [rb.id for rb in BUILTIN_RUNBOOKS]
        assert dict((r, s) for r, _t, s in picker.rows)["api-down"] == "api.health FAIL"
        await pilot.press("enter")
        screen = await _wizard(pilot)
        assert screen.wizard.runbook.id == "api-down"
        head = _text(screen, "#wiz-head")
        assert head.startswith("API Down / 500 Errors · step 1 of 4 · started 03:12 by alice")
        results = _text(screen, "#wiz-results")
        assert "✖ FAIL api.health (42 ms)" in results and "HTTP 500 in 212 ms — database: down" in results
        steps = _text(screen, "#wiz-steps")
        assert steps.splitlines()[0] == "✖ 1. Check status: /health and the Vercel…" or "✖ 1." in steps
        # the tab keys do nothing under the wizard; Esc goes back to the tabs, the run stays open
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, WizardScreen)
        assert app.services.wizards and not next(iter(app.services.wizards.values())).closed


async def test_runbook_start_at_80x24_shows_everything_needed() -> None:
    app = wizard_app("supabase-queries", services=wizard_services(actions=(terminate_stand_in(),)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _wizard(pilot)
        await _to_kill(pilot, screen)
        wiz = screen.wizard
        assert wiz.current_id == "kill" and wiz.mode() is Mode.ACTION  # resources failed: on_fail = kill
        for widget in ("#wiz-head", "#wiz-steps", "#wiz-title", "#wiz-warning", "#wiz-results", "#wiz-keys"):
            node = screen.query_one(widget)
            assert node.region.width > 0 and node.region.bottom <= 23, widget
        keys = [k for k, ab in screen.active_bindings.items() if ab.binding.show and ab.enabled]
        assert "x" in keys and "s" in keys and "d" not in keys  # only this step's keys


async def test_an_action_step_previews_confirms_and_journals_through_the_kernel() -> None:
    terminate = terminate_stand_in()
    services = wizard_services(actions=(terminate,))
    app = wizard_app("supabase-queries", services=services)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        await _to_kill(pilot, screen)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the dialog")
        dialog = app.screen
        assert dialog.preview.target == "PID 4242" and "Terminating closes" in dialog.requirement.warning
        assert await confirm_dialog(pilot, screen)
        await wait_for(pilot, lambda: screen.wizard.current_id == "recheck", what="the re-check")
        assert terminate.executed == [{"pids": [4242]}]  # from db.long_running's details
        await pilot.press("escape")  # the fake CPU never comes down: stop waiting
        await settle(pilot, screen)
    events_ = Journal(journal_path(services.settings), environment="x", operator=ALICE).read().events
    kill = [e for e in events_ if e.get("kind") == "wizard" and e.get("step") == "kill"]
    # entered, confirmed, done; then the re-check did not pass (Esc stopped its wait): on_fail = kill
    assert [e["what"] for e in kill] == ["entered", "running", "done", "entered"]
    attempt = kill[2]["attempt"]
    assert [e["outcome"] for e in events_ if e.get("attempt") == attempt and e["kind"] == "action"] == ["started", "ok"]


async def test_a_refused_action_stays_refused_and_says_why() -> None:
    services = wizard_services(actions=(terminate_stand_in(),), read_only=True)
    app = wizard_app("supabase-queries", services=services)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        await _to_kill(pilot, screen)
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.wizard.visit is not None and screen.wizard.visit.state == "refused")
        assert "read-only mode" in _text(screen, "#wiz-results")
        assert screen.wizard.current_id == "kill"


async def test_skipping_needs_a_reason_in_the_console_too() -> None:
    app = wizard_app("api-down")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="the reason prompt")
        prompt = app.screen
        await wait_for(pilot, lambda: not prompt.query_one("#prompt", Input).disabled)
        await pilot.press("enter")  # no reason
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen) and "at least 3" in _text(prompt, "#prompt-problem")
        await pilot.press("o", "k", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("escape")
        await settle(pilot, screen)
        assert screen.wizard.current_id == "status"
        await pilot.press("s")
        await answer(pilot, "the Vercel dashboard is down too")
        await wait_for(pilot, lambda: screen.wizard.current_id == "logs")
        skipped = [v for v in screen.wizard.record.visits if v.state == "skipped"]
        assert skipped[0].detail == "the Vercel dashboard is down too"


async def answer(pilot: Any, text: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen), what="a prompt")
    prompt = app.screen
    await wait_for(pilot, lambda: not prompt.query_one("#prompt", Input).disabled)
    await pilot.press(*text, "enter")


async def test_keys_typed_into_a_prompt_as_it_opens_are_not_a_reason() -> None:
    """A stray `s` then "ions<Enter>" (meant for a dialog that just closed) must not skip a step."""
    app = wizard_app("api-down")
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        # all at once, as a terminal delivers a burst of typing (Pilot.press waits between keys)
        for key, char in (("s", "s"), ("i", "i"), ("o", "o"), ("n", "n"), ("s", "s"), ("enter", "\r")):
            app.post_message(events.Key(key, char))
        await pilot.pause(0.6)
        assert isinstance(app.screen, PromptScreen) and app.screen.query_one("#prompt", Input).value == ""
        await pilot.press("escape")
        await settle(pilot, screen)
        assert not any(v.state == "skipped" for v in screen.wizard.record.visits)


async def test_the_downtime_warning_is_shown_in_full_and_nothing_passes_before_the_ack() -> None:
    restore = StandIn("backups.restore", "Restore a backup", RiskTier.DESTRUCTIVE, target="daily backup 901",
                      confirm_text="opsdemoprojectrefabc",
                      params=(ParamSpec("backup", ParamType.INT, "the daily backup (from backups.latest)"),))
    services = wizard_services(actions=(restore,))
    app = wizard_app("backup-restore", services=services)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _wizard(pilot)
        await pilot.press("d")  # severity: unfixable via SQL
        await wait_for(pilot, lambda: screen.wizard.current_id == "restore")
        await settle(pilot, screen)
        rb = next(r for r in builtin_runbooks() if r.id == "backup-restore")
        warning = _text(screen, "#wiz-warning")
        assert warning == f"⚠ {rb.step('restore').warning}"
        ack = screen.query_one("#wiz-ack", Input)
        await wait_for(pilot, lambda: ack.has_focus, what="the ack field's focus")
        assert "type OFFLINE" in ack.placeholder
        await pilot.press("escape")  # out of the field: the step's keys still do nothing
        for key in ("x", "enter", "d", "s", "n", "y", "Y", "space", "tab"):
            await pilot.press(key)
        await pilot.pause(0.3)
        if isinstance(app.screen, TimelineScreen | PromptScreen):
            await pilot.press("escape")
        ack.focus()
        app.screen.focused.post_message(events.Paste("OFFLINE"))
        await pilot.press("enter")
        await settle(pilot, screen)
        assert screen.wizard.needs_ack() and restore.executed == []
        assert screen.wizard.current_id == "restore"
        ack.focus()
        await pilot.press(*"OFFLINE", "enter")
        await wait_for(pilot, lambda: not screen.wizard.needs_ack(), what="the ack")
        await pilot.press("x")
        assert await confirm_dialog(pilot, screen)
        await wait_for(pilot, lambda: restore.executed != [], what="the restore")
        assert restore.executed == [{"backup": 880412}]  # the newest completed backup, from backups.latest


def _journal(services: Any, operator: Operator = ALICE) -> Journal:
    return Journal(journal_path(services.settings), environment=services.settings.environment.name,
                   operator=operator, clock=lambda: NOW)


async def _killed_at_step_3(services: Any, *, in_flight: bool) -> str:
    """What a console killed at step 3 of API Down leaves in the journal (written by the real engine)."""
    from opsconsole.actions.kernel import ActionKernel
    from opsconsole.runbooks.catalog import LINK_KEYS
    from opsconsole.runbooks.vocabulary import build_vocabulary
    from tests.runbooks.helpers import PokeAction, confirm

    rb = next(r for r in builtin_runbooks() if r.id == "api-down")
    journal = _journal(services)
    gate = asyncio.Event()
    action = PokeAction(id="vercel.redeploy", gate=gate)
    kernel = ActionKernel(services.settings, journal, locks=None)
    kernel.register(action)
    vocab = build_vocabulary(["api.health", "vercel.deployment", "vercel.status_page", "supabase.pooler"], LINK_KEYS,
                             known_actions=[])
    wiz = Wizard(rb, Wizard.new_record(rb), journal=journal, runner=services.runner, kernel=kernel,
                 vocabulary=vocab, links={})
    await wiz.open()
    await wiz.next()
    await wiz.manual("done", "runtime logs: pool exhausted")
    if in_flight:
        preview = await wiz.prepare()
        task = asyncio.create_task(wiz.confirm(preview, confirm()))  # type: ignore[arg-type]
        await action.started.wait()
        task.cancel()  # the kernel records "interrupted"; a SIGKILL would not: drop that record
        try:
            await task
        except asyncio.CancelledError:
            pass
        lines = journal.path.read_text().splitlines()
        journal.path.write_text("\n".join(lines[:-1]) + "\n")
    return wiz.run_id


async def test_the_next_start_offers_to_resume_at_the_same_step_with_its_history() -> None:
    services = wizard_services()
    run_id = await _killed_at_step_3(services, in_flight=False)
    app = wizard_app(services=services, offer_resume=True)
    app.offer_resume = True
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ResumeScreen), what="the resume offer")
        assert app.screen.offers == [(run_id, "Resume API Down / 500 Errors at step 3 of 4 (started 03:12 by alice "
                                               "from 10.1.2.3)")]
        await pilot.press("enter")
        screen = await _wizard(pilot)
        assert screen.wizard.run_id == run_id and screen.wizard.current_id == "restart"
        steps = _text(screen, "#wiz-steps")
        assert "✖ 1." in steps and "✔ 2." in steps and "▶ 3." in steps
        assert screen.wizard.mode() is Mode.FALLBACK  # these services run no guarded action
        assert "By hand: no guarded actions in this console: do it by hand" in _text(screen, "#wiz-results")


async def test_an_action_in_flight_at_the_kill_is_outcome_unknown_until_verified() -> None:
    services = wizard_services(actions=(StandIn("vercel.redeploy", "Redeploy", RiskTier.DISRUPTIVE),))
    run_id = await _killed_at_step_3(services, in_flight=True)
    [lost] = unfinished_attempts(_journal(services).read().events)
    app = wizard_app(services=services)
    app.resume_run = run_id
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        wiz = screen.wizard
        # the resume settles the attempt left in flight (journal read, pid checked) just after the screen opens
        await wait_for(pilot, lambda: wiz.visit is not None and wiz.visit.state == "unknown", what="outcome unknown")
        assert wiz.visit is not None and wiz.visit.attempt == lost.attempt
        await wait_for(pilot, lambda: _text(screen, "#wiz-results").startswith(
            "outcome unknown: vercel.redeploy was running when the console stopped"), what="outcome unknown")
        shown = {ab.binding.action for ab in screen.active_bindings.values() if ab.binding.show and ab.enabled}
        assert "verify" in shown and "skip" not in shown and "next" not in shown
        await pilot.press("v")
        await wait_for(pilot, lambda: isinstance(app.screen, VerifyScreen))
        await pilot.press("d", *"vercel shows the redeploy READY", "enter")
        await wait_for(pilot, lambda: wiz.current_id != "restart", what="going on")
    after = _journal(services).read().events
    assert lost.attempt not in {u.attempt for u in unfinished_attempts(after)}
    verified = [e for e in after if e.get("kind") == "verified"]
    assert verified[0]["verdict"] == "done" and verified[0]["reason"] == "vercel shows the redeploy READY"


async def test_the_in_console_timeline_has_the_run_step_by_step() -> None:
    services = wizard_services()
    await _killed_at_step_3(services, in_flight=False)
    app = wizard_app(services=services)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TimelineScreen) and app.screen.run_count == 1)
        from textual.widgets import DataTable

        runs = app.screen.query_one("#timeline-runs", DataTable)
        rows = [[str(c) for c in runs.get_row_at(i)] for i in range(runs.row_count)]
        assert rows[0][0].startswith("API Down / 500 Errors (") and rows[0][1] == "open at step 3 of 4"
        assert rows[1][:3] == ["  1. Check status: /health and the Vercel dashboard", "failed",
                               "alice from 10.1.2.3 on bastion-1"]
        assert rows[2][1] == "done" and rows[2][5] == "runtime logs: pool exhausted"


async def test_a_failed_action_offers_retry_and_next() -> None:
    from opsconsole.actions.model import Outcome

    terminate = terminate_stand_in()
    terminate.outcome = Outcome(OutcomeStatus.FAILED, "could not terminate: connection lost", error="lost")
    app = wizard_app("supabase-queries", services=wizard_services(actions=(terminate,)))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _wizard(pilot)
        await _to_kill(pilot, screen)
        await pilot.press("x")
        assert await confirm_dialog(pilot, screen)
        # kill has on_fail = recheck: the failure is recorded, the run goes on to the re-check
        await wait_for(pilot, lambda: screen.wizard.current_id == "recheck")
        kill = [v for v in screen.wizard.record.visits if v.step == "kill"][-1]
        assert kill.state == "failed" and "connection lost" in kill.detail
        await pilot.press("escape")
        await settle(pilot, screen)
