"""The Twilio DLQ tab end to end against the embedded PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.settings import Settings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.widgets.dlq import DlqView
from opsconsole.ui.widgets.dlq_screens import MessageScreen


@pytest.fixture(scope="module")
def dlq_env() -> Iterator[DemoEnvironment]:
    """A private environment: these tests re-queue for real."""
    with DemoEnvironment("incident", messages=3000, sessions=False) as env:
        yield env


def _settings(env: DemoEnvironment, tmp_path: Path, *, read_only: bool = False) -> Settings:
    assert env.config_path is not None
    s = load_settings(env.config_path)
    return dataclasses.replace(s, environment=dataclasses.replace(s.environment, read_only=read_only),
                               audit=dataclasses.replace(s.audit, path=str(tmp_path / "journal.jsonl")))


async def _view(app: OpsApp, pilot: object) -> DlqView:
    await pilot.press("4")  # type: ignore[attr-defined]
    for _ in range(100):
        await pilot.pause(0.05)  # type: ignore[attr-defined]
        views = list(app.query(DlqView))
        if views and views[0].page is not None and views[0].count is not None:
            return views[0]
    raise AssertionError("the DLQ page did not load")


async def _settle(app: OpsApp, pilot: object) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause(0.1)  # type: ignore[attr-defined]


async def test_paging_filtering_grouping_and_inspecting(dlq_env: DemoEnvironment, tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(dlq_env, tmp_path)), live=False)
    async with app.run_test(size=(130, 45)) as pilot:
        view = await _view(app, pilot)
        assert view.page is not None and len(view.page.rows) == 50 and view.page.has_more
        first_ids = [m.id for m in view.page.rows]
        await pilot.press("right_square_bracket")
        await _settle(app, pilot)
        second = [m.id for m in view.page.rows]
        assert second and not set(first_ids) & set(second) and max(second) < min(first_ids)
        await pilot.press("left_square_bracket")
        await _settle(app, pilot)
        assert [m.id for m in view.page.rows] == first_ids

        await pilot.press("slash")
        await pilot.press(*"code:bogus")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert view.filter_text == ""  # a bad filter changes nothing and keeps what was typed
        box = view.query_one("#dlq-filter")
        box.value = "code:21610"  # type: ignore[attr-defined]
        await pilot.press("enter")
        await _settle(app, pilot)
        assert view.page.rows and all(m.error_code == 21610 for m in view.page.rows)

        view.apply_filter("", view.flt.__class__())
        await _settle(app, pilot)
        await pilot.press("g")
        await _settle(app, pilot)
        assert view.groups is not None and view.groups.rows[0].key == 30008
        await pilot.press("enter")  # Enter on a group filters to it
        await _settle(app, pilot)
        assert view.flt.error_codes == (30008,) and all(m.error_code == 30008 for m in view.page.rows)

        await pilot.press("enter")  # inspect the message under the cursor
        for _ in range(40):
            await pilot.pause(0.05)
            if isinstance(app.screen, MessageScreen):
                break
        assert isinstance(app.screen, MessageScreen)
        assert app.screen.detail.error_code == 30008
        await pilot.press("escape")


async def test_hostile_and_huge_payloads_are_shown_literally_and_fast(dlq_env: DemoEnvironment,
                                                                       tmp_path: Path) -> None:
    with psycopg.connect(dlq_env.postgres.admin_dsn) as conn:
        hostile = conn.execute("select id from dead_letter_messages where coalesce(payload::text, payload_raw) "
                               "like '%[bold]%' limit 1").fetchone()
        huge = conn.execute("select id from dead_letter_messages order by payload_bytes desc nulls last "
                            "limit 1").fetchone()
    assert hostile and huge
    app = OpsApp(build_services(_settings(dlq_env, tmp_path)), live=False)
    async with app.run_test(size=(130, 45)) as pilot:
        view = await _view(app, pilot)
        store = view.store
        assert store is not None
        detail = await store.get(hostile[0])
        screen = MessageScreen(detail, store)  # type: ignore[arg-type]
        await app.push_screen(screen)
        await pilot.pause(0.2)
        from rich.console import Console

        console = Console(record=True, width=120, color_system=None)
        console.print(MessageScreen._payload_renderable(detail.payload_text, detail.payload_parsed))  # type: ignore[union-attr]
        shown = console.export_text()
        assert "[bold]" in shown and "\x1b" not in shown
        await pilot.press("escape")
        big = await store.get(huge[0])
        assert not isinstance(big, str) and big.truncated and big.payload_bytes > 4_000_000  # type: ignore[union-attr]


async def test_select_all_matching_and_requeue_exactly_once(dlq_env: DemoEnvironment, tmp_path: Path) -> None:
    with psycopg.connect(dlq_env.postgres.admin_dsn) as conn:
        waiting_before = {r[0] for r in conn.execute("select id from dead_letter_messages where error_code = 11205 "
                                                     "and status = 'waiting'").fetchall()}
    app = OpsApp(build_services(_settings(dlq_env, tmp_path)), live=False)
    async with app.run_test(size=(130, 45)) as pilot:
        view = await _view(app, pilot)
        view.apply_filter("code:11205", view.flt.__class__(error_codes=(11205,)))
        await _settle(app, pilot)
        assert view.count is not None
        matching = view.count.value
        assert matching > 50  # more than one page: "all matching" must not mean "the visible page"
        await pilot.press("space")
        assert "1 selected" in view.selection_text()
        await pilot.press("escape")
        await pilot.press("A")
        assert f"ALL {matching:,}" in view.selection_text()
        await pilot.press("R")
        for _ in range(60):
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmScreen):
                break
        assert isinstance(app.screen, ConfirmScreen)
        await asyncio.sleep(0.5)
        await pilot.press("y")
        await _settle(app, pilot)
        await pilot.pause(0.3)
    with psycopg.connect(dlq_env.postgres.admin_dsn) as conn:
        requeued = {r[0] for r in conn.execute("select id from dead_letter_messages where id = any(%s) "
                                               "and status = 'requeued'", [sorted(waiting_before)]).fetchall()}
        queued = [r[0] for r in conn.execute("select dlq_message_id from campaign_queue "
                                             "where dlq_message_id is not null").fetchall()]
        waiting = conn.execute("select count(*) from dead_letter_messages where error_code = 11205 "
                               "and status = 'waiting'").fetchone()
    assert waiting is not None
    assert len(waiting_before) == matching
    assert len(requeued) + waiting[0] == matching and len(requeued) > 0
    assert requeued <= set(queued) and len(queued) == len(set(queued))  # each message queued once
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    requeue = [e for e in events if e.get("action") == "dlq.requeue"]
    assert requeue and requeue[-1]["outcome"] in ("ok", "partial")
    assert str(min(requeued)) in json.dumps(requeue[-1]["result"])  # the journal names the message ids


async def test_read_only_hides_dlq_actions(dlq_env: DemoEnvironment, tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(dlq_env, tmp_path, read_only=True)), live=False)
    async with app.run_test(size=(130, 45)) as pilot:
        await _view(app, pilot)
        keys = set(app.active_bindings)
        assert not {"R", "D", "U"} & keys
        await pilot.press("R")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)
