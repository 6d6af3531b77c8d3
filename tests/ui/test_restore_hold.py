"""The DOWNTIME WARNING cannot be skipped: the dialog counts down, the confirm key does nothing before the
hold and the typed project ref, and (property test) random key sequences of up to 300 keys from the whole
keyboard, paste events included, never start a restore: the kernel's run is never reached and the
Supabase simulator receives no restore request."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input

from opsconsole.actions.model import Preview, RiskTier
from opsconsole.actions.policy import requirement_for
from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.scenario import PROJECT_REF
from opsconsole.services import Services
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.widgets.restore import RestoreView

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")

REASON = "a bad UPDATE overwrote the phone numbers; their old values exist nowhere else"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- the dialog alone ------------------------------------------------------------------------------------

class Harness(App[None]):
    def __init__(self, screen: ConfirmScreen) -> None:
        super().__init__()
        self.dialog = screen
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


def _held_preview() -> Preview:
    return Preview(action_id="backups.restore", title="Restore the database", tier=RiskTier.DESTRUCTIVE,
                   target=f"project {PROJECT_REF}", confirm_text=PROJECT_REF,
                   data_as_of=datetime(2026, 11, 27, tzinfo=UTC), warning="DOWNTIME WARNING: the database goes OFFLINE",
                   warning_hold_s=5.0)


async def test_the_dialog_counts_down_and_ignores_the_confirm_key_until_the_hold_is_over() -> None:
    clock = FakeClock()
    preview = _held_preview()
    screen = ConfirmScreen(preview, requirement_for(preview, "R"), clock=clock)
    app = Harness(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        hint = screen.query_one("#hint")
        assert "works in 5 s" in str(hint.render())
        box = screen.query_one("#typed", Input)
        box.focus()
        await pilot.press(*PROJECT_REF)  # typed correctly, at once
        await pilot.press("tab")
        clock.t += 2.0
        await pilot.press("y")
        await pilot.pause()
        assert app.results == [] and "must stay on screen 5 s" in screen.refusals[-1]
        await pilot.pause(0.3)
        assert "works in 3 s" in str(hint.render())
        clock.t += 2.9  # 4.9 s: still held
        await pilot.press("y")
        await pilot.pause()
        assert app.results == [] and "0.1 s left" in screen.refusals[-1]
        clock.t += 0.2
        await pilot.pause(0.3)
        assert "works in" not in str(hint.render())
        await pilot.press("y")
        await pilot.pause()
        assert len(app.results) == 1 and app.results[0].typed == PROJECT_REF and app.results[0].elapsed_s >= 5.0


# -- the property test -----------------------------------------------------------------------------------

NAMED = ["enter", "escape", "tab", "shift+tab", "space", "backspace", "delete", "left", "right", "up", "down",
         "home", "end", "pageup", "pagedown", "insert", "ctrl+a", "ctrl+e", "ctrl+j", "ctrl+m", "ctrl+u", "ctrl+w",
         "ctrl+k", "ctrl+h", "ctrl+i", "ctrl+y", "ctrl+n", "ctrl+r", "ctrl+t", *(f"f{i}" for i in range(1, 13))]
CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789`~!@#$%^&*()-_=+[]{};:'\",.<>/?\\| ")
STRESSED = ["y", "Y", "n", "R", "T", "enter", "escape", "tab", "space"]  # the keys that matter, drawn often

key = st.one_of(st.sampled_from(STRESSED), st.sampled_from(NAMED), st.sampled_from(CHARS))
paste = st.one_of(st.just(PROJECT_REF), st.just(PROJECT_REF + "\n"), st.text(max_size=40)).map(lambda t: ("paste", t))
event = st.one_of(key.map(lambda k: ("key", k)), paste)
# Each event advances the dialog's clock by up to 15 ms: 300 events stay under the 5 s hold.
step = st.floats(min_value=0.0, max_value=0.015, allow_nan=False)


def _key(name: str) -> events.Key:
    """A key event as Pilot builds it (name and printable character)."""
    import unicodedata

    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    key = _character_to_key(name) if len(name) == 1 and not name.isalnum() else name
    original = REPLACED_KEYS.get(key, key)
    try:
        char: str | None = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


class RestoreHarness(App[None]):
    """The Backups tab's restore view on real services (demo PostgreSQL + Supabase simulator)."""

    def __init__(self, services: Services, clock: FakeClock) -> None:
        super().__init__()
        self.services = services
        self.live = False
        self.clock = clock

    def compose(self) -> ComposeResult:
        yield RestoreView(id="restore-view")

    async def on_mount(self) -> None:
        view = self.query_one(RestoreView)
        view.dialog_clock = self.clock
        await view._load()
        view.query_one("#backups-table").focus()


