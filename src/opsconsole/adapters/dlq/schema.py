"""The dead-letter table's shape, read from the catalogue: its columns mapped to the logical
names (`[dlq] columns`), their types checked, and the re-queue target (a table or a pgmq queue)
checked before anything is sent to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import DictRow

from opsconsole.adapters.dlq.sql import INT_TYPES, JSON_TYPES, TEXT_TYPES, TIME_TYPES, TableSql
from opsconsole.domain.dlq import LOGICAL_COLUMNS, REQUIRED_COLUMNS, ColumnMapping, DlqError, literal

AsyncConn = psycopg.AsyncConnection[DictRow]

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_]{1,47}$")
# What a re-queue can fill in a target table (anything else NOT NULL needs a default).
TARGET_FILLS = ("campaign_id", "to_number", "body", "payload", "source", "dlq_message_id")


def split_name(name: str) -> list[str] | None:
    """`schema.table` or `table` (quotes stripped) -> its parts; None when it is neither."""
    parts = [p.strip().strip('"') for p in name.strip().split(".")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        return None
    return parts


@dataclass(frozen=True, slots=True)
class RequeueTarget:
    """Where a re-queue sends messages, as checked against the database."""

    kind: str  # table | pgmq
    describe: str
    table: sql.Identifier | None = None
    ref_prefix: str = ""
    fills: tuple[str, ...] = ()  # target columns the insert fills
    payload_type: str = "jsonb"
    id_column: str | None = None
    link_column: str | None = None
    queue: str = ""


async def relation(conn: AsyncConn, name: str, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | DlqError:
    """A table's catalogue row (privileges included) and its columns, or why it cannot be used."""
    parts = split_name(name)
    shown = literal(name, single_line=True, limit=80)
    if parts is None:
        return DlqError("config", f"{what} {shown!r} is not a valid table name (expected schema.table)")
    quoted = sql.Identifier(*parts).as_string(conn)
    cur = await conn.execute(
        "select c.oid, n.nspname, c.relname, c.relkind, "
        "has_table_privilege(c.oid, 'SELECT') as can_select, has_table_privilege(c.oid, 'UPDATE') as can_update, "
        "has_table_privilege(c.oid, 'INSERT') as can_insert "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = to_regclass(%s)", [quoted])
    rel = await cur.fetchone()
    if rel is None:
        db = literal(conn.info.dbname, single_line=True, limit=60)
        return DlqError("config", f"{what} {shown} does not exist in database {db} (or the console's user "
                                  "cannot see it)")
    if rel["relkind"] not in ("r", "p", "v", "f"):
        return DlqError("config", f"{what} {shown} is not a table")
    cols = await (await conn.execute(
        "select a.attname as name, t.typname as udt, format_type(a.atttypid, a.atttypmod) as type, "
        "a.attnotnull as not_null, (a.atthasdef or a.attidentity <> '' or a.attgenerated <> '') as has_default, "
        "t.typtype as typtype "
        "from pg_attribute a join pg_type t on t.oid = a.atttypid "
        "where a.attrelid = %s and a.attnum > 0 and not a.attisdropped order by a.attnum", [rel["oid"]])).fetchall()
    return dict(rel), [dict(c) for c in cols]


async def read_mapping(conn: AsyncConn, table_name: str, mapping_config: Mapping[str, str],
                       never: Sequence[int]) -> tuple[ColumnMapping, TableSql] | DlqError:
    """Read the table's columns (pg_attribute, like information_schema.columns but independent
    of search_path quirks), apply the configured mapping and check the required columns."""
    shown = literal(table_name, single_line=True, limit=80)
    found = await relation(conn, table_name, "[dlq] table")
    if isinstance(found, DlqError):
        return found
    rel, cols = found
    if not rel["can_select"]:
        return DlqError("permission", f"the console's user may not read {shown} (grant select)")
    by_name = {c["name"]: c for c in cols}
    unknown = sorted(k for k in mapping_config if k not in LOGICAL_COLUMNS)
    if unknown:
        return DlqError("config", "[dlq] columns has unknown key(s) " + ", ".join(
            literal(k, single_line=True, limit=40) for k in unknown) + "; known: " + ", ".join(LOGICAL_COLUMNS))
    columns: dict[str, str] = {}
    types: dict[str, str] = {}
    bad_maps: list[str] = []
    for logical in LOGICAL_COLUMNS:
        physical = mapping_config.get(logical, logical)
        col = by_name.get(physical)
        if col is None:
            if logical in mapping_config:
                bad_maps.append(f"{logical} = {literal(physical, single_line=True, limit=40)!r}")
            continue
        columns[logical] = physical
        types[logical] = "enum" if col["typtype"] == "e" else str(col["udt"])
    if bad_maps:
        return DlqError("config", f"[dlq] columns maps {', '.join(bad_maps)}, but {shown} has no such "
                                  "column")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        return DlqError("config", f"{shown} lacks required column(s) {', '.join(missing)} — map them with "
                                  f"[dlq] columns = {{ {missing[0]} = \"<column>\" }} (required: "
                                  f"{', '.join(REQUIRED_COLUMNS)})")
    wrong: list[str] = []
    allowed = {"id": INT_TYPES, "received_at": TIME_TYPES, "error_code": INT_TYPES | TEXT_TYPES,
               "payload": JSON_TYPES, "status": TEXT_TYPES | {"enum"}}
    for logical, ok in allowed.items():
        if types[logical] not in ok:
            wrong.append(f"{logical} ({columns[logical]}: {by_name[columns[logical]]['type']}; expected "
                         f"{' or '.join(sorted(ok))})")
    if wrong:
        return DlqError("config", f"{shown}: column type(s) the console cannot use: {'; '.join(wrong)}")
    notes: list[str] = []
    for logical, ok_types in (("payload_raw", TEXT_TYPES), ("history", {"jsonb"})):
        if logical in columns and types[logical] not in ok_types:
            notes.append(f"{logical} ({columns[logical]}) is {by_name[columns[logical]]['type']}, not "
                         f"{' or '.join(sorted(ok_types))}: ignored")
            del columns[logical]
    if "discard_reason" not in columns:
        notes.append("no discard_reason column: discarding is off")
    if "history" not in columns:
        notes.append("no history column: fixing payloads is off (the original must be kept)")
    if "requeued_at" not in columns:
        notes.append("no requeued_at column: a commit interrupted by a lost connection is verified by "
                     "status only")
    mapping = ColumnMapping(table=table_name, columns=columns, types=types, can_update=bool(rel["can_update"]),
                            notes=tuple(notes))
    table = sql.Identifier(str(rel["nspname"]), str(rel["relname"]))
    return mapping, TableSql(mapping, table, never)


async def pgmq_target(conn: AsyncConn, queue: str) -> RequeueTarget | DlqError:
    """Re-queue into a Supabase Queue: pgmq.send exists and so does the queue."""
    shown = literal(queue, single_line=True, limit=60)
    if not QUEUE_NAME.match(queue):
        return DlqError("config", f"[dlq] requeue queue {shown!r} is not a valid queue name (letters, digits, _)")
    row = await (await conn.execute(
        "select exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
        "where n.nspname = 'pgmq' and p.proname = 'send') as has_send, "
        "to_regclass(%s) is not null as has_queue", [f'pgmq."q_{queue.lower()}"'])).fetchone()
    assert row is not None
    if not row["has_send"]:
        return DlqError("config", "[dlq] requeue kind is pgmq, but this database has no pgmq.send (enable "
                                  "Supabase Queues / create extension pgmq)")
    if not row["has_queue"]:
        return DlqError("config", f"[dlq] requeue queue {shown} does not exist (pgmq.create({shown!r}), or "
                                  "check the name against pgmq.list_queues())")
    return RequeueTarget(kind="pgmq", describe=f"Supabase Queue (pgmq) {shown}", queue=queue,
                         ref_prefix=f"pgmq:{queue}:")


async def table_target(conn: AsyncConn, name: str, dlq_table: sql.Identifier | None) -> RequeueTarget | DlqError:
    """Re-queue into a table: insertable, every required column fillable, not the dead-letter table itself."""
    found = await relation(conn, name, "[dlq] requeue target")
    if isinstance(found, DlqError):
        return found
    rel, cols = found
    shown = literal(name, single_line=True, limit=80)
    if dlq_table is not None and sql.Identifier(str(rel["nspname"]), str(rel["relname"])) == dlq_table:
        return DlqError("config", "[dlq] requeue target is the dead-letter table itself")
    if not rel["can_insert"]:
        return DlqError("permission", f"the console's user may not insert into {shown} (grant insert)")
    by_name = {c["name"]: c for c in cols}
    fills = tuple(c for c in TARGET_FILLS if c in by_name)
    unfillable = [c["name"] for c in cols if c["not_null"] and not c["has_default"] and c["name"] not in fills]
    if unfillable:
        return DlqError("config", f"[dlq] requeue target {shown} has required column(s) the console cannot "
                                  f"fill: {', '.join(literal(c, single_line=True, limit=40) for c in unfillable)}"
                                  f" (it fills {', '.join(TARGET_FILLS)})")
    if "payload" in by_name and by_name["payload"]["udt"] not in JSON_TYPES:
        return DlqError("config", f"[dlq] requeue target {shown}: payload is not json/jsonb")
    id_column = "id" if "id" in by_name else None
    link = "dlq_message_id" if "dlq_message_id" in by_name else None
    return RequeueTarget(kind="table", describe=f"table {shown}",
                         table=sql.Identifier(str(rel["nspname"]), str(rel["relname"])), fills=fills,
                         payload_type=str(by_name["payload"]["udt"]) if "payload" in by_name else "jsonb",
                         id_column=id_column, link_column=link, ref_prefix=f"{rel['relname']}:")
