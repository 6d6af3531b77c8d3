"""The n8n tab at scale, through the console's own code paths, against the n8n simulator (loopback).

For 300 and for 30,000 failed executions of the watched workflows (the simulator runs in a child process,
so the figures and the memory are the console's alone): the first page (what the tab shows
first: one request per status/workflow stream, then the workflow names), paging through every failure
50 at a time (the tab's page size) with the peak Python memory of the paging (tracemalloc: it must not
grow with the number of failures; the memory held after 300 pages and after all of them, after a
collection, shows nothing accumulates), and, headless, the n8n tab from the key press to its first rows and a
poll of an unchanged page (how many cells it rewrites: none).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import httpx

RUNS = 7
PAGE = 50


def _settings(base: str) -> Any:
    from opsconsole.demo.scenario import N8N_WORKFLOWS
    from opsconsole.settings import ChecksSettings, N8nSettings, Secret, Settings

    return Settings(n8n=N8nSettings(api_url=f"{base}/api/v1", api_key=Secret.literal("bench-key-NOT-REAL"),
                                    workflows=N8N_WORKFLOWS), checks=ChecksSettings(timeout_s=30.0))


async def measure(base: str) -> dict[str, float]:
    from opsconsole.adapters.n8n import N8nAdapter

    adapter = N8nAdapter(_settings(base))
    try:
        first: list[float] = []
        for _ in range(RUNS):
            adapter._names = None  # every run pays for the names, as the first load does
            t = time.perf_counter()
            page = await adapter.failed_page(None, PAGE)
            first.append((time.perf_counter() - t) * 1000)
            assert page.problem is None and page.rows
        tracemalloc.start()
        held_300 = 0
        t = time.perf_counter()
        rows = pages = 0
        position = None
        while True:
            page = await adapter.failed_page(position, PAGE)
            assert page.problem is None, page.problem
            rows += len(page.rows)
            pages += 1
            if pages == 300:  # past the first 128 distinct URLs: the URL-parsing caches are full by now
                gc.collect()
                held_300 = tracemalloc.get_traced_memory()[0]
            if page.next is None:
                break
            position = page.next
        all_s = time.perf_counter() - t
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        await adapter.aclose()
    return {"first_page_ms": round(statistics.median(first), 1), "rows": rows, "pages": pages,
            "page_through_s": round(all_s, 2), "ms_per_page": round(all_s * 1000 / pages, 1),
            "paging_peak_kb": round(peak / 1024, 1), "held_after_300_pages_kb": round((held_300 or held) / 1024, 1),
            "held_at_the_end_kb": round(held / 1024, 1)}


async def until(cond: Callable[[], bool], limit_s: float = 60.0) -> None:
    deadline = time.perf_counter() + limit_s
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.001)


async def tab(base: str) -> dict[str, float]:
    from textual.widgets import DataTable

    from opsconsole.bootstrap import build_services
    from opsconsole.ui.app import OpsApp
    from opsconsole.ui.widgets.n8n import ExecutionsView

    app = OpsApp(build_services(_settings(base)), live=False)
    async with app.run_test(size=(100, 30)):
        await asyncio.sleep(0.5)  # the panes mount after the first frame
        t = time.perf_counter()
        app.action_show_tab("n8n")
        await until(lambda: bool(app.query(ExecutionsView))
                    and app.query_one(ExecutionsView).query_one(DataTable).row_count > 0)
        shown_ms = (time.perf_counter() - t) * 1000
        view = app.query_one(ExecutionsView)
        await until(lambda: all(r.id in view.errors for r in view.rows))
        errors_ms = (time.perf_counter() - t) * 1000
        before = view.cell_updates
        loads = view.loads
        t = time.perf_counter()
        view.reload()
        await until(lambda: view.loads > loads)
        await app.workers.wait_for_complete()
        poll_ms = (time.perf_counter() - t) * 1000
        rewritten = view.cell_updates - before
        t = time.perf_counter()
        view.action_page("next")
        await until(lambda: view.page is not None and view.page.start == view.position and view.position is not None)
        next_ms = (time.perf_counter() - t) * 1000
        return {"tab_first_rows_ms": round(shown_ms, 1), "tab_errors_filled_ms": round(errors_ms, 1),
                "poll_ms": round(poll_ms, 1), "poll_cells_rewritten": rewritten, "next_page_ms": round(next_ms, 1)}


def serve(total: int) -> None:
    """The child: the simulator with `total` more failures, until stdin closes (so the measured process
    holds only the console's code and memory)."""
    from opsconsole.demo.scenario import DemoSecrets
    from opsconsole.demo.sim import FaultPlan
    from opsconsole.demo.sims import n8n as n8n_sim

    sim = n8n_sim.build(FaultPlan(), "n8n-sync", DemoSecrets(n8n_api_key="bench-key-NOT-REAL"))
    base = sim.start()
    left = total
    while left > 0:
        n = min(5000, left)
        body = {"kind": "transient", "count": n}
        httpx.post(f"{base}/__sim/n8n/executions", json=body, timeout=60).raise_for_status()
        left -= n
    print(base, flush=True)
    sys.stdin.read()
    sim.stop()


def run(total: int) -> dict[str, float]:
    child = subprocess.Popen([sys.executable, __file__, "--sim", str(total)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        base = child.stdout.readline().strip()
        out = asyncio.run(measure(base))
        out.update(asyncio.run(tab(base)))
        return out
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)


def main() -> None:
    small = run(300)
    print(f"~300 failures: {small}", file=sys.stderr)
    large = run(30_000)
    print(f"~30,000 failures: {large}", file=sys.stderr)
    ratio = large["paging_peak_kb"] / small["paging_peak_kb"]
    growth = large["held_at_the_end_kb"] / large["held_after_300_pages_kb"]
    print(f"first page {small['first_page_ms']} ms at {small['rows']:,} vs {large['first_page_ms']} ms at "
          f"{large['rows']:,} failures · paging {large['ms_per_page']} ms/page, all {large['rows']:,} in "
          f"{large['page_through_s']} s · paging memory peak {small['paging_peak_kb']} KB vs "
          f"{large['paging_peak_kb']} KB (ratio {ratio:.2f}); held after 300 pages "
          f"{large['held_after_300_pages_kb']} KB, after all {large['pages']} {large['held_at_the_end_kb']} KB "
          f"(x{growth:.2f}) · tab first rows {large['tab_first_rows_ms']} ms, errors filled "
          f"{large['tab_errors_filled_ms']} ms · poll {large['poll_ms']} ms rewriting "
          f"{large['poll_cells_rewritten']} cells · ] next page {large['next_page_ms']} ms")
    print(json.dumps({"first_page_ms_300": small["first_page_ms"], "first_page_ms_30k": large["first_page_ms"],
                      "ms_per_page_30k": large["ms_per_page"], "page_through_30k_s": large["page_through_s"],
                      "paging_peak_kb_300": small["paging_peak_kb"], "paging_peak_kb_30k": large["paging_peak_kb"],
                      "paging_peak_ratio": round(ratio, 2), "held_growth_300_to_all_pages": round(growth, 2),
                      "tab_first_rows_ms_30k": large["tab_first_rows_ms"],
                      "tab_errors_filled_ms_30k": large["tab_errors_filled_ms"], "poll_ms_30k": large["poll_ms"],
                      "poll_cells_rewritten": large["poll_cells_rewritten"],
                      "next_page_ms_30k": large["next_page_ms"]}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sim":
        serve(int(sys.argv[2]))
    else:
        main()
