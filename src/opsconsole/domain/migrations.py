"""Database migrations as the console sees them: the rows of `supabase_migrations.schema_migrations`,
each statement classified (destructive, additive, other, or unknown when it could not be analysed),
and the reports of a revert's dry run and real run. Plain data, no I/O.

Classification rules (runbook "How to Rollback", step 2: *data loss possible if reverting destructive
schema changes*): destructive = DROP TABLE/COLUMN/SCHEMA/TYPE (and DOMAIN, DATABASE, EXTENSION ...
CASCADE), TRUNCATE, DELETE or UPDATE without WHERE, ALTER COLUMN TYPE, RENAME (and SET SCHEMA, which
breaks callers the same way); additive = CREATE ..., ADD COLUMN/CONSTRAINT, INSERT; other = the rest
that was analysed. `unknown` means exactly that: the statement could not be parsed, or it is opaque
code (a DO block, a procedure call); it is never counted as safe.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class StatementKind(enum.StrEnum):
    DESTRUCTIVE = "destructive"
    ADDITIVE = "additive"
    OTHER = "other"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """For the worst of several: unknown and destructive outrank the rest."""
        return {"additive": 0, "other": 1, "unknown": 2, "destructive": 3}[self.value]


def worst_kind(kinds: list[StatementKind] | tuple[StatementKind, ...]) -> StatementKind:
    return max(kinds, key=lambda k: k.rank) if kinds else StatementKind.OTHER


@dataclass(frozen=True, slots=True)
class DataEffect:
    """What a statement does to stored data, in a form a dry run can count before running it.

    `op`: drop_table, drop_column, truncate, delete, update, alter_type, drop_schema, drop_type,
    rename. `schema` None means "resolved by search_path", like the statement itself.
    """

    op: str
    name: str
    schema: str | None = None
    column: str | None = None
    new_name: str | None = None
    new_type: str | None = None
    using: bool = False
    where: bool = False
    cascade: bool = False
    columns: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a statement does: its kind, in words, and what undoing it would take."""

    kind: StatementKind
    what: str
    undo: str
    effect: DataEffect | None = None


@dataclass(frozen=True, slots=True)
class ClassifiedStatement:
    """One SQL statement and what the parser says it does.

    `problem` says why it could not be analysed (kind unknown). `needs_no_transaction`: it cannot
    run inside a transaction block (CREATE INDEX CONCURRENTLY, VACUUM...); `transaction_control`:
    BEGIN, COMMIT, SAVEPOINT... Neither can be part of a revert run as one transaction.
    """

    sql: str
    kind: StatementKind
    findings: tuple[Finding, ...] = ()
    problem: str = ""
    needs_no_transaction: bool = False
    transaction_control: bool = False
    node: str = ""  # the parser's statement type, e.g. AlterTableStmt

    @property
    def summary(self) -> str:
        """'drops column public.contacts.opt_out_reason; adds column …' or why it is unknown."""
        if self.problem:
            return self.problem
        return "; ".join(f.what for f in self.findings) or "no effect found"

    @property
    def undo(self) -> str:
        hints = list(dict.fromkeys(f.undo for f in self.findings if f.undo))
        return "; ".join(hints) or "review by hand"

    @property
    def effects(self) -> tuple[DataEffect, ...]:
        return tuple(f.effect for f in self.findings if f.effect is not None)


@dataclass(frozen=True, slots=True)
class Migration:
    """One row of `supabase_migrations.schema_migrations`.

    `applied_at` comes from an applied-at column where the table has one (`applied_from` names it),
    else from the version, which the Supabase CLI writes as the UTC timestamp YYYYMMDDHHMMSS
    (`applied_from` = "version"); None when neither says.
    """

    version: str
    name: str
    statements: tuple[str, ...]
    rollback: tuple[str, ...] | None  # None: the table has no rollback column, or it is NULL
    applied_at: datetime | None
    applied_from: str
    classified: tuple[tuple[ClassifiedStatement, ...], ...] = ()  # per entry of `statements`
    truncated: bool = False  # statements were cut for the listing (the revert reads them in full)

    @property
    def kind(self) -> StatementKind:
        kinds = [c.kind for entry in self.classified for c in entry]
        return worst_kind(kinds) if kinds else StatementKind.OTHER

    def count(self, kind: StatementKind) -> int:
        return sum(1 for entry in self.classified for c in entry if c.kind is kind)

    @property
    def flat(self) -> tuple[ClassifiedStatement, ...]:
        return tuple(c for entry in self.classified for c in entry)


def version_time(version: str) -> datetime | None:
    """The UTC time a CLI migration version (YYYYMMDDHHMMSS) stands for, or None."""
    text = version.strip()
    if len(text) != 14 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class MigrationListing:
    """What one read of the table gave: migrations newest first, or why there are none."""

    migrations: tuple[Migration, ...] = ()
    problem: str | None = None
    has_rollback_column: bool = False
    applied_column: str | None = None
    read_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def applied_basis(self) -> str:
        if self.applied_column:
            return f"applied-at from column {self.applied_column}"
        return "applied-at from the version timestamp (UTC)"
