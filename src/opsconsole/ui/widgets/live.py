"""Widgets that repaint only what changed: the console's idle cost on a slow link.

Textual repaints a widget's whole region whenever it is refreshed, whether or not its text
changed; `Static.update` with the same text and `DataTable.update_cell` (which refreshes the
whole table) both cost a full repaint. On a 64 kbit/s SSH hop that is the difference between a
quiet screen and a saturated link. So:

- `LiveStatic.show(text)` updates only when the text (or its styles) differ from what is shown.
- `KeyedTable.sync(rows)` diff-updates rows by key (dolphie's Processlist idiom): vanished rows
  are removed, new ones added, and each changed cell repaints only its own region; a table
  whose rows did not change writes nothing. The cursor stays on the same row key.

Textual sends a partial update of a line from the widget's left edge to the end of the change,
one colour code per cell on the way: a column that changes often (a duration, an age) is
cheapest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from rich.text import Text
from textual.content import Content
from textual.coordinate import Coordinate
from textual.css.scalar import Unit
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey


def still_cursor(widget: Widget) -> None:
    """No blinking text cursor: a blink repaints the field twice a second, for as long as it has
    the focus, idle or not. The cursor stays visible, steady."""
    if getattr(widget, "cursor_blink", False) is True:
        widget.cursor_blink = False  # type: ignore[attr-defined]


def _shown_key(content: Content) -> tuple[str, tuple[Any, ...]]:
    return content.plain, tuple(content.spans)


class LiveStatic(Static):
    """A Static whose `show` repaints only when what it shows changes."""

    def __init__(self, content: Content | str = "", **kwargs: Any) -> None:
        first = content if isinstance(content, Content) else Content(content)
        super().__init__(first, **kwargs)
        self._shown = _shown_key(first)
        self._shown_content = first

    def show(self, content: Content | str) -> bool:
        """Show `content` (a plain str is shown literally, never as markup); True if it changed."""
        new = content if isinstance(content, Content) else Content(content)
        key = _shown_key(new)
        if key == self._shown:
            return False
        same_size = self._same_size(self._shown_content, new)
        self._shown, self._shown_content = key, new
        # A new layout makes Textual repaint every scrollbar on the screen: only when the size changes.
        self.update(new, layout=not same_size)
        return True

    def _same_size(self, old: Content, new: Content) -> bool:
        if not self.size.width:
            return True  # not on screen (a closed card, a hidden tab): laid out afresh when shown
        styles = self.styles
        width, height = styles.width, styles.height
        if width is not None and width.is_auto:
            return False  # the width follows the text
        if height is not None and height.unit is Unit.CELLS:
            return True
        room = self.content_size.width
        rules: Any = styles  # what Textual itself passes to get_height (widget.get_content_height)
        return room > 0 and old.get_height(rules, room) == new.get_height(rules, room)

    @property
    def plain(self) -> str:
        return self._shown[0]


Cells = Sequence[Text | str]


def _as_text(value: Text | str) -> Text:
    # A fresh object per stored cell: `sync` tells rows apart by the identity of their first cell.
    # Text, never str: DataTable parses str cells as markup, and these are untrusted.
    return value.copy() if isinstance(value, Text) else Text(value)


class KeyedTable(DataTable[Text]):
    """A DataTable updated by row key; unchanged rows and cells cost nothing on screen."""

    DEFAULT_CSS = """
    KeyedTable { scrollbar-size-horizontal: 0; }
    """
    _cell_only: bool = False  # True while a single cell is being updated (see refresh)

    def set_columns(self, columns: Sequence[tuple[str, str]], widths: Mapping[str, int] | None = None) -> None:
        """(key, label) pairs; a different set of columns rebuilds the table (rows included).
        `widths` fixes a column's width (key -> cells): for text that arrives after its row or
        varies in length, whose auto width would otherwise grow (and re-lay-out the table)."""
        wanted = [key for key, _label in columns]
        if [c.value for c in self.columns] == wanted:
            return
        self.clear(columns=True)
        for key, text in columns:
            self.add_column(Text(text), key=key, width=(widths or {}).get(key))

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    def cursor_key(self) -> str | None:
        if not self.row_count or not 0 <= self.cursor_row < self.row_count:
            return None
        return self.row_keys[self.cursor_row]

    def sync(self, rows: Sequence[tuple[str, Cells]]) -> int:
        """Make the table show exactly `rows` ((key, cells) in order), touching only differences.
        Returns how many cells of existing rows changed (0: nothing was repainted but added or
        removed rows)."""
        wanted: dict[str, Cells] = {}
        for key, cells in rows:
            wanted.setdefault(str(key), cells)  # a duplicate key keeps its first row
        order = list(wanted)
        under_cursor = self.cursor_key()
        existing = self.row_keys
        for key in existing:
            if key not in wanted:
                self.remove_row(key)
        present = set(existing)
        column_keys = list(self.columns)
        changed = 0
        for key in order:
            cells = [_as_text(c) for c in wanted[key]][: len(column_keys)]
            cells += [Text("")] * (len(column_keys) - len(cells))
            if key not in present:
                self.add_row(*cells, key=key)
                continue
            for column_key, old, new in zip(column_keys, self.get_row(key), cells, strict=True):
                if old != new:
                    self._set_cell(key, column_key.value or "", new)
                    changed += 1
        if self.row_keys != order and column_keys:
            first = column_keys[0]
            rank = {id(self.get_cell(key, first)): i for i, key in enumerate(order)}
            self.sort(first, key=lambda value: rank[id(value)])
        if under_cursor is not None and under_cursor in wanted:
            index = self.get_row_index(under_cursor)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
        return changed

    def _set_cell(self, row_key: str, column_key: str, value: Text) -> None:
        column = self.columns[ColumnKey(column_key)]
        if column.auto_width and value.cell_len > column.content_width:
            self.update_cell(row_key, column_key, value, update_width=True)  # the layout changes: full repaint
            return
        self._cell_only = True
        try:
            self.update_cell(row_key, column_key, value)
        finally:
            self._cell_only = False
        self.refresh_coordinate(Coordinate(self.get_row_index(row_key), self.get_column_index(column_key)))

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False,
                recompose: bool = False) -> Self:
        # update_cell refreshes the whole table; while one cell changes, only its region is refreshed
        # (by refresh_coordinate, which passes that region).
        if self._cell_only and not regions and not layout and not recompose:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)
