"""What a restore would lose, read from the live database: its size and the rows written since the
restore point.

A restore to time T drops every write after T. The database can count some of them: rows whose
timestamp columns (timestamptz / timestamp) hold a value after T, per table, exactly
(`count(*) where c1 > T or c2 > T ...`, each table under its own statement_timeout; a table that
takes longer is reported as not counted, with its planner estimate labelled as such). Tables
without a timestamp column cannot be counted: they are listed, and their changes are lost too.
Nothing is written; the session is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import DictRow, dict_row

from opsconsole.domain.text import printable

APP_NAME = "opsconsole-restore-preview"
PER_TABLE_TIMEOUT_MS = 3000
TOTAL_BUDGET_S = 20.0
MAX_TABLES = 200
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

TABLES_SQL = """
select c.oid::regclass::text as rel, n.nspname as schema, c.relname as name, c.reltuples::float8 as estimate,
       coalesce(array_agg(a.attname::text order by a.attnum)
                filter (where a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype)), '{}') as ts_columns
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where c.relkind in ('r', 'p') and n.nspname <> all(%(system)s) and n.nspname not like 'pg_temp%%'
  and has_table_privilege(c.oid, 'select')
group by c.oid, n.nspname, c.relname, c.reltuples
order by n.nspname, c.relname
limit %(limit)s
"""


@dataclass
class TableSince:
    table: str
    columns: tuple[str, ...]
    rows: int | None  # None: not counted (see note)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "columns": ", ".join(self.columns), "note": self.note}


@dataclass
class RestoreImpact:
    """The live database's side of a restore preview (problem set: it could not be read)."""

    size_bytes: int | None = None
    tables: list[TableSince] = field(default_factory=list)
    uncountable: list[str] = field(default_factory=list)  # tables without timestamp columns
    problem: str = ""
    truncated: bool = False
    elapsed_ms: float = 0.0

    @property
    def rows_since(self) -> int:
        return sum(t.rows or 0 for t in self.tables)

    @property
    def not_counted(self) -> list[TableSince]:
        return [t for t in self.tables if t.rows is None]


def _err(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) if diag is not None else None) or str(exc) or type(exc).__name__
    return printable(text, single_line=True, limit=160)


async def measure(dsn: str, since: datetime, *, timeout_s: float = 5.0,
                  budget_s: float = TOTAL_BUDGET_S) -> RestoreImpact:
    """Size and rows changed after `since` (see the module docstring). Never raises for a database
    failure: `problem` says what went wrong."""
    impact = RestoreImpact()
    started = time.perf_counter()
    try:
        conn: psycopg.AsyncConnection[DictRow] = await asyncio.wait_for(psycopg.AsyncConnection.connect(
            dsn, autocommit=True, row_factory=dict_row, prepare_threshold=None, application_name=APP_NAME,
            connect_timeout=max(2, math.ceil(timeout_s))), timeout=timeout_s + 1)
    except (TimeoutError, psycopg.Error, OSError) as exc:
        impact.problem = f"the database could not be read ({_err(exc)})"
        return impact
    try:
        await conn.execute("set default_transaction_read_only = on")
        await conn.execute(f"set statement_timeout = {PER_TABLE_TIMEOUT_MS}")
        row = await (await conn.execute("select pg_database_size(current_database())::int8 as size")).fetchone()
        impact.size_bytes = int(row["size"]) if row is not None else None
        tables = await (await conn.execute(TABLES_SQL, {"system": list(SYSTEM_SCHEMAS),
                                                        "limit": MAX_TABLES + 1})).fetchall()
        if len(tables) > MAX_TABLES:
            impact.truncated = True
            tables = tables[:MAX_TABLES]
        deadline = time.monotonic() + budget_s
        for t in tables:
            columns = tuple(str(c) for c in (t["ts_columns"] or ()))
            rel = str(t["rel"])
            if not columns:
                impact.uncountable.append(rel)
                continue
            if time.monotonic() > deadline:
                impact.tables.append(TableSince(rel, columns, None, f"not counted: the preview's {budget_s:g} s "
                                                                    "budget was used up"))
                continue
            cond = sql.SQL(" or ").join(sql.SQL("{} > %(since)s").format(sql.Identifier(c)) for c in columns)
            query = sql.SQL("select count(*) as n from {} where {}").format(sql.SQL(rel), cond)
            try:
                got = await (await conn.execute(query, {"since": since})).fetchone()
                impact.tables.append(TableSince(rel, columns, int(got["n"]) if got is not None else 0))
            except pg_errors.QueryCanceled:
                estimate = max(0, int(t["estimate"] or 0))
                impact.tables.append(TableSince(rel, columns, None,
                                                f"not counted: took over {PER_TABLE_TIMEOUT_MS / 1000:g} s "
                                                f"(the planner estimates {estimate:,} rows in the table)"))
            except psycopg.Error as exc:
                impact.tables.append(TableSince(rel, columns, None, f"not counted: {_err(exc)}"))
    except (psycopg.Error, OSError) as exc:
        impact.problem = f"the database could not be read ({_err(exc)})"
    finally:
        with contextlib.suppress(psycopg.Error, OSError):
            await conn.close()
        impact.elapsed_ms = (time.perf_counter() - started) * 1000
    return impact


def human_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
