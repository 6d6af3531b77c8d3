"""A full round of checks vs the slowest single check, and key-press-to-frame latency while
every simulator hangs.

Round: every check of the healthy demo environment run concurrently through the console's
own CheckRunner, compared with the slowest check run alone (target ratio under 1.3).
Key latency: the console runs in a real pseudo-terminal against the demo environment with
every simulator hanging (and the pooler hanging); tab keys are pressed and the time to the
first bytes painted in response is measured (target median under 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _pty import PtyProcess, median

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.sim import Fault

ROUNDS = 5
KEYS = 30


async def measure_rounds(env: DemoEnvironment) -> tuple[float, float]:
    assert env.config_path is not None
    services = build_services(load_settings(env.config_path))
    runner = services.runner
    try:
        await runner.run_all()  # warm connections and the first CPU scrape
        rounds, slowest = [], []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            await runner.run_all()
            rounds.append(time.perf_counter() - start)
            singles = []
            for check in runner.select():
                t = time.perf_counter()
                await runner.run_one(check)
                singles.append(time.perf_counter() - t)
            slowest.append(max(singles))
        return median(rounds), median(slowest)
    finally:
        await services.aclose()


def measure_keys_while_hung(env: DemoEnvironment) -> float:
    assert env.config_path is not None
    env.faults.set("*", Fault(kind="hang", delay_s=600))
    if env.pooler is not None:
        env.pooler.set_mode("hang")
    proc = PtyProcess([sys.executable, "-m", "opsconsole", "--config", str(env.config_path)])
    try:
        proc.read_until(b"production (demo)")
        time.sleep(1.5)  # let the first round start and hang
        samples = []
        for i in range(KEYS):
            samples.append(proc.key_to_frame(b"2" if i % 2 == 0 else b"1"))
        return median(samples) * 1000
    finally:
        proc.close()
        env.faults.clear()


def main() -> None:
    with DemoEnvironment("healthy") as env:
        round_s, slowest_s = asyncio.run(measure_rounds(env))
        keys_ms = measure_keys_while_hung(env)
    ratio = round_s / slowest_s if slowest_s else float("nan")
    print(f"full round: median {round_s:.3f} s; slowest single check: median {slowest_s:.3f} s; "
          f"ratio {ratio:.2f} (target < 1.3)")
    print(f"key press to frame with every service hanging: median {keys_ms:.1f} ms (target < 50 ms)")
    print(json.dumps({"round_s": round(round_s, 3), "slowest_check_s": round(slowest_s, 3),
                      "ratio": round(ratio, 2), "keypress_ms_median_hung": round(keys_ms, 1)}))


if __name__ == "__main__":
    main()
