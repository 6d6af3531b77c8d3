"""The Backups tab's restore view: the daily backups and the PITR window, what a restore would do, and
a restore in progress (this console's, or one the project status shows) with its elapsed time against
the estimate.

`R` restores the backup under the cursor, `T` restores to a point in time (PITR). Both first ask for the
runbook's severity check (why SQL updates cannot fix the corruption), then show the preview: what is lost,
the database size, the expected downtime, and the DOWNTIME WARNING, which the confirm key ignores until
it has been on screen 5 s and the project ref has been typed. The restore runs in a worker: the console
stays usable while the database is away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from opsconsole.domain.backups import DOWNTIME_WARNING, Backup, BackupListing
from opsconsole.ui.format import cell, fmt_age
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

COLUMNS = ("id", "status", "taken", "age", "kind")
_PROGRESS_CLASSES = ("-restoring", "-restore-failed", "-restored")


def backup_cells(b: Backup, now: datetime) -> list[Text]:
    """One backup's row, in COLUMNS order."""
    return [Text(str(b.id)), Text(b.status, style="bold red" if b.status == "FAILED" else ""),
            Text(f"{b.inserted_at:%Y-%m-%d %H:%M} UTC"), Text(fmt_age((now - b.inserted_at).total_seconds())),
            Text("physical" if b.is_physical else "logical")]


