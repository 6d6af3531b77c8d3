"""`db.migrations` on the embedded PostgreSQL: warns on a destructive migration of the last 24 h, uses an
applied-at column where the table has one (and says so), says UNKNOWN without the table."""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest

from opsconsole.adapters.migrations.check import MigrationsAdapter
from opsconsole.domain.models import Status
from tests.migrations.conftest import FreshDb

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")


async def _run(db: FreshDb, tmp_path: Path) -> tuple[Status, str, dict[str, object]]:
    adapter = MigrationsAdapter(db.settings(tmp_path))
    try:
        result = await adapter.checks()[0].run()
    finally:
        await adapter.aclose()
    assert result.id == "db.migrations" and result.system == "db"
    return result.status, result.summary, dict(result.details)


async def test_warns_on_the_destructive_migration_of_the_last_40_minutes(fresh_db: FreshDb, tmp_path: Path) -> None:
    status, summary, details = await _run(fresh_db, tmp_path)
    assert status is Status.WARN
    # applied 40 minutes before the (session-wide) database was seeded: older by the time this runs
    age = re.search(r"destructive migration (\d+)m ago", summary)
    assert age is not None and 40 <= int(age.group(1)) < 60, summary
    assert "contacts_opt_out_reason_and_e164" in summary
    assert "V reverts it" in summary
    assert details["applied_basis"] == "applied-at from the version timestamp (UTC)"
    newest = details["migrations"][0]  # type: ignore[index]
    assert newest["kind"] == "destructive" and newest["revert"] == "rollback"
    assert details["recent_destructive"] == [fresh_db.version()]


async def test_an_applied_at_column_is_used_when_there_is_one(fresh_db: FreshDb, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:
        conn.execute("alter table supabase_migrations.schema_migrations add column applied_at timestamptz")
        conn.execute("update supabase_migrations.schema_migrations set applied_at = now() - interval '3 days'")
    status, summary, details = await _run(fresh_db, tmp_path)
    assert status is Status.OK and "none destructive in the last 24 h" in summary
    assert details["applied_basis"] == "applied-at from column applied_at"


async def test_unparsable_statements_of_a_recent_migration_warn(fresh_db: FreshDb, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:
        conn.execute("delete from supabase_migrations.schema_migrations "
                     "where name = 'contacts_opt_out_reason_and_e164'")
        conn.execute("insert into supabase_migrations.schema_migrations (version, name, statements) values "
                     "(to_char(now() at time zone 'utc' - interval '1 hour', 'YYYYMMDDHH24MISS'), 'mystery', "
                     "array['create table t (a int)', 'alter tabel t add column b int'])")
    status, summary, _details = await _run(fresh_db, tmp_path)
    assert status is Status.WARN and "could not analyse" in summary and "mystery" in summary


async def test_without_the_table_it_says_unknown(fresh_db: FreshDb, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db.admin_dsn, autocommit=True) as conn:
        conn.execute("drop schema supabase_migrations cascade")
    status, summary, _details = await _run(fresh_db, tmp_path)
    assert status is Status.UNKNOWN and "not found" in summary
