"""Modal screens of the DLQ tab: inspect a message, edit its payload, give a discard reason,
and follow a bulk action's progress. All untrusted text is rendered literally."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar

from rich.syntax import Syntax
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, ProgressBar, Static, TextArea

from opsconsole.domain.dlq import DlqError, DlqMessageDetail, check_payload_text, literal

if TYPE_CHECKING:
    from opsconsole.adapters.dlq import DlqStore

_MODAL_CSS = """
    {name} {{ align: center middle; }}
    {name} > Vertical {{ width: 110; max-width: 98%; height: 90%; background: $surface;
        border: round $primary; padding: 0 1; }}
    {name} .head {{ text-style: bold; }}
    {name} .muted {{ color: $text-muted; }}
    {name} .bad {{ color: $error; text-style: bold; }}
"""


def _fmt_time(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if hasattr(value, "strftime") else "–"


class MessageScreen(ModalScreen[str | None]):
    """One message: the error, attempts, history, related alert and the payload (pretty JSON).

    Dismisses with "edit" when the operator asks to fix the payload."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("a", "load_all", "Show all of the payload"),
        Binding("e", "edit", "Fix the payload"),
    ]
    DEFAULT_CSS = _MODAL_CSS.format(name="MessageScreen") + """
    MessageScreen #payload { height: auto; }
    """

    def __init__(self, detail: DlqMessageDetail, store: DlqStore | None) -> None:
        super().__init__()
        self.detail = detail
        self.store = store
        self.full_loaded = False

    def compose(self) -> ComposeResult:
        d = self.detail
        code = "none" if d.error_code is None else str(d.error_code)
        transient = {True: "transient: a retry can succeed", False: "not transient: a retry fails again",
                     None: "unknown code"}[d.transient]
        facts = [f"message {d.id} · {d.status} · received {_fmt_time(d.received_at)}",
                 f"error {code}: {d.meaning} ({transient})" + (" · NEVER re-queued (configured)"
                                                              if d.never_requeue else ""),
                 f"error text: {d.error_message or '–'}",
                 f"sid {d.message_sid or '–'} · endpoint {d.endpoint or '–'} · workflow {d.workflow or '–'} · "
                 f"attempts {d.attempts if d.attempts is not None else '–'} · last {_fmt_time(d.last_attempt_at)}"]
        if d.requeued_at:
            facts.append(f"re-queued {_fmt_time(d.requeued_at)} by {d.requeued_by} -> {d.requeue_ref}")
        if d.discarded_at:
            facts.append(f"discarded {_fmt_time(d.discarded_at)} by {d.discarded_by}: {d.discard_reason}")
        if d.related_alert is not None:
            a = d.related_alert
            facts.append(f"Twilio alert {a.sid} ({a.error_code}, {_fmt_time(a.date)}): {a.text}")
        elif d.alert_note:
            facts.append(f"Twilio alert: {d.alert_note}")
        for h in d.history:
            facts.append(f"history: {h.at} {h.action} by {h.by} {h.detail}")
        size = (f"payload: {d.payload_bytes:,} bytes" + (f", showing the first {len(d.payload_text):,} of "
                f"{d.payload_chars:,} characters (a: show all)" if d.truncated else ""))
        problem = f"cannot be re-queued: {d.payload_problem}" if d.payload_problem else "payload valid for the queue"
        with Vertical():
            yield Static(Content(f"Dead-letter message {d.id}"), classes="head")
            with VerticalScroll():
                yield Static(Content("\n".join(literal(f, single_line=True, limit=400) for f in facts)))
                yield Static(Content(f"{size} · {problem}"), classes="bad" if d.payload_problem else "muted")
                yield Static(self._payload_renderable(d.payload_text, d.payload_parsed), id="payload")
            yield Static(Content("Esc closes · a shows all of a truncated payload · e fixes the payload"),
                         classes="muted")

    @staticmethod
    def _payload_renderable(text: str, parsed: bool) -> Syntax | Content:
        # Syntax highlights without interpreting markup; a malformed body is plain literal text.
        if parsed:
            return Syntax(text, "json", theme="ansi_dark", word_wrap=True, background_color="default")
        return Content(text)

    async def action_load_all(self) -> None:
        if self.store is None or self.full_loaded or not self.detail.truncated:
            return
        full = await self.store.get_full_payload(self.detail.id)
        payload = self.query_one("#payload", Static)
        if isinstance(full, DlqError):
            self.notify(full.message, title="Payload", severity="error", markup=False)
            return
        self.full_loaded = True
        payload.update(self._payload_renderable(full.text, full.parsed))

    def action_edit(self) -> None:
        self.dismiss("edit")

    def action_close(self) -> None:
        self.dismiss(None)


class EditPayloadScreen(ModalScreen[str | None]):
    """An editor for a payload; the JSON is validated (object + the queue's fields) before it is
    accepted. Dismisses with the new text, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Cancel"),
                                             Binding("ctrl+s", "save", "Validate and save")]
    DEFAULT_CSS = _MODAL_CSS.format(name="EditPayloadScreen") + """
    EditPayloadScreen TextArea { height: 1fr; }
    """

    def __init__(self, message_id: int, text: str) -> None:
        super().__init__()
        self.message_id = message_id
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Fix the payload of message {self.message_id}"), classes="head")
            yield TextArea(self.text, language=None, id="editor")
            yield Static(Content("Ctrl+S validates and saves (then confirm) · Esc cancels, nothing changes"),
                         classes="muted")
            yield Static(Content(""), classes="bad", id="edit-problem")

    def action_save(self) -> None:
        text = self.query_one(TextArea).text
        check = check_payload_text(text)
        if not check.ok:
            self.query_one("#edit-problem", Static).update(Content(f"not accepted: {check.problem}"))
            return
        self.dismiss(text)

    def action_close(self) -> None:
        self.dismiss(None)


class ReasonScreen(ModalScreen[str | None]):
    """Asks why messages are discarded (the reason is stored with them and journaled)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Cancel")]
    DEFAULT_CSS = """
    ReasonScreen { align: center middle; }
    ReasonScreen > Vertical { width: 80; height: auto; background: $surface; border: round $warning;
        padding: 0 1; }
    """

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Discard {self.what}: why? (stored with each message; undo with U)"))
            yield Input(placeholder="e.g. recipient number invalid, duplicates of SM…", id="reason")

    @on(Input.Submitted, "#reason")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_close(self) -> None:
        self.dismiss(None)


class ProgressScreen(ModalScreen[None]):
    """A bulk action's progress; Esc asks to stop after the current chunk."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "stop", "Stop after this chunk")]
    DEFAULT_CSS = """
    ProgressScreen { align: center middle; }
    ProgressScreen > Vertical { width: 80; height: auto; background: $surface; border: round $primary;
        padding: 0 1; }
    """

    def __init__(self, title: str, total: int | None, on_stop: object) -> None:
        super().__init__()
        self.title_text = title
        self.total = total
        self._on_stop = on_stop
        self.stopping = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(self.title_text))
            yield ProgressBar(total=self.total, show_eta=True, id="bar")
            yield Static(Content("starting…"), id="progress-text")
            yield Static(Content("Esc stops after the current chunk (each chunk commits on its own)"))

    def advance_to(self, done: int, text: str) -> None:
        self.query_one(ProgressBar).update(progress=done)
        self.query_one("#progress-text", Static).update(Content(text))

    def action_stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            stop = self._on_stop
            if callable(stop):
                stop()
            self.query_one("#progress-text", Static).update(Content("stopping after the current chunk…"))

    def finish(self) -> None:
        self.dismiss(None)


def pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
