"""The console on a bastion: the terminal picks the theme, the footer leads with the tab's keys,
cards open on demand, each check polls and goes stale on its own interval, nothing blinks."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from textual.filter import NoColor
from textual.widgets import Input, TabbedContent
from textual.widgets._footer import FooterKey

from opsconsole.domain.models import CheckResult
from opsconsole.settings import ChecksSettings, UiSettings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.themes import colour_depth, no_color_requested, theme_for_terminal
from opsconsole.ui.widgets.status import CheckCard, StatusBadge
from tests.fakes import NOW, FakeCheck, fake_services


@pytest.mark.parametrize(("env", "depth", "theme"), [
    ({"TERM": "xterm"}, 16, "opsconsole-contrast"),
    ({"TERM": "screen"}, 16, "opsconsole-contrast"),
    ({"TERM": "linux"}, 16, "opsconsole-contrast"),
    ({"TERM": "vt100"}, 16, "opsconsole-contrast"),
    ({}, 16, "opsconsole-contrast"),
    ({"TERM": "xterm-256color"}, 256, "opsconsole-dark"),
    ({"TERM": "screen-256color"}, 256, "opsconsole-dark"),
    ({"TERM": "tmux-256color"}, 256, "opsconsole-dark"),
    ({"TERM": "xterm-direct"}, 16_777_216, "opsconsole-dark"),
    ({"TERM": "xterm", "COLORTERM": "truecolor"}, 16_777_216, "opsconsole-dark"),
    ({"TERM": "linux", "COLORTERM": "24bit"}, 16_777_216, "opsconsole-dark"),
    ({"TERM": "xterm-256color", "NO_COLOR": "1"}, 256, "opsconsole-contrast"),
])
def test_the_terminal_picks_the_theme(env: dict[str, str], depth: int, theme: str) -> None:
    assert colour_depth(env) == depth
    assert theme_for_terminal(env) == theme
    assert no_color_requested(env) is ("NO_COLOR" in env)


async def test_a_16_colour_terminal_gets_the_contrast_theme_unless_one_is_chosen(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)):
        assert app.theme == "opsconsole-contrast"
    app = OpsApp(fake_services(), live=False, theme="opsconsole-light")  # --theme
    async with app.run_test(size=(80, 24)):
        assert app.theme == "opsconsole-light"
    services = fake_services()
    services.settings = dataclasses.replace(services.settings, ui=UiSettings(theme="opsconsole-dark"))  # [ui] theme
    app = OpsApp(services, live=False)
    async with app.run_test(size=(80, 24)):
        assert app.theme == "opsconsole-dark"


async def test_no_color_sends_no_colour_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color and app.native_ansi_color
        # Textual's NoColor filter (not its greyscale Monochrome one): colours become the terminal's own
        assert any(isinstance(f, NoColor) for f in app._filters)
        # the status is still there in glyphs and words
        badge = app.query_one("#badge-api", StatusBadge)
        assert badge.plain.startswith("✖ api")
        card = app.query_one("#card-api-health", CheckCard)
        assert card.line().plain.startswith("✖ FAIL  API /health")


def _footer_keys(app: OpsApp) -> list[str]:
    return [key.key for key in app.screen.query(FooterKey)]


async def _footer_after(pilot: object, app: OpsApp) -> list[str]:
    """The footer's keys once it has been composed for the current focus."""
    for _ in range(60):
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        keys = _footer_keys(app)
        if keys:
            return keys
    return []


async def test_the_footer_leads_with_the_tabs_keys_and_ends_with_the_global_ones() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.3)
        keys = await _footer_after(pilot, app)
        tab_keys = [k for k in ("space", "slash", "d", "f", "i") if k in keys]
        global_keys = [k for k in ("q", "question_mark", "r", "p", "t", "m") if k in keys]
        assert tab_keys and global_keys
        assert max(keys.index(k) for k in tab_keys) < min(keys.index(k) for k in global_keys), keys
        assert "ctrl+p" not in keys  # at 80 columns the palette key makes room (it is in `?`)
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        assert "ctrl+p" in await _footer_after(pilot, app)


