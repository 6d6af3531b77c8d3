"""The statement classifier (pglast, PostgreSQL's own parser): many statements, including ones it
cannot parse, which are `unknown` with the reason and never counted as safe."""

from __future__ import annotations

import pytest

from opsconsole.adapters.migrations.classify import classify_entries, classify_sql, split_sql
from opsconsole.domain.migrations import Migration, StatementKind, version_time, worst_kind

D, A, OTH, U = StatementKind.DESTRUCTIVE, StatementKind.ADDITIVE, StatementKind.OTHER, StatementKind.UNKNOWN

CASES: list[tuple[str, StatementKind, str]] = [
    # destructive
    ("drop table public.contacts", D, "drops table public.contacts"),
    ("DROP TABLE IF EXISTS a, b.c CASCADE", D, "drops table b.c CASCADE"),
    ("alter table public.contacts drop column opt_out_reason", D, "drops column public.contacts.opt_out_reason"),
    ("alter table only t drop column if exists c cascade", D, "drops column t.c CASCADE"),
    ("drop schema analytics cascade", D, "drops schema analytics CASCADE"),
    ("drop type public.mood", D, "drops type public.mood"),
    ("drop domain email_address", D, "drops domain email_address"),
    ("truncate campaign_queue", D, "empties table campaign_queue"),
    ("truncate only a, b restart identity cascade", D, "empties table b and, CASCADE"),
    ("delete from dead_letter_messages", D, "deletes every row of dead_letter_messages"),
    ("update contacts set opted_out = false", D, "updates every row of contacts: old values of opted_out"),
    ("alter table t alter column a type bigint", D, "changes the type of t.a to bigint"),
    ("alter table t alter column a set data type varchar(40) using left(a, 40)", D, "with a USING expression"),
    ("alter table contacts rename column phone to phone_e164", D, "renames column contacts.phone to phone_e164"),
    ("alter table contacts rename to people", D, "renames table contacts to people"),
    ("alter index contacts_updated_idx rename to x", D, "renames index contacts_updated_idx to x"),
    ("alter table t rename constraint c1 to c2", D, "renames constraint c1 on t to c2"),
    ("alter type mood rename value 'ok' to 'fine'", D, "renames value 'ok' of type mood"),
    ("alter table t set schema archive", D, "moves table t to schema archive"),
    ("drop database other", D, "drops database other"),
    ("drop extension postgis cascade", D, "drops extension postgis CASCADE"),
    ("alter table t add column x int, drop column y", D, "drops column t.y"),
    # additive
    ("create table public.widgets (id bigint primary key)", A, "creates table public.widgets"),
    ("create index contacts_phone_idx on contacts (phone_e164)", A, "creates index contacts_phone_idx"),
    ("alter table contacts add column opt_out_reason text", A, "adds column contacts.opt_out_reason"),
    ("alter table t add constraint t_a_check check (a > 0)", A, "adds constraint t_a_check on t"),
    ("insert into contacts (phone_e164) values ('+1')", A, "inserts rows into contacts"),
    ("create view v as select 1", A, "creates view v"),
    ("create function f() returns int language sql as 'select 1'", A, "creates function f"),
    ("create schema if not exists archive", A, "creates schema archive"),
    ("create type mood as enum ('ok', 'sad')", A, "creates type mood"),
    ("create sequence s", A, "creates sequence s"),
    ("create extension if not exists pgcrypto", A, "creates extension pgcrypto"),
    ("alter type mood add value 'meh'", A, "adds value 'meh' to type mood"),
    ("create trigger tr before insert on t for each row execute function f()", A, "creates trigger tr on t"),
    ("create policy p on t using (true)", A, "creates policy p on t"),
    ("copy t from stdin", A, "loads rows into t"),
    # other
    ("update contacts set opted_out = true where id = 7", OTH, "updates rows of contacts matching its WHERE"),
    ("delete from contacts where id = 7", OTH, "deletes rows of contacts matching its WHERE"),
    ("alter table t drop constraint t_a_check", OTH, "drops constraint t_a_check on t (no data lost)"),
    ("alter table t alter column a set default 0", OTH, "sets the default of t.a"),
    ("alter table t alter column a drop not null", OTH, "allows NULL in t.a"),
    ("alter table t alter column a set not null", OTH, "makes t.a NOT NULL"),
    ("drop index contacts_updated_idx", OTH, "drops index contacts_updated_idx (no table data)"),
    ("drop view v", OTH, "drops view v"),
    ("drop function f()", OTH, "drops function"),
    ("drop materialized view m", OTH, "its contents can be recomputed"),
    ("comment on table t is 'x'", OTH, "sets a comment"),
    ("grant select on t to authenticator", OTH, "changes privileges"),
    ("create or replace view v as select 2", OTH, "creates or replaces view v"),
    ("select pg_catalog.set_config('search_path', '', false)", OTH, "runs a query"),
    ("alter table t enable row level security", OTH, "alters table t"),
]


