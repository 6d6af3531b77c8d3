"""The console: header, status strip, six tabs, footer. Receives `Services`; does no I/O itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.content import Content
from textual.lazy import Lazy
from textual.timer import Timer
from textual.widgets import Footer, Static, TabbedContent, TabPane

from opsconsole.domain.models import SYSTEMS, CheckResult, Status
from opsconsole.domain.ports import Check
from opsconsole.runbooks.catalog import links
from opsconsole.services import CHECK_IDS, Services, StatusBoard
from opsconsole.ui.commands import OpsCommands, PaletteHost
from opsconsole.ui.format import Freshness, freshness
from opsconsole.ui.help import EVERYWHERE, HelpScreen, key_label
from opsconsole.ui.panes.base import Pane
from opsconsole.ui.panes.tabs import TABS, ApiPane
from opsconsole.ui.themes import DEFAULT_THEME, builtin_themes, no_color_requested, theme_for_terminal, user_themes
from opsconsole.ui.widgets.live import LiveStatic, still_cursor
from opsconsole.ui.widgets.status import StatusBadge

CHECK_ORDER = {cid: i for i, cid in enumerate(CHECK_IDS)}
EXIT_GRACE_S = 1.0  # after SIGTERM: how long a graceful exit may take before the loop is left
HINT_CATALOG_DELAY_S = 0.5
"""The runbook catalog for the status-area hint is read this long after start: off the first frame."""


def _declared_here(node: object, binding: Binding) -> bool:
    """Whether `binding` comes from an opsconsole class's own BINDINGS (not inherited from a
    Textual widget: a KeyedTable's cursor keys are DataTable's)."""
    for cls in type(node).__mro__:
        if not cls.__module__.startswith("opsconsole"):
            continue
        for declared in cls.__dict__.get("BINDINGS", ()):
            if isinstance(declared, Binding) and declared.action == binding.action and \
                    binding.key in declared.key.split(","):
                return True
    return False


class EnvHeader(Static):
    """Environment name (danger-styled when production-like), READ-ONLY and PAUSED flags."""

    DEFAULT_CSS = """
    EnvHeader { height: 1; background: $panel; color: $text; padding: 0 1; text-style: bold; }
    EnvHeader.-danger { background: $error; color: $text; }
    """


class OpsApp(App[None]):
    """The on-call console."""

    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    COMMANDS = App.COMMANDS | {OpsCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        # On a bastion, Ctrl+C means "get me out": quit (and stop the demo), as every CLI does.
        Binding("ctrl+c", "quit", "Quit", show=False),
        Binding("question_mark", "help", "Help", key_display="?"),
        # The guided wizards come first: at 80 columns the footer has room for the first few keys only.
        Binding("w", "runbooks", "Runbooks"),
        Binding("r", "refresh", "Refresh"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("t", "timeline", "Timeline"),
        Binding("m", "manual_step", "Log step"),
        Binding("M", "show_migrations", "Migrations (Deploy tab)", show=False),
        *[Binding(str(i), f"show_tab('{tab}')", label, show=False)
          for i, (tab, label, _cls) in enumerate(TABS, start=1)],
    ]

    def __init__(self, services: Services, *, theme: str | None = None, live: bool = True,
                 user_theme_dir: Path | None = None, read_only: bool | None = None,
                 start_runbook: str | None = None, resume_run: str | None = None,
                 offer_resume: bool = True) -> None:
        # NO_COLOR: Textual strips colour entirely (its NoColor filter) only for ANSI-native output;
        # for a truecolor theme it would paint in greys instead. Ask for native ANSI so none is sent.
        super().__init__(ansi_color=True if no_color_requested(os.environ) else None)
        self.services = services
        # `opsconsole runbook start ID` / `resume RUN_ID`; otherwise open runs are offered at start.
        self.start_runbook = start_runbook
        self.resume_run = resume_run
        self.offer_resume = offer_resume
        self.live = live
        self.paused = False
        self.read_only = services.settings.environment.read_only if read_only is None else read_only
        self._in_flight: set[str] = set()
        self._next_due: dict[str, float] = {}  # check id -> monotonic time its next poll is due
        self._poll_timer: Timer | None = None
        self._exit_timer: asyncio.TimerHandle | None = None  # the fallback after SIGTERM (on_unmount cancels it)
        self._theme_problems: list[str] = []
        for t in builtin_themes():
            self.register_theme(t)
        extra, problems = user_themes(user_theme_dir)
        for t in extra:
            self.register_theme(t)
        self._theme_problems = [str(p) for p in problems]
        # A chosen theme wins; otherwise the terminal decides (16 colours: the ANSI contrast theme).
        wanted = theme or services.settings.ui.theme or theme_for_terminal(os.environ)
        if wanted not in self.available_themes:
            self._theme_problems.append(f"theme {wanted!r} not found; using {DEFAULT_THEME}. "
                                        f"Available: {', '.join(sorted(self.available_themes))}")
            wanted = DEFAULT_THEME
        self.theme = wanted

    @property
    def board(self) -> StatusBoard:
        return self.services.board

    @property
    def interval_s(self) -> float:
        """The default polling interval; each check may have its own (`interval_for`)."""
        return self.services.settings.checks.interval_s

    def interval_for(self, check_id: str) -> float:
        return self.services.settings.checks.interval_for(check_id)

    def freshness(self, result: CheckResult, now: datetime | None = None) -> Freshness:
        """How fresh `result` is against its own check's interval (badges, cards, the kernel agree)."""
        checks = self.services.settings.checks
        return freshness(result.checked_at, now or self.services.clock(), interval_s=checks.interval_for(result.id),
                         timeout_s=checks.timeout_s, stale_after_s=checks.stale_after_s(result.id))

    def compose(self) -> ComposeResult:
        yield EnvHeader(self._header_text(), id="env-header",
                        classes="-danger" if self.services.settings.environment.production_like else "")
        with Grid(id="status-strip"):
            for system in SYSTEMS:
                yield StatusBadge(system, id=f"badge-{system}")
        yield LiveStatic(Content(""), id="runbook-hint")  # "api.health FAIL: w opens API Down / 500 Errors"
        deep_links = links(self.services.settings)
        with TabbedContent(id="tabs"):
            for tab, label, cls in TABS:
                with TabPane(label, id=f"tab-{tab}"):
                    pane = cls(deep_links, id=f"pane-{tab}")
                    # Panes are built right after the first frame: header, badges and tabs paint first.
                    yield Lazy(pane)
        yield Footer(compact=True)

    def _header_text(self) -> Content:
        env = self.services.settings.environment
        parts = [f"opsconsole · {env.name}"]
        if self.read_only:
            parts.append("READ-ONLY")
        if self.paused:
            parts.append("POLLING PAUSED (p resumes)")
        return Content("  ·  ".join(parts))

    def on_mount(self) -> None:
        self._exit_on_signals()
        for problem in self._theme_problems:
            self.notify(problem, title="Theme", severity="warning", markup=False)
        # Show whatever is already known (snapshots, or results from before a restart).
        for result in list(self.board.results.values()):
            self._apply(result)
        # Ages and staleness: recomputed every second, repainted only when their text changes.
        self.set_interval(1.0, self._tick)
        self.run_worker(self._report_unfinished(), group="unfinished", exit_on_error=False)
        self._fit_footer(self.size.width)
        self.run_worker(self._wizards_at_start(), group="wizard-start", exit_on_error=False)
        # The runbook hint needs the team's runbooks too: read them (small TOML files) once the first
        # frame is painted, in a thread, and suggest from them from then on.
        self.set_timer(HINT_CATALOG_DELAY_S, self._load_runbooks_for_hint)
        if self.live:
            self.call_after_refresh(self.action_refresh)

    def _exit_on_signals(self) -> None:
        """SIGHUP (the SSH connection dropped) and SIGTERM end the app through its own loop.

        The process-wide handler (cli) raises SystemExit wherever the main thread is; once the loop
        runs that may be inside a worker, which swallows it, and the console would go on with no
        terminal. Handled by the loop, the exit always happens: locks released, demo stopped."""
        import signal

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_exit_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no such signal
                pass

    def _on_exit_signal(self, signum: int) -> None:
        import signal

        if signum == signal.SIGHUP:  # the terminal is gone: nothing to restore, leave the loop now
            self._exit_now(signum)
        self.exit(return_code=128 + signum)
        # A graceful exit can stall (a check in flight, a terminal that no longer reads): after a
        # second, leave the loop outright. SystemExit raised by a loop callback, never inside a
        # worker, always propagates.
        self._exit_timer = asyncio.get_running_loop().call_later(EXIT_GRACE_S, self._exit_now, signum)

    @staticmethod
    def _exit_now(signum: int) -> None:
        raise SystemExit(128 + signum)

    async def _report_unfinished(self) -> None:
        """Actions a killed or disconnected console left without an outcome: say so at once."""
        found = await asyncio.to_thread(self.services.unfinished_attempts)
        for attempt in found:
            if await asyncio.to_thread(attempt.running_here):
                self.notify(f"in progress: {attempt.action} of {attempt.target}, started by "
                            f"{attempt.operator.user} (process {attempt.pid} is still running)",
                            title="Action in progress", severity="information", timeout=20, markup=False)
                continue
            self.notify(attempt.message(), title="Outcome unknown", severity="warning", timeout=120, markup=False)

    async def _wizards_at_start(self) -> None:
        """`runbook start ID` / `runbook resume RUN_ID`, else the offer to resume a run left open."""
        from opsconsole.ui.wizard import launch

        if self.start_runbook:
            await launch.open_runbook(self, self.start_runbook)
        elif self.resume_run:
            await launch.resume_run(self, self.resume_run)
        elif self.offer_resume:
            await launch.offer_resume(self)

    # The tabs' keys do nothing while a wizard fills the screen (its own keys are the ones shown).
    # Every app-level key that changes what is behind the wizard (a tab, the polling) is inert and unlisted.
    _TAB_ACTIONS = frozenset({"show_tab", "show_migrations", "manual_step", "runbooks", "toggle_pause", "refresh"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self._TAB_ACTIONS
                    and any(type(screen).__name__ == "WizardScreen" for screen in self.screen_stack))

    def action_runbooks(self) -> None:
        """`w`: the runbook picker (the guided wizards)."""
        from opsconsole.ui.wizard import launch

        self.run_worker(launch.picker(self), group="wizard-picker", exclusive=True, exit_on_error=False)

    def record_result(self, result: CheckResult) -> None:
        """A check result from a wizard step: on the board, the badges and the tabs too. (A tab still
        being built picks it up from the board when it is mounted.)"""

        self.board.record(result)
        if not self.is_running:
            return
        self._apply(result)

    def _load_runbooks_for_hint(self) -> None:
        self.run_worker(self._runbooks_for_hint(), group="runbook-hint", exclusive=True, exit_on_error=False)

    async def _runbooks_for_hint(self) -> None:
        await asyncio.to_thread(self.services.runbook_catalog)
        self._update_hint()

    def _runbook_hint(self) -> str:
        """The first failing trigger check and the runbook it suggests (status area)."""
        from opsconsole.runbooks.catalog import BUILTIN_RUNBOOKS

        loaded = self.services._runbooks
        runbooks = loaded.ordered() if loaded is not None else list(BUILTIN_RUNBOOKS)
        suggestions: list[tuple[str, str]] = []
        for result in sorted(self.board.results.values(), key=lambda r: CHECK_ORDER.get(r.id, 99)):
            if result.status is not Status.FAIL:
                continue
            for rb in runbooks:
                if result.id in rb.triggers and rb.title not in {t for _c, t in suggestions}:
                    suggestions.append((result.id, rb.title))
        if not suggestions:
            return ""
        check_id, title = suggestions[0]
        more = f" (+{len(suggestions) - 1} more)" if len(suggestions) > 1 else ""
        return f"{check_id} FAIL: w opens {title}{more}"

    def _update_hint(self) -> None:
        """After every check result: repainted only when the hint's text changes (a Static update
        with the same text re-laid-out the whole screen, and repainted its scrollbars, per result)."""
        found = self.query("#runbook-hint").results(LiveStatic)
        hint = next(found, None)
        if hint is None:
            return
        text = self._runbook_hint()
        hint.show(Content(text))
        hint.set_class(bool(text), "-shown")

    # -- polling: each check on its own interval ([checks] intervals) ------------------------
    def _poll(self) -> None:
        """The poll timer: start the checks that are due (nothing while paused)."""
        if self._poll_timer is not None:  # called directly (p resumes): no second timer left behind
            self._poll_timer.stop()
            self._poll_timer = None
        if not self.paused:
            self.run_worker(self._start_checks(due_only=True), group="poll-round", exclusive=True,
                            exit_on_error=False)

    def action_refresh(self) -> None:
        """Start every check that is not already running, and the visible tab's list; each reports
        on its own."""
        for pane in self.query(Pane):
            if pane.active:
                pane.refresh_detail()
        self.run_worker(self._start_checks(due_only=False), group="poll-round", exclusive=True,
                        exit_on_error=False)

    async def _start_checks(self, *, due_only: bool) -> None:
        # Building adapters imports SDKs: off the event loop, so keys stay instant.
        runner = await asyncio.to_thread(lambda: self.services.runner)
        now = time.monotonic()
        for check in runner.select():
            if check.id in self._in_flight:
                continue  # still waiting on a hung service: don't pile up requests
            if due_only and self._next_due.get(check.id, now) > now:
                continue
            self._in_flight.add(check.id)
            # The cadence is the check's own interval from its start, whatever its latency.
            self._next_due[check.id] = now + self.interval_for(check.id)
            self.run_worker(self._run_check(check), group=f"check:{check.id}", exit_on_error=False)
        self._arm_poll()

    def _arm_poll(self) -> None:
        """One timer, set for the earliest check due (re-armed after every start and answer)."""
        if not self.live or not self.is_running:
            return
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        waiting = [due for cid, due in self._next_due.items() if cid not in self._in_flight]
        if waiting:
            delay = max(0.05, min(waiting) - time.monotonic())
            self._poll_timer = self.set_timer(delay, self._poll)

    async def _run_check(self, check: Check) -> None:
        try:
            result = await self.services.runner.run_one(check)
        finally:
            self._in_flight.discard(check.id)
        self.board.record(result)
        self._apply(result)
        self._arm_poll()

    def _apply(self, result: CheckResult) -> None:
        from textual.css.query import NoMatches

        fresh = self.freshness(result)
        interval = self.interval_for(result.id)
        for pane in self.query(Pane):
            try:
                pane.show_result(result, fresh, interval)
            except NoMatches:  # a pane still composing catches up from the board (`replay_into`)
                pass
        if result.id == "api.health":
            for api_pane in self.query(ApiPane):
                api_pane.show_latencies(list(self.board.latencies.get("api.health", [])))
        self._update_badge(result.system)
        self._update_hint()

    def replay_into(self, pane: Pane) -> None:
        """A pane mounted late (lazily) catches up with what is already known."""
        now = self.services.clock()
        for result in list(self.board.results.values()):
            pane.show_result(result, self.freshness(result, now), self.interval_for(result.id))
        if isinstance(pane, ApiPane):
            pane.show_latencies(list(self.board.latencies.get("api.health", [])))

    def _update_badge(self, system: str, now: datetime | None = None) -> None:
        found = self.query(f"#badge-{system}").results(StatusBadge)
        badge = next(found, None)
        if badge is None:  # shutting down: the widgets are already gone
            return
        results = self.board.for_system(system)
        if not results:
            badge.show_status(None, None, None)
            return
        now = now or self.services.clock()
        status = self.board.system_status(system)
        live = [r for r in results if r.status is not Status.OFF]
        latency = max((r.latency_ms for r in live if r.latency_ms is not None), default=None)
        # The system's freshness is its least fresh check's, each judged against its own interval.
        states = [self.freshness(r, now) for r in live]
        fresh = max(states, key=lambda f: (f.stale, f.late, f.age_s), default=None)
        badge.show_status(status, latency, fresh)

    def _tick(self) -> None:
        if not self.is_running:
            return
        now = self.services.clock()
        for system in SYSTEMS:
            self._update_badge(system, now)
        for pane in self.query(Pane):
            pane.tick(lambda result: self.freshness(result, now))

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        still_cursor(event.widget)  # dialogs' text fields too (tabs' own fields: Pane does it)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_footer(event.size.width)

    def _fit_footer(self, width: int) -> None:
        """Below 100 columns the footer leaves out the palette key (it is in `?`), to make room for
        the tab's own keys; they come first, the global ones last."""
        for footer in self.query(Footer):
            footer.show_command_palette = width >= 100

    # -- actions ----------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.query_one(EnvHeader).update(self._header_text())
        self.notify("Polling paused: data will go stale. p resumes." if self.paused else "Polling resumed.",
                    title="Polling")
        if not self.paused:
            self._poll()

    def action_timeline(self) -> None:
        from opsconsole.ui.timeline import TimelineScreen

        if not isinstance(self.screen, TimelineScreen):
            self.push_screen(TimelineScreen(self.services.settings))

    def action_manual_step(self) -> None:
        """Record a manual runbook step of the current tab as done or skipped (journaled)."""
        from opsconsole.runbooks.catalog import steps_for_tab
        from opsconsole.ui.manual import ManualStepScreen

        tab = self.query_one(TabbedContent).active.removeprefix("tab-")
        steps = [s for s in steps_for_tab(tab) if s.kind == "manual"]
        if not steps:
            self.notify("This tab has no manual runbook steps.", title="Runbook", timeout=4)
            return
        self.push_screen(ManualStepScreen(self.services.settings, steps, links(self.services.settings)))

    def action_show_migrations(self) -> None:
        """M: the Deploy tab's migrations view, focused (V reverts the one under the cursor)."""
        from opsconsole.ui.widgets.migrations import MigrationsView

        self.action_show_tab("deploy")
        for view in self.query(MigrationsView):
            view.focus_table()
            view.scroll_visible()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{tab}"

    def action_help(self) -> None:
        """`?`: every key of this screen, the tab's own first (as in the footer), then the global
        ones; filtered as you type."""
        if isinstance(self.screen, HelpScreen):
            return
        tab = self.query_one(TabbedContent).active.removeprefix("tab-")
        tab_label = next((label for tab_id, label, _cls in TABS if tab_id == tab), tab)
        entries: list[tuple[str, str]] = []
        sections: dict[str, str] = {}
        labels: dict[str, str] = {}
        for key, active in self.active_bindings.items():
            binding = active.binding
            if key in sections:
                continue
            ours = active.node is self or _declared_here(active.node, binding)
            if not ours and key != "enter":
                continue  # the cursor keys of Textual's own lists and fields: listed once, in the hint
            description = binding.description or binding.action
            if not ours:
                description = "Open the row under the cursor (full query, message, details)"
            entries.append((key, description))
            global_key = active.node is self or active.node is self.screen
            sections[key] = EVERYWHERE if global_key else f"{tab_label} tab"
            labels[key] = self.get_key_display(binding)
        if "ctrl+p" not in sections:
            entries.append(("ctrl+p", "Command palette"))
            sections["ctrl+p"] = EVERYWHERE
        order = {section: i for i, section in enumerate(dict.fromkeys(sections[k] for k, _ in entries))}
        # the tab's keys first (as the footer shows them), then the global ones: letters, then named keys
        entries.sort(key=lambda kv: (sections[kv[0]] == EVERYWHERE, order[sections[kv[0]]],
                                     sections[kv[0]] == EVERYWHERE and len(key_label(kv[0])) > 1,
                                     sections[kv[0]] == EVERYWHERE and key_label(kv[0]).lower()))
        self.push_screen(HelpScreen(entries, f"{tab_label} tab", sections=sections, labels=labels))

    def start_action(self, action_id: str, start_key: str) -> None:
        """From the palette: show the tab that serves the action and start it there, on that tab's
        selection, exactly as its key would."""
        from opsconsole.actions.catalog import action_info
        from opsconsole.ui.widgets.activity import ActivityView
        from opsconsole.ui.widgets.deploys import DeploymentsView
        from opsconsole.ui.widgets.dlq import DlqView
        from opsconsole.ui.widgets.migrations import MigrationsView
        from opsconsole.ui.widgets.n8n import ExecutionsView
        from opsconsole.ui.widgets.restore import RestoreView

        info = action_info(action_id)
        tab = info.tab if info is not None and info.tab else "database"
        self.action_show_tab(tab)
        if action_id == "migrations.revert":
            for migrations in self.query(MigrationsView):
                migrations.action_revert()
        elif action_id == "backups.restore":
            for restore in self.query(RestoreView):
                restore.action_restore("backup")
        elif tab == "deploy":
            for deploys in self.query(DeploymentsView):
                deploys.action_act(action_id)
        elif tab == "n8n":
            for n8n_view in self.query(ExecutionsView):
                n8n_view.action_retry()
        elif tab == "dlq":
            for dlq in self.query(DlqView):
                dlq.action_act(action_id)
        else:
            for view in self.query(ActivityView):
                view.action_act(action_id, start_key)

    def is_tab_active(self, tab: str) -> bool:
        return self.query_one(TabbedContent).active == f"tab-{tab}"

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        tabs = event.tabbed_content  # (not a query: the message may arrive while the app shuts down)
        active = tabs.active
        for pane in tabs.query(Pane):
            pane.set_active(active == f"tab-{pane.TAB_ID}")

    async def on_unmount(self) -> None:
        await self.services.aclose()
        # Exited in time: no fallback, and no handler left on a loop that outlives the app (tests).
        if self._exit_timer is not None:
            self._exit_timer.cancel()
        import signal

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGHUP, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    @property
    def checks_in_flight(self) -> list[str]:
        """Checks started and not yet answered (a hung service shows up here)."""
        return sorted(self._in_flight)


if TYPE_CHECKING:  # mypy proves here that OpsApp offers everything the palette entries call
    _palette_host: type[PaletteHost] = OpsApp
