"""The Deploy tab's migrations view: `supabase_migrations.schema_migrations`, newest first.

Each row: the version (= when), how long ago, the name, how many statements and what they are
(destructive / additive / other / unknown, by PostgreSQL's own parser), and whether a revert exists
(rollback statements, a revert file, or none: manual). Enter shows every statement with what it does
and what undoing it would take; `V` reverts the migration under the cursor through the kernel: an
offer to take a restore point first (where the plan has them), the dry run as the preview (counted
data loss, blocking sessions), then the typed confirmation. The view polls only while its tab is shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from opsconsole.domain.migrations import Migration, MigrationListing, StatementKind
from opsconsole.ui.format import cell, fmt_age
from opsconsole.ui.widgets.live import KeyedTable, LiveStatic

KIND_LABEL = {StatementKind.DESTRUCTIVE: "DESTRUCTIVE", StatementKind.ADDITIVE: "additive",
              StatementKind.OTHER: "other", StatementKind.UNKNOWN: "? unknown"}
REVERT_LABEL = {"rollback": "rollback", "file": "file", "manual": "manual", "problem": "conflict"}
COLUMNS = ("version", "age", "name", "statements", "undo")
NAME_CELLS = 22  # the name gives way (Enter shows it in full): at 80 columns the row fits without scrolling


def migration_cells(m: Migration, now: datetime, revert: str) -> list[Text]:
    """One migration's row, in COLUMNS order (Text: names are the migration authors', never markup)."""
    age = fmt_age((now - m.applied_at).total_seconds()) if m.applied_at else "?"
    style = "bold red" if m.kind is StatementKind.DESTRUCTIVE else ("yellow" if m.kind is
                                                                     StatementKind.UNKNOWN else "")
    return [Text(m.version), Text(age), Text(cell(m.name, NAME_CELLS)), Text(kinds_text(m, short=True), style=style),
            Text(REVERT_LABEL.get(revert, "manual"))]


def kinds_text(m: Migration, *, short: bool = False) -> str:
    """'1 DESTRUCTIVE, 1 additive, 1 other', or for the table the worst kind and its share: 'DESTRUCTIVE 1/3'."""
    total = len(m.flat)
    if not total:
        return "no statements"
    if short:
        return f"{KIND_LABEL[m.kind]} {m.count(m.kind)}/{total}"
    parts = []
    for kind in (StatementKind.DESTRUCTIVE, StatementKind.UNKNOWN, StatementKind.ADDITIVE, StatementKind.OTHER):
        n = m.count(kind)
        if n:
            parts.append(f"{n} {KIND_LABEL[kind]}")
    return ", ".join(parts)


class MigrationScreen(ModalScreen[None]):
    """One migration: every statement, what it does, what undoing it takes (rendered literally)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,enter", "close", "Close")]
    DEFAULT_CSS = """
    MigrationScreen { align: center middle; }
    MigrationScreen > VerticalScroll { width: 100; max-width: 98%; height: auto; max-height: 92%;
        background: $surface; border: round $primary; padding: 0 1; }
    MigrationScreen .head { text-style: bold; }
    MigrationScreen .note { color: $warning; margin-bottom: 1; }
    MigrationScreen .stmt { margin-top: 1; }
    MigrationScreen .stmt.-destructive { color: $error; }
    MigrationScreen .stmt.-unknown { color: $warning; }
    """

    def __init__(self, migration: Migration, revert: str = "", note: str = "") -> None:
        super().__init__()
        self.migration = migration
        self.revert = revert
        self.note = note

    def compose(self) -> ComposeResult:
        m = self.migration
        when = f"applied {m.applied_at:%Y-%m-%d %H:%M} UTC (from the {m.applied_from})" if m.applied_at else \
            "applied at an unknown time"
        with VerticalScroll():
            yield Static(Content(cell(f"Migration {m.version} {m.name} · {when} · {kinds_text(m)}", 300)),
                         classes="head")
            if self.note:
                yield Static(Content(self.note), classes="note")
            for i, stmt in enumerate(m.flat, start=1):
                text = (f"{i}. [{KIND_LABEL[stmt.kind]}] {stmt.sql}\n   does: {stmt.summary}\n   undo: {stmt.undo}")
                yield Static(Content(text), classes=f"stmt -{stmt.kind.value}")
            if m.truncated:
                yield Static(Content("(statements cut for the listing; the revert reads them in full)"))
            if m.rollback:
                yield Static(Content("Rollback statements (schema_migrations.rollback):\n"
                                     + "\n".join(f"  {s}" for s in m.rollback)), classes="stmt")
            revert = {"rollback": "V reverts it: dry run first, then one transaction",
                      "file": "V reverts it from [migrations] revert_dir: dry run first",
                      "problem": "its revert cannot be used as is (V says why)"}.get(
                self.revert, "no revert recorded: undoing it is a manual step (see undo above)")
            yield Static(Content(f"\n{revert}. Esc closes."))

    def action_close(self) -> None:
        self.dismiss(None)


