"""The Deploy tab's deployments: live list, redeploy, promote (instant rollback), undo, logs.

Rows are keyed by deployment id and updated cell by cell (a poll that changes nothing sends
nothing to the terminal); a new deployment is added and the rows re-sorted newest first, never
cleared and re-added. While a redeploy builds, its row shows the live state and build time from
the action's progress hook. `P` promotes the row under the cursor (it starts on the previous
working deployment), `R` redeploys production, `u` promotes back what served before the last
promote (from the journal), `l` opens the runtime logs. All through the guarded-action kernel.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from opsconsole.domain.deploys import Deployment
from opsconsole.ui.format import cell, fmt_age, slow_latency
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

if TYPE_CHECKING:
    from opsconsole.actions.model import Preview
    from opsconsole.actions.vercel import DeployHooks, DeployProgress
    from opsconsole.services import DeployListing, Services

COLUMNS: tuple[tuple[str, str], ...] = (("mark", ""), ("age", "age"), ("state", "state"), ("build", "build"),
                                         ("target", "target"), ("sha", "sha"), ("message", "message"),
                                         ("ref", "ref"), ("id", "id"))
_TARGET = {"production": "prod", "staging": "staging"}
_START_KEYS = {"vercel.redeploy": "R", "vercel.promote": "P"}


def _build_text(dep: Deployment, now: datetime) -> str:
    seconds = dep.build_s(now)
    if seconds is None:
        return "–"
    return fmt_age(seconds) + ("…" if dep.in_progress else "")


class DeploymentsView(Vertical):
    """Recent deployments keyed by id; the Vercel actions act on them."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "act('vercel.redeploy')", "Redeploy", id="vercel.redeploy"),
        Binding("P", "act('vercel.promote')", "Promote", id="vercel.promote"),
        Binding("u", "undo", "Undo", id="vercel.undo", tooltip="promote back what served before the last promote"),
        Binding("l", "logs", "Logs"),
        Binding("s", "stop_following", "Stop following"),
    ]

    DEFAULT_CSS = """
    DeploymentsView { height: auto; margin-bottom: 1; }
    DeploymentsView .deploy-title { text-style: bold; }
    DeploymentsView .deploy-status { color: $text-muted; }
    DeploymentsView.-fail .deploy-status { color: $error; text-style: bold; }
    DeploymentsView #deploy-action { color: $accent; text-style: bold; }
    DeploymentsView #deploy-action.-failed { color: $error; }
    DeploymentsView KeyedTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing: DeployListing | None = None
        self.rows: dict[str, Deployment] = {}
        self.followed: Deployment | None = None  # the deployment a running redeploy follows
        self.running: Preview | None = None
        self._hooks: DeployHooks | None = None
        self._cursor_placed = False
        self.interval_s = 15.0
        self.cell_updates = 0  # cells changed in place (rows are never cleared and re-added)

    def compose(self) -> ComposeResult:
        yield Static(Content("Recent deployments"), classes="deploy-title")
        yield LiveStatic(Content("loading…"), classes="deploy-status", id="deploy-status")
        action = LiveStatic(Content(""), id="deploy-action")
        action.display = False
        yield action
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="deploy-table")
        table.set_columns(COLUMNS)
        yield table

    @property
    def services(self) -> Services:
        return self.app.services  # type: ignore[attr-defined, no-any-return]

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#deploy-table", KeyedTable)

    # -- data -------------------------------------------------------------------------------
    def show(self, listing: DeployListing, now: datetime, interval_s: float | None = None) -> None:
        """A new listing: rows added, changed cells updated, vanished rows removed (never all re-added)."""
        if interval_s is not None:
            self.interval_s = interval_s
        self.listing = listing
        self.set_class(listing.problem is not None and listing.status.value == "fail", "-fail")
        if listing.problem is not None:
            self._status(now)
            return
        fresh = {d.id: d for d in listing.deployments}
        if self.followed is not None and self.followed.id not in fresh:
            fresh = {self.followed.id: self.followed, **fresh}
        elif self.followed is not None and self.followed.id in fresh and self.running is not None:
            fresh[self.followed.id] = self._newer(self.followed, fresh[self.followed.id])
        self.rows = fresh
        self._sync(now)
        if not self._cursor_placed and self.rows:
            self._cursor_placed = True
            target = listing.previous_working()
            if target is not None:
                self.move_cursor_to(target.id)
            self.call_after_refresh(self._keep_top)
        self._status(now)

    @staticmethod
    def _newer(ours: Deployment, polled: Deployment) -> Deployment:
        """The followed deployment's fresher copy: the poll may lag behind the action's progress."""
        return polled if polled.final or not ours.final else ours

    def _row(self, dep: Deployment, now: datetime) -> list[Text]:
        current = self.listing.current_id if self.listing is not None else None
        mark = "▶" if dep.id == current else ("●" if self.followed is not None and dep.id == self.followed.id
                                              else "")
        # Text, not str: DataTable parses str as markup, and commit messages are anyone's
        return [Text(mark), Text(fmt_age(dep.age_s(now))), Text(dep.state), Text(_build_text(dep, now)),
                Text(_TARGET.get(dep.target or "", "preview")), Text(dep.short_sha or "–"),
                Text(cell(dep.message, 48)), Text(cell(dep.ref, 24)), Text(dep.id)]

    def _sync(self, now: datetime) -> None:
        """Newest first, keyed by id (KeyedTable): only changed cells repaint, a new deployment is
        added at the top and the cursor stays on its deployment."""
        table = self.table
        before = table.row_keys
        ordered = sorted(self.rows.values(), key=lambda d: d.created_at, reverse=True)
        self.cell_updates += table.sync([(d.id, self._row(d, now)) for d in ordered])
        if set(table.row_keys) - set(before):
            self.call_after_refresh(self._keep_top)
        table.display = bool(self.rows)

    def _keep_top(self) -> None:
        """Newest first: keep the top rows (a new build, the one serving) in view while the cursor is too."""
        table = self.table
        visible = max(1, table.scrollable_content_region.height - 1)  # less the header row
        if table.cursor_row < visible:
            table.scroll_to(y=0, animate=False, immediate=True)

    def move_cursor_to(self, dep_id: str) -> None:
        table = self.table
        if dep_id in table.row_keys:  # else the row is gone (a poll removed it)
            table.move_cursor(row=table.get_row_index(dep_id), animate=False)

    def cursor_deployment(self) -> Deployment | None:
        key = self.table.cursor_key()
        return self.rows.get(key) if key is not None else None

    def tick(self, now: datetime) -> None:
        """Once a second: ages and the build time of a build in progress (only changed cells)."""
        if self.rows:
            self._sync(now)
        self._status(now)

    def _status(self, now: datetime) -> None:
        listing = self.listing
        status = self.query_one("#deploy-status", LiveStatic)
        if listing is None:
            status.show(Content("loading…"))
            return
        if listing.problem is not None:
            status.show(Content(cell(listing.problem, 300)))
            return
        parts = ["▶ serving"]
        target = self.cursor_deployment()
        if target is not None and self._actions_shown():
            if target.id == listing.current_id:
                default = listing.previous_working()
                parts.append(f"P promotes {default.short_sha or default.id}" if default is not None else
                             "no previous working deployment")
            else:
                parts.append(f"P promotes {target.short_sha or target.id}")
        if listing.fetched_at is not None:
            age = (now - listing.fetched_at).total_seconds()
            # A ticking age repainted this line every second: shown only once overdue (the list
            # stopped refreshing), as the session list does.
            if age > self.interval_s + self.services.settings.checks.timeout_s:
                parts.append(f"as of {fmt_age(age)} ago")
        slow = slow_latency(listing.latency_ms)  # only when it says something (a slow Vercel API), as in the strip
        if slow:
            parts.append(f"took {slow}")
        status.show(Content(" · ".join(parts)))

    # -- progress of a running action ---------------------------------------------------------
    def on_progress(self, progress: DeployProgress) -> None:
        """The action's hook: the followed deployment's row and the action line, live."""
        now = self.services.clock()
        dep = progress.deployment
        if dep is not None and progress.action == "vercel.redeploy":
            self.followed = dep
            self.rows[dep.id] = dep
            self._sync(now)
        self._action_line(progress.line(), failed=progress.state in ("ERROR", "CANCELED", "failed", "skipped"))

    def _action_line(self, text: str, *, failed: bool = False) -> None:
        line = self.query_one("#deploy-action", LiveStatic)
        line.display = bool(text)
        line.set_class(failed, "-failed")
        line.show(Content(cell(text, 400)))

    # -- keys -------------------------------------------------------------------------------
    def _kernel_actions(self) -> set[str]:
        kernel = self.services.kernel if hasattr(self.app, "services") else None
        if kernel is None or kernel.read_only:
            return set()
        return {a.id for a in kernel.visible_actions()}

    def _actions_shown(self) -> bool:
        return bool(self._kernel_actions() & set(_START_KEYS))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "act":
            return str(parameters[0]) in self._kernel_actions() if parameters else False
        if action == "undo":
            return "vercel.promote" in self._kernel_actions()
        if action == "stop_following":
            return self.running is not None and self._hooks is not None
        if action == "logs":
            return getattr(self.services.settings, "vercel", None) is not None
        return True

    def action_logs(self) -> None:
        from opsconsole.ui.logview import LogScreen

        self.app.push_screen(LogScreen())

    def action_stop_following(self) -> None:
        if self._hooks is not None:
            self._hooks.cancel.set()
            self._action_line("stopping the follow (the build or promotion continues at Vercel)…")

    def action_undo(self) -> None:
        self.start("vercel.promote", {"undo": True}, "u")

    def action_act(self, action_id: str) -> None:
        params: dict[str, Any] = {}
        if action_id == "vercel.promote":
            dep = self.cursor_deployment()
            current = self.listing.current_id if self.listing is not None else None
            default = self.listing.previous_working() if self.listing is not None else None
            if dep is not None and dep.id != current and (default is None or dep.id != default.id):
                params["deployment"] = dep.id  # picked; the default needs no parameter
        self.start(action_id, params, _START_KEYS.get(action_id, ""))

    def start(self, action_id: str, params: dict[str, Any], start_key: str) -> None:
        if self.running is not None:
            self.app.notify(f"{self.running.title} is still running: wait for it, or s stops following it.",
                            title="Deploy", severity="warning", markup=False)
            return
        self._guarded(action_id, params, start_key)

    @work(group="deploy-action", exclusive=False, exit_on_error=False)
    async def _guarded(self, action_id: str, params: dict[str, Any], start_key: str) -> None:
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.actions.vercel import DeployHooks
        from opsconsole.ui.confirm import ConfirmScreen

        kernel = self.services.kernel
        if kernel is None:
            return
        preview = await kernel.prepare(action_id, params)
        if isinstance(preview, Refusal):
            self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=12)
            return
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, kernel.requirement(preview,
                                                                                                 start_key)))
        if confirmation is None:
            await kernel.cancelled(preview)
            self.app.notify(f"{preview.title}: cancelled, nothing was done.", title="Cancelled", markup=False)
            return
        hooks = DeployHooks(progress=self.on_progress)
        action_hooks = getattr(kernel.get(action_id), "hooks", None)
        if isinstance(action_hooks, dict):
            action_hooks[preview.preview_id] = hooks
        self.running, self._hooks = preview, hooks
        self._action_line(f"{preview.title}: {preview.target}: starting…")
        self.refresh_bindings()
        try:
            result = await kernel.run(preview, confirmation)
        finally:
            self.running, self._hooks = None, None
            self.refresh_bindings()
        if isinstance(result, Refusal):
            self._action_line(f"refused: {result.message}", failed=True)
            self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=12)
            return
        assert isinstance(result, Outcome)
        lines = [result.summary] + ([f"JOURNAL: {result.journal_error}"] if result.journal_error else [])
        severity: Literal["information", "warning", "error"] = (
            "information" if result.ok else ("warning" if result.status.value == "partial" else "error"))
        self._action_line(result.summary, failed=not result.ok)
        self.app.notify("\n".join(cell(line, 300) for line in lines), title=preview.title, severity=severity,
                        markup=False, timeout=20)
        self.followed = None
        refresh = getattr(self.parent, "refresh_detail", None)
        if refresh is not None:
            refresh()