@pytest.fixture(scope="module")
def hold_env() -> Iterator[DemoEnvironment]:
    with DemoEnvironment("data-corruption", sessions=False, messages=200) as env:
        yield env


def _settings(env: DemoEnvironment, tmp_path: Path) -> Any:
    assert env.config_path is not None
    s = load_settings(env.config_path)
    return dataclasses.replace(s, audit=dataclasses.replace(s.audit, path=str(tmp_path / "journal.jsonl")))


async def _drive(env: DemoEnvironment, tmp_path: Path, events_: list[tuple[str, str]], steps: list[float]) -> None:
    services = build_services(_settings(env, tmp_path))
    kernel = services.kernel
    assert kernel is not None
    reached: list[Any] = []
    real_run = kernel.run

    async def spy(preview: Any, confirmation: Any) -> Any:
        reached.append(confirmation)
        return await real_run(preview, confirmation)

    kernel.run = spy  # type: ignore[method-assign]
    clock = FakeClock()
    app = RestoreHarness(services, clock)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(RestoreView)
            view.start("backup", "R", reason=REASON)  # the dialog with the held DOWNTIME WARNING
            for _ in range(500):  # the preview reads the project, the backups and the database: seconds when busy
                await pilot.pause(0.02)
                if isinstance(app.screen, ConfirmScreen):
                    break
            assert isinstance(app.screen, ConfirmScreen), "the restore dialog did not open"
            driver = app._driver
            assert driver is not None
            for i, (kind, value) in enumerate(events_):
                if not app.is_running:
                    break
                clock.t += steps[i % len(steps)] if steps else 0.0
                # Through the driver, as a terminal delivers them (Pilot.press would wait for the whole process
                # to be idle after each key, and the demo's simulator threads keep it busy).
                message: events.Event = events.Paste(value) if kind == "paste" else _key(value)
                message.set_sender(app)
                driver.send_message(message)
                await asyncio.sleep(0.004)
            await pilot.pause(0.2)  # the dialog may still be open: its worker waits for it, and is cancelled on exit
    finally:
        await services.aclose()
    assert reached == [], f"the kernel's run was reached with {reached}"
    restores = env.sims["supabase-mgmt"].project_state.restores  # type: ignore[attr-defined]
    assert restores == [], "the simulator received a restore request"


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(events_=st.lists(event, max_size=300), steps=st.lists(step, min_size=1, max_size=20))
def test_no_key_sequence_starts_a_restore(hold_env: DemoEnvironment, tmp_path: Path,
                                          events_: list[tuple[str, str]], steps: list[float]) -> None:
    asyncio.run(_drive(hold_env, tmp_path, events_, steps))


def test_the_worst_case_sequence_too(hold_env: DemoEnvironment, tmp_path: Path) -> None:
    """The ref pasted, Tab, and the confirm key hammered 290 times within the hold: still nothing."""
    events_ = [("paste", PROJECT_REF), ("key", "tab"), *([("key", "y")] * 290)]
    asyncio.run(_drive(hold_env, tmp_path, events_, [0.015]))
