"""KeyedTable and LiveStatic: a refresh that changes nothing repaints nothing; a changed cell
repaints only its own region; rows keep their place and the cursor its row."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from opsconsole.ui.widgets.live import KeyedTable, LiveStatic


class CountingTable(KeyedTable):
    """Counts repaints of the whole table, and the regions of partial ones."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full = 0
        self.partial: list[Region] = []

    def refresh(self, *regions: Region, **kwargs: Any) -> Any:
        if self.is_mounted and not self._cell_only:
            if regions:
                self.partial.extend(regions)
            else:
                self.full += 1
        return super().refresh(*regions, **kwargs)


class CountingStatic(LiveStatic):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: list[bool] = []  # the layout flag of each real update

    def update(self, content: Any = "", *, layout: bool = True) -> None:
        self.updates.append(layout)
        super().update(content, layout=layout)


class Harness(App[None]):
    def compose(self) -> ComposeResult:
        table = CountingTable(cursor_type="row", id="t")
        table.set_columns([("age", "age"), ("id", "id"), ("state", "state")])
        yield table
        yield CountingStatic("", id="line", classes="line")

    CSS = "#line { height: 1; }"


def rows(*items: tuple[str, str, str]) -> list[tuple[str, list[Text | str]]]:
    return [(ident, [age, ident, state]) for age, ident, state in items]


async def test_an_unchanged_refresh_repaints_nothing_and_a_changed_cell_only_itself() -> None:
    app = Harness()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(CountingTable)
        table.sync(rows(("9s", "a", "waiting"), ("40s", "b", "waiting"), ("3m", "c", "failed [b]x[/b]")))
        await pilot.pause()
        table.full, table.partial = 0, []
        table.sync(rows(("9s", "a", "waiting"), ("40s", "b", "waiting"), ("3m", "c", "failed [b]x[/b]")))
        await pilot.pause()
        assert table.full == 0 and table.partial == []
        table.sync(rows(("19s", "a", "waiting"), ("40s", "b", "waiting"), ("3m", "c", "failed [b]x[/b]")))
        await pilot.pause()
        assert table.full == 0
        assert len(table.partial) == 1 and table.partial[0].y == 1 and table.partial[0].x == 0  # row a, column age
        assert table.get_cell("a", "age") == Text("19s")
        assert str(table.get_cell("c", "state")) == "failed [b]x[/b]"  # literal text, never markup


async def test_rows_keep_their_keys_order_and_the_cursor_its_row() -> None:
    app = Harness()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(CountingTable)
        table.sync(rows(("1m", "a", "x"), ("2m", "b", "x"), ("3m", "c", "x")))
        await pilot.pause()
        table.move_cursor(row=1)  # on "b"
        table.sync(rows(("0s", "new", "x"), ("1m", "a", "x"), ("2m", "b", "x"), ("3m", "c", "x")))
        await pilot.pause()
        assert table.row_keys == ["new", "a", "b", "c"]
        assert table.cursor_key() == "b"  # the cursor followed its row, not its index
        table.sync(rows(("3m", "c", "x"), ("2m", "b", "x")))  # "new" and "a" vanished, order changed
        await pilot.pause()
        assert table.row_keys == ["c", "b"] and table.row_count == 2
        assert table.cursor_key() == "b"
        table.sync(rows(("3m", "c", "x"), ("2m", "b", "x"), ("2m", "b", "dup")))  # a duplicate key keeps its first
        assert table.row_keys == ["c", "b"] and str(table.get_cell("b", "state")) == "x"


async def test_a_wider_value_widens_its_column() -> None:
    app = Harness()
    async with app.run_test(size=(60, 12)) as pilot:
        table = app.query_one(CountingTable)
        table.sync(rows(("1m", "a", "x")))
        await pilot.pause()
        table.sync(rows(("1m", "a", "a much longer state than before")))
        await pilot.pause()
        assert table.columns[next(k for k in table.columns if k.value == "state")].content_width >= 31


async def test_live_static_updates_only_on_change_and_without_a_layout_when_the_size_stays() -> None:
    app = Harness()
    async with app.run_test(size=(60, 12)) as pilot:
        line = app.query_one(CountingStatic)
        assert line.show("✖ api") is True
        assert line.show("✖ api") is False  # same text: nothing repainted
        await pilot.pause()
        assert line.show("✖ api >1s") is True
        assert line.updates == [False, False]  # a one-line widget never needs a new layout
        assert line.plain == "✖ api >1s"