class RestorePointScreen(ModalScreen[bool | None]):
    """Before a revert: take a restore point first? r yes (recommended), s skip, Esc cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "answer(True)", "Take a restore point"), Binding("s", "answer(False)", "Skip it"),
        Binding("escape", "answer(None)", "Cancel")]
    DEFAULT_CSS = """
    RestorePointScreen { align: center middle; }
    RestorePointScreen > Vertical { width: 76; max-width: 98%; height: auto; background: $surface;
        border: thick $warning; padding: 0 1; }
    """

    def __init__(self, version: str, name: str, basis: str) -> None:
        super().__init__()
        self.version, self.point, self.basis = version, name, basis

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Content(f"Revert migration {self.version}: take a Supabase restore point named "
                                 f"{self.point} first? Restore points are {self.basis}. A restore to it undoes the "
                                 "revert if it goes wrong (its name goes into the journal).\n\n"
                                 "r take it first (recommended) · s skip it · Esc cancel"))

    def action_answer(self, answer: bool | None) -> None:
        self.dismiss(answer)


class MigrationsView(Vertical):
    """The migration history of the configured database (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("V", "revert", "Revert migration", id="migrations.revert"),
    ]
    INTERVAL_S = 30.0

    DEFAULT_CSS = """
    MigrationsView { height: auto; margin-bottom: 1; }
    MigrationsView .migrations-title { text-style: bold; }
    MigrationsView .migrations-status { color: $text-muted; }
    MigrationsView.-warn .migrations-status { color: $warning; text-style: bold; }
    MigrationsView.-fail .migrations-status { color: $error; text-style: bold; }
    MigrationsView KeyedTable { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listing: MigrationListing | None = None
        self.fetches = 0
        self.active = False

    def compose(self) -> ComposeResult:
        yield Static(Content("Migrations (supabase_migrations.schema_migrations, newest first)"),
                     classes="migrations-title")
        yield LiveStatic(Content("loading…"), classes="migrations-status")
        table = KeyedTable(cursor_type="row", zebra_stripes=True, id="migrations-table")
        table.set_columns([(col, col) for col in COLUMNS])
        yield table

    def on_mount(self) -> None:
        if getattr(self.app, "live", False):
            self._timer = self.set_interval(self.INTERVAL_S, self.reload, pause=True)

    def set_active(self, active: bool) -> None:
        """Poll only while the Deploy tab is shown."""
        was, self.active = self.active, active
        timer = getattr(self, "_timer", None)
        if active and not was:
            self.reload()
        if timer is not None:
            timer.resume() if active else timer.pause()

    def focus_table(self) -> None:
        self.query_one(KeyedTable).focus()

    def reload(self) -> None:
        self.run_worker(self._load(), group="migrations-load", exclusive=True, exit_on_error=False)

    async def _load(self) -> None:
        self.fetches += 1
        listing = await self.app.services.migrations()  # type: ignore[attr-defined]
        self.show(listing, self.app.services.clock())  # type: ignore[attr-defined]

    def show(self, listing: MigrationListing, now: datetime) -> None:
        """A new listing, keyed by version: a poll that changes nothing repaints nothing, an age
        that moves repaints its cell, and the cursor stays on its migration."""
        self.listing = listing
        status = self.query_one(".migrations-status", LiveStatic)
        table = self.query_one(KeyedTable)
        if listing.problem is not None:
            failed = listing.details.get("status") == "fail"
            self.set_class(failed, "-fail")
            self.set_class(not failed, "-warn")
            status.show(Content(cell(listing.problem, 300)))
            table.display = False
            return
        reverts = listing.details.get("reverts", {})
        recent_bad = 0
        rows: list[tuple[str, list[Text]]] = []
        for m in listing.migrations:
            if m.applied_at and (now - m.applied_at).total_seconds() < 86400 and m.kind is StatementKind.DESTRUCTIVE:
                recent_bad += 1
            rows.append((m.version, migration_cells(m, now, str(reverts.get(m.version, "manual")))))
        table.sync(rows)
        table.display = bool(listing.migrations)
        # Classes set once each (no remove-then-add): an unchanged poll restyles nothing.
        self.set_class(False, "-fail")
        self.set_class(bool(recent_bad), "-warn")
        parts = [f"{len(listing.migrations)} migrations", listing.applied_basis]
        if recent_bad:
            parts.insert(0, f"{recent_bad} DESTRUCTIVE in the last 24 h")
        parts.append("Enter: statements · V: revert (dry run first)")
        status.show(Content(" · ".join(parts)))

    def cursor_migration(self) -> Migration | None:
        listing = self.listing
        key = self.query_one(KeyedTable).cursor_key()
        if listing is None or key is None:
            return None
        return next((m for m in listing.migrations if m.version == key), None)

    @on(DataTable.RowSelected, "#migrations-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        m = self.cursor_migration()
        if m is not None and self.listing is not None:
            self.app.push_screen(MigrationScreen(m, str(self.listing.details.get("reverts", {}).get(m.version, ""))))

    # -- the revert -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "revert":
            kernel = getattr(self.app, "services", None) and self.app.services.kernel  # type: ignore[attr-defined]
            if kernel is None or kernel.read_only:
                return False  # hidden from footer, help and palette; the kernel refuses anyway
            if "migrations.revert" not in {a.id for a in kernel.visible_actions()}:
                return False
        return True

    def action_revert(self) -> None:
        m = self.cursor_migration()
        if m is None:
            self.app.notify("No migration under the cursor.", title="Nothing to revert", severity="warning")
            return
        self._revert(m, "V")

    @work(group="migrations-action", exclusive=True, exit_on_error=False)
    async def _revert(self, migration: Migration, start_key: str) -> None:
        from opsconsole.actions.migrations import restore_point_name
        from opsconsole.actions.model import Outcome, Refusal
        from opsconsole.ui.confirm import ConfirmScreen

        kernel = self.app.services.kernel  # type: ignore[attr-defined]
        if kernel is None:
            return
        action: Any = kernel.get("migrations.revert")
        want_point = False
        ok, basis = await action.restore_points()
        if ok:
            answer = await self.app.push_screen_wait(
                RestorePointScreen(migration.version, restore_point_name(migration.version), basis))
            if answer is None:
                self.app.notify("Revert cancelled, nothing was done.", title="Cancelled")
                return
            want_point = answer
        self.app.notify(f"Dry run of the revert of {migration.version}…", title="Revert migration", timeout=3)
        preview = await kernel.prepare("migrations.revert", {"version": migration.version,
                                                             "restore_point": want_point})
        if isinstance(preview, Refusal):
            if preview.details.get("manual"):
                self.app.push_screen(MigrationScreen(migration, "manual", note=preview.message.split("\n")[0]))
            else:
                self.app.notify(preview.message, title="Refused", severity="error", markup=False, timeout=20)
            return
        confirmation = await self.app.push_screen_wait(ConfirmScreen(preview, kernel.requirement(preview,
                                                                                                  start_key)))
        if confirmation is None:
            await kernel.cancelled(preview)
            self.app.notify("Revert cancelled, nothing was done.", title="Cancelled")
            return
        result = await kernel.run(preview, confirmation)
        if isinstance(result, Refusal):
            self.app.notify(result.message, title="Refused", severity="error", markup=False, timeout=15)
            return
        assert isinstance(result, Outcome)
        lines = [result.summary] + ([f"JOURNAL: {result.journal_error}"] if result.journal_error else [])
        severity: Literal["information", "warning", "error"] = "information" if result.ok else "error"
        self.app.notify("\n".join(cell(line, 300) for line in lines), title=preview.title, severity=severity,
                        markup=False, timeout=20)
        self.reload()
