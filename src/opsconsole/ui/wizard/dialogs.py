"""Small modal screens of the wizard: a reason or note, the verdict after "outcome unknown",
the runbook picker, the resume offer at start, and "someone else runs it: follow?"."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

ARM_S = 0.4
"""Keys that reach a prompt sooner than this after it opened were meant for something else."""

_CSS = """
    {name} {{ align: center middle; }}
    {name} > Vertical {{ width: 90; max-width: 98%; height: auto; max-height: 90%; background: $surface;
        border: round $primary; padding: 0 1; }}
    {name} .head {{ text-style: bold; }}
    {name} .muted {{ color: $text-muted; }}
    {name} .bad {{ color: $error; text-style: bold; }}
    {name} DataTable {{ height: auto; max-height: 14; }}
"""


class PromptScreen(ModalScreen[str | None]):
    """One line of text (a skip reason, a note); Enter gives it back, Esc cancels.

    `min_len`: shorter answers are not accepted (the field says why)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = _CSS.format(name="PromptScreen")

    def __init__(self, title: str, placeholder: str, *, min_len: int = 0, detail: str = "",
                 arm_s: float = ARM_S) -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder
        self.min_len = min_len
        self.detail = detail
        self.arm_s = arm_s

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self.title_text), classes="head")
            if self.detail:
                yield Static(Content(self.detail), classes="muted")
            # Disabled for a moment: keys typed for something else (a dialog that just closed) must
            # not become a reason and an Enter that skips a step.
            yield Input(placeholder=self.placeholder, id="prompt", disabled=self.arm_s > 0)
            yield Static(Content(""), classes="bad", id="prompt-problem")
            yield Static(Content("Enter records it · Esc cancels"), classes="muted")

    def on_mount(self) -> None:
        if self.arm_s > 0:
            self.set_timer(self.arm_s, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        box = self.query_one("#prompt", Input)
        box.disabled = False
        box.focus()

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if len(text) < self.min_len:
            self.query_one("#prompt-problem", Static).update(
                Content(f"at least {self.min_len} characters: it goes into the journal"))
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class VerifyScreen(ModalScreen[tuple[str, str] | None]):
    """After "outcome unknown": what the operator found (d done, n not done, p partly) and what
    they checked. Both are needed; the answer goes into the journal for the attempt."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = _CSS.format(name="VerifyScreen")
    VERDICTS: ClassVar[dict[str, tuple[str, str]]] = {"d": ("done", "it was done"),
                                                       "n": ("not_done", "it was not done"),
                                                       "p": ("partial", "partly done")}

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.verdict = ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content("Outcome unknown: check what the action did, then record it"), classes="head")
            yield Static(Content(self.what), classes="muted")
            yield Static(Content("d it was done · n it was not done · p partly"), id="verdict")
            yield Input(placeholder="what did you check? (Enter records it)", id="reason", disabled=True)
            yield Static(Content(""), classes="bad", id="verify-problem")
            yield Static(Content("Esc cancels"), classes="muted")

    def on_key(self, event: events.Key) -> None:
        box = self.query_one("#reason", Input)
        if box.has_focus or event.key not in self.VERDICTS:
            return
        event.stop()
        self.verdict, label = self.VERDICTS[event.key]
        self.query_one("#verdict", Static).update(Content(f"verdict: {label} (d / n / p to change)"))
        box.disabled = False
        box.focus()

    @on(Input.Submitted, "#reason")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not self.verdict or len(text) < 3:
            self.query_one("#verify-problem", Static).update(Content("choose d, n or p and say what you checked"))
            return
        self.dismiss((self.verdict, text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickerScreen(ModalScreen[str | None]):
    """`w`: the runbooks, with open runs and failing triggers; Enter opens one (its id)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,w", "cancel", "Close")]
    DEFAULT_CSS = _CSS.format(name="PickerScreen")

    def __init__(self, rows: list[tuple[str, str, str]], notices: list[str], *, title: str = "Runbooks") -> None:
        """`rows`: (runbook id, title, state) in display order."""
        super().__init__()
        self.rows = rows
        self.notices = notices
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"{self.title_text}: Enter opens the guided wizard"), classes="head")
            table: DataTable[Text] = DataTable(cursor_type="row", id="runbooks")
            table.add_column(Text("runbook"), key="title")
            table.add_column(Text("now"), key="state")
            for rid, title, state in self.rows:
                table.add_row(Text(title), Text(state), key=rid)
            yield table
            for notice in self.notices:
                yield Static(Content(notice), classes="bad")
            yield Static(Content("↑↓ choose · Enter opens · Esc closes"), classes="muted")

    def on_mount(self) -> None:
        self.query_one("#runbooks", DataTable).focus()

    @on(DataTable.RowSelected, "#runbooks")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        self.dismiss(str(key) if key is not None else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ResumeScreen(ModalScreen[tuple[str, str] | None]):
    """At start: runs a killed or disconnected console left open, and runs live in another console
    (`live`: it holds their lock). Enter resumes the highlighted one, or follows it when it is live;
    f follows it read-only; Esc decides later (w lists them)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Later"),
                                             Binding("f", "follow", "Follow read-only")]
    DEFAULT_CSS = _CSS.format(name="ResumeScreen")

    def __init__(self, offers: list[tuple[str, str]], *, live: set[str] | None = None) -> None:
        """`offers`: (run id, "Resume API Down / 500 Errors at step 3 of 4 (started 03:12 by alice ...)")."""
        super().__init__()
        self.offers = offers
        self.live = live or set()

    def head(self) -> str:
        if self.live and all(run in self.live for run, _text in self.offers):
            return "A runbook run is live in another console: follow it read-only"
        if self.live:
            return "Runbook runs are open: some left mid-run, some live in another console"
        return "A runbook run was left open (the console stopped mid-run)"

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self.head()), classes="head")
            table: DataTable[Text] = DataTable(cursor_type="row", show_header=False, id="offers")
            table.add_column(Text("run"), key="run")
            for run_id, text in self.offers:
                table.add_row(Text(text), key=run_id)
            yield table
            enter = ("Enter follows it" if self.live and len(self.live) == len(self.offers) else
                     "Enter resumes it (follows a live one)" if self.live else "Enter resumes it")
            yield Static(Content(f"{enter} · f follows it read-only · Esc later (w lists it)"), classes="muted")

    def on_mount(self) -> None:
        self.query_one("#offers", DataTable).focus()

    def _current(self) -> str | None:
        table: DataTable[Text] = self.query_one("#offers", DataTable)
        if not self.offers or not 0 <= table.cursor_row < len(self.offers):
            return None
        return self.offers[table.cursor_row][0]

    @on(DataTable.RowSelected, "#offers")
    def _chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        run = self._current()
        # A run live in another console cannot be resumed here (it holds the lock): follow it.
        self.dismiss(("follow" if run in self.live else "resume", run) if run else None)

    def action_follow(self) -> None:
        run = self._current()
        self.dismiss(("follow", run) if run else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HeldScreen(ModalScreen[bool]):
    """Another console runs this runbook: who and since when; f follows it read-only."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,n", "cancel", "Cancel"),
                                             Binding("f", "follow", "Follow read-only")]
    DEFAULT_CSS = _CSS.format(name="HeldScreen")

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content("Someone else is running this runbook"), classes="head")
            yield Static(Content(self.message))
            yield Static(Content("f follows it read-only (rebuilt from the shared journal) · Esc cancels"),
                         classes="muted")

    def action_follow(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
