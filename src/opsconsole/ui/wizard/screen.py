"""The full-screen guided wizard: the steps with their state and timing on the left, the current
step on the right (the runbook's words, its warning, live results, the preview, where to go, and
the keys). Every key goes to the engine (`runbooks.engine.Wizard`), which decides and journals;
this screen only draws what the engine says and collects what the operator types.

Warnings: a step with a `warning` shows it in full. With an `ack`, the step's keys do nothing until
the ack text is typed into the field below it (typed: pasting is refused), and the engine refuses
too; no key sequence gets past it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from opsconsole.domain.models import Status
from opsconsole.domain.text import format_age
from opsconsole.ui.format import GLYPH, LABEL, cell

if TYPE_CHECKING:
    from opsconsole.runbooks.engine import StepView, Wizard

STATE_GLYPH = {"pending": "·", "current": "▶", "running": "…", "passed": "✔", "done": "✔", "failed": "✖",
               "skipped": "↷", "refused": "⊘", "unknown": "?", "left": "◌"}
STATE_LABEL = {"pending": "pending", "current": "now", "running": "running", "passed": "passed", "done": "done",
               "failed": "failed", "skipped": "skipped", "refused": "refused", "unknown": "outcome unknown",
               "left": "left"}
# Keys that do something on a step (an ack-gated step ignores them until the ack is typed).
STEP_ACTIONS = frozenset({"start", "done", "failed", "skip", "next", "rerun", "verify", "close_run"})


ACK_FOCUS_DELAY_S = 0.3


def _param_text(value: object) -> str:
    """A parameter's value as an operator writes it (`status:waiting`, `1, 2`), not a Python repr."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_param_text(v) for v in value) or "(none)"
    return cell(value, 200)


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else format_age(max(0.0, seconds))


class AckInput(Input):
    """The field the ack text is typed into. Paste is refused: the operator types it."""

    def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        event.prevent_default()
        self.app.notify("Type the acknowledgement: pasting it does not count.", title="Warning",
                        severity="warning", timeout=6)


