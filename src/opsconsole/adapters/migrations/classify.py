"""Classify SQL statements with PostgreSQL's own parser (pglast), never with regular expressions.

`classify_sql(text)` splits `text` into statements and says of each whether it is destructive,
additive, other or unknown, what it does ("drops column public.contacts.opt_out_reason"), what
undoing it would take, and the data effects a dry run can count (`DataEffect`). A statement the
parser rejects, and opaque code (DO blocks, CALL), is `unknown` with the reason: never "safe".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from opsconsole.domain.migrations import ClassifiedStatement, DataEffect, Finding, StatementKind
from opsconsole.domain.text import printable

D, A, OTH, U = StatementKind.DESTRUCTIVE, StatementKind.ADDITIVE, StatementKind.OTHER, StatementKind.UNKNOWN
OT = enums.ObjectType
AT = enums.AlterTableType
MAX_SQL_CHARS = 1_000_000  # a statement larger than this is not parsed (unknown), to bound the work

_BACKUP = "its data only comes back from a backup (Backups tab: restore)"

# Statements PostgreSQL refuses inside a transaction block (a revert runs as one transaction).
_NO_TRANSACTION_NODES = {"VacuumStmt", "CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt",
                         "DropTableSpaceStmt"}

_OBJECT_WORDS = {
    OT.OBJECT_TABLE: "table", OT.OBJECT_VIEW: "view", OT.OBJECT_MATVIEW: "materialized view",
    OT.OBJECT_INDEX: "index", OT.OBJECT_SEQUENCE: "sequence", OT.OBJECT_SCHEMA: "schema", OT.OBJECT_TYPE: "type",
    OT.OBJECT_DOMAIN: "domain", OT.OBJECT_FUNCTION: "function", OT.OBJECT_PROCEDURE: "procedure",
    OT.OBJECT_TRIGGER: "trigger", OT.OBJECT_POLICY: "policy", OT.OBJECT_EXTENSION: "extension",
    OT.OBJECT_FOREIGN_TABLE: "foreign table", OT.OBJECT_COLUMN: "column", OT.OBJECT_TABCONSTRAINT: "constraint",
    OT.OBJECT_RULE: "rule", OT.OBJECT_DATABASE: "database", OT.OBJECT_ROLE: "role",
    OT.OBJECT_PUBLICATION: "publication", OT.OBJECT_AGGREGATE: "aggregate",
}


def _word(objtype: Any) -> str:
    return _OBJECT_WORDS.get(objtype, str(getattr(objtype, "name", objtype)).removeprefix("OBJECT_").lower())


def _names(node: Any) -> list[str]:
    """The parts of a qualified name given as a sequence of String nodes (or a TypeName)."""
    if isinstance(node, ast.TypeName):
        node = node.names
    if isinstance(node, ast.String):
        return [node.sval or ""]
    if isinstance(node, (tuple, list)):
        return [n.sval or "" for n in node if isinstance(n, ast.String)]
    return []


def _dotted(parts: Sequence[str]) -> str:
    return ".".join(parts)


def _rel(rv: ast.RangeVar | None) -> tuple[str | None, str]:
    if rv is None:
        return None, "?"
    return rv.schemaname or None, rv.relname or "?"


def _relname(rv: ast.RangeVar | None) -> str:
    schema, name = _rel(rv)
    return f"{schema}.{name}" if schema else name


def _sql_of(node: Any) -> str:
    try:
        return str(RawStream()(node))
    except Exception:  # the printer does not know every node: say what it is
        return type(node).__name__


def _stmt(sql: str, kind: StatementKind, findings: Iterable[Finding], node: str, **kw: Any) -> ClassifiedStatement:
    return ClassifiedStatement(sql=sql, kind=kind, findings=tuple(findings), node=node, **kw)


def _kind_of(findings: Sequence[Finding]) -> StatementKind:
    if not findings:
        return OTH
    return max((f.kind for f in findings), key=lambda k: k.rank)


# -- ALTER TABLE -------------------------------------------------------------------------------------

def _alter_table(stmt: ast.AlterTableStmt, sql: str) -> ClassifiedStatement:
    schema, table = _rel(stmt.relation)
    shown = _relname(stmt.relation)
    word = _word(stmt.objtype)
    findings: list[Finding] = []
    for cmd in stmt.cmds or ():
        if not isinstance(cmd, ast.AlterTableCmd):
            continue
        sub = cmd.subtype
        cascade = cmd.behavior == enums.DropBehavior.DROP_CASCADE
        if sub == AT.AT_AddColumn:
            col = cmd.def_.colname if isinstance(cmd.def_, ast.ColumnDef) else "?"
            findings.append(Finding(A, f"adds column {shown}.{col}",
                                    f"ALTER TABLE {shown} DROP COLUMN {col} (loses the values written to it since)"))
        elif sub == AT.AT_DropColumn:
            findings.append(Finding(D, f"drops column {shown}.{cmd.name}" + (" CASCADE" if cascade else ""),
                                    f"re-add column {cmd.name} with its old definition; {_BACKUP}",
                                    DataEffect("drop_column", table, schema, column=cmd.name, cascade=cascade)))
        elif sub == AT.AT_AlterColumnType:
            col_def = cmd.def_ if isinstance(cmd.def_, ast.ColumnDef) else None
            new_type = _sql_of(col_def.typeName) if col_def is not None and col_def.typeName else "?"
            using = col_def is not None and col_def.raw_default is not None
            findings.append(Finding(D, f"changes the type of {shown}.{cmd.name} to {new_type} (rewrites every row"
                                       + (", with a USING expression" if using else "") + ")",
                                    f"ALTER COLUMN {cmd.name} TYPE <its old type> (not recorded here: see the schema "
                                    f"before this migration); values a narrowing conversion changed: {_BACKUP}",
                                    DataEffect("alter_type", table, schema, column=cmd.name, new_type=new_type,
                                               using=using)))
        elif sub in (AT.AT_AddConstraint, AT.AT_AddIndex, AT.AT_AddIndexConstraint):
            name = getattr(cmd.def_, "conname", None) or "the constraint"
            findings.append(Finding(A, f"adds constraint {name} on {shown}",
                                    f"ALTER TABLE {shown} DROP CONSTRAINT {name}"))
        elif sub == AT.AT_DropConstraint:
            findings.append(Finding(OTH, f"drops constraint {cmd.name} on {shown} (no data lost)",
                                    f"re-add constraint {cmd.name} with its old definition"))
        elif sub == AT.AT_ColumnDefault:
            verb = "drops" if cmd.def_ is None else "sets"
            findings.append(Finding(OTH, f"{verb} the default of {shown}.{cmd.name}",
                                    "restore the previous default"))
        elif sub == AT.AT_SetNotNull:
            findings.append(Finding(OTH, f"makes {shown}.{cmd.name} NOT NULL",
                                    f"ALTER TABLE {shown} ALTER COLUMN {cmd.name} DROP NOT NULL"))
        elif sub == AT.AT_DropNotNull:
            findings.append(Finding(OTH, f"allows NULL in {shown}.{cmd.name}",
                                    f"ALTER TABLE {shown} ALTER COLUMN {cmd.name} SET NOT NULL"))
        else:
            label = str(getattr(sub, "name", sub)).removeprefix("AT_")
            findings.append(Finding(OTH, f"alters {word} {shown} ({label})", "reverse it by hand"))
    return _stmt(sql, _kind_of(findings), findings, "AlterTableStmt")


# -- DROP --------------------------------------------------------------------------------------------

def _drop(stmt: ast.DropStmt, sql: str) -> ClassifiedStatement:
    kind_word = _word(stmt.removeType)
    cascade = stmt.behavior == enums.DropBehavior.DROP_CASCADE
    tail = " CASCADE (dependent objects go too)" if cascade else ""
    findings: list[Finding] = []
    rt = stmt.removeType
    for obj in stmt.objects or ():
        parts = _names(obj)
        name = _dotted(parts) or _sql_of(obj)
        schema = parts[-2] if len(parts) >= 2 else None
        base = parts[-1] if parts else name
        if rt in (OT.OBJECT_TABLE,):
            findings.append(Finding(D, f"drops table {name}{tail}",
                                    f"recreate table {name} from its definition; {_BACKUP}",
                                    DataEffect("drop_table", base, schema, cascade=cascade)))
        elif rt == OT.OBJECT_SCHEMA:
            findings.append(Finding(D, f"drops schema {name}{tail}",
                                    f"recreate schema {name} and everything in it; {_BACKUP}",
                                    DataEffect("drop_schema", base, None, cascade=cascade)))
        elif rt in (OT.OBJECT_TYPE, OT.OBJECT_DOMAIN):
            findings.append(Finding(D, f"drops {kind_word} {name}{tail}",
                                    f"recreate {kind_word} {name}" + (f"; columns of that type: {_BACKUP}"
                                                                      if cascade else ""),
                                    DataEffect("drop_type", base, schema, cascade=cascade)))
        elif rt == OT.OBJECT_EXTENSION and cascade:
            findings.append(Finding(D, f"drops extension {name} CASCADE (columns of its types go too)",
                                    f"CREATE EXTENSION {name}; dropped columns: {_BACKUP}"))
        elif rt == OT.OBJECT_MATVIEW:
            findings.append(Finding(OTH, f"drops materialized view {name}{tail} (its contents can be recomputed)",
                                    f"recreate materialized view {name} and refresh it"))
        elif rt == OT.OBJECT_FOREIGN_TABLE:
            findings.append(Finding(OTH, f"drops foreign table {name}{tail} (its data lives elsewhere)",
                                    f"recreate foreign table {name}"))
        else:
            findings.append(Finding(OTH, f"drops {kind_word} {name}{tail} (no table data)",
                                    f"recreate {kind_word} {name} from its definition"))
    return _stmt(sql, _kind_of(findings), findings, "DropStmt",
                 needs_no_transaction=bool(stmt.concurrent))


# -- the rest -----------------------------------------------------------------------------------------

def _rename(stmt: ast.RenameStmt, sql: str) -> ClassifiedStatement:
    word = _word(stmt.renameType)
    new = stmt.newname
    if stmt.relation is not None:
        schema, table = _rel(stmt.relation)
        owner = _relname(stmt.relation)
    else:
        parts = _names(stmt.object)
        schema, table = (parts[-2] if len(parts) >= 2 else None), (parts[-1] if parts else "?")
        owner = _dotted(parts) or "?"
    if stmt.renameType == OT.OBJECT_COLUMN:
        what = f"renames column {owner}.{stmt.subname} to {new}: no data lost; code that uses {stmt.subname} breaks"
        undo = f"ALTER TABLE {owner} RENAME COLUMN {new} TO {stmt.subname}"
        effect = DataEffect("rename", table, schema, column=stmt.subname, new_name=new)
    elif stmt.subname:
        what = f"renames {word} {stmt.subname} on {owner} to {new}: no data lost; code that uses the old name breaks"
        undo = f"rename {word} {new} back to {stmt.subname}"
        effect = DataEffect("rename", table, schema, new_name=new)
    else:
        what = f"renames {word} {owner} to {new}: no data lost; code that uses the old name breaks"
        undo = f"rename {word} {new} back to {owner.rsplit('.', 1)[-1]}"
        effect = DataEffect("rename", table, schema, new_name=new)
    return _stmt(sql, D, [Finding(D, what, undo, effect)], "RenameStmt")


def _dml_where(stmt: Any) -> bool:
    return getattr(stmt, "whereClause", None) is not None


def _update(stmt: ast.UpdateStmt, sql: str) -> ClassifiedStatement:
    schema, table = _rel(stmt.relation)
    shown = _relname(stmt.relation)
    cols = tuple(t.name for t in (stmt.targetList or ()) if isinstance(t, ast.ResTarget) and t.name)
    where = _dml_where(stmt)
    effect = DataEffect("update", table, schema, where=where, columns=cols)
    listed = ", ".join(cols) or "?"
    if not where:
        joined = " (joined with FROM, rows without a match keep their values)" if stmt.fromClause else ""
        return _stmt(sql, D, [Finding(D, f"updates every row of {shown}{joined}: old values of {listed} are lost",
                                      f"the old values of {listed}: {_BACKUP}", effect)], "UpdateStmt")
    return _stmt(sql, OTH, [Finding(OTH, f"updates rows of {shown} matching its WHERE ({listed})",
                                  f"the old values of {listed} in those rows: {_BACKUP}", effect)], "UpdateStmt")


def _delete(stmt: ast.DeleteStmt, sql: str) -> ClassifiedStatement:
    schema, table = _rel(stmt.relation)
    shown = _relname(stmt.relation)
    where = _dml_where(stmt)
    effect = DataEffect("delete", table, schema, where=where)
    if not where:
        using = " (joined with USING)" if stmt.usingClause else ""
        kind = OTH if stmt.usingClause else D
        return _stmt(sql, kind, [Finding(kind, f"deletes every row of {shown}{using}", f"the rows: {_BACKUP}",
                                         effect)], "DeleteStmt")
    return _stmt(sql, OTH, [Finding(OTH, f"deletes rows of {shown} matching its WHERE", f"those rows: {_BACKUP}",
                                  effect)], "DeleteStmt")


def _truncate(stmt: ast.TruncateStmt, sql: str) -> ClassifiedStatement:
    cascade = stmt.behavior == enums.DropBehavior.DROP_CASCADE
    findings = []
    for rv in stmt.relations or ():
        schema, table = _rel(rv)
        findings.append(Finding(D, f"empties table {_relname(rv)}" + (" and, CASCADE, the tables referencing it"
                                                                       if cascade else ""),
                                f"the rows: {_BACKUP}", DataEffect("truncate", table, schema, cascade=cascade)))
    return _stmt(sql, D, findings, "TruncateStmt")


def _create(stmt: Any, sql: str, node: str) -> ClassifiedStatement:
    replace = bool(getattr(stmt, "replace", False))
    if node == "CreateStmt":
        name, word = _relname(stmt.relation), "table"
    elif node == "CreateTableAsStmt":
        name = _relname(stmt.into.rel) if stmt.into is not None else "?"
        word = "materialized view" if stmt.objtype == OT.OBJECT_MATVIEW else "table"
    elif node == "IndexStmt":
        name, word = (stmt.idxname or f"an index on {_relname(stmt.relation)}"), "index"
    elif node == "ViewStmt":
        name, word = _relname(stmt.view), "view"
    elif node == "CreateFunctionStmt":
        name, word = _dotted(_names(stmt.funcname)), "procedure" if stmt.is_procedure else "function"
    elif node == "CreateSchemaStmt":
        name, word = stmt.schemaname or "?", "schema"
    elif node == "CreateSeqStmt":
        name, word = _relname(stmt.sequence), "sequence"
    elif node == "CreateEnumStmt":
        name, word = _dotted(_names(stmt.typeName)), "type"
    elif node == "CompositeTypeStmt":
        name, word = _relname(stmt.typevar), "type"
    elif node == "CreateDomainStmt":
        name, word = _dotted(_names(stmt.domainname)), "domain"
    elif node == "CreateTrigStmt":
        name, word = f"{stmt.trigname} on {_relname(stmt.relation)}", "trigger"
    elif node == "CreatePolicyStmt":
        name, word = f"{stmt.policy_name} on {_relname(stmt.table)}", "policy"
    elif node == "CreateExtensionStmt":
        name, word = stmt.extname, "extension"
    else:
        name, word = "?", node.removesuffix("Stmt").removeprefix("Create").lower() or "object"
    if replace:
        return _stmt(sql, OTH, [Finding(OTH, f"creates or replaces {word} {name}",
                                      f"restore the previous definition of {word} {name}")], node)
    undo = f"DROP {word.upper()} {name}" + (" (loses its rows)" if word == "table" else "")
    concurrent = node == "IndexStmt" and bool(stmt.concurrent)
    return _stmt(sql, A, [Finding(A, f"creates {word} {name}", undo)], node, needs_no_transaction=concurrent)


_ADDITIVE_NODES = {"CreateStmt", "CreateTableAsStmt", "IndexStmt", "ViewStmt", "CreateFunctionStmt",
                   "CreateSchemaStmt", "CreateSeqStmt", "CreateEnumStmt", "CompositeTypeStmt", "CreateDomainStmt",
                   "CreateTrigStmt", "CreatePolicyStmt", "CreateExtensionStmt", "DefineStmt", "RuleStmt",
                   "CreateRangeStmt", "CreateCastStmt", "CreateEventTrigStmt", "CreatePublicationStmt"}
_OTHER_WORDS = {
    "CommentStmt": "sets a comment", "GrantStmt": "changes privileges", "GrantRoleStmt": "changes role membership",
    "AlterDefaultPrivilegesStmt": "changes default privileges", "AlterOwnerStmt": "changes an owner",
    "AlterFunctionStmt": "alters a function", "AlterSeqStmt": "alters a sequence", "VariableSetStmt": "sets a setting",
    "SelectStmt": "runs a query (changes made by functions it calls are not analysed)",
    "AlterPolicyStmt": "alters a policy", "AlterRoleStmt": "alters a role", "CreateRoleStmt": "creates a role",
    "SecLabelStmt": "sets a security label", "NotifyStmt": "sends a notification", "LockStmt": "locks tables",
    "RefreshMatViewStmt": "refreshes a materialized view", "ClusterStmt": "reorders a table",
    "ReindexStmt": "rebuilds indexes", "VacuumStmt": "vacuums", "AlterSystemStmt": "changes a server setting",
    "CreatedbStmt": "creates a database", "AlterDatabaseStmt": "alters a database",
    "AlterDatabaseSetStmt": "changes a database setting", "AlterExtensionStmt": "updates an extension",
    "AlterTableMoveAllStmt": "moves tables to another tablespace", "AlterEventTrigStmt": "alters an event trigger",
    "ExplainStmt": "explains a query", "CheckPointStmt": "forces a checkpoint", "DiscardStmt": "discards session state",
}


def _one(stmt: Any, sql: str) -> ClassifiedStatement:
    node = type(stmt).__name__
    if isinstance(stmt, ast.AlterTableStmt):
        return _alter_table(stmt, sql)
    if isinstance(stmt, ast.DropStmt):
        return _drop(stmt, sql)
    if isinstance(stmt, ast.RenameStmt):
        return _rename(stmt, sql)
    if isinstance(stmt, ast.UpdateStmt):
        return _update(stmt, sql)
    if isinstance(stmt, ast.DeleteStmt):
        return _delete(stmt, sql)
    if isinstance(stmt, ast.TruncateStmt):
        return _truncate(stmt, sql)
    if isinstance(stmt, ast.InsertStmt):
        shown = _relname(stmt.relation)
        return _stmt(sql, A, [Finding(A, f"inserts rows into {shown}", f"DELETE the inserted rows from {shown}")],
                     node)
    if isinstance(stmt, ast.CopyStmt):
        shown = _relname(stmt.relation) if stmt.relation is not None else "a query"
        if stmt.is_from:
            return _stmt(sql, A, [Finding(A, f"loads rows into {shown}", f"DELETE the loaded rows from {shown}")],
                         node)
        return _stmt(sql, OTH, [Finding(OTH, f"copies {shown} out", "nothing to undo")], node)
    if isinstance(stmt, ast.AlterObjectSchemaStmt):
        word = _word(stmt.objectType)
        name = _relname(stmt.relation) if stmt.relation is not None else _dotted(_names(stmt.object)) or "?"
        return _stmt(sql, D, [Finding(D, f"moves {word} {name} to schema {stmt.newschema}: no data lost; code that "
                                         "uses the old qualified name breaks",
                                      f"ALTER {word.upper()} ... SET SCHEMA back to the old schema")], node)
    if isinstance(stmt, ast.AlterEnumStmt):
        name = _dotted(_names(stmt.typeName))
        if stmt.oldVal:
            return _stmt(sql, D, [Finding(D, f"renames value {stmt.oldVal!r} of type {name} to {stmt.newVal!r}",
                                          f"ALTER TYPE {name} RENAME VALUE {stmt.newVal!r} TO {stmt.oldVal!r}")], node)
        return _stmt(sql, A, [Finding(A, f"adds value {stmt.newVal!r} to type {name}",
                                      "an enum value cannot be dropped: recreate the type without it")], node)
    if isinstance(stmt, ast.DropdbStmt):
        return _stmt(sql, D, [Finding(D, f"drops database {stmt.dbname}", f"the whole database: {_BACKUP}")], node,
                     needs_no_transaction=True)
    if isinstance(stmt, ast.TransactionStmt):
        word = str(getattr(stmt.kind, "name", stmt.kind)).removeprefix("TRANS_STMT_")
        return _stmt(sql, OTH, [Finding(OTH, f"transaction control ({word})", "nothing to undo")], node,
                     transaction_control=True)
    if isinstance(stmt, ast.DoStmt):
        return _stmt(sql, U, (), node, problem="a DO block runs procedural code the parser cannot see into: "
                                               "not analysed")
    if isinstance(stmt, ast.CallStmt):
        name = _dotted(_names(stmt.funccall.funcname)) if stmt.funccall is not None else "?"
        return _stmt(sql, U, (), node, problem=f"CALL {name} runs a procedure the parser cannot see into: not analysed")
    if node in _ADDITIVE_NODES:
        return _create(stmt, sql, node)
    if node == "ReindexStmt" and any(getattr(p, "defname", "") == "concurrently" for p in (stmt.params or ())):
        return _stmt(sql, OTH, [Finding(OTH, "rebuilds indexes concurrently", "nothing to undo")], node,
                     needs_no_transaction=True)
    if node in _OTHER_WORDS:
        no_tx = node in _NO_TRANSACTION_NODES
        return _stmt(sql, OTH, [Finding(OTH, _OTHER_WORDS[node], "reverse it by hand")], node,
                     needs_no_transaction=no_tx)
    return _stmt(sql, OTH, [Finding(OTH, f"{node.removesuffix('Stmt')} (not a schema or data change the console "
                                     "knows)", "review by hand")], node)


def _parse_problem(exc: Exception) -> str:
    text = printable(str(exc) or type(exc).__name__, single_line=True, limit=160)
    return f"PostgreSQL's parser (pglast) could not parse it: {text}; not analysed"


def classify_sql(text: str) -> list[ClassifiedStatement]:
    """Every statement in `text`, classified; a parse error makes the whole text one unknown statement."""
    if not text.strip():
        return []
    if len(text) > MAX_SQL_CHARS:
        return [ClassifiedStatement(sql=text[:2000], kind=U, problem=f"{len(text):,} characters: too large to "
                                                                    "analyse here; not analysed")]
    try:
        parsed = parse_sql(text)
    except ParseError as exc:
        return [ClassifiedStatement(sql=text, kind=U, problem=_parse_problem(exc))]
    except Exception as exc:  # the parser must never take the console down
        return [ClassifiedStatement(sql=text, kind=U, problem=_parse_problem(exc))]
    out: list[ClassifiedStatement] = []
    for raw in parsed:
        # pglast reports stmt_location/stmt_len in characters of `text` (0 length: up to the end)
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(text) - start)
        piece = text[start:start + length].strip()
        try:
            out.append(_one(raw.stmt, piece))
        except Exception as exc:  # an AST shape this code did not expect: unknown, with why
            out.append(ClassifiedStatement(sql=piece, kind=U, node=type(raw.stmt).__name__,
                                           problem=f"could not be analysed ({type(exc).__name__}): not analysed"))
    return out


def classify_entries(entries: Sequence[str]) -> tuple[tuple[ClassifiedStatement, ...], ...]:
    """`schema_migrations.statements`: one classified tuple per entry (an entry may hold several)."""
    return tuple(tuple(classify_sql(entry)) for entry in entries)


def split_sql(text: str) -> list[str] | str:
    """`text` (a .down.sql file) as its statements, or why it cannot be split (a parse error)."""
    try:
        parse_sql(text)
    except Exception as exc:
        return _parse_problem(exc)
    return [c.sql for c in classify_sql(text)]
