"""Two operators, one runbook: the run holds the operator lock runbook:<id> (a real PostgreSQL
advisory lock); a second console is told who runs it and since when, and follows it read-only."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from opsconsole.actions.locks import OperatorLocks
from opsconsole.audit import Journal, journal_path
from opsconsole.demo.postgres import DemoPostgres
from opsconsole.runbooks.engine import Denied, Wizard
from opsconsole.runbooks.loader import builtin_runbooks
from opsconsole.ui.wizard.dialogs import HeldScreen, PickerScreen
from tests.drills.driver import wait_for, wizard_screen
from tests.fakes import NOW
from tests.runbooks.helpers import BOB, vocabulary
from tests.ui.wizard_harness import ALICE, wizard_app, wizard_services

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")


@pytest.fixture(scope="module")
def pg() -> Iterator[DemoPostgres]:
    server = DemoPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


API_DOWN = next(rb for rb in builtin_runbooks() if rb.id == "api-down")


async def test_a_second_console_is_told_who_runs_it_and_follows_read_only(pg: DemoPostgres) -> None:
    services = wizard_services(operator=BOB)
    services.locks = OperatorLocks(pg.admin_dsn, BOB)
    alice_journal = Journal(journal_path(services.settings), environment=services.settings.environment.name,
                            operator=ALICE, clock=lambda: NOW)
    alice = Wizard(API_DOWN, Wizard.new_record(API_DOWN), journal=alice_journal, runner=services.runner, kernel=None,
                   vocabulary=vocabulary(), links={}, locks=OperatorLocks(pg.admin_dsn, ALICE))
    assert (await alice.take_lock()).state == "held"
    await alice.open()
    assert alice.current_id == "status"

    # the engine alone: Bob cannot take it, and is told by whom it is held
    bob_engine = Wizard(API_DOWN, Wizard.new_record(API_DOWN), journal=services.journal, runner=services.runner,
                        kernel=None, vocabulary=vocabulary(), links={}, locks=OperatorLocks(pg.admin_dsn, BOB))
    held = await bob_engine.take_lock()
    assert held.state == "other" and held.holder is not None
    assert held.holder.holder == "alice from 10.1.2.3 on bastion-1"
    assert held.message.startswith("alice from 10.1.2.3 on bastion-1 is already acting on this target since ")
    assert "(operator lock runbook:api-down)" in held.message

    app = wizard_app(services=services)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, PickerScreen), what="the picker")
        picker = app.screen
        state = dict((rid, s) for rid, _t, s in picker.rows)["api-down"]
        assert state.startswith("open run: at step 1 of 4 (started 03:12 by alice from 10.1.2.3)")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HeldScreen), what="who holds it")
        assert app.screen.message.startswith("API Down / 500 Errors: alice from 10.1.2.3 on bastion-1 is already "
                                             "acting on this target since ")
        await pilot.press("f")
        await wait_for(pilot, lambda: wizard_screen(app) is not None, what="following")
        screen = wizard_screen(app)
        assert screen is not None and screen.wizard.follow
        assert "FOLLOWING read-only" in str(screen.query_one("#wiz-head").render())
        shown = {ab.binding.action for ab in screen.active_bindings.values() if ab.binding.show and ab.enabled}
        assert shown <= {"leave", "help", "timeline", "quit"}
        for key in ("n", "s", "d", "x", "enter", "b", "c"):
            await pilot.press(key)
        assert isinstance(await screen.wizard.next(), Denied)
        # Alice goes on; Bob's view follows from the shared journal
        await alice.next()
        await wait_for(pilot, lambda: screen.wizard.current_id == "logs", timeout_s=15, what="the follower")
        bob_events = [e for e in alice_journal.read().events if e.get("operator", {}).get("user") == "bob"]
        assert bob_events == []  # following writes nothing
    await alice.release()
    retry = await bob_engine.take_lock()
    assert retry.state == "held"  # once Alice's console lets go, Bob can take the run over
    await bob_engine.release()


async def test_the_start_offer_says_a_live_run_is_live_elsewhere_and_follows_it(pg: DemoPostgres) -> None:
    from opsconsole.ui.wizard.dialogs import ResumeScreen

    services = wizard_services(operator=BOB)
    services.locks = OperatorLocks(pg.admin_dsn, BOB)
    alice_journal = Journal(journal_path(services.settings), environment=services.settings.environment.name,
                            operator=ALICE, clock=lambda: NOW)
    alice = Wizard(API_DOWN, Wizard.new_record(API_DOWN), journal=alice_journal, runner=services.runner, kernel=None,
                   vocabulary=vocabulary(), links={}, locks=OperatorLocks(pg.admin_dsn, ALICE))
    assert (await alice.take_lock()).state == "held"
    await alice.open()
    try:
        app = wizard_app(services=services, offer_resume=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeScreen), what="the offer at start")
            offer = app.screen
            assert offer.head() == "A runbook run is live in another console: follow it read-only"
            [(run_id, text)] = offer.offers
            assert run_id == alice.run_id and "stopped mid-run" not in offer.head()
            assert text.startswith("Follow API Down / 500 Errors at step 1 of 4 (started 03:12 by alice from "
                                   "10.1.2.3): live in another console, alice from 10.1.2.3 on bastion-1 runs "
                                   "it since ")
            await pilot.press("enter")  # Enter follows a live run: it cannot be resumed here
            await wait_for(pilot, lambda: wizard_screen(app) is not None, what="following")
            screen = wizard_screen(app)
            assert screen is not None and screen.wizard.follow and screen.wizard.run_id == alice.run_id
    finally:
        await alice.release()
