"""`?`: every key of the current screen, from the live bindings (so it never goes stale).

The tab's own keys come first, the keys that work everywhere last (the footer's order); typing
filters the list (by key or by what it does), Esc clears the filter, then closes.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.ui.widgets.live import LiveStatic

EVERYWHERE = "Everywhere"
_LABELS = {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter", "space": "Space",
           "ctrl+p": "Ctrl+P", "left": "←", "right": "→", "up": "↑", "down": "↓", "ctrl+q": "Ctrl+Q",
           "ctrl+c": "Ctrl+C", "tab": "Tab", "shift+tab": "Shift+Tab", "home": "Home", "end": "End",
           "pageup": "PgUp", "pagedown": "PgDn", "left_square_bracket": "[", "right_square_bracket": "]",
           "ctrl+s": "Ctrl+S"}


def key_label(key: str) -> str:
    return _LABELS.get(key, key)


def help_lines(entries: list[tuple[str, str]], sections: dict[str, str], labels: dict[str, str],
               query: str = "") -> list[str]:
    """The help text, grouped by section in first-seen order, keeping entries matching `query`
    (case-insensitive, in the key as shown, the key's name, the description or the section)."""
    needle = query.strip().lower()
    width = max((len(labels.get(k) or key_label(k)) for k, _ in entries), default=4) + 2
    grouped: dict[str, list[str]] = {}
    for key, desc in entries:
        section = sections.get(key, EVERYWHERE)
        shown = labels.get(key) or key_label(key)
        haystack = f"{shown} {key} {desc} {section}".lower()
        if needle and needle not in haystack:
            continue
        grouped.setdefault(section, []).append(f"  {shown:<{width}}{desc}")
    lines: list[str] = []
    for section, rows in grouped.items():
        if lines:
            lines.append("")
        lines.append(section)
        lines.extend(rows)
    return lines or [f"no key matches {query.strip()!r} (Esc clears the filter)"]


class HelpScreen(ModalScreen[None]):
    """Lists (key, description) pairs collected from the screen underneath, filtered as you type."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "clear_or_close", "Clear filter / close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 72; max-width: 98%; height: auto; max-height: 95%;
        background: $surface; border: round $primary; padding: 0 1; }
    HelpScreen .help-title { text-style: bold; }
    HelpScreen Input { margin: 0 0 1 0; }
    HelpScreen VerticalScroll { height: auto; max-height: 60vh; }
    HelpScreen .help-hint { color: $text-muted; }
    """

    def __init__(self, entries: list[tuple[str, str]], context: str, *,
                 sections: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.entries = entries
        self.context = context
        self.sections = sections or {}
        self.labels = labels or {}

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Keys: {self.context}"), classes="help-title")
            yield Input(placeholder="type to filter (a key or what it does)", id="help-filter", compact=True)
            with VerticalScroll():
                yield LiveStatic(Content("\n".join(help_lines(self.entries, self.sections, self.labels))),
                                 id="help-keys")
            yield Static(Content("↑ ↓ PgUp PgDn Home End move in a list · Tab moves between the list and the "
                                 "status lines\nEsc clears the filter, then closes this help."), classes="help-hint")

    @property
    def shown_text(self) -> str:
        return self.query_one("#help-keys", LiveStatic).plain

    @on(Input.Changed, "#help-filter")
    def _filter(self, event: Input.Changed) -> None:
        self.query_one("#help-keys", LiveStatic).show(
            Content("\n".join(help_lines(self.entries, self.sections, self.labels, event.value))))

    @on(Input.Submitted, "#help-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(None)

    def action_clear_or_close(self) -> None:
        box = self.query_one("#help-filter", Input)
        if box.value:
            box.value = ""
            return
        self.dismiss(None)