class RestoreRequestScreen(ModalScreen[dict[str, Any] | None]):
    """The severity check (and, for PITR, the time) before a restore preview is built."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    RestoreRequestScreen { align: center middle; }
    RestoreRequestScreen > Vertical { width: 86; max-width: 98%; height: auto; background: $surface;
        border: thick $error; padding: 0 1; }
    RestoreRequestScreen .warning { background: $error; color: $text; text-style: bold; padding: 0 1; }
    RestoreRequestScreen .problem { color: $error; text-style: bold; }
    """

    def __init__(self, target: str, *, pitr_default: str | None = None) -> None:
        super().__init__()
        self.target = target
        self.pitr_default = pitr_default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Restore the database to {self.target}"), classes="head")
            yield Static(Content(f"DOWNTIME WARNING: {DOWNTIME_WARNING}"), classes="warning")
            yield Static(Content("Severity check (runbook): restore only if the corruption cannot be fixed with SQL "
                                 "updates. Why can it not? (journaled)"))
            if self.pitr_default is not None:
                yield Static(Content("Point in time (UTC, inside the PITR window):"))
                yield Input(value=self.pitr_default, placeholder="point in time, e.g. 2026-12-01T03:00:00Z",
                            id="pitr", compact=True)
            yield Static(Content("Why SQL updates cannot fix it:"))
            yield Input(placeholder="e.g. a bad UPDATE overwrote the phone numbers; no copy of the old values",
                        id="reason", compact=True)
            yield Static(Content("Enter: show what the restore would lose (nothing is done yet) · Esc cancels"))
            yield Static(Content(""), classes="problem", id="problem")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        reason = self.query_one("#reason", Input).value.strip()
        if not reason:
            self.query_one("#reason", Input).focus()
            self.query_one("#problem", Static).update(Content("the reason is required"))
            return
        out: dict[str, Any] = {"reason": reason}
        found = self.query("#pitr")
        if found:
            out["pitr"] = found.first(Input).value.strip()
        self.dismiss(out)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RestoreView(Vertical):
    """Backups, PITR window and the restore in progress; R / T start a restore (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("R", "restore('backup')", "Restore backup", id="backups.restore"),
        Binding("T", "restore('pitr')", "Restore to a time"),
    ]

    DEFAULT_CSS = """
    RestoreView { height: auto; margin-bottom: 1; }
    RestoreView .restore-title { text-style: bold; }
    RestoreView .restore-status { color: $text-muted; }
    RestoreView.-fail .restore-status { color: $error; text-style: bold; }
    RestoreView .restore-progress { display: none; }
    RestoreView.-restoring .restore-progress { display: block; background: $warning; color: $text;
        text-style: bold; padding: 0 1; }
    RestoreView.-restore-failed .restore-progress { display: block; background: $error; color: $text;
        text-style: bold; padding: 0 1; }
    RestoreView.-restored .restore-progress { display: block; color: $success; }
    RestoreView KeyedTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing: BackupListing | None = None
        self.fetches = 0
        self.dialog_clock: Callable[[], float] = time.monotonic  # the confirmation dialog's clock (tests)

    def compose(self) -> ComposeResult:
        yield Static(Content("Backups (Management API) · R restores the one under the cursor · T a point in time"),
                     classes="restore-title")
        yield LiveStatic(Content(""), classes="restore-progress", id="restore-progress")
        yield LiveStatic(Content("loading…"), classes="restore-status")
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="backups-table")
        table.set_columns([(col, col) for col in COLUMNS])
        yield table

    def on_mount(self) -> None:
        self.set_interval(1.0, self.tick)

    @property
    def _services(self) -> Any:
        return self.app.services  # type: ignore[attr-defined]

    def reload(self) -> None:
        self.run_worker(self._load(), group="restore-load", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        self.fetches += 1
        self.show(await self._services.backup_listing(), self._services.clock())

    def show(self, listing: BackupListing, now: datetime) -> None:
        """A new listing, keyed by backup id: a poll that changes nothing repaints nothing, and the
        cursor stays on its backup."""
        self.listing = listing
        status = self.query_one(".restore-status", LiveStatic)
        table = self.query_one(KeyedTable)
        self.set_class(listing.inventory is None and listing.status.value == "fail", "-fail")
        if listing.inventory is None:
            status.show(Content(cell(listing.problem or "no backups", 300)))
            table.display = False
            self.tick()
            return
        inv = listing.inventory
        table.sync([(str(b.id), backup_cells(b, now)) for b in inv.backups])
        table.display = bool(inv.backups)
        window = inv.pitr_window
        if inv.pitr_enabled and window is not None and window.earliest and window.latest:
            pitr = f"PITR on: any time from {window.earliest:%Y-%m-%d %H:%M} to {window.latest:%Y-%m-%d %H:%M} UTC"
        else:
            pitr = "PITR off: only the daily backups below can be restored"
        status.show(Content(f"{inv.region} · {pitr}"))
        self.tick()

    def tick(self) -> None:
        """The restore in progress (or the last one), with the elapsed time against the estimate.
        Once a second, shown or not: each class is set once (never removed and re-added) and the
        line repaints only when its text changes, so a still state costs nothing."""
        state = self._services.restore_state
        shown = state.last() if state is not None else None
        progress = self.query_one("#restore-progress", LiveStatic)
        if shown is None:
            wanted, text = "", ""
        else:
            now = self._services.clock()
            if shown.active:
                wanted, text = "-restoring", shown.describe(now) + " — the database is OFFLINE"
            elif shown.final_status == "RESTORE_FAILED":
                wanted, text = "-restore-failed", shown.describe(now) + " — see the Supabase dashboard"
            else:
                wanted, text = "-restored", shown.describe(now)
        for cls in _PROGRESS_CLASSES:
            self.set_class(cls == wanted, cls)
        progress.show(Content(cell(text, 300)))

    def cursor_backup(self) -> int | None:
        inv = self.listing.inventory if self.listing is not None else None
        key = self.query_one(KeyedTable).cursor_key()
        if inv is None or key is None:
            return None
        return next((b.id for b in inv.backups if str(b.id) == key), None)

    # -- the restore ----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restore":
            kernel = getattr(self.app, "services", None) and self._services.kernel
            if kernel is None or kernel.read_only:
                return False
            if "backups.restore" not in {a.id for a in kernel.visible_actions()}:
                return False
        return True

    def action_restore(self, kind: str) -> None:
        if kind == "backup" and self.cursor_backup() is None:
            self.app.notify("No backup under the cursor.", title="Nothing to restore", severity="warning")
            return
        self.start(kind, "R" if kind == "backup" else "T")

    def start(self, kind: str, start_key: str, *, reason: str | None = None, when: str | None = None) -> None:
        self._restore(kind, start_key, reason, when)

    @work(group="restore-action", exclusive=True, exit_on_error=False)
    async def _restore(self, kind: str, start_key: str, reason: str | None, when: str | None) -> None:
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.ui.confirm import ConfirmScreen

        kernel = self._services.kernel
        if kernel is None:
            return
        params: dict[str, Any]
        if kind == "backup":
            backup = self.cursor_backup()
            if backup is None:
                return
            params = {"backup": backup}
            target = f"daily backup {backup}"
        else:
            params = {}
            target = "a point in time (PITR)"
        if reason is None:
            default = when or (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
            asked = await self.app.push_screen_wait(RestoreRequestScreen(
                target, pitr_default=default if kind == "pitr" else None))
            if asked is None:
                self.app.notify("Restore cancelled, nothing was done.", title="Cancelled")
                return
            reason = str(asked["reason"])
            when = asked.get("pitr", when)
        params["reason"] = reason
        if kind == "pitr":
            params["pitr"] = when or ""
        preview = await kernel.prepare("backups.restore", params)
        if isinstance(preview, Refusal):
            self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=20)
            return
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, kernel.requirement(preview, start_key),
                                                                     clock=self.dialog_clock))
        if confirmation is None:
            await kernel.cancelled(preview)
            self.app.notify("Restore cancelled, nothing was done.", title="Cancelled")
            return
        self.app.notify("Restore requested: following the project status here (the console stays usable).",
                        title=preview.title, timeout=8)
        result = await kernel.run(preview, confirmation)
        if isinstance(result, Refusal):
            self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=20)
            return
        assert isinstance(result, Outcome)
        severity: Literal["information", "warning", "error"] = (
            "information" if result.ok else ("warning" if result.status.value == "partial" else "error"))
        lines = [result.summary] + ([f"JOURNAL: {result.journal_error}"] if result.journal_error else [])
        self.app.notify("\n".join(cell(line, 300) for line in lines), title=preview.title, severity=severity,
                        markup=False, timeout=30)
        self.tick()
        self.reload()
