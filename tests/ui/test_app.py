"""Pilot tests of the shell: tabs, keys, help, pause, hostile text, hung checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from textual.widgets import TabbedContent

from opsconsole.domain.models import Status
from opsconsole.services import CHECK_CATALOG
from opsconsole.ui.app import EnvHeader, OpsApp
from opsconsole.ui.help import HelpScreen
from opsconsole.ui.panes.base import Pane
from opsconsole.ui.panes.tabs import TABS
from opsconsole.ui.widgets.status import CheckCard, StatusBadge
from tests.fakes import FakeCheck, fake_services


def _text(widget: object) -> str:
    return str(widget.render())  # type: ignore[attr-defined]


async def _until(pilot: object, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait (in small steps, so a slow machine only takes longer) until `condition` holds."""
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def test_number_keys_switch_through_every_tab() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        tabs = app.query_one(TabbedContent)
        for i, (tab, _label, cls) in enumerate(TABS, start=1):
            await pilot.press(str(i))
            await pilot.pause()
            assert tabs.active == f"tab-{tab}"
            pane = app.query_one(f"#pane-{tab}", cls)
            # every tab shows a card per check, each with a real result (no empty placeholder)
            cards = list(pane.query(CheckCard))
            assert cards and all(c.result is not None for c in cards)


async def test_badges_show_worst_status_per_system() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)):
        api = app.query_one("#badge-api", StatusBadge)
        assert api.has_class("-fail") and "api" in _text(api)
        backups = app.query_one("#badge-backups", StatusBadge)
        assert backups.has_class("-warn")


async def test_help_lists_every_key_of_the_screen() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.entries)
        for key in ("q", "r", "p", "1", "6", "question_mark", "ctrl+p"):
            assert key in keys, key
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_production_name_is_danger_styled_and_read_only_shown() -> None:
    app = OpsApp(fake_services(name="prod-eu", read_only=True), live=False)
    async with app.run_test(size=(100, 30)):
        header = app.query_one(EnvHeader)
        assert header.has_class("-danger")
        assert "READ-ONLY" in _text(header)
    app = OpsApp(fake_services(name="staging"), live=False)
    async with app.run_test(size=(100, 30)):
        assert not app.query_one(EnvHeader).has_class("-danger")


async def test_hostile_text_is_rendered_literally() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        card = app.query_one("#card-supabase-status_page", CheckCard)
        summary = _text(card.query_one(".card-summary"))
        assert "[bold red]x[/]" in summary
        assert "\x1b" not in summary and "␛[31m" in summary


async def test_pause_stops_polling_and_refresh_runs_checks() -> None:
    services = fake_services(prefill=False)
    app = OpsApp(services, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: len(services.board.results) == len(CHECK_CATALOG))
        assert len(services.board.results) == len(CHECK_CATALOG)
        await pilot.press("p")
        await pilot.pause()
        assert app.paused and "PAUSED" in _text(app.query_one(EnvHeader))
        fake = services.adapters[0].checks()[0]
        assert isinstance(fake, FakeCheck)
        before = fake.calls
        app._poll()  # the timer firing while paused does nothing
        await app.workers.wait_for_complete()
        assert fake.calls == before
        await pilot.press("r")
        await _until(pilot, lambda: fake.calls == before + 1)
        assert fake.calls == before + 1


async def test_keys_stay_instant_while_every_check_hangs() -> None:
    # The hang must outlast the test: with the default 2 s check timeout the runner gives up on
    # the hung checks after 3 s, and six Pilot key presses (each waits for the screen to go idle)
    # took 2.1-3.4 s on a loaded 2-core machine, so the checks were no longer in flight (0 == len(CHECK_CATALOG)).
    services = fake_services(prefill=False, hang=True, timeout_s=3600)
    app = OpsApp(services, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):  # wait until every check is running (and hanging)
            await pilot.pause(0.05)
            if len(app.checks_in_flight) == len(CHECK_CATALOG):
                break
        assert len(app.checks_in_flight) == len(CHECK_CATALOG)
        for key, tab in zip("234561", ["database", "n8n", "dlq", "deploy", "backups", "api"], strict=True):
            await pilot.press(key)
            assert app.query_one(TabbedContent).active == f"tab-{tab}"
        assert len(app.checks_in_flight) == len(CHECK_CATALOG)  # still hanging, yet every key was handled
        # a second refresh does not pile more requests onto the hung services
        calls = sum(c.calls for c in services.adapters[0].checks())  # type: ignore[attr-defined]
        await pilot.press("r")
        await pilot.pause()
        assert sum(c.calls for c in services.adapters[0].checks()) == calls  # type: ignore[attr-defined]


