"""DLQ triage at scale, measured through the console's own code paths (the app driven headless).

For each table size (1,000 and 1,000,000 messages) a fresh demo PostgreSQL is seeded, then a
child process runs the console headless against it (so its peak RSS is the console's alone)
and times: opening the Twilio DLQ tab until the first page is shown, applying an error-code
filter, paging down, opening a message; at 1,000,000 also re-queueing 10,000 messages through
the guarded-action kernel (preview + run, the same path as R + y in the UI).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

RUNS = 5


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def drive(config: str, requeue: bool) -> dict[str, float]:
    """Runs inside the child process."""
    from opsconsole.actions.model import Confirmation, Preview
    from opsconsole.bootstrap import build_services
    from opsconsole.config import load_settings
    from opsconsole.domain.dlq import DlqFilter
    from opsconsole.ui.app import OpsApp
    from opsconsole.ui.widgets.dlq import DlqView
    from opsconsole.ui.widgets.dlq_screens import MessageScreen

    app = OpsApp(build_services(load_settings(Path(config))), live=False)
    out: dict[str, list[float]] = {"first_page_ms": [], "filter_ms": [], "page_down_ms": [], "open_message_ms": []}

    async def until(cond: Callable[[], bool], limit_s: float = 30.0) -> None:
        deadline = time.perf_counter() + limit_s
        while not cond():
            views = list(app.query(DlqView))
            if views and views[0].error:
                raise RuntimeError(f"the DLQ view reports: {views[0].error}")
            if time.perf_counter() > deadline:
                raise TimeoutError("condition not met")
            await asyncio.sleep(0.0005)

    # Keys are sent as the actions they are bound to (Pilot's press adds its own idle waits,
    # which would be measured as the console's time).
    async with app.run_test(size=(130, 45)) as pilot:
        app.action_show_tab("dlq")
        await until(lambda: bool(app.query(DlqView)) and app.query_one(DlqView).page is not None)
        await app.workers.wait_for_complete()
        view = app.query_one(DlqView)
        for _ in range(RUNS):
            app.action_show_tab("api")
            await pilot.pause(0.05)
            view.page = None
            t = time.perf_counter()
            app.action_show_tab("dlq")
            await until(lambda: view.page is not None)
            out["first_page_ms"].append((time.perf_counter() - t) * 1000)
            await app.workers.wait_for_complete()

            view.page = None
            t = time.perf_counter()
            view.apply_filter("code:30008", DlqFilter(error_codes=(30008,)))
            await until(lambda: view.page is not None)
            out["filter_ms"].append((time.perf_counter() - t) * 1000)
            await app.workers.wait_for_complete()

            assert view.page is not None
            before = view.page.rows[0].id
            t = time.perf_counter()
            view.action_page("older")
            await until(lambda b=before: view.page is not None and bool(view.page.rows) and view.page.rows[0].id != b)
            out["page_down_ms"].append((time.perf_counter() - t) * 1000)
            await app.workers.wait_for_complete()

            current = view.current()
            assert current is not None
            t = time.perf_counter()
            view._open_message(current.id)
            await until(lambda: isinstance(app.screen, MessageScreen))
            out["open_message_ms"].append((time.perf_counter() - t) * 1000)
            app.screen.dismiss(None)
            await pilot.pause(0.05)
            view.apply_filter("", DlqFilter())
            await app.workers.wait_for_complete()

        figures = {k: round(median(v), 1) for k, v in out.items()}
        if requeue:
            store = app.services.dlq_store
            kernel = app.services.kernel
            assert store is not None and kernel is not None
            conn = await store._session()  # the store's own connection: just to pick 10k valid waiting ids
            async with conn[0].cursor() as cur:
                await cur.execute("select id from dead_letter_messages where status = 'waiting' and payload ? 'To' "
                                  "and error_code in (30008, 30003, 11200) order by id limit 10000")
                ids = [r["id"] for r in await cur.fetchall()]
            t = time.perf_counter()
            preview = await kernel.prepare("dlq.requeue", {"ids": ids})
            assert isinstance(preview, Preview), preview
            result = await kernel.run(preview, Confirmation(key="y", start_key="R", elapsed_s=1.0))
            figures["requeue_10k_s"] = round(time.perf_counter() - t, 3)
            figures["requeued"] = float(getattr(result, "items", [{}])[0].get("changed", 0))
    figures["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def run_size(n: int, requeue: bool) -> dict[str, float]:
    import psycopg

    from opsconsole.demo.environment import DemoEnvironment
    from opsconsole.demo.seed import generate_messages

    with DemoEnvironment("incident", messages=min(n, 3000), sessions=False) as env:
        if n > 3000:
            t = time.perf_counter()
            with psycopg.connect(env.postgres.admin_dsn, autocommit=True) as conn:
                generate_messages(conn, n - 3000)
            print(f"generated {n:,} messages in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        assert env.config_path is not None
        proc = subprocess.run([sys.executable, __file__, "--child", str(env.config_path), "1" if requeue else "0"],
                              capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    small = run_size(1_000, requeue=False)
    print(f"1,000 messages: {small}")
    large = run_size(1_000_000, requeue=True)
    print(f"1,000,000 messages: {large}")
    print(f"first page {large['first_page_ms']} ms (target < 100) · filter {large['filter_ms']} ms (< 300) · "
          f"page down {large['page_down_ms']} ms (< 100) · open message {large['open_message_ms']} ms · "
          f"RSS {small['rss_mb']} MB at 1k vs {large['rss_mb']} MB at 1M (ratio "
          f"{large['rss_mb'] / small['rss_mb']:.2f}, < 1.2) · re-queue 10k {large['requeue_10k_s']} s (< 3)")
    print(json.dumps({"first_page_ms": large["first_page_ms"], "filter_ms": large["filter_ms"],
                      "page_down_ms": large["page_down_ms"], "open_message_ms": large["open_message_ms"],
                      "rss_1k_mb": small["rss_mb"], "rss_1m_mb": large["rss_mb"],
                      "requeue_10k_s": large["requeue_10k_s"]}))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(asyncio.run(drive(sys.argv[2], sys.argv[3] == "1"))))
    else:
        main()
