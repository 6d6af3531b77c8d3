"""Query plans and timings at 200,000 messages: the list is keyset pagination over indexes
(no sequential scan, no OFFSET) for the first page, page down, an error-code filter and an age
filter; counts turn into labelled estimates; a 10,000-message re-queue stays fast.

(`benchmarks/dlq.py`, the lead's, measures the same at 1,000,000 through the app.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from opsconsole.adapters.dlq import DlqStore
from opsconsole.demo.seed import OWNER_ROLE, generate_messages, seed
from opsconsole.domain.dlq import DlqError, DlqFilter, Page, Selection
from opsconsole.settings import DlqSettings, Secret, Settings, SupabaseSettings

from .conftest import DlqEnv

N = 200_000
DB = "dlq_scale"


@pytest.fixture(scope="module")
def scale_db(dlq_env: DlqEnv) -> Iterator[str]:
    with psycopg.connect(dlq_env.pg.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(DB)))
    started = time.perf_counter()
    seed(dlq_env.pg.admin_dsn_for(DB), "incident", dlq_env.secrets, messages=200)
    with psycopg.connect(dlq_env.pg.admin_dsn_for(DB), autocommit=True) as conn:
        report = generate_messages(conn, N - 200)
    print(f"\n{N:,} messages ready in {time.perf_counter() - started:.1f} s ({report.statuses})")
    yield dlq_env.pg.dsn(OWNER_ROLE, dlq_env.secrets.db_password, dbname=DB)


@pytest.fixture
async def store(scale_db: str) -> AsyncIterator[DlqStore]:
    settings = Settings(supabase=SupabaseSettings(project_ref="x", database_url=Secret.literal(scale_db)),
                        dlq=DlqSettings())
    s = DlqStore(settings, operator="ops:scale")
    assert not isinstance(await s.introspect(), DlqError)
    yield s
    await s.aclose()


async def timed_page(store: DlqStore, *args: object, **kwargs: object) -> tuple[Page, float]:
    started = time.perf_counter()
    page = await store.page(*args, **kwargs)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - started) * 1000
    assert isinstance(page, Page), page
    return page, elapsed


async def test_list_queries_use_indexes_not_scans(store: DlqStore) -> None:
    first = await store.page()
    assert isinstance(first, Page) and first.next_cursor is not None
    deep = first.next_cursor
    for _ in range(20):  # somewhere in the middle of the table
        page = await store.page(DlqFilter(), deep, 500)
        assert isinstance(page, Page) and page.next_cursor is not None
        deep = page.next_cursor
    cases = {
        "first page": (DlqFilter(), None, "older"),
        "page down": (DlqFilter(), first.next_cursor, "older"),
        "deep page down": (DlqFilter(), deep, "older"),
        "page up": (DlqFilter(), deep, "newer"),
        "last page": (DlqFilter(), None, "newer"),
        "one code": (DlqFilter(error_codes=(30008,)), None, "older"),
        "one code, page down": (DlqFilter(error_codes=(11205,)), deep, "older"),
        "rare code": (DlqFilter(error_codes=(21211,)), None, "older"),
        "two codes": (DlqFilter(error_codes=(30003, 11200)), None, "older"),
        "no code": (DlqFilter(error_codes=(None,)), None, "older"),
        "last 15 minutes": (DlqFilter(max_age=timedelta(minutes=15)), None, "older"),
        "older than a day": (DlqFilter(min_age=timedelta(days=1)), None, "older"),
        "all statuses": (DlqFilter(status=None), deep, "older"),
        "message sid": (DlqFilter(message_sid="SM" + "0" * 32, status=None), None, "older"),
    }
    for name, (flt, cursor, direction) in cases.items():
        plan = await store.explain_page(flt, cursor, 50, direction)  # type: ignore[arg-type]
        assert isinstance(plan, str), plan
        assert "Seq Scan" not in plan, f"{name}:\n{plan}"
        assert "Index" in plan, f"{name}:\n{plan}"
        assert "Offset" not in plan
        print(f"\n[{name}]\n{plan}")


async def test_timings_at_200k(store: DlqStore) -> None:
    # Warm the connection and the catalog cache like an open tab would.
    await store.page(limit=1)
    first, t_first = await timed_page(store)
    down, t_down = await timed_page(store, DlqFilter(), first.next_cursor)
    for _ in range(10):
        assert down.next_cursor is not None
        down, t_more = await timed_page(store, DlqFilter(), down.next_cursor)
        t_down = max(t_down, t_more)
    code, t_code = await timed_page(store, DlqFilter(error_codes=(11217,)))
    codes, t_codes = await timed_page(store, DlqFilter(error_codes=(30003, 21610, 11200)))
    started = time.perf_counter()
    detail = await store.get(first.rows[0].id)
    t_detail = (time.perf_counter() - started) * 1000
    assert not isinstance(detail, DlqError)
    started = time.perf_counter()
    groups = await store.groups()
    t_groups = (time.perf_counter() - started) * 1000
    assert not isinstance(groups, DlqError) and groups.total > 0.8 * N
    started = time.perf_counter()
    waiting = await store.count()
    everything = await store.count(DlqFilter(status=None))
    t_count = (time.perf_counter() - started) * 1000
    assert not isinstance(waiting, DlqError) and not isinstance(everything, DlqError)
    print(f"\nat {N:,}: first page {t_first:.1f} ms, page down (worst of 11) {t_down:.1f} ms, one-code filter "
          f"{t_code:.1f} ms, three-code filter {t_codes:.1f} ms, detail {t_detail:.1f} ms, groups {t_groups:.0f} ms, "
          f"two counts {t_count:.0f} ms ({waiting.label} waiting, {everything.label} in all)")
    assert len(code.rows) == 50 and all(r.error_code == 11217 for r in code.rows)
    assert len(codes.rows) == 50
    assert t_first < 100 and t_down < 100 and t_code < 300 and t_codes < 300 and t_detail < 500
    assert not everything.exact and "estimate" in everything.label  # counting 200k exactly is not "cheap"


async def test_requeue_10k_at_200k(store: DlqStore) -> None:
    selection = Selection.matching(DlqFilter(error_codes=(30008, 30003, 11200)))
    started = time.perf_counter()
    plan = await store.plan_requeue(selection)
    t_plan = time.perf_counter() - started
    assert not isinstance(plan, DlqError)
    bounded = plan.selection
    assert bounded.upto_id is not None
    # The first 10,000 eligible ones: bound the selection by id so exactly 10k are sent.
    ids_plan = await store.plan_requeue(Selection(filter=bounded.filter, upto_id=_upto_for(plan, 10_000)))
    assert not isinstance(ids_plan, DlqError)
    started = time.perf_counter()
    result = await store.requeue(ids_plan, chunk_size=500)
    t_requeue = time.perf_counter() - started
    print(f"\nplan over {plan.selected:,} messages in {t_plan:.2f} s; re-queued {result.requeued:,} in "
          f"{t_requeue:.2f} s ({result.chunks_done} chunks): {result.summary()}")
    assert result.ok and result.requeued >= 9_000
    assert t_requeue < 6  # target: 10k in under 3 s (measured ~1 s here); slack for loaded CI machines


def _upto_for(plan: object, wanted: int) -> int:
    """An id bound under which about `wanted` eligible messages lie (ids are uniform in time)."""
    from opsconsole.domain.dlq import RequeuePlan

    assert isinstance(plan, RequeuePlan) and plan.selection.upto_id is not None
    share = wanted / max(1, plan.will_requeue)
    return int(plan.selection.upto_id * min(1.0, share))
