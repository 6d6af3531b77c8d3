"""Idle bandwidth of the console on each tab: bytes per second written to the terminal and bytes
per poll round, at 80x24, in a real pseudo-terminal, nobody typing, polling on.

An on-call engineer on a 64 kbit/s hop (8 KB/s) must not have the screen fill the line on its
own: the target is at most 500 B/s on every tab when idle. `opsconsole demo` (the incident
scenario by default) runs in a pty; after a warm-up (the first round, the lazily built tabs),
each tab is shown with its number key, left to settle, then measured for `--window` seconds.

Per tab: bytes/s over the window, bytes per poll round (window bytes / rounds in the window, the
demo polls every 5 s), the busiest second, and the quietest 5 s stretch (what the screen costs
between rounds). `--dump DIR` writes what was painted, per second, for finding the causes.
The last line is one JSON object with every tab and the worst one.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from pathlib import Path

from _pty import PtyProcess, median

TABS = ("api", "database", "n8n", "dlq", "deploy", "backups")
COLS, ROWS = 80, 24
DEMO_INTERVAL_S = 5.0  # [checks] interval_s of the demo's generated config
MARKER = b"production (demo)"


def read_for(proc: PtyProcess, seconds: float) -> list[tuple[float, bytes]]:
    """Everything the console writes during `seconds`, as (seconds since start, chunk)."""
    chunks: list[tuple[float, bytes]] = []
    start = time.perf_counter()
    while True:
        left = seconds - (time.perf_counter() - start)
        if left <= 0:
            return chunks
        ready, _, _ = select.select([proc.master], [], [], left)
        if not ready:
            continue
        try:
            data = os.read(proc.master, 65536)
        except OSError:
            raise RuntimeError("the console exited during the measurement") from None
        chunks.append((time.perf_counter() - start, data))


def per_second(chunks: list[tuple[float, bytes]], seconds: float) -> list[int]:
    buckets = [0] * max(1, int(seconds + 0.999))
    for t, data in chunks:
        buckets[min(len(buckets) - 1, int(t))] += len(data)
    return buckets


def quietest(buckets: list[int], span: int) -> float:
    """Bytes/s over the quietest `span` consecutive seconds (the cost between rounds)."""
    if len(buckets) <= span:
        return sum(buckets) / max(1, len(buckets))
    return min(sum(buckets[i:i + span]) for i in range(len(buckets) - span + 1)) / span


def measure_run(args: argparse.Namespace, run: int) -> dict[str, dict[str, float]]:
    env = {"TERM": "xterm-256color", "COLORTERM": "truecolor"}
    if args.term:
        env["TERM"] = args.term
    argv = [sys.executable, "-m", "opsconsole", "demo", "--scenario", args.scenario]
    proc = PtyProcess(argv, cols=COLS, rows=ROWS, env=env)
    results: dict[str, dict[str, float]] = {}
    try:
        proc.read_until(MARKER, timeout=90)
        read_for(proc, args.warmup)
        for i, tab in enumerate(TABS, start=1):
            if args.only and tab not in args.only:
                continue
            os.write(proc.master, str(i).encode())
            read_for(proc, args.settle)  # the switch itself, the detail view's first load
            chunks = read_for(proc, args.window)
            total = sum(len(d) for _t, d in chunks)
            buckets = per_second(chunks, args.window)
            rounds = args.window / DEMO_INTERVAL_S
            results[tab] = {"bytes_per_s": total / args.window, "bytes_per_round": total / rounds,
                            "peak_second": float(max(buckets)), "quietest_5s_per_s": quietest(buckets, 5)}
            if args.dump:
                folder = Path(args.dump) / f"run{run}-{tab}"
                folder.mkdir(parents=True, exist_ok=True)
                for second in range(len(buckets)):
                    data = b"".join(d for t, d in chunks if int(t) == second)
                    (folder / f"{second:03d}.bin").write_bytes(data)
            print(f"  run {run} {tab:<9} {total / args.window:8.0f} B/s  {total / rounds:8.0f} B/round  "
                  f"peak {max(buckets):6d} B in 1 s  quietest 5 s {quietest(buckets, 5):6.0f} B/s", flush=True)
    finally:
        proc.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repeated runs; medians are reported")
    parser.add_argument("--window", type=float, default=40.0, help="seconds measured per tab")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds after the first frame")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds after switching tabs")
    parser.add_argument("--scenario", default="incident")
    parser.add_argument("--term", default="", help="TERM for the console (default xterm-256color)")
    parser.add_argument("--only", nargs="*", choices=TABS, help="measure only these tabs")
    parser.add_argument("--dump", default="", help="write the painted bytes per second under this folder")
    args = parser.parse_args()
    runs = [measure_run(args, run) for run in range(1, args.runs + 1)]
    summary: dict[str, dict[str, float]] = {}
    for tab in TABS:
        samples = [r[tab] for r in runs if tab in r]
        if not samples:
            continue
        summary[tab] = {key: round(median([s[key] for s in samples]), 1) for key in samples[0]}
    print(f"\nmedians over {args.runs} runs, {args.window:g} s per tab at {COLS}x{ROWS} "
          f"({args.scenario} demo, polling every {DEMO_INTERVAL_S:g} s), target <= 500 B/s:")
    for tab, figures in summary.items():
        print(f"  {tab:<9} {figures['bytes_per_s']:8.0f} B/s  {figures['bytes_per_round']:8.0f} B/round  "
              f"quietest 5 s {figures['quietest_5s_per_s']:6.0f} B/s")
    worst = max(summary, key=lambda t: summary[t]["bytes_per_s"])
    print(json.dumps({"worst_tab": worst, "worst_bytes_per_s": summary[worst]["bytes_per_s"],
                      "target_bytes_per_s": 500, "window_s": args.window, "runs": args.runs,
                      "tabs": summary}))


if __name__ == "__main__":
    main()
