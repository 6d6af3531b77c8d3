"""One embedded PostgreSQL seeded as the `bad-migration` drill, copied into a fresh database per test
(CREATE DATABASE ... TEMPLATE: a real revert in one test never leaks into the next)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from opsconsole.demo.postgres import DemoPostgres
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets
from opsconsole.demo.seed import BAD_MIGRATION_NAME, OWNER_ROLE, SeedReport, seed
from opsconsole.settings import (
    AuditSettings,
    ChecksSettings,
    MigrationsSettings,
    Secret,
    Settings,
    SupabaseSettings,
)

TEMPLATE = "migrations_template"
_counter = itertools.count(1)


@dataclass
class MigrationsPg:
    pg: DemoPostgres
    secrets: DemoSecrets
    report: SeedReport


@dataclass
class FreshDb:
    """A private copy of the seeded database."""

    env: MigrationsPg
    dbname: str

    @property
    def dsn(self) -> str:
        return self.env.pg.dsn(OWNER_ROLE, self.env.secrets.db_password, dbname=self.dbname)

    @property
    def admin_dsn(self) -> str:
        return str(self.env.pg.admin_dsn_for(self.dbname))

    def settings(self, tmp_path: Path, *, revert_dir: str = "", management_url: str = "",
                 access_token: str | None = None) -> Settings:
        supabase = SupabaseSettings(project_ref=PROJECT_REF, database_url=Secret.literal(self.dsn),
                                    management_url=management_url or "http://127.0.0.1:9",
                                    access_token=Secret.literal(access_token) if access_token else None)
        return Settings(supabase=supabase, checks=ChecksSettings(timeout_s=3.0),
                        migrations=MigrationsSettings(revert_dir=revert_dir),
                        audit=AuditSettings(path=str(tmp_path / "journal.jsonl")))

    def version(self, name: str = BAD_MIGRATION_NAME) -> str:
        with psycopg.connect(self.admin_dsn) as conn:
            row = conn.execute("select version from supabase_migrations.schema_migrations where name = %s",
                               [name]).fetchone()
        assert row is not None, name
        return str(row[0])

    def checksums(self) -> dict[str, str]:
        """Every user table's content and the whole schema, as md5 digests (before/after comparisons)."""
        with psycopg.connect(self.admin_dsn) as conn:
            tables = [r[0] for r in conn.execute(
                "select c.oid::regclass::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind = 'r' and n.nspname in ('public', 'supabase_migrations') order by 1").fetchall()]
            out = {}
            for t in tables:
                row = conn.execute(sql.SQL("select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                                           "from {} x").format(sql.SQL(t))).fetchone()
                out[t] = row[0] if row else ""
            schema = conn.execute("select md5(string_agg(table_name || '.' || column_name || ':' || data_type || "
                                  "coalesce(character_maximum_length::text, ''), ',' order by 1)) "
                                  "from information_schema.columns where table_schema = 'public'").fetchone()
            out["<schema>"] = schema[0] if schema else ""
        return out


@pytest.fixture(scope="session")
def migrations_pg() -> Iterator[MigrationsPg]:
    secrets = DemoSecrets.for_scenario("bad-migration")
    with DemoPostgres() as pg:
        report = seed(pg.admin_dsn, "bad-migration", secrets)
        with psycopg.connect(pg.admin_dsn_for("template1"), autocommit=True) as conn:
            conn.execute(sql.SQL("create database {} template postgres strategy file_copy").format(
                sql.Identifier(TEMPLATE)))
        yield MigrationsPg(pg, secrets, report)


@pytest.fixture
def fresh_db(migrations_pg: MigrationsPg) -> Iterator[FreshDb]:
    name = f"mig_test_{next(_counter)}"
    with psycopg.connect(migrations_pg.pg.admin_dsn_for("template1"), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} template {} owner {} strategy file_copy").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE), sql.Identifier(OWNER_ROLE)))
    try:
        yield FreshDb(migrations_pg, name)
    finally:
        with psycopg.connect(migrations_pg.pg.admin_dsn_for("template1"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
