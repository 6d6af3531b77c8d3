"""Issue #12, found walking every wizard at 80x24: the ack field's focus, stale and duplicated text,
keys shown but refused, app keys leaking through the wizard, `?` order, the status-area hint."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.widgets import Input, Static

from opsconsole.actions.model import RiskTier
from opsconsole.domain.models import Status
from opsconsole.ui.help import HelpScreen
from opsconsole.ui.wizard.screen import WizardScreen
from tests.drills.driver import settle, wait_for, wizard_screen
from tests.ui.wizard_harness import StandIn, wizard_app, wizard_services


def _set(services: Any, check_id: str, status: Status) -> None:
    for adapter in services._adapter_factory(services.settings):
        for check in adapter.fake_checks:
            if check.id == check_id:
                check.status = status


def _text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def _footer(screen: WizardScreen) -> set[str]:
    return {ab.binding.action for ab in screen.active_bindings.values() if ab.binding.show and ab.enabled}


async def _at(pilot: Any, step_id: str) -> WizardScreen:
    app = pilot.app
    await wait_for(pilot, lambda: wizard_screen(app) is not None and wizard_screen(app).wizard.current_id == step_id,
                   what=step_id)
    screen = wizard_screen(app)
    assert screen is not None
    await settle(pilot, screen)
    return screen


def _bad_migration() -> Any:
    """Rollback on the incident fakes with the deployment fine: the checks walk to the revert by themselves."""
    services = wizard_services()
    _set(services, "vercel.deployment", Status.OK)
    return services


async def test_the_ack_field_has_the_focus_when_the_checks_bring_the_run_to_the_step() -> None:
    app = wizard_app("rollback", services=_bad_migration())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at(pilot, "revert")  # deployment passed, migration failed: on_fail = revert
        ack = screen.query_one("#wiz-ack", Input)
        await wait_for(pilot, lambda: ack.has_focus, timeout_s=20, what="the ack field's focus")
        assert "ack" not in _footer(screen)  # typing goes into the field: `a` is not offered
        assert _footer(screen) == {"leave_field"}
        await pilot.press(*"data loss", "enter")
        await wait_for(pilot, lambda: "that is not DATA LOSS" in _text(screen, "#wiz-message"), timeout_s=20)
        await pilot.press(*"DATA LOSS", "enter")
        await wait_for(pilot, lambda: not screen.wizard.needs_ack(), timeout_s=20, what="the ack")
        await settle(pilot, screen)
        # the message about the wrong ack went with the missing ack
        assert _text(screen, "#wiz-message") == "" and not screen.query_one("#wiz-message").has_class("-shown")


async def test_after_esc_out_of_the_field_a_and_a_dialog_give_it_the_focus_again() -> None:
    app = wizard_app("rollback", services=_bad_migration())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at(pilot, "revert")
        ack = screen.query_one("#wiz-ack", Input)
        await wait_for(pilot, lambda: ack.has_focus, timeout_s=20)
        await pilot.press("escape")
        await pilot.pause(0.5)
        assert not ack.has_focus and app.screen is screen  # Esc left the field, not the wizard
        assert {"ack", "back", "help", "leave"} <= _footer(screen)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen and ack.has_focus, timeout_s=20, what="focus after ?")


async def test_an_abandoned_run_stops_the_step_timer_on_screen() -> None:
    app = wizard_app("api-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at(pilot, "status")
        await pilot.press("n")
        screen = await _at(pilot, "logs")  # a manual step: open, its timer running
        await pilot.press("c")
        from tests.ui.test_wizard import answer

        await answer(pilot, "wrong runbook")
        await wait_for(pilot, lambda: screen.wizard.closed, timeout_s=10)
        await settle(pilot, screen)
        steps = _text(screen, "#wiz-steps")
        assert "▶" not in steps and "now" not in steps and steps.splitlines()[3].startswith("   left")
        first = steps
        await asyncio.sleep(1.3)  # the 1 s tick: a running timer would change the text
        assert _text(screen, "#wiz-steps") == first


async def test_keys_shown_are_keys_that_work() -> None:
    gate = asyncio.Event()

    class Slow(StandIn):
        async def execute(self, preview: Any) -> Any:
            await gate.wait()
            return await super().execute(preview)

    slow = Slow("db.terminate", "Terminate session", RiskTier.DISRUPTIVE)
    app = wizard_app("supabase-queries", services=wizard_services(actions=(slow,)))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at(pilot, "status")
        # step 1: nothing to go back to
        assert "back" not in _footer(screen) and "b back" not in _text(screen, "#wiz-keys")
        await pilot.press("n")
        screen = await _at(pilot, "kill")
        assert {"start('x')", "skip", "back", "close_run"} <= _footer(screen), _footer(screen)
        assert "b back" in _text(screen, "#wiz-keys")
        from tests.drills.driver import confirm_dialog

        await pilot.press("x")
        task = asyncio.ensure_future(confirm_dialog(pilot, screen))
        await wait_for(pilot, lambda: screen.wizard.busy == "action", timeout_s=10, what="the action running")
        await pilot.pause(0.2)
        # while it runs, only Esc (ask it to stop), t and ? do something
        assert _footer(screen) <= {"leave", "help", "quit"}, _footer(screen)
        assert "action running" in _text(screen, "#wiz-keys")
        for refused in (" x ", "s skip", "b back", "c close"):
            assert refused not in f" {_text(screen, '#wiz-keys')} "
        gate.set()
        await task
        await wait_for(pilot, lambda: screen.wizard.current_id == "recheck", timeout_s=10)
        await pilot.press("escape")  # stop the re-check's wait
        await settle(pilot, screen)


async def test_m_does_not_switch_the_tab_behind_the_wizard_and_help_lists_the_wizard_first() -> None:
    app = wizard_app("api-down")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at(pilot, "status")
        from textual.widgets import TabbedContent

        before = app.query_one(TabbedContent).active
        assert "show_migrations" not in {ab.binding.action for ab in screen.active_bindings.values()}
        await pilot.press("M")
        await pilot.pause(0.3)
        assert app.query_one(TabbedContent).active == before
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        sections = list(dict.fromkeys(help_screen.sections[k] for k, _d in help_screen.entries))
        assert sections[0] == "wizard: API Down / 500 Errors"
        first = [d for _k, d in help_screen.entries[:4]]
        assert "Re-check" in first and "Migrations (Deploy tab)" not in [d for _k, d in help_screen.entries]
        textual = [k for k, _d in help_screen.entries if help_screen.sections[k] == "Scrolling and fields"]
        if textual:  # Textual's own keys come last
            assert help_screen.entries[-1][0] in textual


async def test_params_are_shown_as_an_operator_writes_them() -> None:
    restore = StandIn("backups.restore", "Restore a backup", RiskTier.DESTRUCTIVE)
    services = wizard_services(actions=(restore,))
    app = wizard_app("backup-restore", services=services)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await _at(pilot, "severity")
        await pilot.press("d")
        screen = await _at(pilot, "restore")
        results = _text(screen, "#wiz-results")
        assert "  backup: from the check backups.latest (newest_completed_id)" in results
        assert "{" not in results.split("Action:", 1)[1].splitlines()[0]


async def test_fixed_params_are_name_equals_value() -> None:
    requeue = StandIn("dlq.requeue", "Requeue", RiskTier.DISRUPTIVE)
    app = wizard_app("twilio-webhooks", services=wizard_services(actions=(requeue,)))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: wizard_screen(app) is not None and wizard_screen(app).wizard.visit is not None)
        screen = wizard_screen(app)
        assert screen is not None
        for _ in range(3):
            await settle(pilot, screen)
            if screen.wizard.current_id == "requeue":
                break
            await pilot.press("n")
        screen = await _at(pilot, "requeue")
        results = _text(screen, "#wiz-results")
        assert "  filter = code:11200,11205,11217,20429,30001,30003,30008,30009" in results
        assert "{'filter'" not in results


async def test_the_status_area_hint_suggests_a_team_runbook_without_the_picker(tmp_path: Any) -> None:
    import os
    from pathlib import Path

    team = Path(os.environ["XDG_CONFIG_HOME"]) / "opsconsole" / "runbooks"
    team.mkdir(parents=True)
    (team / "api.toml").write_text('''
id = "api-down"
title = "Team API Outage"
triggers = ["api.health"]
[[steps]]
id = "page"
title = "Page the API owner"
kind = "manual"
''')
    app = wizard_app()  # the team's file overrides the built-in api-down
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "Team API Outage" in str(app.query_one("#runbook-hint", Static).render()),
                       timeout_s=20, what="the team runbook in the hint")
        assert str(app.query_one("#runbook-hint", Static).render()).startswith("api.health FAIL: w opens ")