class WizardScreen(Screen[None]):
    """One wizard run. `follow=True`: another console holds it; this one watches, read-only."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Esc in the ack field leaves the field (for b, t, ?); elsewhere it goes back to the tabs.
        Binding("escape", "leave_field", "Leave the field"),
        Binding("escape", "leave", "Tabs"),
        Binding("x", "start('x')", "Run action", id="wizard.start"),
        Binding("enter", "start('enter')", "Start", show=False),
        Binding("d", "done", "Done"),
        Binding("f", "failed", "Not OK"),
        Binding("r", "rerun", "Re-check"),
        Binding("n", "next", "Next"),
        Binding("s", "skip", "Skip"),
        Binding("b", "back", "Back"),
        Binding("a", "ack", "Acknowledge"),
        Binding("v", "verify", "Verify"),
        Binding("c", "close_run", "Close run"),
        Binding("t", "timeline", "Timeline", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]
    DEFAULT_CSS = """
    WizardScreen { layout: vertical; }
    WizardScreen #wiz-head { height: 1; background: $panel; color: $text; text-style: bold; padding: 0 1; }
    WizardScreen #wiz-head.-follow { background: $warning 40%; }
    WizardScreen #wiz-body { height: 1fr; }
    WizardScreen #wiz-steps { width: 34; max-width: 36%; height: 100%; border-right: solid $panel;
        padding: 0 0 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    WizardScreen #wiz-detail { width: 1fr; height: 100%; padding: 0 1; scrollbar-gutter: stable; }
    WizardScreen .title { text-style: bold; }
    WizardScreen .muted { color: $text-muted; }
    WizardScreen #wiz-warning { background: $error; color: $text; text-style: bold; padding: 0 1; margin: 1 0 0 0;
        display: none; }
    WizardScreen #wiz-warning.-shown { display: block; }
    WizardScreen #wiz-ack { display: none; width: 100%; margin: 0; }
    WizardScreen #wiz-ack.-shown { display: block; }
    WizardScreen #wiz-results { margin-top: 1; }
    WizardScreen #wiz-message { color: $warning; text-style: bold; margin-top: 1; display: none; }
    WizardScreen #wiz-message.-shown { display: block; }
    WizardScreen #wiz-keys { color: $text-muted; margin-top: 1; }
    """

    def __init__(self, wizard: Wizard, *, follow_every_s: float = 2.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.wizard = wizard
        self.follow_every_s = follow_every_s
        self._clock = clock
        self._op_running = False
        self._bindings_key: tuple[object, ...] = ()
        self._ack_visit: object = None  # the step visit the ack field was given the focus for
        self.denials: list[str] = []
        wizard.on_change = self._changed

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(Content(""), id="wiz-head", classes="-follow" if self.wizard.follow else "")
        with Horizontal(id="wiz-body"):
            yield Static(Content(""), id="wiz-steps")
            with VerticalScroll(id="wiz-detail"):
                yield Static(Content(""), classes="title", id="wiz-title")
                yield Static(Content(""), id="wiz-text")
                yield Static(Content(""), id="wiz-warning")
                yield AckInput(placeholder="", id="wiz-ack")
                yield Static(Content(""), id="wiz-message")
                yield Static(Content(""), id="wiz-results")
                yield Static(Content(""), classes="muted", id="wiz-where")
                yield Static(Content(""), id="wiz-keys")
        yield Footer()

    def on_mount(self) -> None:
        self.render_view()
        self.set_interval(1.0, self._tick)
        if self.wizard.follow:
            self.set_interval(self.follow_every_s, self._follow_refresh)
        self._focus_ack()

    def _now(self) -> datetime:
        if self._clock is not None:
            return self._clock()
        services = getattr(self.app, "services", None)
        clock = getattr(services, "clock", None)
        from opsconsole.domain.models import utcnow

        return clock() if callable(clock) else utcnow()

    def on_screen_resume(self) -> None:
        """Back from a dialog (or from the tabs): draw what happened meanwhile (the ack field gets
        the focus again if the step needs it)."""
        self._ack_visit = None
        self.render_view()

    def _changed(self) -> None:
        if self.is_mounted:
            self.render_view()

    def _tick(self) -> None:
        if self.is_mounted:
            self.render_view()

    async def _follow_refresh(self) -> None:
        services = getattr(self.app, "services", None)
        if services is None:
            return
        events = await asyncio.to_thread(services.journal_events)
        self.wizard.refresh(events)

    # -- drawing -----------------------------------------------------------------------------
    def render_view(self) -> None:
        wiz = self.wizard
        now = self._now()
        self.query_one("#wiz-head", Static).update(Content(self._head()))
        self.query_one("#wiz-steps", Static).update(Content(self._steps_text(wiz.steps(), now)))
        step = wiz.step
        title = self.query_one("#wiz-title", Static)
        text = self.query_one("#wiz-text", Static)
        warning = self.query_one("#wiz-warning", Static)
        ack = self.query_one("#wiz-ack", AckInput)
        if wiz.visit is None and not wiz.closed:
            title.update(Content(f"Opening {wiz.runbook.title}…"))
            text.update(Content(wiz.runbook.description))
            warning.remove_class("-shown")
            ack.remove_class("-shown")
        elif wiz.closed or step is None:
            title.update(Content(self._end_title()))
            text.update(Content(self._closing_text()))
            warning.remove_class("-shown")
            ack.remove_class("-shown")
        else:
            index = wiz.index_of(step.id)
            number = f" · runbook {step.number}" if step.number else ""
            title.update(Content(f"{index}. {step.title}  [{step.kind}{number}]"))
            text.update(Content(step.text or ""))
            warning.set_class(bool(step.warning), "-shown")
            warning.update(Content(f"⚠ {step.warning}" if step.warning else ""))
            needs = wiz.needs_ack(step) and not wiz.follow
            ack.set_class(needs, "-shown")
            ack.placeholder = f"type {step.ack} to acknowledge" if needs else ""
        self.query_one("#wiz-results", Static).update(Content(self._results_text()))
        where = self.query_one("#wiz-where", Static)
        where_text = self._where_text()
        where.update(Content(where_text))
        where.display = bool(where_text)
        message = self.query_one("#wiz-message", Static)
        message.update(Content(wiz.message))
        message.set_class(bool(wiz.message), "-shown")
        self.query_one("#wiz-keys", Static).update(Content(self._keys_text()))
        signature = (wiz.mode(), wiz.needs_ack(step), wiz.closed, wiz.busy, self._op_running,
                     len(wiz.record.visits), wiz.visit.state if wiz.visit is not None else "")
        if signature != self._bindings_key:
            self._bindings_key = signature
            self.refresh_bindings()
        self._keep_ack_focus()

    def _head(self) -> str:
        wiz = self.wizard
        rec = wiz.record
        visit = wiz.visit
        parts = [rec.title]
        if wiz.closed:
            parts.append(f"closed: {rec.outcome}")
        elif wiz.at_end:
            parts.append("all steps walked")
        elif visit is not None and visit.index:
            parts.append(f"step {visit.index} of {rec.total}")
        if rec.opened_at is not None:
            parts.append(f"started {rec.opened_at:%H:%M} by {rec.opened_by.user}")
        if wiz.follow:
            parts.append("FOLLOWING read-only")
        elif wiz.lock.state in ("unavailable", "off"):
            parts.append("no lock")
        return " · ".join(parts)

    def _steps_text(self, views: list[StepView], now: datetime) -> str:
        """Two lines per step (its title; its state and time), each cut to the panel by the CSS."""
        lines = []
        for v in views:
            glyph = STATE_GLYPH.get(v.state, "·")
            dur = ""
            if v.visit is not None and v.visit.entered_at is not None:
                end = v.visit.ended_at or (now if v.state in ("current", "running") else None)
                if end is not None:
                    dur = _duration((end - v.visit.entered_at).total_seconds())
            lines.append(f"{glyph} {v.index}. {cell(v.step.title, 200)}")
            again = f" ×{v.visits}" if v.visits > 1 else ""
            extra = f"{STATE_LABEL.get(v.state, v.state)}{again}" + (f" · {dur}" if dur else "")
            if v.state in ("skipped", "refused") and v.visit is not None and v.visit.detail:
                extra += f": {v.visit.detail}"
            lines.append("   " + cell(extra, 200))
        wiz = self.wizard
        if wiz.at_end or wiz.closed:
            glyph = {"resolved": "✔", "unresolved": "✖", "abandoned": "↷"}.get(wiz.record.outcome, "▶")
            lines.append(f"{glyph} {wiz.record.outcome or 'is the incident over?'}")
        return "\n".join(lines)

    def _end_title(self) -> str:
        rec = self.wizard.record
        if rec.outcome == "resolved":
            return "Resolved: every step walked and the incident's checks are ok"
        if rec.outcome:
            return f"Closed ({rec.outcome}): {rec.close_detail}"
        return "Every step walked: are the incident's checks ok?"

    def _closing_text(self) -> str:
        wiz = self.wizard
        checks = ", ".join(wiz.runbook.closing_checks) or "none"
        return f"The checks that say this incident is over: {checks}. `opsconsole timeline` has the whole run."

    def _live_lines(self, live: dict[str, Any]) -> list[str]:
        lines = []
        for cid, item in live.items():
            result = item.result
            if item.running:
                lines.append(f"… {cid}  running")
            elif result is None:
                lines.append(f"· {cid}")
            else:
                status: Status = result.status
                latency = f" ({result.latency_ms:.0f} ms)" if result.latency_ms is not None else ""
                lines.append(f"{GLYPH[status]} {LABEL[status]:<4} {cid}{latency}")
                lines.append(f"    {cell(result.summary, 300)}")
        return lines

    def _results_text(self) -> str:
        from opsconsole.runbooks.engine import Mode

        wiz = self.wizard
        t = wiz.t
        mode = wiz.mode()
        lines: list[str] = []
        if mode in (Mode.END, Mode.CLOSED):
            lines += self._live_lines(t.closing)
        elif mode is Mode.CHECK:
            lines += self._live_lines(t.live)
            if t.waiting_until is not None:
                left = max(0.0, t.waiting_until - time.monotonic())
                total = max(0.0, (t.wait_deadline or time.monotonic()) - time.monotonic())
                lines.append(f"re-checking in {left:.0f} s (round {t.rounds}; up to {format_age(total)} more) "
                             "· Esc stops waiting")
        elif mode is Mode.FALLBACK:
            lines.append(f"By hand: {wiz.fallback_reason(with_link=False)}")
            lines += self._live_lines(t.live)
        elif mode is Mode.MANUAL and t.live:
            lines.append("For context (these decide nothing; you do):")
            lines += self._live_lines(t.live)
        elif mode is Mode.ACTION:
            step = wiz.step
            assert step is not None
            ref = wiz.vocabulary.action(step.action)
            tier = f" ({ref.tier})" if ref is not None else ""
            lines.append(f"Action: {step.action}{tier}")
            lines += [f"  {name} = {_param_text(value)}" for name, value in step.params.items()]
            for name, source in step.params_from.items():
                check_id, _sep, path = source.partition(":")
                lines.append(f"  {name}: from the check {check_id}" + (f" ({path})" if path else ""))
            lines += self._live_lines({k: v for k, v in t.live.items()})
            if t.preview is not None:
                lines.append(f"Preview: {cell(t.preview.target, 200)}")
                lines += [f"  {cell(line, 200)}" for line in t.preview.lines[:30]]
            if t.progress:
                lines.append(f"Progress: {t.progress}")
            # Once the journal has the step's end, its line below says it: not a second time here.
            visit = wiz.visit
            ended = visit is not None and visit.ended and bool(visit.detail)
            if t.refusal and not (ended and visit is not None and visit.state == "refused"):
                lines.append(f"Refused: {cell(t.refusal, 400)}")
            if t.outcome_text and (not ended or "(JOURNAL:" in t.outcome_text):
                lines.append(f"Outcome: {cell(t.outcome_text, 400)}")
        visit = wiz.visit
        if visit is not None and visit.state == "unknown":
            lines.insert(0, wiz.unknown_text(visit))
        elif visit is not None and visit.ended and visit.detail and mode is not Mode.CHECK:
            lines.append(f"{STATE_LABEL.get(visit.state, visit.state)}: {cell(visit.detail, 400)}")
        elif visit is not None and mode is Mode.CHECK and visit.state == "failed" and not t.live:
            lines.append(f"failed: {cell(visit.detail, 400)}")
        return "\n".join(lines)

    def _where_text(self) -> str:
        wiz = self.wizard
        step = wiz.step
        if step is None or not step.link:
            return ""
        link = wiz.links.get(step.link)
        return f"Where: {link}" if link else f"Where: {step.link} (not configured here)"

    def _keys_text(self) -> str:
        """The key line: the same keys as the footer (`check_action`), in the step's words."""
        from opsconsole.runbooks.engine import Mode

        wiz = self.wizard
        if wiz.follow:
            return "Following another console's run (read-only) · Esc back to the tabs · t timeline"
        if wiz.closed:
            return "The run is closed · Esc back to the tabs · t timeline"
        if wiz.busy or self._op_running:
            what = wiz.busy or "the previous key"
            tail = ("Esc stops waiting" if wiz.busy == "checks" else
                    "Esc asks a long action to stop between chunks" if wiz.busy == "action" else "")
            return f"{what} running… {tail}".rstrip()
        step = wiz.step
        if step is not None and wiz.needs_ack(step):
            if self._ack_has_focus():
                return (f"Type {step.ack} in the field above and press Enter: nothing on this step works before "
                        "that · Esc leaves the field")
            rest = " · b back" if self._can("back") else ""
            return f"a then type {step.ack} and Enter: nothing on this step works before that{rest} · Esc tabs"
        visit = wiz.visit
        if visit is not None and visit.state == "unknown":
            return "v record what the action did (after checking it) · Esc tabs"
        mode = wiz.mode()
        by_mode: dict[Mode, list[tuple[tuple[str, ...], str]]] = {
            Mode.CHECK: [(("rerun",), "r re-check"), (("next",), "n next"), (("skip",), "s skip (reason)")],
            Mode.ACTION: [(("start", "x"), "x run the action (preview, then confirm)"), (("skip",), "s skip (reason)"),
                          (("next",), "n next after a failure")],
            Mode.MANUAL: [(("done",), "d done"), (("failed",), "f did not work / no"), (("skip",), "s skip (reason)")],
            Mode.FALLBACK: [(("done",), "d done by hand"), (("failed",), "f not OK"), (("skip",), "s skip (reason)")],
            Mode.END: [(("rerun",), "r re-check"), (("close_run",), "c close the run (reason)")],
        }
        keys = list(by_mode.get(mode, []))
        keys.append((("back",), "b back"))
        if mode is not Mode.END:
            keys.append((("close_run",), "c close"))
        parts = [text for (action, *params), text in keys if self._can(action, *params)]
        return " · ".join([*parts, "Esc tabs"])

    def _ack_wanted(self) -> bool:
        wiz = self.wizard
        step = wiz.step
        return step is not None and wiz.needs_ack(step) and not wiz.follow and not wiz.closed

    def _keep_ack_focus(self) -> None:
        """A step that needs its ack gets the field focused however the run got there: by a key, by
        itself (the first step, or after its check steps), back from a dialog or from the tabs.
        Once per visit: Esc out of the field is the operator's choice (to use b, t, ?); a focuses it again."""
        visit = self.wizard.visit
        if visit is None or visit is self._ack_visit or not self._ack_wanted() or not self.is_mounted:
            return
        if self.app.screen is not self:
            return  # a dialog is open: on_screen_resume comes back here when it closes
        self._ack_visit = visit
        self._focus_ack()

    def _focus_ack(self) -> None:
        """Focus the ack field, a moment later: a key that brought the run here must not land in it."""
        if self._ack_wanted():
            self.set_timer(ACK_FOCUS_DELAY_S, self._focus_ack_now)

    def _focus_ack_now(self) -> None:
        if self.is_mounted and self._ack_wanted() and self.app.screen is self:
            ack = self.query_one("#wiz-ack", AckInput)
            if not ack.has_focus:
                ack.value = ""
                ack.focus()
            self.refresh_bindings()

    # -- operations (one at a time) -----------------------------------------------------------
    @property
    def op_running(self) -> bool:
        return self._op_running

    def _run(self, op: Callable[[], Awaitable[Any]]) -> None:
        """Hand one key's work to a worker; a key pressed while it runs is refused (said, not queued)."""
        if self._op_running:
            self.wizard.message = "wait: the previous key is still being handled"
            self.render_view()
            return
        self._op_running = True
        self.render_view()  # the keys refused meanwhile leave the footer

        async def go() -> None:
            from opsconsole.runbooks.engine import Denied

            try:
                result = await op()
            finally:
                self._op_running = False
            if isinstance(result, Denied):
                self.denials.append(result.message)
            if self.is_mounted:
                self.render_view()
                self._focus_ack()

        self.run_worker(go(), group="wizard-op", exit_on_error=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that do something now are shown (and work): the engine would refuse the
        others, so the footer, `?` and the key line leave them out."""
        from opsconsole.runbooks.engine import Mode

        wiz = self.wizard
        if self._ack_has_focus():  # every printable key is typed into the field: only Esc and Enter work
            return action == "leave_field"
        if action == "leave_field":
            return False
        if action in ("leave", "timeline", "help"):
            return True
        if wiz.follow or wiz.closed:
            return False
        if wiz.busy or self._op_running:
            return False  # an action runs, checks run or a re-check waits: Esc stops it, nothing else
        step = wiz.step
        if action == "ack":
            return bool(step is not None and wiz.needs_ack(step)) and not self._ack_has_focus()
        # An ack-gated step's keys are hidden until the ack is typed (and the engine refuses anyway).
        if step is not None and wiz.needs_ack(step) and action in STEP_ACTIONS:
            return False
        mode = wiz.mode()
        state = wiz.visit.state if wiz.visit is not None else ""
        if state in ("unknown", "running"):
            return action == "verify" and state == "unknown"  # nothing else before the outcome is recorded
        shown: dict[str, bool] = {
            "start": (mode is Mode.ACTION) if parameters == ("x",) else mode in (Mode.ACTION, Mode.CHECK, Mode.END),
            "done": mode in (Mode.MANUAL, Mode.FALLBACK),
            "failed": mode in (Mode.MANUAL, Mode.FALLBACK),
            "rerun": mode in (Mode.CHECK, Mode.END),
            "next": state in ("failed", "passed", "done") and mode is not Mode.END,
            "skip": mode in (Mode.CHECK, Mode.ACTION, Mode.MANUAL, Mode.FALLBACK),
            "back": bool(wiz.back_target()),
            "verify": False,
            "close_run": True,
        }
        return shown.get(action, True)

    def _ack_has_focus(self) -> bool:
        ack = next(self.query("#wiz-ack").results(AckInput), None)  # (none yet while composing)
        return ack is not None and ack.has_focus

    def _can(self, action: str, *parameters: object) -> bool:
        return bool(self.check_action(action, parameters))

    @on(events.DescendantFocus)
    @on(events.DescendantBlur)
    def _focus_moved(self) -> None:
        """`a Acknowledge` is offered only while the field does not have the focus."""
        self.refresh_bindings()
        keys = next(self.query("#wiz-keys").results(Static), None)
        if keys is not None:
            keys.update(Content(self._keys_text()))

    def action_leave(self) -> None:
        wiz = self.wizard
        if wiz.t.waiting_until is not None or wiz.busy == "checks":
            wiz.stop_waiting()
            return
        if wiz.busy == "action":
            wiz.cancel_running()
            wiz.message = "asked the action to stop after its current chunk"
            self.render_view()
            return
        self.dismiss(None)

    def action_ack(self) -> None:
        self._focus_ack_now()

    @on(Input.Submitted, "#wiz-ack")
    def _ack_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        typed = event.value
        event.input.value = ""
        self._run(lambda: self.wizard.acknowledge(typed))

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def action_start(self, key: str) -> None:
        from opsconsole.runbooks.engine import Mode

        mode = self.wizard.mode()
        if mode is Mode.ACTION:
            self._run(lambda: self._action_flow(key))
        elif mode in (Mode.CHECK, Mode.END):
            self._run(self.wizard.rerun)

    async def _action_flow(self, key: str) -> Any:
        from opsconsole.actions.model import Preview
        from opsconsole.runbooks.engine import Denied
        from opsconsole.ui.confirm import ConfirmScreen
        from opsconsole.ui.wizard.dialogs import PromptScreen

        wiz = self.wizard
        extra: dict[str, Any] = {}
        for spec in wiz.missing_params():
            answer = await self.app.push_screen_wait(PromptScreen(
                f"{wiz.step.action if wiz.step else ''}: {spec.name}", spec.help, min_len=3,
                detail=f"{spec.name} ({spec.expects}): {spec.help}"))
            if answer is None:
                return Denied(f"{spec.name} not given: nothing was done")
            extra[spec.name] = answer
        preview = await wiz.prepare(extra)
        if not isinstance(preview, Preview) or wiz.kernel is None:
            return preview
        requirement = wiz.kernel.requirement(preview, key)
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, requirement))
        if confirmation is None:
            await wiz.cancel_preview(preview)
            return None
        return await wiz.confirm(preview, confirmation, progress=self._progress)

    def _progress(self, p: Any) -> None:
        parts = []
        for name in ("changed", "refused", "skipped", "chunks_done"):
            value = getattr(p, name, None)
            if isinstance(value, int):
                parts.append(f"{name.replace('_', ' ')} {value:,}")
        elapsed = getattr(p, "elapsed_s", None)
        if isinstance(elapsed, int | float):
            parts.append(f"{elapsed:.1f} s")
        self.wizard.t.progress = " · ".join(parts) if parts else cell(p, 200)
        if self.is_mounted:
            self.render_view()

    def action_done(self) -> None:
        self._run(lambda: self.wizard.manual("done"))

    async def _failed_flow(self) -> Any:
        from opsconsole.ui.wizard.dialogs import PromptScreen

        note = await self.app.push_screen_wait(PromptScreen("Not OK: what did you find?", "a note for the journal "
                                                            "(optional)"))
        if note is None:
            return None
        return await self.wizard.manual("failed", note)

    def action_failed(self) -> None:
        self._run(self._failed_flow)

    def action_rerun(self) -> None:
        self._run(self.wizard.rerun)

    def action_next(self) -> None:
        self._run(self.wizard.next)

    def action_back(self) -> None:
        self._run(self.wizard.back)

    async def _skip_flow(self) -> Any:
        from opsconsole.runbooks.engine import Denied
        from opsconsole.ui.wizard.dialogs import PromptScreen

        wiz = self.wizard
        step = wiz.step
        if step is None:
            return None
        gate = wiz._gate("skipped")  # say it now, not after a reason was typed for nothing
        if gate is not None:
            return gate
        reason = await self.app.push_screen_wait(PromptScreen(f"Skip {step.title}: why?", "the reason (it goes "
                                                              "into the journal)", min_len=3))
        if reason is None:
            return Denied("not skipped")
        return await wiz.skip(reason)

    def action_skip(self) -> None:
        self._run(self._skip_flow)

    async def _verify_flow(self) -> Any:
        from opsconsole.ui.wizard.dialogs import VerifyScreen

        wiz = self.wizard
        visit = wiz.visit
        # The dialog is about the attempt whose outcome is unknown (not whatever was said last).
        unknown = visit is not None and visit.state == "unknown"
        what = wiz.unknown_text(visit) if unknown and visit is not None else "check what the action did"
        answer = await self.app.push_screen_wait(VerifyScreen(what))
        if answer is None:
            return None
        verdict, reason = answer
        return await wiz.verify(verdict, reason)

    def action_verify(self) -> None:
        self._run(self._verify_flow)

    async def _close_flow(self) -> Any:
        from opsconsole.ui.wizard.dialogs import PromptScreen

        wiz = self.wizard
        what = "unresolved" if wiz.at_end else "abandoned"
        reason = await self.app.push_screen_wait(PromptScreen(f"Close the run ({what}): why?", "the reason (it goes "
                                                              "into the journal)", min_len=3))
        if reason is None:
            return None
        return await wiz.close(reason, abandon=not wiz.at_end)

    def action_close_run(self) -> None:
        self._run(self._close_flow)

    def action_timeline(self) -> None:
        from opsconsole.ui.timeline import TimelineScreen

        services = getattr(self.app, "services", None)
        if services is not None:
            self.app.push_screen(TimelineScreen(services.settings))

    def action_help(self) -> None:
        """`?`: the keys that work now: the wizard's own first (as in the footer), then the console's
        (quit), then Textual's scrolling and field keys."""
        from opsconsole.ui.help import EVERYWHERE, HelpScreen

        own_section = f"wizard: {self.wizard.runbook.title}"
        textual_section = "Scrolling and fields"
        entries: list[tuple[str, str]] = []
        sections: dict[str, str] = {}
        labels: dict[str, str] = {}
        for key, active in self.active_bindings.items():
            binding = active.binding
            if key in sections or not active.enabled:
                continue
            if active.node is self and any(b.action == binding.action and key in b.key.split(",")
                                           for b in WizardScreen.BINDINGS if isinstance(b, Binding)):
                sections[key] = own_section
            elif active.node is self.app:
                sections[key] = EVERYWHERE
            else:
                sections[key] = textual_section
            entries.append((key, binding.description or binding.action))
            labels[key] = self.app.get_key_display(binding)
        rank = {own_section: 0, EVERYWHERE: 1, textual_section: 2}
        entries.sort(key=lambda kv: rank[sections[kv[0]]])  # stable: the footer's order within each
        self.app.push_screen(HelpScreen(entries, own_section, sections=sections, labels=labels))
