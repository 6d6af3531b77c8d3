"""The views merged after the bastion work (deployments, migrations, backups; the n8n executions in
test_n8n_tab.py) follow its conventions: a refresh that changes nothing repaints and restyles nothing,
a changed row repaints only its changed cells, the table is never cleared and rebuilt, and the cursor
stays on its row (by key) when rows arrive above it. Also at 80x24: no horizontal scrollbar under a
list, and both lists of the Deploy tab on the first screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from textual.geometry import Region

from opsconsole.domain.backups import Backup, BackupListing
from opsconsole.domain.restore import THIS_CONSOLE, RestoreInProgress
from opsconsole.services import DeployListing
from opsconsole.ui.app import OpsApp
from opsconsole.ui.panes.tabs import DeployPane
from opsconsole.ui.widgets.deploys import DeploymentsView
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic
from opsconsole.ui.widgets.migrations import MigrationsView
from opsconsole.ui.widgets.restore import RestoreView
from tests.fakes import FAKE_DEPLOYMENTS, NOW, fake_services


class Spy:
    """What a table and some text lines sent to the screen: whole-table repaints, partial ones,
    clears, rows added, cells updated, text updates and restyles."""

    def __init__(self, table: KeyedTable, *lines: LiveStatic, styled: Any = None) -> None:
        self.full = 0
        self.partial: list[Region] = []
        self.clears = 0
        self.added: list[str] = []
        self.cells: list[tuple[str, str]] = []
        self.texts: list[str] = []
        self.restyles = 0
        refresh, clear, add_row, update_cell = table.refresh, table.clear, table.add_row, table.update_cell

        def spy_refresh(*regions: Region, **kw: Any) -> Any:
            if not table._cell_only:
                if regions:
                    self.partial.extend(regions)
                else:
                    self.full += 1
            return refresh(*regions, **kw)

        def spy_clear(*a: Any, **kw: Any) -> Any:
            self.clears += 1
            return clear(*a, **kw)

        def spy_add(*cells: Any, key: Any = None, **kw: Any) -> Any:
            self.added.append(str(key))
            return add_row(*cells, key=key, **kw)

        def spy_update(row: Any, col: Any, value: Any, **kw: Any) -> Any:
            self.cells.append((str(row), str(col)))
            return update_cell(row, col, value, **kw)

        table.refresh = spy_refresh  # type: ignore[method-assign]
        table.clear = spy_clear  # type: ignore[method-assign]
        table.add_row = spy_add  # type: ignore[method-assign]
        table.update_cell = spy_update  # type: ignore[method-assign]
        for line in lines:
            original = line.update

            def spy_text(content: Any = "", *, layout: bool = True, _orig: Any = original) -> None:
                self.texts.append(str(content))
                _orig(content, layout=layout)

            line.update = spy_text  # type: ignore[method-assign]
        if styled is not None:
            restyle = styled.update_node_styles

            def spy_styles(*a: Any, **kw: Any) -> None:
                self.restyles += 1
                restyle(*a, **kw)

            styled.update_node_styles = spy_styles

    @property
    def quiet(self) -> bool:
        return not (self.full or self.partial or self.clears or self.added or self.cells or self.texts
                    or self.restyles)


async def _tab(app: OpsApp, pilot: Any, key: str) -> None:
    await pilot.press(key)
    for _ in range(3):  # the tab's views load in workers
        await app.workers.wait_for_complete()
        await pilot.pause()


async def test_a_migrations_refresh_keeps_the_cursor_row_and_never_rebuilds_the_table() -> None:
    services = fake_services()
    app = OpsApp(services, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _tab(app, pilot, "5")
        view = app.query_one(MigrationsView)
        table = view.query_one(KeyedTable)
        listing = view.listing
        assert listing is not None and table.row_keys == [m.version for m in listing.migrations]
        third = listing.migrations[2]
        table.move_cursor(row=2)
        spy = Spy(table, view.query_one(".migrations-status", LiveStatic), styled=view)
        view.show(await services.migrations(), NOW)  # the 30 s poll, nothing changed
        await pilot.pause()
        assert spy.quiet
        newer = replace(listing.migrations[3], version="20261127031500", name="contacts_phone_index",
                        applied_at=NOW - timedelta(minutes=1))
        view.show(replace(listing, migrations=(newer, *listing.migrations)), NOW)  # one applied meanwhile
        await pilot.pause()
        assert spy.added == [newer.version] and spy.clears == 0 and spy.cells == []
        assert table.row_keys[0] == newer.version
        assert table.cursor_key() == third.version and view.cursor_migration() == third  # still its row
        spy.texts, spy.full, spy.partial = [], 0, []  # (a row added repaints the table below it: expected)
        view.show(replace(listing, migrations=(newer, *listing.migrations)), NOW + timedelta(minutes=2))
        await pilot.pause()
        # Two minutes on: only the ages under an hour move ("1m" -> "3m", "40m" -> "42m"), cell by cell.
        assert sorted(spy.cells) == sorted([(newer.version, "age"), (listing.migrations[0].version, "age")])
        # Each repaints its own cell's region, if it is in view (at 80x24 the cursor's row scrolled the list).
        assert spy.full == 0 and 1 <= len(spy.partial) <= 2 and all(r.height == 1 for r in spy.partial)
        assert spy.clears == 0 and spy.texts == []


async def test_the_deployments_tick_repaints_nothing_until_something_changes() -> None:
    services = fake_services()
    app = OpsApp(services, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _tab(app, pilot, "5")
        view = app.query_one(DeploymentsView)
        status = view.query_one("#deploy-status", LiveStatic)
        spy = Spy(view.table, status)
        for seconds in range(1, 11):  # the once-a-second tick: ages are minutes old, the list is not overdue
            view.tick(NOW + timedelta(seconds=seconds))
        view.show(DeployListing(deployments=FAKE_DEPLOYMENTS, current_id="dpl_7", fetched_at=NOW,
                                latency_ms=61.0), NOW + timedelta(seconds=10))  # a poll: same rows
        await pilot.pause()
        assert spy.quiet, (spy.texts, spy.cells)
        assert "ms" not in status.plain and "ago" not in status.plain  # no ticking age, no latency that moves
        overdue = services.settings.checks.timeout_s + view.interval_s + 1
        view.tick(NOW + timedelta(seconds=overdue))  # the list stopped refreshing: now its age says so
        assert f"as of {int(overdue)}s ago" in status.plain and spy.cells == []


async def test_a_backups_refresh_keeps_the_cursor_and_a_still_restore_restyles_nothing() -> None:
    services = fake_services()
    app = OpsApp(services, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _tab(app, pilot, "6")
        view = app.query_one(RestoreView)
        table = view.query_one(KeyedTable)
        listing: BackupListing = await services.backup_listing()  # type: ignore[attr-defined]
        assert listing.inventory is not None and table.row_keys == ["901", "900", "899"]
        table.move_cursor(row=1)
        spy = Spy(table, view.query_one(".restore-status", LiveStatic),
                  view.query_one("#restore-progress", LiveStatic), styled=view)
        view.show(listing, NOW)
        view.tick()
        await pilot.pause()
        assert spy.quiet
        newest = Backup(902, "COMPLETED", NOW - timedelta(minutes=5), True)
        view.show(replace(listing, inventory=replace(listing.inventory,
                                                     backups=(newest, *listing.inventory.backups))), NOW)
        await pilot.pause()
        assert spy.added == ["902"] and spy.clears == 0 and spy.cells == []
        assert table.cursor_key() == "900" and view.cursor_backup() == 900
        services.restore_state.begin(RestoreInProgress("proj", NOW - timedelta(minutes=3), THIS_CONSOLE,
                                                       what="daily backup 900"))
        view.tick()
        assert view.has_class("-restoring") and "RESTORING for 3m" in str(view.query_one("#restore-progress").render())
        spy.restyles, spy.texts = 0, []
        for _ in range(3):  # the once-a-second tick while the restore's line says the same
            view.tick()
        assert spy.restyles == 0 and spy.texts == []


async def test_an_unchanged_runbook_hint_is_not_repainted_per_check_result() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        hint = app.query_one("#runbook-hint", LiveStatic)
        assert "w opens" in hint.plain and hint.has_class("-shown")
        updates: list[str] = []
        original = hint.update

        def spy(content: Any = "", *, layout: bool = True) -> None:
            updates.append(str(content))
            original(content, layout=layout)

        hint.update = spy  # type: ignore[method-assign]
        for result in list(app.board.results.values()):  # a poll round whose results change nothing
            app.record_result(result)
        assert updates == []


async def test_at_80x24_the_deploy_tab_shows_both_lists_and_no_horizontal_scrollbar() -> None:
    app = OpsApp(fake_services(), live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await _tab(app, pilot, "5")
        pane = app.query_one(DeployPane)
        deployments, migrations = app.query_one(DeploymentsView), app.query_one(MigrationsView)
        screen_bottom = pane.region.bottom
        for view in (deployments, migrations):
            table = view.query_one(KeyedTable)
            assert table.region.height >= 3 and table.region.bottom <= screen_bottom, view  # on the first screen
            assert table.scrollbar_size_horizontal == 0  # no scrollbar row (← → still scroll)
        title = migrations.query_one(".migrations-title")
        # the migrations title follows the deployments list (its margin only), not a screenful of blank lines
        assert title.region.y == deployments.region.bottom + 1
        assert deployments.table.region.height >= 4  # the header and at least three deployments
        await pilot.press("M")  # the migrations, focused: nothing needs to scroll at this size
        await pilot.pause()
        assert migrations.query_one(KeyedTable).has_focus and pane.scroll_y == 0
