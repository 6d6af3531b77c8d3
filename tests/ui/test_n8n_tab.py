"""The n8n tab end to end (Pilot) against the n8n simulator through the real adapter and kernel:
paging past 250 failures, filtering, the full error shown literally, rows updated in place, and
select two -> R -> confirm -> each new execution id shown as it is followed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import DataTable

from opsconsole.bootstrap import build_services
from opsconsole.demo.scenario import N8N_WORKFLOWS
from opsconsole.demo.sim import FaultPlan
from opsconsole.demo.sims import n8n as n8n_sim
from opsconsole.settings import AuditSettings, ChecksSettings, EnvironmentSettings, N8nSettings, Secret, Settings
from opsconsole.ui.app import OpsApp
from opsconsole.ui.confirm import ConfirmScreen
from opsconsole.ui.widgets.live import KeyedTable
from opsconsole.ui.widgets.n8n import PAGE_SIZE, ExecutionScreen, ExecutionsView, RetryProgressScreen
from tests.adapters.n8n_twilio import N8N_CANARY, SECRETS


@pytest.fixture
def sim() -> Iterator[n8n_sim.N8nSimulator]:
    s = n8n_sim.build(FaultPlan(), "n8n-sync", SECRETS)
    s.start()
    httpx.post(f"{s.base_url}/__sim/n8n/features", json={"retry_run_s": 0.1})
    try:
        yield s
    finally:
        s.stop()


def _settings(sim: n8n_sim.N8nSimulator, tmp: Path, *, read_only: bool = False) -> Settings:
    return Settings(environment=EnvironmentSettings(name="drill", read_only=read_only),
                    n8n=N8nSettings(api_url=f"{sim.base_url}/api/v1", api_key=Secret.literal(N8N_CANARY),
                                    workflows=N8N_WORKFLOWS),
                    checks=ChecksSettings(timeout_s=5.0), audit=AuditSettings(path=str(tmp / "journal.jsonl")))


async def _until(pilot: Any, test: Callable[[], bool], what: str, tries: int = 600) -> None:
    for _ in range(tries):
        if test():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _view(app: OpsApp, pilot: Any) -> ExecutionsView:
    await pilot.press("3")
    await _until(pilot, lambda: bool(list(app.query(ExecutionsView))) and app.query_one(ExecutionsView).page
                 is not None, "the first page")
    view = app.query_one(ExecutionsView)
    await _until(pilot, lambda: all(r.id in view.errors for r in view.rows), "the errors of the rows")
    return view


def _shown(view: ExecutionsView) -> bool:
    """The page asked for is the one shown."""
    return view.page is not None and view.page.start == view.position


def _inject(sim: n8n_sim.N8nSimulator, body: dict[str, Any]) -> None:
    """More executions in the simulator (a loopback call of a few ms)."""
    assert httpx.post(f"{sim.base_url}/__sim/n8n/executions", json=body, timeout=5.0).status_code == 200


def _cursor_to(view: ExecutionsView, execution_id: str) -> None:
    table: DataTable[Any] = view.query_one(DataTable)
    table.move_cursor(row=table.get_row_index(execution_id))


def _ids(view: ExecutionsView, text: str) -> list[str]:
    return [r.id for r in view.rows if text in view.errors[r.id].first_line]


async def test_select_two_retry_confirm_and_see_the_new_execution_ids(sim: n8n_sim.N8nSimulator,
                                                                      tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        targets = _ids(view, "not able to process")[:1] + _ids(view, "timed out")[:1]  # both transient
        assert len(targets) == 2
        for ident in targets:
            _cursor_to(view, ident)
            await pilot.press("space")
        assert view.selected == set(targets) and "2 selected" in view.selection_text()
        table: DataTable[Any] = view.query_one(DataTable)
        assert str(table.get_cell(targets[0], "sel")) == "●"
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        screen = app.screen
        assert isinstance(screen, ConfirmScreen)
        assert screen.preview.target.startswith("2 executions") and screen.requirement.confirm_key == "y"
        await pilot.press("enter")  # the focus is on Cancel: Enter never confirms
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen) and view.selected == set(targets)
        await pilot.press("R")
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await asyncio.sleep(0.5)  # read it (a press within 0.4 s is refused)
        await pilot.press("y")
        await _until(pilot, lambda: isinstance(app.screen, RetryProgressScreen) and app.screen.done, "the retries")
        progress = app.screen
        assert isinstance(progress, RetryProgressScreen)
        assert len(progress.new_ids) == 2
        text = "\n".join(progress.lines)
        in_order = sorted(targets, key=int, reverse=True)  # retried newest first, one at a time
        for original, new in zip(in_order, progress.new_ids, strict=True):
            assert f"{original} → new execution {new}" in text
            assert f"{original}: new execution {new} succeeded" in text
        assert "2 of 2 retried executions succeeded" in text
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await _until(pilot, lambda: all(str(table.get_cell(t, "status")) == "retried" for t in targets
                                        if t in {r.id for r in view.rows}), "the rows marked retried")
        assert view.selected == set()
    events = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    final = [e for e in events if e.get("kind") == "action" and e.get("action") == "n8n.retry"][-1]
    assert final["outcome"] == "ok" and final["confirmation"]["key"] == "y"
    assert sorted(e["new_execution"] for e in events if e.get("kind") == "note") == sorted(progress.new_ids)


async def test_pages_past_250_failures_back_and_forth(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    _inject(sim, {"kind": "transient", "count": 300})
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        pages: list[list[str]] = []
        while True:
            assert len(view.rows) <= PAGE_SIZE  # one page in memory
            assert view.query_one(DataTable).row_count == len(view.rows)
            pages.append([r.id for r in view.rows])
            if view.page is None or view.page.next is None:
                break
            await pilot.press("right_square_bracket")
            await _until(pilot, lambda: _shown(view), "the next page")
        seen = [i for page in pages for i in page]
        assert len(seen) > 300 and len(seen) == len(set(seen))
        assert seen == sorted(seen, key=int, reverse=True)
        assert len(view.back) == len(pages) - 1
        await pilot.press("left_square_bracket")
        await _until(pilot, lambda: _shown(view) and view.rows[0].id == pages[-2][0], "the previous page")
        assert [r.id for r in view.rows] == pages[-2]
        await pilot.press("N")
        await _until(pilot, lambda: _shown(view) and view.page is not None and view.page.start is None, "the newest")
        assert [r.id for r in view.rows] == pages[0] and view.back == []


async def test_filter_finds_matches_beyond_the_first_page(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    _inject(sim, {"kind": "credential", "count": 80})
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        assert not _ids(view, "timed out")  # the timeouts are older than the first page
        await pilot.press("slash")
        await pilot.press(*"timed out")
        await pilot.press("enter")
        await _until(pilot, lambda: view.flt.text == "timed out" and view.page is not None
                     and view.page.scanned > PAGE_SIZE, "the filtered page")
        await _until(pilot, lambda: all(r.id in view.errors for r in view.rows), "the errors")
        assert view.rows and all("timed out" in view.errors[r.id].first_line for r in view.rows)
        status = str(view.query_one("#n8n-status").render())
        assert "filter 'timed out'" in status and "looked at" in status


async def test_enter_shows_the_full_error_literally(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        await pilot.press("slash")
        await pilot.press(*"PWNED")
        await pilot.press("enter")
        await _until(pilot, lambda: view.flt.text == "PWNED" and len(view.rows) == 1
                     and view.rows[0].id in view.errors, "the hostile execution")
        hostile = [view.rows[0].id]
        _cursor_to(view, hostile[0])
        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, ExecutionScreen), "the execution screen")
        await pilot.pause(0.1)
        shown = str(app.screen.query_one("#exec-message").render())
        assert "[red]x[/]" in shown and "␛[2J" in shown and "\x1b" not in shown
        facts = str(app.screen.query_one("#exec-facts").render())
        assert "failing node: Fetch changed contacts (Supabase)" in facts and "supabaseApi" in facts
        assert "NodeApiError" in str(app.screen.query_one("#exec-stack").render())
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ExecutionScreen)


async def test_polls_update_cells_in_place_never_clearing_the_table(sim: n8n_sim.N8nSimulator,
                                                                    tmp_path: Path) -> None:
    services = build_services(_settings(sim, tmp_path))
    app = OpsApp(services, live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        table: DataTable[Any] = view.query_one(DataTable)
        clears: list[int] = []
        original_clear = table.clear

        def counting_clear(*args: Any, **kwargs: Any) -> Any:
            clears.append(1)
            return original_clear(*args, **kwargs)

        table.clear = counting_clear  # type: ignore[method-assign]
        crashed = next(r.id for r in view.rows if r.status == "crashed")
        keys_before = [str(k.value) for k in table.rows]
        updates = view.cell_updates
        adapter = services.get_adapter("n8n")
        from opsconsole.adapters.n8n import N8nAdapter

        assert isinstance(adapter, N8nAdapter)
        result = await adapter.retry_execution(crashed)  # someone retries one in n8n meanwhile
        assert result.new_execution_id is not None
        await adapter.follow(result.new_execution_id, timeout_s=10)
        loads = view.loads
        view.reload()
        await _until(pilot, lambda: view.loads > loads and str(table.get_cell(crashed, "status")) == "retried",
                     "the retried row")
        assert clears == []
        assert [str(k.value) for k in table.rows] == keys_before
        # the retried status, plus at most an age or two that crossed a minute meanwhile: never the table
        assert updates + 1 <= view.cell_updates <= updates + 3


async def test_a_new_failure_at_the_top_keeps_the_cursor_on_its_execution(sim: n8n_sim.N8nSimulator,
                                                                           tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _view(app, pilot)
        table = view.query_one(KeyedTable)
        under = view.rows[3].id
        _cursor_to(view, under)
        clears: list[int] = []
        original_clear = table.clear

        def counting_clear(*args: Any, **kwargs: Any) -> Any:
            clears.append(1)
            return original_clear(*args, **kwargs)

        table.clear = counting_clear  # type: ignore[method-assign]
        before = list(table.row_keys)
        loads, updates = view.loads, view.cell_updates
        view.reload()  # a poll with nothing new: nothing changes on screen
        await _until(pilot, lambda: view.loads > loads and not any(w.group.startswith("n8n") and w.is_running
                                                                  for w in app.workers), "the quiet poll")
        assert view.cell_updates == updates and table.row_keys == before
        _inject(sim, {"kind": "transient", "count": 1})  # a new failure, newest first
        view.reload()
        await _until(pilot, lambda: table.row_keys[:1] != before[:1], "the new row at the top")
        await _until(pilot, lambda: all(r.id in view.errors for r in view.rows), "its error")
        assert clears == [] and table.row_keys[1:] == before[:len(table.row_keys) - 1]
        current = view.current()
        assert table.cursor_key() == under and current is not None and current.id == under
        assert table.scrollbar_size_horizontal == 0  # the wide error column scrolls with ← →, no scrollbar row


async def test_read_only_hides_retry(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(sim, tmp_path, read_only=True)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        assert view.check_action("retry", ()) is False and view.check_action("toggle_load_workflow", ()) is False
        await pilot.press("R")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)


async def test_80x24_shows_the_list_and_the_keys(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        view = await _view(app, pilot)
        table: DataTable[Any] = view.query_one(DataTable)
        assert table.region.height >= 6 and table.region.width <= 80
        footer = " ".join(str(b.binding.key) for b in app.active_bindings.values() if b.binding.show)
        assert "R" in footer and "slash" in footer and "space" in footer


async def test_the_palette_entry_retries_on_the_n8n_tab(sim: n8n_sim.N8nSimulator, tmp_path: Path) -> None:
    from opsconsole.ui.commands import OpsCommands

    app = OpsApp(build_services(_settings(sim, tmp_path)), live=False)
    async with app.run_test(size=(100, 30)) as pilot:
        view = await _view(app, pilot)
        await pilot.press("1")
        provider = OpsCommands(app.screen)
        (entry,) = [c for c in provider._commands() if c[0].startswith("Retry n8n executions")]
        assert entry[0] == "Retry n8n executions (n8n tab, key R)"
        entry[2]()  # type: ignore[operator]
        await _until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        assert app.is_tab_active("n8n")
        screen = app.screen
        assert isinstance(screen, ConfirmScreen) and screen.preview.target.startswith(f"execution {view.rows[0].id}")
        await pilot.press("escape")
