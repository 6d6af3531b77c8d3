"""`?`: every key of the current screen, from the live bindings (so it never goes stale)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static


def key_label(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "escape": "Esc", "enter": "Enter", "space": "Space",
            "ctrl+p": "Ctrl+P", "left": "←", "right": "→", "ctrl+q": "Ctrl+Q", "ctrl+c": "Ctrl+C", "tab": "Tab",
            "shift+tab": "Shift+Tab"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    """Lists (key, description) pairs collected from the screen underneath."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 64; max-width: 95%; height: auto; max-height: 90%;
        background: $surface; border: round $primary; padding: 0 1; }
    HelpScreen .help-title { text-style: bold; margin-bottom: 1; }
    """

    def __init__(self, entries: list[tuple[str, str]], context: str) -> None:
        super().__init__()
        self.entries = entries
        self.context = context

    def compose(self) -> ComposeResult:
        width = max((len(key_label(k)) for k, _ in self.entries), default=4) + 2
        lines = [f"{key_label(k):<{width}}{desc}" for k, desc in self.entries]
        with VerticalScroll():
            yield Static(Content(f"Keys: {self.context}"), classes="help-title")
            yield Static(Content("\n".join(lines)), id="help-keys")
            yield Static(Content("\nEsc closes this help."))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