async def test_a_hung_check_fails_at_its_deadline_and_is_started_again() -> None:
    services = fake_services(prefill=False, hang=True, timeout_s=0.2)
    app = OpsApp(services, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(100):  # the deadline is timeout_s + 1 s
            await pilot.pause(0.05)
            if len(services.board.results) == len(CHECK_CATALOG):
                break
        result = services.board.results["api.health"]
        assert result.status is Status.FAIL and "no answer within 1.2 s" in result.summary
        assert app.checks_in_flight == []  # given up on, so the next round may ask again
        fake = services.adapters[0].checks()[0]
        assert isinstance(fake, FakeCheck)
        before = fake.calls
        await pilot.press("r")
        await pilot.pause()
        assert fake.calls == before + 1


async def test_a_crashing_check_is_unknown_and_the_others_still_report() -> None:
    services = fake_services(prefill=False)
    checks = services.adapters[0].checks()

    async def boom() -> None:
        raise RuntimeError("adapter bug [/x]")

    checks[0].run = boom  # type: ignore[method-assign]
    app = OpsApp(services, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: len(services.board.results) == len(CHECK_CATALOG))
        assert app.is_running
        crashed = services.board.results["api.health"]
        assert crashed.status is Status.UNKNOWN and "adapter bug [/x]" in crashed.summary
        assert len(services.board.results) == len(CHECK_CATALOG)


async def test_unknown_theme_falls_back_and_user_theme_loads(tmp_path: pytest.TempPathFactory) -> None:
    folder = tmp_path / "themes"  # type: ignore[operator]
    folder.mkdir()
    (folder / "mine.toml").write_text('name = "mine"\nprimary = "#ff8800"\n')
    (folder / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    app = OpsApp(fake_services(), live=False, theme="mine", user_theme_dir=folder)
    async with app.run_test(size=(100, 30)):
        assert app.theme == "mine"
        assert any("broken.toml" in p for p in app._theme_problems)
    app = OpsApp(fake_services(), live=False, theme="nope")
    async with app.run_test(size=(100, 30)):
        assert app.theme == "opsconsole-dark"


def test_builtin_themes_are_the_three_shipped_files() -> None:
    """The top-level themes/ folder is installed as opsconsole.themes; all three load from there."""
    from opsconsole.ui.themes import builtin_themes

    assert sorted(t.name for t in builtin_themes()) == ["opsconsole-contrast", "opsconsole-dark", "opsconsole-light"]


@pytest.mark.parametrize("theme", ["opsconsole-dark", "opsconsole-light", "opsconsole-contrast"])
async def test_builtin_themes_render(theme: str) -> None:
    app = OpsApp(fake_services(), live=False, theme=theme)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.theme == theme
        assert app.query(Pane)


async def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)):
        assert app.no_color


async def test_command_palette_opens() -> None:
    from textual.command import CommandPalette

    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Backups")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "tab-backups"


async def test_detail_view_polls_only_while_its_tab_is_visible() -> None:
    from opsconsole.services import DeployListing
    from opsconsole.ui.panes.tabs import DeployPane
    from tests.fakes import FAKE_DEPLOYMENTS, NOW

    services = fake_services()
    calls: list[int] = []

    async def deploy_listing(limit: int = 20) -> DeployListing:
        calls.append(limit)
        return DeployListing(deployments=FAKE_DEPLOYMENTS, current_id="dpl_7", fetched_at=NOW)

    services.deploy_listing = deploy_listing  # type: ignore[method-assign]
    app = OpsApp(services, live=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert calls == []  # Deploy tab hidden: no detail fetch
        await pilot.press("5")
        await app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(DeployPane)
        assert pane.active and len(calls) == 1
        await pilot.press("1")
        await pilot.pause()
        assert not pane.active
        pane.refresh_detail()  # the timer firing while hidden does nothing
        await app.workers.wait_for_complete()
        assert len(calls) == 1
        await pilot.press("5")
        await app.workers.wait_for_complete()
        assert len(calls) == 2


async def test_sigterm_ends_the_app_even_while_a_worker_runs() -> None:
    """SIGTERM is handled by the app's loop: it exits (143) whatever runs. A SystemExit raised by a
    process-wide signal handler inside a worker would be swallowed by that worker. (SIGHUP leaves
    the loop at once instead: tests/test_hangup.py, in a real pty.)"""
    import os
    import signal

    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        gate = asyncio.Event()
        app.run_worker(gate.wait(), group="busy", exit_on_error=False)
        await pilot.pause()
        os.kill(os.getpid(), signal.SIGTERM)
        await _until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 128 + signal.SIGTERM


async def test_a_card_given_a_result_before_its_lines_exist_shows_it_once_mounted() -> None:
    """A tab replays the board while its cards are still composing: the result is kept and
    painted on mount, not lost (and no NoMatches from a card without its lines)."""
    from textual.app import App

    from opsconsole.domain.models import CheckResult, utcnow
    from opsconsole.ui.format import freshness

    result = CheckResult("api.health", "api", "API /health", Status.FAIL, "HTTP 500 in 212 ms")
    card = CheckCard("api.health", "API /health")
    now = utcnow()
    card.show(result, freshness(result.checked_at, now, interval_s=5, timeout_s=3, stale_after_s=60))

    class Host(App[None]):
        def compose(self) -> object:
            yield card

    async with Host().run_test(size=(80, 5)) as pilot:
        await pilot.pause()
        assert "HTTP 500 in 212 ms" in _text(card.query_one(".card-line"))


def test_every_action_names_the_tab_that_serves_it() -> None:
    from opsconsole.actions.catalog import KNOWN_ACTIONS

    tabs = {tab for tab, _label, _cls in TABS}
    assert {a.id: a.tab for a in KNOWN_ACTIONS if a.tab not in tabs} == {}


@pytest.mark.parametrize("action_id,tab", [("dlq.requeue", "dlq"), ("db.cancel", "database"),
                                           ("vercel.promote", "deploy"), ("backups.restore", "backups"),
                                           ("n8n.retry", "n8n")])
async def test_an_action_from_the_palette_opens_its_own_tab(action_id: str, tab: str) -> None:
    """The palette used to send every action it did not know by name (the DLQ's) to the Database tab."""
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.start_action(action_id, "R")
        tabs = app.screen_stack[0].query_one(TabbedContent)  # (the action's dialog may be on top)
        await _until(pilot, lambda: tabs.active == f"tab-{tab}")
        assert tabs.active == f"tab-{tab}"
