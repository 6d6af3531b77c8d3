"""Reading `supabase_migrations.schema_migrations` and finding a migration's revert.

The table is read directly (the Management API's migration endpoints are for partner OAuth apps
only). Columns are discovered first: `rollback text[]` is read only where it exists, and an
applied-at column (applied_at, inserted_at, executed_at, created_at, of a timestamp type) is used for
"when" where there is one; otherwise the version, which the Supabase CLI writes as the UTC
timestamp YYYYMMDDHHMMSS, says when. The listing cuts very long statements (the revert reads the
migration in full).

A revert comes from the migration's own rollback statements or from `[migrations] revert_dir`
(`<version>_*.down.sql`, split into statements by PostgreSQL's parser). When both exist and say
different things, or several files match, the console refuses to pick one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from opsconsole.adapters.migrations.classify import classify_entries, split_sql
from opsconsole.domain.migrations import Migration, MigrationListing, version_time
from opsconsole.domain.models import utcnow
from opsconsole.domain.text import printable

AsyncConn = psycopg.AsyncConnection[DictRow]

SCHEMA = "supabase_migrations"
TABLE = "schema_migrations"
QUALIFIED = f"{SCHEMA}.{TABLE}"
APPLIED_COLUMNS = ("applied_at", "inserted_at", "executed_at", "created_at")
LIST_LIMIT = 200
LIST_STATEMENTS = 200
LIST_STATEMENT_CHARS = 20_000
MAX_REVERT_FILE_BYTES = 2 * 1024 * 1024

COLUMNS_SQL = """
select column_name, data_type from information_schema.columns
where table_schema = %(schema)s and table_name = %(table)s
"""


class MissingTable(Exception):
    """The project has no schema_migrations table (or the role cannot see it); message safe to show."""


@dataclass(frozen=True, slots=True)
class TableShape:
    columns: frozenset[str]
    applied_column: str | None

    @property
    def has_rollback(self) -> bool:
        return "rollback" in self.columns

    @property
    def has_name(self) -> bool:
        return "name" in self.columns

    @property
    def has_statements(self) -> bool:
        return "statements" in self.columns


async def table_shape(conn: AsyncConn) -> TableShape:
    rows = await (await conn.execute(COLUMNS_SQL, {"schema": SCHEMA, "table": TABLE})).fetchall()
    if not rows:
        raise MissingTable(f"table {QUALIFIED} not found (or not visible to this role): this project's migrations "
                           "are not recorded where the Supabase CLI records them")
    types = {str(r["column_name"]): str(r["data_type"]) for r in rows}
    applied = next((c for c in APPLIED_COLUMNS if c in types and types[c].startswith("timestamp")), None)
    return TableShape(columns=frozenset(types), applied_column=applied)


def _select(shape: TableShape, *, full: bool) -> sql.Composed:
    if shape.has_statements:
        if full:
            statements: sql.Composable = sql.SQL("coalesce(statements, '{}')")
            truncated: sql.Composable = sql.SQL("false")
        else:
            statements = sql.SQL(
                "array(select left(s, {chars}) from unnest(coalesce(statements, '{{}}')) with ordinality u(s, i) "
                "where i <= {n} order by i)").format(chars=sql.Literal(LIST_STATEMENT_CHARS),
                                                     n=sql.Literal(LIST_STATEMENTS))
            truncated = sql.SQL(
                "(coalesce(cardinality(statements), 0) > {n} or exists (select 1 from unnest(statements) s "
                "where length(s) > {chars}))").format(chars=sql.Literal(LIST_STATEMENT_CHARS),
                                                      n=sql.Literal(LIST_STATEMENTS))
    else:
        statements, truncated = sql.SQL("'{}'::text[]"), sql.SQL("false")
    return sql.SQL("select version::text as version, {name} as name, {statements} as statements, "
                   "{truncated} as truncated, {rollback} as rollback, {applied} as applied_at from {table}").format(
        name=sql.SQL("coalesce(name, '')") if shape.has_name else sql.SQL("''"),
        statements=statements, truncated=truncated,
        rollback=sql.SQL("rollback") if shape.has_rollback else sql.SQL("null::text[]"),
        applied=sql.Identifier(shape.applied_column) if shape.applied_column else sql.SQL("null::timestamptz"),
        table=sql.Identifier(SCHEMA, TABLE))


def _migration(row: Mapping[str, Any], shape: TableShape) -> Migration:
    version = str(row["version"])
    statements = tuple(str(s) for s in (row["statements"] or ()) if s is not None)
    rollback_raw = row["rollback"]
    rollback = tuple(str(s) for s in rollback_raw if s is not None) if rollback_raw is not None else None
    applied = row["applied_at"]
    if applied is not None and shape.applied_column:
        when, source = applied, f"column {shape.applied_column}"
    else:
        when, source = version_time(version), "version"
        if when is None:
            source = ""
    return Migration(version=version, name=str(row["name"] or ""), statements=statements,
                     rollback=rollback if rollback else None, applied_at=when, applied_from=source,
                     classified=classify_entries(statements), truncated=bool(row["truncated"]))


async def read_history(conn: AsyncConn, *, limit: int = LIST_LIMIT) -> MigrationListing:
    """The newest `limit` migrations, newest first (by version), each statement classified.

    Raises MissingTable, and psycopg errors for the caller to describe."""
    shape = await table_shape(conn)
    query = sql.SQL("{} order by version desc limit {}").format(_select(shape, full=False), sql.Literal(limit))
    rows = await (await conn.execute(query)).fetchall()
    migrations = tuple(_migration(r, shape) for r in rows)
    return MigrationListing(migrations=migrations, has_rollback_column=shape.has_rollback,
                            applied_column=shape.applied_column, read_at=utcnow())


async def read_migration(conn: AsyncConn, version: str) -> tuple[Migration | None, TableShape]:
    """One migration with its statements in full (None when the version is not in the table)."""
    shape = await table_shape(conn)
    query = sql.SQL("{} where version::text = {}").format(_select(shape, full=True), sql.Literal(version))
    row = await (await conn.execute(query)).fetchone()
    return (_migration(row, shape) if row is not None else None), shape


# -- where the revert comes from ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RevertSource:
    """The statements that undo a migration, and where they came from (or why there are none)."""

    statements: tuple[str, ...] = ()
    origin: str = ""  # "schema_migrations.rollback" | the file path | "" (none)
    problem: str = ""  # why the revert cannot be used automatically (ambiguous, unreadable, unparsable)
    notes: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return bool(self.statements) and not self.problem


def revert_files(revert_dir: str, version: str) -> list[Path]:
    """`<version>_*.down.sql` in `revert_dir` (sorted), or none."""
    if not revert_dir:
        return []
    root = Path(revert_dir).expanduser()
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{version}_*.down.sql") if p.is_file())


def _normalised(statements: Sequence[str]) -> list[str]:
    """Statements compared by what they say, not by their spelling (re-printed from the parse tree)."""
    from pglast import parse_sql
    from pglast.stream import RawStream

    out: list[str] = []
    for s in statements:
        try:
            out.extend(str(RawStream()(raw.stmt)) for raw in parse_sql(s) if raw.stmt is not None)
        except Exception:
            out.append(" ".join(s.split()).lower())
    return out


def find_revert(migration: Migration, revert_dir: str) -> RevertSource:
    """The revert of `migration`: its rollback statements and/or a revert file, checked for agreement."""
    notes: list[str] = []
    files = revert_files(revert_dir, migration.version)
    if revert_dir and not Path(revert_dir).expanduser().is_dir():
        notes.append(f"[migrations] revert_dir {printable(revert_dir, single_line=True, limit=120)} is not a folder")
    from_file: tuple[str, ...] = ()
    file_origin = ""
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        return RevertSource(problem=f"several revert files match version {migration.version} ({names}): keep one",
                            notes=tuple(notes))
    if files:
        path = files[0]
        file_origin = str(path)
        try:
            if path.stat().st_size > MAX_REVERT_FILE_BYTES:
                return RevertSource(problem=f"{path.name} is larger than {MAX_REVERT_FILE_BYTES // 1024} KiB",
                                    origin=file_origin, notes=tuple(notes))
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = printable(str(exc), single_line=True, limit=120)
            return RevertSource(problem=f"{path.name} cannot be read: {why}",
                                origin=file_origin, notes=tuple(notes))
        split = split_sql(text)
        if isinstance(split, str):
            return RevertSource(problem=f"{path.name}: {split}", origin=file_origin, notes=tuple(notes))
        from_file = tuple(split)
        if not from_file:
            return RevertSource(problem=f"{path.name} holds no statement", origin=file_origin, notes=tuple(notes))
    own = migration.rollback or ()
    if own and from_file:
        if _normalised(own) != _normalised(from_file):
            return RevertSource(problem=(f"two different reverts exist: schema_migrations.rollback "
                                         f"({len(own)} statements) and {Path(file_origin).name} ({len(from_file)}): "
                                         "reconcile them first"), notes=tuple(notes))
        notes.append(f"{Path(file_origin).name} says the same as schema_migrations.rollback")
    if own:
        return RevertSource(statements=tuple(own), origin="schema_migrations.rollback", notes=tuple(notes))
    if from_file:
        return RevertSource(statements=from_file, origin=file_origin, notes=tuple(notes))
    return RevertSource(notes=tuple(notes))
