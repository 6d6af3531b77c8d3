"""SQL for one mapped dead-letter table: quoted columns, the payload rules and the filters as
SQL expressions, shared by the reads (pages.py) and the batch mutations (batch.py).

Every identifier is quoted by psycopg; every value is a parameter or a psycopg literal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psycopg import sql

from opsconsole.domain.dlq import (
    BLANK_CHARS,
    E164_PATTERN,
    MAX_BODY_CHARS,
    MAX_PAYLOAD_BYTES,
    PROBLEM_BAD_TO,
    PROBLEM_EMPTY,
    PROBLEM_EMPTY_BODY,
    PROBLEM_LONG_BODY,
    PROBLEM_NOT_JSON,
    PROBLEM_NOT_OBJECT,
    PROBLEM_TOO_LARGE,
    REQUIRED_PAYLOAD_FIELDS,
    ColumnMapping,
    DlqFilter,
    Selection,
    problem_missing,
)

LIST_ERROR_CHARS = 300

INT_TYPES = frozenset({"int2", "int4", "int8"})
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "citext"})
TIME_TYPES = frozenset({"timestamptz", "timestamp"})
JSON_TYPES = frozenset({"jsonb", "json"})


class TableSql:
    """Builds statements for one mapped table. Every identifier is quoted by psycopg; every
    value is a parameter or a psycopg literal."""

    def __init__(self, mapping: ColumnMapping, table: sql.Identifier, never: Sequence[int]) -> None:
        self.m = mapping
        self.table = table
        self.never = tuple(never)
        code_type = mapping.types["error_code"]
        self.code_is_int = code_type in INT_TYPES
        self.code_array = sql.SQL(f"{code_type}[]" if code_type in INT_TYPES else "text[]")
        self.id_array = sql.SQL("int8[]")

    # columns
    def c(self, logical: str, alias: str = "t") -> sql.Composable:
        return sql.Identifier(alias, self.m[logical])

    def opt(self, logical: str, alias: str = "t", default: str = "null") -> sql.Composable:
        return self.c(logical, alias) if self.m.has(logical) else sql.SQL(default)

    def payload(self, alias: str = "t") -> sql.Composable:
        col = self.c("payload", alias)
        return col if self.m.types["payload"] == "jsonb" else sql.SQL("({})::jsonb").format(col)

    def raw(self, alias: str = "t") -> sql.Composable:
        return self.opt("payload_raw", alias)

    def code_values(self, codes: Iterable[int | None]) -> list[Any]:
        return [c if self.code_is_int else str(c) for c in codes if c is not None]

    def sid(self, alias: str = "t") -> sql.Composable:
        if self.m.has("message_sid"):
            return self.c("message_sid", alias)
        return sql.SQL("({}->>'MessageSid')").format(self.payload(alias))

    def payload_bytes(self, alias: str = "t") -> sql.Composable:
        if self.m.has("payload_bytes"):
            return sql.SQL("coalesce({}, 0)").format(self.c("payload_bytes", alias))
        return sql.SQL("coalesce(pg_column_size({}), octet_length({}), 0)").format(self.c("payload", alias),
                                                                                  self.raw(alias))

    def problem(self, alias: str = "t") -> sql.Composable:
        """`domain.dlq.payload_problem` as SQL: NULL when the payload can be re-queued."""
        p = self.payload(alias)
        lit = sql.Literal
        blank = lit(BLANK_CHARS)
        whens: list[sql.Composable] = []
        if self.m.has("payload_raw"):
            whens.append(sql.SQL("when {p} is null then case when coalesce({raw}, '') = '' then {empty} "
                                 "else {not_json} end").format(p=p, raw=self.raw(alias), empty=lit(PROBLEM_EMPTY),
                                                               not_json=lit(PROBLEM_NOT_JSON)))
        else:
            whens.append(sql.SQL("when {p} is null then {not_json}").format(p=p, not_json=lit(PROBLEM_NOT_JSON)))
        whens.append(sql.SQL("when {size} > {mx} then {msg}").format(size=self.payload_bytes(alias),
                                                                     mx=lit(MAX_PAYLOAD_BYTES),
                                                                     msg=lit(PROBLEM_TOO_LARGE)))
        whens.append(sql.SQL("when jsonb_typeof({p}) <> 'object' then {msg}").format(p=p,
                                                                                    msg=lit(PROBLEM_NOT_OBJECT)))
        for name in REQUIRED_PAYLOAD_FIELDS:
            key = lit(name)
            if name == "Body":
                whens.append(sql.SQL("when jsonb_typeof({p}->{k}) is distinct from 'string' then {m1} "
                                     "when {p}->>{k} = '' then {m2} "
                                     "when char_length({p}->>{k}) > {mx} then {m3}").format(
                    p=p, k=key, m1=lit(problem_missing(name)), m2=lit(PROBLEM_EMPTY_BODY),
                    mx=lit(MAX_BODY_CHARS), m3=lit(PROBLEM_LONG_BODY)))
                continue
            whens.append(sql.SQL("when jsonb_typeof({p}->{k}) is distinct from 'string' "
                                 "or btrim({p}->>{k}, {blank}) = '' then {m}").format(
                p=p, k=key, blank=blank, m=lit(problem_missing(name))))
            if name == "To":
                whens.append(sql.SQL("when ({p}->>{k}) !~ {rx} then {m}").format(
                    p=p, k=key, rx=lit(f"^{E164_PATTERN}$"), m=lit(PROBLEM_BAD_TO)))
        return sql.SQL("(case {} end)").format(sql.SQL(" ").join(whens))

    def never_expr(self, alias: str = "t") -> sql.Composable:
        if not self.never:
            return sql.SQL("false")
        return sql.SQL("coalesce({} = any({}::{}), false)").format(
            self.c("error_code", alias), sql.Literal(self.code_values(self.never)), self.code_array)

    # filters
    def conds(self, flt: DlqFilter, params: dict[str, Any], alias: str = "t") -> list[sql.Composable]:
        out: list[sql.Composable] = []

        def param(value: Any) -> sql.Placeholder:
            name = f"p{len(params)}"
            params[name] = value
            return sql.Placeholder(name)

        if flt.status is not None:
            out.append(sql.SQL("{} = {}").format(self.c("status", alias), param(flt.status)))
        if flt.error_codes:
            values = self.code_values(flt.error_codes)
            parts: list[sql.Composable] = []
            if len(values) == 1:  # plain equality: the (error_code, received_at, id) index gives the order
                parts.append(sql.SQL("{} = {}::{}").format(self.c("error_code", alias), param(values[0]),
                                                          sql.SQL(self.m.types["error_code"] if self.code_is_int
                                                                  else "text")))
            elif values:
                parts.append(sql.SQL("{} = any({}::{})").format(self.c("error_code", alias), param(values),
                                                               self.code_array))
            if None in flt.error_codes:
                parts.append(sql.SQL("{} is null").format(self.c("error_code", alias)))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        received = self.c("received_at", alias)
        if flt.max_age is not None:
            out.append(sql.SQL("{} >= now() - {}::interval").format(received, param(flt.max_age)))
        if flt.min_age is not None:
            out.append(sql.SQL("{} <= now() - {}::interval").format(received, param(flt.min_age)))
        if flt.since is not None:
            out.append(sql.SQL("{} >= {}").format(received, param(flt.since)))
        if flt.until is not None:
            out.append(sql.SQL("{} < {}").format(received, param(flt.until)))
        if flt.message_sid:
            out.append(sql.SQL("{} = {}::text").format(self.sid(alias), param(flt.message_sid.strip())))
        for logical, keys in (("endpoint", flt.endpoints), ("workflow", flt.workflows)):
            if not keys:
                continue
            if not self.m.has(logical):
                out.append(sql.SQL("false"))
                continue
            col = self.c(logical, alias)
            given = [v for v in keys if v is not None]
            parts = []
            if given:
                parts.append(sql.SQL("{} = any({}::text[])").format(col, param(given)))
            if None in keys:
                parts.append(sql.SQL("{} is null").format(col))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        if flt.text:
            pattern = param("%" + like_escape(flt.text) + "%")
            parts = [sql.SQL("({})::text ilike {}").format(self.c("payload", alias), pattern)]
            if self.m.has("payload_raw"):
                parts.append(sql.SQL("{} ilike {}").format(self.c("payload_raw", alias), pattern))
            if self.m.has("error_message"):
                parts.append(sql.SQL("{} ilike {}").format(self.c("error_message", alias), pattern))
            out.append(sql.SQL("({})").format(sql.SQL(" or ").join(parts)))
        return out

    def selection_conds(self, sel: Selection, params: dict[str, Any], alias: str = "t") -> list[sql.Composable]:
        id_col = self.c("id", alias)
        if sel.ids is not None:
            params["sel_ids"] = sorted(sel.ids)
            return [sql.SQL("{} = any(%(sel_ids)s::int8[])").format(id_col)]
        out = self.conds(sel.filter or DlqFilter(), params, alias)
        if sel.excluded:
            params["sel_excluded"] = sorted(sel.excluded)
            out.append(sql.SQL("{} <> all(%(sel_excluded)s::int8[])").format(id_col))
        if sel.upto_id is not None:
            params["sel_upto"] = sel.upto_id
            out.append(sql.SQL("{} <= %(sel_upto)s").format(id_col))
        return out

    @staticmethod
    def where(conds: Sequence[sql.Composable]) -> sql.Composable:
        if not conds:
            return sql.SQL("true")
        return sql.SQL(" and ").join(conds)

    def list_columns(self, alias: str = "t") -> sql.Composable:
        return sql.SQL(", ").join([
            sql.SQL("{} as id").format(self.c("id", alias)),
            sql.SQL("{} as received_at").format(self.c("received_at", alias)),
            sql.SQL("({})::text as status").format(self.c("status", alias)),
            sql.SQL("{} as error_code").format(self.c("error_code", alias)),
            sql.SQL("left({}, {}) as error_message").format(self.opt("error_message", alias),
                                                           sql.Literal(LIST_ERROR_CHARS)),
            sql.SQL("left({}, 64) as message_sid").format(self.sid(alias)),
            sql.SQL("left({}, 300) as endpoint").format(self.opt("endpoint", alias)),
            sql.SQL("left({}, 300) as workflow").format(self.opt("workflow", alias)),
            sql.SQL("{} as attempts").format(self.opt("attempts", alias)),
            sql.SQL("{} as payload_bytes").format(self.payload_bytes(alias)),
            sql.SQL("{} as problem").format(self.problem(alias)),
        ])


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def as_code(value: Any) -> int | None:
    """An error code as read from the table (int or text column) -> int; None when it is not one."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() and len(text) <= 9 else None
