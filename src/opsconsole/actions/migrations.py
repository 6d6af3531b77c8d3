"""`migrations.revert`: undo a migration (runbook "How to Rollback", step 2), after a dry run that
counts the data it would lose.

Params: `version=20261130120000` (required), `dry_run=true|false` (default false: the real run;
true repeats the dry run at run time and journals it, changing nothing), `restore_point=true|false`
(take a Supabase restore point named `opsc-<version>` first; only where the project has them).

The revert comes from the migration's own `schema_migrations.rollback` statements or from
`[migrations] revert_dir/<version>_*.down.sql` (see `adapters.migrations.history`). Without one,
or when one of its statements cannot run inside one transaction or be analysed by the parser, the
preview is refused and says why, listing the migration's statements and what undoing each would
take: the step stays manual.

The preview *is* the dry run (`adapters.migrations.revert.run_revert(dry_run=True)`): the revert
runs in a transaction that is rolled back, with lock_timeout and statement_timeout; a lock it
cannot get is reported with the blocking session; every column or table it drops or rewrites is
counted. The real run repeats it in one transaction that also deletes the version from
schema_migrations, and refuses (changing nothing) if it would lose more than the dry run the
operator confirmed. Destructive: the operator types the version. Lock: `migrations:<version>`.
With data loss counted, the warning must be on screen 5 s before the confirm key works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.actions.kernel import GuardedAction
from opsconsole.actions.model import Outcome, OutcomeStatus, Preview, Refusal, RefusalReason, RiskTier
from opsconsole.actions.params import ParamSpec, ParamType
from opsconsole.actions.policy import WARNING_HOLD_S
from opsconsole.domain.migrations import ClassifiedStatement, Migration, StatementKind
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import printable
from opsconsole.settings import Settings

if TYPE_CHECKING:  # the adapters are imported on use, not when the catalog is loaded
    from opsconsole.adapters.migrations.revert import RevertReport
    from opsconsole.adapters.supabase import SupabaseAdapter

LOCK_PREFIX = "migrations:"
RESTORE_POINT_PREFIX = "opsc-"
RESTORE_POINT_WAIT_S = 60.0
DATA_LOSS_WARNING = "Data loss possible if reverting destructive schema changes."  # the runbook's words
MAX_VERSION = 40


def restore_point_name(version: str) -> str:
    """`opsc-<version>`, within the Management API's 20 characters."""
    return (RESTORE_POINT_PREFIX + version)[:20]


def manual_details(migration: Migration) -> dict[str, Any]:
    """The migration's statements with what undoing each would take (for the manual step)."""
    rows = []
    for i, stmt in enumerate(migration.flat, start=1):
        rows.append({"#": i, "kind": stmt.kind.value, "statement": printable(stmt.sql, limit=2000),
                     "does": stmt.summary, "undo": stmt.undo})
    return {"manual": True, "version": migration.version, "name": migration.name, "statements": rows}


def manual_text(migration: Migration) -> str:
    lines = []
    for row in manual_details(migration)["statements"]:
        lines.append(f"  {row['#']}. [{row['kind']}] {printable(row['statement'], single_line=True, limit=160)}\n"
                     f"     does: {row['does']}\n     undo: {row['undo']}")
    return "\n".join(lines) or "  (no statements recorded)"