@pytest.mark.parametrize(("text", "kind", "words"), CASES, ids=[c[0][:50] for c in CASES])
def test_classification(text: str, kind: StatementKind, words: str) -> None:
    [found] = classify_sql(text)
    assert found.kind is kind, (found.kind, found.summary)
    assert words in found.summary, found.summary
    assert found.undo  # every statement says what undoing it would take


@pytest.mark.parametrize("text", [
    "selec 1",  # a typo
    "alter tabel contacts drop column x",
    "drop table",  # incomplete
    "create table (",
    "update contacts set",
    "alter table contacts drop column opt_out_reason;; garbage here",
])
def test_what_the_parser_cannot_parse_is_unknown_with_the_reason(text: str) -> None:
    found = classify_sql(text)
    assert len(found) == 1 and found[0].kind is U
    assert "could not parse" in found[0].problem and "not analysed" in found[0].problem
    assert found[0].summary == found[0].problem  # never "safe", never guessed


@pytest.mark.parametrize("text", ["do $$ begin delete from contacts; end $$", "call cleanup()"])
def test_opaque_code_is_unknown(text: str) -> None:
    [found] = classify_sql(text)
    assert found.kind is U and "not analysed" in found.problem


def test_several_statements_in_one_entry_and_exact_text() -> None:
    found = classify_sql("create table é (a int);\n  drop table é; -- done\n")
    assert [f.kind for f in found] == [A, D]
    assert [f.sql for f in found] == ["create table é (a int)", "drop table é"]


def test_transaction_control_and_no_transaction_statements_are_flagged() -> None:
    assert classify_sql("begin")[0].transaction_control
    assert classify_sql("commit")[0].transaction_control
    assert classify_sql("create index concurrently i on t (a)")[0].needs_no_transaction
    assert classify_sql("drop index concurrently i")[0].needs_no_transaction
    assert classify_sql("vacuum t")[0].needs_no_transaction
    assert not classify_sql("create index i on t (a)")[0].needs_no_transaction


def test_data_effects_for_the_dry_run() -> None:
    [drop] = classify_sql("alter table public.contacts drop column opt_out_reason")
    (effect,) = drop.effects
    assert (effect.op, effect.schema, effect.name, effect.column) == ("drop_column", "public", "contacts",
                                                                      "opt_out_reason")
    [alter] = classify_sql("alter table t alter column a type varchar(40)")
    assert alter.effects[0].op == "alter_type" and alter.effects[0].new_type == "varchar(40)"
    [upd] = classify_sql("update t set a = 1, b = 2 where c")
    assert upd.effects[0].where and upd.effects[0].columns == ("a", "b")
    [trunc] = classify_sql("truncate a, s.b")
    assert [(e.schema, e.name) for e in trunc.effects] == [(None, "a"), ("s", "b")]


def test_empty_and_worst_kind() -> None:
    assert classify_sql("   ") == []
    assert worst_kind([A, OTH]) is OTH and worst_kind([A, U]) is U and worst_kind([U, D, A]) is D


def test_migration_kind_is_the_worst_statement() -> None:
    entries = ("create table t (a int)", "alter table t rename column a to b", "selec")
    m = Migration("20261127023209", "x", entries, None, version_time("20261127023209"), "version",
                  classified=classify_entries(entries))
    assert m.kind is D and m.count(D) == 1 and m.count(U) == 1 and m.count(A) == 1


def test_version_time() -> None:
    assert version_time("20261127023209") is not None
    assert version_time("20261127023209").hour == 2  # type: ignore[union-attr]
    for bad in ("1", "2026112702320", "20261327023209", "abcdefghijklmn", ""):
        assert version_time(bad) is None


def test_split_sql() -> None:
    assert split_sql("alter table a rename column b to c;\nalter table a drop column d;") == [
        "alter table a rename column b to c", "alter table a drop column d"]
    problem = split_sql("alter table a rename column b to c; selec;")
    assert isinstance(problem, str) and "could not parse" in problem