async def test_cards_are_one_line_and_open_their_details_on_enter_or_i() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("1")
        await pilot.pause(0.3)
        card = app.query_one("#card-api-health", CheckCard)
        assert app.focused is card  # the API tab has no list: its first status line has the focus
        assert not card.expanded
        await pilot.press("enter")
        await pilot.pause()
        assert card.expanded
        facts = card.query_one(".card-facts").render()
        assert "HTTP status: 500" in str(facts) and "Components:" in str(facts) and "{" not in str(facts)
        await pilot.press("enter")
        assert not card.expanded
        await pilot.press("i")  # every card of the tab
        await pilot.pause()
        assert all(c.expanded for c in app.query_one("#pane-api").query(CheckCard))
        await pilot.press("i")
        assert not any(c.expanded for c in app.query_one("#pane-api").query(CheckCard))


async def test_each_check_polls_on_its_own_interval() -> None:
    services = fake_services(prefill=False)
    services.settings = dataclasses.replace(
        services.settings, checks=ChecksSettings(interval_s=0.3, timeout_s=0.2, intervals={"supabase.resources": 60}))
    checks = {c.id: c for c in services.adapters[0].checks()}
    app = OpsApp(services, live=True)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(600):
            await pilot.pause(0.05)
            if min(c.calls for c in checks.values() if isinstance(c, FakeCheck) and c.id != "supabase.resources") >= 4:
                break
        health, resources = checks["api.health"], checks["supabase.resources"]
        assert isinstance(health, FakeCheck) and isinstance(resources, FakeCheck)
        assert health.calls >= 4
        assert resources.calls == 1  # polled every 60 s: once so far
        await pilot.press("r")  # a refresh runs every check now, whatever its interval
        for _ in range(100):
            await pilot.pause(0.05)
            if resources.calls == 2:
                break
        assert resources.calls == 2


async def test_staleness_is_judged_against_each_checks_own_interval() -> None:
    services = fake_services(prefill=False)
    services.settings = dataclasses.replace(
        services.settings, checks=ChecksSettings(interval_s=10, timeout_s=2, intervals={"supabase.resources": 60}))
    ages = {"supabase.resources": 90.0, "db.long_running": 25.0}  # 60 s interval: late; 10 s interval: stale
    for check in services.adapters[0].checks():
        assert isinstance(check, FakeCheck)
        services.board.record(CheckResult(check.id, check.system, check.title, check.status, check.summary,
                                          check.latency_ms, NOW - timedelta(seconds=ages.get(check.id, 3.0)),
                                          check.details))
    app = OpsApp(services, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.3)
        resources = app.query_one("#card-supabase-resources", CheckCard)
        long_running = app.query_one("#card-db-long_running", CheckCard)
        pooler = app.query_one("#card-supabase-pooler", CheckCard)
        assert "1m old" in resources.line().plain and not resources.has_class("-stale")
        assert "STALE 25s" in long_running.line().plain and long_running.has_class("-stale")
        assert "old" not in pooler.line().plain and "STALE" not in pooler.line().plain  # fresh: no age shown
        db_badge = app.query_one("#badge-db", StatusBadge)
        supabase_badge = app.query_one("#badge-supabase", StatusBadge)
        assert db_badge.has_class("-stale") and "STALE 25s" in db_badge.plain
        assert not supabase_badge.has_class("-stale") and "1m old" in supabase_badge.plain
        assert app.query_one("#badge-api", StatusBadge).plain == "✖ api"  # fresh and fast: just the status
        assert services.is_stale(services.board.results["db.long_running"])
        assert not services.is_stale(services.board.results["supabase.resources"])


async def test_text_fields_do_not_blink() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause(0.3)
        await pilot.press("slash")
        await pilot.pause()
        box = app.query_one("#activity-filter", Input)
        assert box.has_focus and box.cursor_blink is False
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        assert app.screen.query_one(Input).cursor_blink is False


async def test_a_tab_key_is_never_undone_by_a_late_focus() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, tab in zip("254136", ["database", "deploy", "dlq", "api", "n8n", "backups"], strict=True):
            await pilot.press(key)
            assert app.query_one(TabbedContent).active == f"tab-{tab}"
        await pilot.pause(0.3)
        assert app.query_one(TabbedContent).active == "tab-backups"
        assert app.focused is not None and app.query_one("#pane-backups") in app.focused.ancestors
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert app.query_one(TabbedContent).active == "tab-backups"