class RevertMigration:
    """Undo one migration from its own rollback statements or a revert file, dry run first."""

    id = "migrations.revert"
    title = "Revert migration"
    tier = RiskTier.DESTRUCTIVE
    start_key = "V"
    tab = "deploy"
    description = ("Undo a migration with its rollback statements or revert file: dry run first (counts the data "
                   "it loses), then one transaction that also removes the version from schema_migrations")
    needs = "[supabase] database_url"
    params = (
        ParamSpec("version", ParamType.STR, "the migration version (schema_migrations.version)", required=True,
                  max_len=MAX_VERSION),
        ParamSpec("dry_run", ParamType.BOOL, "true: only repeat the dry run at run time and journal it (default "
                  "false)"),
        ParamSpec("restore_point", ParamType.BOOL, "true: take a Supabase restore point opsc-<version> first "
                  "(where the plan has them)"),
    )
    execute_timeout_s = 600.0  # a restore point to wait for, then statements under a 60 s statement_timeout

    def __init__(self, settings: Settings, *, supabase: SupabaseAdapter | None = None,
                 clock: Callable[[], datetime] = utcnow, restore_point_wait_s: float = RESTORE_POINT_WAIT_S) -> None:
        self.settings = settings
        self.supabase = supabase
        self.clock = clock
        self.timeout_s = float(settings.checks.timeout_s)
        self.restore_point_wait_s = restore_point_wait_s
        self._plans: dict[str, tuple[tuple[ClassifiedStatement, ...], dict[str, int | None]]] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _dsn(self) -> str | Refusal:
        from opsconsole.adapters.postgres import ConfigProblem, reveal_dsn

        sb = self.settings.supabase
        if sb is None or sb.database_url is None:
            return Refusal(RefusalReason.UNAVAILABLE, "not configured: supabase.database_url")
        try:
            return reveal_dsn(sb.database_url)
        except ConfigProblem as exc:
            return Refusal(RefusalReason.UNAVAILABLE, f"database URL unusable: {exc}")

    async def _read(self, dsn: str, version: str) -> Migration | Refusal:
        import psycopg
        from psycopg.rows import dict_row

        from opsconsole.adapters.migrations.history import MissingTable, read_migration
        from opsconsole.adapters.migrations.revert import APP_NAME

        try:
            async with asyncio.timeout(self.timeout_s + 2):
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row,
                                                             prepare_threshold=None, application_name=APP_NAME,
                                                             connect_timeout=max(2, int(self.timeout_s)))
                try:
                    migration, _shape = await read_migration(conn, version)
                finally:
                    await conn.close()
        except MissingTable as exc:
            return Refusal(RefusalReason.UNAVAILABLE, str(exc))
        except (TimeoutError, psycopg.Error, OSError) as exc:
            text = printable(str(exc) or type(exc).__name__, single_line=True, limit=200)
            return Refusal(RefusalReason.UNAVAILABLE, f"cannot read the migration history: {text}")
        if migration is None:
            return Refusal(RefusalReason.INVALID, f"no migration {version} in supabase_migrations.schema_migrations "
                                                  "(already reverted?)")
        return migration

    async def restore_points(self) -> tuple[bool, str]:
        """Whether this project can take restore points, and the basis for saying so."""
        sup = self.supabase
        if sup is None or sup.config is None or sup.config.access_token is None:
            return False, "not available: no [supabase] access_token for the Management API"
        listing = await sup.list_backups()
        if listing.inventory is None:
            return False, f"unknown: the backups could not be read ({listing.problem})"
        if not listing.inventory.pitr_enabled:
            return False, "not available: restore points need point-in-time recovery, which is off for this project"
        return True, "available (point-in-time recovery is on)"

    # -- preview ----------------------------------------------------------------------------
    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        from opsconsole.adapters.migrations.classify import classify_sql
        from opsconsole.adapters.migrations.history import find_revert
        from opsconsole.adapters.migrations.revert import run_revert

        version = str(params.get("version", "")).strip()
        if not version or not version.isdigit():
            return Refusal(RefusalReason.INVALID, f"version must be the migration's digits (got "
                                                  f"{printable(version, single_line=True, limit=40)!r})")
        dry_only = bool(params.get("dry_run", False))
        want_point = bool(params.get("restore_point", False))
        as_of = self.clock()
        dsn = self._dsn()
        if isinstance(dsn, Refusal):
            return dsn
        migration = await self._read(dsn, version)
        if isinstance(migration, Refusal):
            return migration
        source = find_revert(migration, self.settings.migrations.revert_dir)
        title = f"{migration.version} {migration.name}".strip()
        if source.problem or not source.statements:
            why = source.problem or ("it has no rollback statements in schema_migrations and no "
                                     f"{migration.version}_*.down.sql in [migrations] revert_dir")
            return Refusal(RefusalReason.NOTHING_TO_DO,
                           f"no automatic revert for migration {title}: {why}. The step stays manual; its statements "
                           f"and what undoing each would take:\n{manual_text(migration)}", manual_details(migration))
        classified = tuple(c for s in source.statements for c in classify_sql(s))
        for i, c in enumerate(classified, start=1):
            why = ("the parser could not analyse it, so its data loss cannot be counted" if c.kind is
                   StatementKind.UNKNOWN else "it is transaction control (BEGIN/COMMIT...)" if c.transaction_control
                   else "it cannot run inside a transaction" if c.needs_no_transaction else "")
            if why:
                return Refusal(RefusalReason.NOTHING_TO_DO,
                               f"revert statement {i} of migration {title} cannot run automatically: {why} "
                               f"({printable(c.sql, single_line=True, limit=120)}). The step stays manual; the "
                               f"migration's statements and what undoing each would take:\n{manual_text(migration)}",
                               manual_details(migration))
        report = await run_revert(dsn, migration.version, classified, dry_run=True,
                                  connect_timeout_s=self.timeout_s)
        if not report.ok:
            details: dict[str, Any] = {"dry_run": report.to_json(), "blocked_by": report.blocked_by}
            return Refusal(RefusalReason.UNAVAILABLE, f"dry run of the revert of {title} failed: {report.error}",
                           details)
        if report.uncounted:
            first = report.uncounted[0]
            return Refusal(RefusalReason.NOTHING_TO_DO,
                           f"the data the revert of {title} would lose cannot be counted ({first.text}): it is not "
                           f"run automatically; the step stays manual:\n{manual_text(migration)}",
                           {**manual_details(migration), "dry_run": report.to_json()})
        points_ok, points_basis = await self.restore_points()
        if want_point and not points_ok:
            return Refusal(RefusalReason.INVALID, f"restore_point=true, but restore points are {points_basis}")
        return self._preview(migration, source.origin, source.notes, classified, report, as_of,
                             dry_only=dry_only, want_point=want_point, points=(points_ok, points_basis))

    def _preview(self, migration: Migration, origin: str, notes: tuple[str, ...],
                 classified: tuple[ClassifiedStatement, ...], report: RevertReport, as_of: datetime, *,
                 dry_only: bool, want_point: bool, points: tuple[bool, str]) -> Preview:
        from pathlib import Path

        title = f"{migration.version} {migration.name}".strip()
        where = "schema_migrations.rollback" if origin == "schema_migrations.rollback" else Path(origin).name
        lines = [f"Revert migration {title} with {len(classified)} statement(s) from {where}.",
                 f"Dry run: executed in a transaction that was rolled back (lock_timeout, statement_timeout) in "
                 f"{report.elapsed_ms:.0f} ms; nothing was changed. Locks taken: {', '.join(report.locks) or 'none'}."]
        lines += [f"Note: {n}" for n in notes]
        items: list[dict[str, Any]] = []
        for st in report.statements:
            lines.append(f"{st.index}. [{st.kind}] {printable(st.sql, single_line=True, limit=150)}")
            lines.append(f"   does: {st.summary}")
            for loss in st.losses:
                lines.append(f"   {loss.text}")
            if st.rowcount is not None and not st.losses and st.kind != StatementKind.DESTRUCTIVE.value:
                lines.append(f"   {st.rowcount:,} rows affected")
            for notice in st.notices[:5]:
                lines.append(f"   notice: {notice}")
            items.append({"#": st.index, "kind": st.kind, "statement": printable(st.sql, limit=2000),
                          "lost": "; ".join(f"{loss.count:,} {loss.unit}" for loss in st.losses
                                            if loss.count is not None) or "nothing",
                          "losses": [loss.to_json() for loss in st.losses], "ms": round(st.ms, 1)})
        total = report.counted_loss
        lost_things = [loss for loss in report.losses if loss.count]
        lines.append(f"Data lost in all: {total:,} (counted, {len(lost_things)} object(s))" if total else
                     "Data lost in all: nothing (counted)")
        lines.append(f"Then version {migration.version} is removed from supabase_migrations.schema_migrations in the "
                     "same transaction; a failure anywhere changes nothing." if not dry_only else
                     "dry_run=true: running it repeats this dry run and journals it; nothing is changed.")
        ok, basis = points
        if want_point:
            lines.append(f"Restore point {restore_point_name(migration.version)} is taken first ({basis}); its name "
                         "goes into the journal.")
        elif ok:
            lines.append(f"Restore point: not requested; {basis}: restore_point=true takes "
                         f"{restore_point_name(migration.version)} first.")
        else:
            lines.append(f"Restore point: {basis}.")
        warning = DATA_LOSS_WARNING
        if total:
            warning += (f" This revert destroys {total:,} counted values/rows ("
                        + "; ".join(loss.text for loss in lost_things[:3])
                        + "): only a backup taken before the revert holds them.")
        params = {"version": migration.version, "dry_run": dry_only, "restore_point": want_point}
        preview = Preview(action_id=self.id, title=self.title, tier=self.tier,
                          target=f"migration {printable(title, single_line=True, limit=80)}",
                          confirm_text=migration.version, data_as_of=as_of, lines=tuple(lines), items=tuple(items),
                          warning=warning, params=params, lock_key=f"{LOCK_PREFIX}{migration.version}",
                          warning_hold_s=WARNING_HOLD_S if total and not dry_only else 0.0)
        self._plans[preview.preview_id] = (classified, report.loss_by_key())
        return preview

    # -- execute ----------------------------------------------------------------------------
    async def execute(self, preview: Preview) -> Outcome:
        from opsconsole.adapters.migrations.revert import run_revert

        plan = self._plans.pop(preview.preview_id, None)
        if plan is None:
            return Outcome(OutcomeStatus.FAILED, "the preview's dry run is gone: preview again", error="no plan")
        classified, confirmed = plan
        version = str(preview.params["version"])
        dsn = self._dsn()
        if isinstance(dsn, Refusal):
            return Outcome(OutcomeStatus.FAILED, f"nothing was reverted: {dsn.message}", error=dsn.message)
        dry_only = bool(preview.params.get("dry_run"))
        items: list[dict[str, Any]] = []
        if preview.params.get("restore_point") and not dry_only:
            name = restore_point_name(version)
            problem = await self._take_restore_point(name)
            if problem is not None:
                return Outcome(OutcomeStatus.FAILED, f"restore point {name} could not be taken ({problem}): nothing "
                                                     "was reverted", items=({"restore_point": name, "result": "failed",
                                                                             "detail": problem},), error=problem)
            items.append({"restore_point": name, "result": "available"})
        report = await run_revert(dsn, version, classified, dry_run=dry_only, confirmed=None if dry_only else confirmed,
                                  connect_timeout_s=self.timeout_s)
        items.append({"result": "dry_run" if dry_only else ("reverted" if report.ok else "not_reverted"),
                      "report": report.to_json()})
        if dry_only:
            status = OutcomeStatus.OK if report.ok else OutcomeStatus.FAILED
            text = (f"dry run repeated: {report.counted_loss:,} values/rows would be lost; nothing was changed"
                    if report.ok else f"dry run failed: {report.error}; nothing was changed")
            return Outcome(status, text, items=tuple(items), error="" if report.ok else report.error)
        if report.ok:
            lost = f"; lost {report.counted_loss:,} values/rows, as the dry run counted" if report.counted_loss else ""
            point = f"; restore point {items[0]['restore_point']} taken first" if "restore_point" in items[0] else ""
            return Outcome(OutcomeStatus.OK, f"reverted migration {version}: {len(report.statements)} statement(s) in "
                                             f"one transaction, version removed from schema_migrations{lost}{point}",
                           items=tuple(items))
        if report.outcome_unknown:
            return Outcome(OutcomeStatus.FAILED, report.error, items=tuple(items), error="outcome unknown")
        return Outcome(OutcomeStatus.FAILED, f"nothing was reverted (the transaction was rolled back): {report.error}",
                       items=tuple(items), error=report.error)

    async def _take_restore_point(self, name: str) -> str | None:
        sup = self.supabase
        if sup is None:
            return "no Management API configured"
        point, problem = await sup.create_restore_point(name)
        if point is None:
            return problem or "the Management API did not accept it"
        deadline = time.monotonic() + self.restore_point_wait_s
        while point is not None and point.status != "AVAILABLE":
            if point.status in ("FAILED", "REMOVED"):
                return f"it is {point.status}"
            if time.monotonic() >= deadline:
                return f"still {point.status} after {self.restore_point_wait_s:g} s"
            await asyncio.sleep(1.0)
            point, problem = await sup.restore_point(name)
            if point is None:
                return problem or "it vanished"
        return None


def migration_actions(settings: Settings, supabase: Any = None) -> list[GuardedAction]:
    """The revert action, or none without `supabase.database_url`."""
    sb = settings.supabase
    if sb is None or sb.database_url is None:
        return []
    return [RevertMigration(settings, supabase=supabase)]
