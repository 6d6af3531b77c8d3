"""The runtime log view under load, measured through the console's own code paths.

1. Ingest vs responsiveness (real pseudo-terminal): the console runs against the Vercel simulator,
   the log view open (Deploy tab, `l`), while the simulator streams runtime-log lines at a steady
   rate (500 ... 16,000 lines/s). At each rate, `5` (5xx only) is pressed repeatedly and the time
   from the key press to the frame that shows the new filter is measured; the lines the view
   actually took in (what the simulator could write into the connection) are counted. Reported:
   per rate the achieved lines/s and the median key-press-to-frame; the highest rate taken in
   with a median under 50 ms (target: at least 2,000 lines/s).
2. Memory: a child process runs the console headless with the log view open and streams 10,000,
   then (another child) 1,000,000 lines as fast as the simulator writes them; each reports its
   peak RSS. The view keeps `[vercel] log_lines` (10,000) entries, so the ratio should stay under
   1.2 (target).
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pty import PtyProcess, median

RATES = (0, 500, 1000, 2000, 4000, 8000)  # 0: the console's own key latency, for comparison
PRESSES = 16  # even: each rate starts with no filter
SETTLE_S = 1.5


def start_sims() -> tuple[object, object, Path]:
    import tomli_w

    from opsconsole.demo.scenario import VERCEL_PROJECT_ID, VERCEL_TEAM_ID, DemoSecrets
    from opsconsole.demo.sim import FaultPlan
    from opsconsole.demo.sims import api as api_sim
    from opsconsole.demo.sims import vercel as vercel_sim
    from opsconsole.demo.world import DemoWorld

    secrets = DemoSecrets()
    world = DemoWorld("bad-deploy")
    faults = FaultPlan()
    vercel = vercel_sim.build(faults, "bad-deploy", secrets, world=world)
    vercel.state.logs.backlog_s = 0
    vercel.state.logs.stream_s = 3600
    vercel.state.logs.period_s = 3600  # no background trickle: only the benchmark's lines
    api = api_sim.build(faults, "bad-deploy", secrets, world=world)
    vercel.start()
    api.start()
    folder = Path(tempfile.mkdtemp(prefix="opsconsole-bench-logs-"))
    cfg = folder / "config.toml"
    cfg.write_text(tomli_w.dumps({
        "environment": {"name": "bench"},
        "api": {"health_url": api.base_url + "/health"},
        "vercel": {"project_id": VERCEL_PROJECT_ID, "team_id": VERCEL_TEAM_ID, "token": secrets.vercel_token,
                   "api_url": vercel.base_url, "status_url": vercel.base_url},
        "audit": {"path": str(folder / "audit.jsonl")},
    }))
    os.chmod(cfg, 0o600)
    return vercel, api, cfg


def key_to_marker(proc: PtyProcess, key: bytes, marker: bytes, timeout: float = 5.0) -> float:
    """Seconds from writing `key` to the first output that contains `marker`."""
    import select

    proc.drain(0.05)
    seen = len(proc.buffer)
    start = time.perf_counter()
    os.write(proc.master, key)
    while marker not in proc.buffer[seen:]:
        left = start + timeout - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"{marker!r} not painted after the key")
        ready, _, _ = select.select([proc.master], [], [], left)
        if ready:
            proc.buffer += os.read(proc.master, 1 << 20)
    return time.perf_counter() - start


def measure_rates(vercel: object, cfg: Path) -> list[dict[str, float]]:
    knobs = vercel.state.logs  # type: ignore[attr-defined]
    import psutil

    proc = PtyProcess([sys.executable, "-m", "opsconsole", "--config", str(cfg)], cols=100, rows=30)
    console = psutil.Process(proc.proc.pid)
    results = []
    try:
        proc.read_until(b"opsconsole")
        time.sleep(2.0)
        os.write(proc.master, b"5")
        time.sleep(1.5)
        os.write(proc.master, b"l")
        proc.read_until(b"Runtime logs", timeout=20)
        proc.read_until(b"streaming", timeout=20)
        for rate in RATES:
            knobs.rate = rate
            time.sleep(SETTLE_S)
            sent0, t0 = knobs.sent, time.perf_counter()
            cpu0 = sum(console.cpu_times()[:2])
            samples: list[float] = []
            for i in range(PRESSES):
                marker = b"status 5xx" if i % 2 == 0 else b"filter: none"
                samples.append(key_to_marker(proc, b"5", marker))
                proc.drain(0.05)
            elapsed = time.perf_counter() - t0
            cpu = (sum(console.cpu_times()[:2]) - cpu0) / elapsed * 100
            achieved = (knobs.sent - sent0) / elapsed
            results.append({"rate": rate, "achieved_lines_s": round(achieved), "console_cpu_pct": round(cpu),
                            "key_ms_median":
                            round(median(samples) * 1000, 1), "key_ms_max": round(max(samples) * 1000, 1)})
            print(f"  offered {rate:>6,} lines/s: took in {achieved:>8,.0f} lines/s; key press to frame median "
                  f"{median(samples) * 1000:6.1f} ms (max {max(samples) * 1000:.0f} ms); console CPU {cpu:.0f} %",
                  flush=True)
        knobs.rate = 0
    finally:
        proc.close()
    return results


async def child(cfg: str, lines: int) -> dict[str, float]:
    """Runs in a child process: the console headless, the log view open, until `lines` have arrived."""
    from opsconsole.bootstrap import build_services
    from opsconsole.config import load_settings
    from opsconsole.ui.app import OpsApp
    from opsconsole.ui.logview import LogScreen

    app = OpsApp(build_services(load_settings(Path(cfg))), live=False)
    started = time.perf_counter()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = LogScreen()
        await app.push_screen(screen)
        await pilot.pause()
        deadline = time.perf_counter() + 900
        while screen.buffer.received < lines:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {screen.buffer.received} lines arrived")
            await asyncio.sleep(0.05)
        kept = len(screen.buffer)
        received = screen.buffer.received
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"lines": received, "kept": kept, "rss_mb": round(rss_kb / 1024, 1),
            "elapsed_s": round(time.perf_counter() - started, 1)}


def run_child(vercel: object, cfg: Path, lines: int) -> dict[str, float]:
    knobs = vercel.state.logs  # type: ignore[attr-defined]
    knobs.firehose = lines
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(cfg), str(lines)], capture_output=True,
                             text=True, timeout=1200, check=True)
    finally:
        knobs.firehose = 0
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(asyncio.run(child(sys.argv[2], int(sys.argv[3])))))
        return
    vercel, api, cfg = start_sims()
    load = os.getloadavg()[0]
    try:
        print(f"ingest vs key press to frame (real pty, 100x30, log view open; load average {load:.1f} on "
              f"{os.cpu_count()} CPUs):")
        rates = measure_rates(vercel, cfg)
        if "--rates-only" in sys.argv:  # (the memory part takes minutes)
            print(json.dumps({"rates": rates, "load_average": round(load, 1)}))
            return
        print("peak RSS of the console with the log view open:")
        small = run_child(vercel, cfg, 10_000)
        print(f"  10,000 lines: {small['rss_mb']} MB ({small['kept']:,} kept, {small['elapsed_s']} s)")
        big = run_child(vercel, cfg, 1_000_000)
        print(f"  1,000,000 lines: {big['rss_mb']} MB ({big['kept']:,} kept, {big['elapsed_s']} s, "
              f"{big['lines'] / big['elapsed_s']:,.0f} lines/s headless)")
    finally:
        vercel.stop()  # type: ignore[attr-defined]
        api.stop()  # type: ignore[attr-defined]
    ok = [r for r in rates if r["key_ms_median"] < 50 and r["rate"] > 0]
    best = max((r["achieved_lines_s"] for r in ok), default=0)
    ratio = big["rss_mb"] / small["rss_mb"]
    print(f"highest intake with key press to frame under 50 ms: {best:,} lines/s (target >= 2,000)")
    cpu_text = ", ".join(f"{r['rate']:,}: {r['console_cpu_pct']} %" for r in rates)
    print(f"(console CPU per offered rate: {cpu_text}; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs: a console that cannot get more CPU queues keys)")
    print(f"peak RSS 1,000,000 vs 10,000 lines: {ratio:.2f}x (target <= 1.2)")
    print(json.dumps({"max_lines_per_s_under_50ms": best, "load_average": round(load, 1),
                      "rates": rates, "rss_mb_10k": small["rss_mb"],
                      "rss_mb_1m": big["rss_mb"], "rss_ratio": round(ratio, 2)}))


if __name__ == "__main__":
    main()
