"""One embedded PostgreSQL for the DLQ store tests, seeded with the `incident` scenario.

Tests that change data work on private copies (`DlqEnv.copy_tables`) or generated tables
(`DlqEnv.generated_tables`) so they can run in any order. The store connects as `ops` (the
non-superuser owner, like Supabase's `postgres`); ground truth is read through a superuser
connection, which is also what terminates the store's backend in the kill tests.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from opsconsole.adapters.dlq import DlqStore
from opsconsole.demo.postgres import DemoPostgres
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets
from opsconsole.demo.seed import OWNER_ROLE, SeedReport, generate_messages, seed
from opsconsole.settings import DlqSettings, RequeueTarget, Secret, Settings, SupabaseSettings

_names = itertools.count(1)

PGMQ_SQL = """
create schema if not exists pgmq;
create or replace function pgmq.send(queue_name text, msg jsonb) returns setof bigint
language plpgsql as $$
begin
  return query execute format('insert into pgmq.%I (message) values ($1) returning msg_id', 'q_' || queue_name)
    using msg;
end $$;
create or replace function pgmq."create"(queue_name text) returns void language plpgsql as $$
begin
  execute format('create table if not exists pgmq.%I (msg_id bigint generated always as identity primary key, '
                 'read_ct integer not null default 0, enqueued_at timestamptz not null default now(), '
                 'vt timestamptz not null default now(), message jsonb)', 'q_' || queue_name);
end $$;
"""


@dataclass
class DlqEnv:
    pg: DemoPostgres
    secrets: DemoSecrets
    report: SeedReport
    admin: psycopg.Connection[Any]
    owner: psycopg.Connection[Any]
    stores: list[DlqStore] = field(default_factory=list)

    @property
    def owner_dsn(self) -> str:
        return self.pg.dsn(OWNER_ROLE, self.secrets.db_password)

    def settings(self, table: str = "public.dead_letter_messages", *, kind: str = "table",
                 target: str = "public.campaign_queue", queue: str = "",
                 never: tuple[int, ...] = (21610, 30004, 30005, 30006, 30007),
                 database_url: Secret | None = None) -> Settings:
        return Settings(
            supabase=SupabaseSettings(project_ref=PROJECT_REF,
                                      database_url=database_url or Secret.literal(self.owner_dsn)),
            dlq=DlqSettings(table=table, requeue=RequeueTarget(kind=kind, target=target, queue=queue),
                            never_requeue_error_codes=never))

    def store(self, table: str = "public.dead_letter_messages", *, mapping: Mapping[str, str] | None = None,
              operator: str = "ops:test", **kwargs: Any) -> DlqStore:
        extra = {k: kwargs.pop(k) for k in ("alert_lookup", "text_search_timeout_ms", "read_timeout_ms",
                                            "alert_timeout_s") if k in kwargs}
        store = DlqStore(self.settings(table, **kwargs), mapping=mapping, operator=operator, **extra)
        self.stores.append(store)
        return store

    def new_name(self, prefix: str) -> str:
        return f"{prefix}_{next(_names)}"

    def copy_tables(self, prefix: str = "t") -> tuple[str, str]:
        """Private copies of the seeded DLQ and campaign queue (same indexes, constraints, data)."""
        name = self.new_name(prefix)
        dlq, queue = f"lab.{name}_dlq", f"lab.{name}_queue"
        with self.owner.transaction():
            for src, dst in (("public.dead_letter_messages", dlq), ("public.campaign_queue", queue)):
                dst_id = sql.Identifier(*dst.split("."))
                src_id = sql.Identifier(*src.split("."))
                self.owner.execute(sql.SQL("create table {} (like {} including all)").format(dst_id, src_id))
                self.owner.execute(sql.SQL("insert into {} select * from {}").format(dst_id, src_id))
                self.owner.execute(sql.SQL("select setval(pg_get_serial_sequence({}, 'id'), "
                                           "(select max(id) from {}))").format(sql.Literal(dst), dst_id))
        self.owner.execute(sql.SQL("analyze {}, {}").format(sql.Identifier(*dlq.split(".")),
                                                            sql.Identifier(*queue.split("."))))
        return dlq, queue

    def generated_tables(self, n: int, *, prefix: str = "g", waiting_share: float = 1.0,
                         seed_value: float = 0.42) -> tuple[str, str]:
        """Empty copies of the demo tables' shape filled with `n` generated messages."""
        name = self.new_name(prefix)
        dlq, queue = f"lab.{name}_dlq", f"lab.{name}_queue"
        with self.owner.transaction():
            for src, dst in (("public.dead_letter_messages", dlq), ("public.campaign_queue", queue)):
                self.owner.execute(sql.SQL("create table {} (like {} including all)").format(
                    sql.Identifier(*dst.split(".")), sql.Identifier(*src.split("."))))
        generate_messages(self.owner, n, table=dlq, queue_table=queue, waiting_share=waiting_share,
                          seed_value=seed_value)
        return dlq, queue

    def create_pgmq_queue(self, queue: str) -> None:
        self.owner.execute("select pgmq.create(%s)", [queue])

    def one(self, query: str | sql.Composed, params: Any = None) -> Any:
        row = self.admin.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def rows(self, query: str | sql.Composed, params: Any = None) -> list[tuple[Any, ...]]:
        return self.admin.execute(query, params).fetchall()


@pytest.fixture(scope="session")
def dlq_env() -> Iterator[DlqEnv]:
    secrets = DemoSecrets.for_scenario("incident")
    pg = DemoPostgres(server_settings={"max_connections": "80"})
    pg.start()
    try:
        report = seed(pg.admin_dsn, "incident", secrets)
        with psycopg.connect(pg.admin_dsn, autocommit=True) as admin, \
                psycopg.connect(pg.dsn(OWNER_ROLE, secrets.db_password), autocommit=True) as owner:
            owner.execute("create schema lab")
            owner.execute(PGMQ_SQL)
            yield DlqEnv(pg, secrets, report, admin, owner)
    finally:
        pg.stop()


@pytest.fixture
async def env(dlq_env: DlqEnv) -> AsyncIterator[DlqEnv]:
    """The session database; every store a test makes is closed after it."""
    yield dlq_env
    stores, dlq_env.stores = dlq_env.stores, []
    for store in stores:
        await store.aclose()


def ident(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))

