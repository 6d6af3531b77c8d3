"""The guided wizards, measured on the demo environment (started once, in this process).

1. Wizard open to its first step on screen: in the console (a real pseudo-terminal), `w`, then Enter
   on API Down / 500 Errors; the time from Enter to "step 1 of 4" painted. The run is closed (c,
   reason) before the next round, so every round opens a new run. Median; target under 150 ms.
2. A check step's checks are run concurrently: the demo's services are slowed by fault injection
   (Vercel 0.6 s, its status page 0.3 s, /health 0.1 s); the step's wall time against the slowest
   of its checks run alone. Median ratio; target within 1.3x.
3. After SIGKILL: the console walks API Down to step 3 and is killed (kill -9); the next start offers
   to resume, Enter resumes: the time from that process's start to "step 3 of 4" painted. Median;
   target under 2 s. Also `opsconsole runbook resume` (no key at all).

The last line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from _pty import PtyProcess, median

ROUNDS = 7
ALT_SCREEN = b"\x1b[?1049h"  # the app takes the terminal: the console has started


def _console(config: Path, *extra: str) -> PtyProcess:
    return PtyProcess([sys.executable, "-m", "opsconsole", "--config", str(config), *extra])


def _open_rounds(config: Path) -> list[float]:
    proc = _console(config)
    out: list[float] = []
    try:
        proc.read_until(b"production (demo)", timeout=30)
        proc.drain(1.0)
        for i in range(ROUNDS):
            mark = len(proc.buffer)
            os.write(proc.master, b"w")
            proc.read_until(b"Enter opens the guided wizard", timeout=30, since=mark)
            proc.drain(0.3)
            mark = len(proc.buffer)
            start = time.perf_counter()
            os.write(proc.master, b"\r")
            proc.read_until(b"step 1 of 4", timeout=30, since=mark)
            out.append(time.perf_counter() - start)
            proc.drain(1.5, max_s=3.0)  # its checks run
            _close_run(proc, f"benchmark round {i}")
            proc.drain(0.3, max_s=2.0)
            os.write(proc.master, b"\x1b")  # back to the tabs
            proc.drain(0.5, max_s=2.0)
    finally:
        proc.close()
    return out


async def _check_rounds(config: Path, env: object) -> list[float]:
    from opsconsole.bootstrap import build_services
    from opsconsole.config import load_settings
    from opsconsole.demo.sim import Fault
    from opsconsole.runbooks.catalog import links
    from opsconsole.runbooks.engine import Wizard
    from opsconsole.runbooks.loader import builtin_runbooks

    faults = env.faults  # type: ignore[attr-defined]
    faults.set("api", Fault(kind="delay", delay_s=0.1))
    faults.set("vercel", Fault(kind="delay", delay_s=0.6))
    faults.set("vercel-status", Fault(kind="delay", delay_s=0.3))
    services = build_services(load_settings(config))
    rb = next(r for r in builtin_runbooks() if r.id == "api-down")
    ratios: list[float] = []
    try:
        runner = services.runner
        step = rb.steps[0]
        checks = [c for c in runner.select(step.checks) if c.id in step.checks]
        for c in checks:  # warm the clients (connections, DNS)
            await runner.run_one(c)
        for _ in range(ROUNDS):
            alone = []
            for c in checks:
                t0 = time.perf_counter()
                await runner.run_one(c)
                alone.append(time.perf_counter() - t0)
            wiz = Wizard(rb, Wizard.new_record(rb), journal=services.wizard_journal(), runner=runner,
                         kernel=None, vocabulary=services.runbook_vocabulary(), links=links(services.settings))
            wiz.t.live.clear()
            t0 = time.perf_counter()
            await wiz._round(checks, wiz.t.live)  # exactly what a check step does per round
            step_s = time.perf_counter() - t0
            ratios.append(step_s / max(alone))
    finally:
        faults.clear()
        await services.aclose()
    return ratios


def _kill_resume_rounds(config: Path) -> tuple[list[float], list[float], list[float], list[float]]:
    """Seconds from the process's start, and from the console's start (the app switching the
    terminal to its screen, after Python has imported it), to the step painted again."""
    offered: list[float] = []
    direct: list[float] = []
    offered_up: list[float] = []
    direct_up: list[float] = []
    for i in range(ROUNDS):
        walker = _console(config, "runbook", "start", "api-down")
        try:
            walker.read_until(b"step 1 of 4", timeout=30)
            walker.drain(1.5, max_s=3.0)  # its checks run (the step's clock ticks: never quite quiet)
            os.write(walker.master, b"n")  # status: the demo's API is down; go on
            walker.read_until(b"step 2 of 4", timeout=30)
            walker.drain(0.5, max_s=2.0)
            os.write(walker.master, b"d")  # logs looked at
            walker.read_until(b"step 3 of 4", timeout=30)
            walker.drain(0.5, max_s=2.0)
        finally:
            os.killpg(walker.proc.pid, signal.SIGKILL)
            walker.proc.wait(5)
            os.close(walker.master)
        if i % 2 == 0:
            proc = _console(config)
            try:
                up = proc.read_until(ALT_SCREEN, timeout=30)
                proc.read_until(b"Resume API Down / 500 Errors at step 3 of 4", timeout=30)
                os.write(proc.master, b"\r")
                offered.append(proc.read_until(b"step 3 of 4 \xc2\xb7", timeout=30))
                offered_up.append(offered[-1] - up)
                proc.drain(0.5, max_s=2.0)
                _close_run(proc)
            finally:
                proc.close()
        else:
            proc = _console(config, "runbook", "resume")
            try:
                up = proc.read_until(ALT_SCREEN, timeout=30)
                direct.append(proc.read_until(b"step 3 of 4 \xc2\xb7", timeout=30))
                direct_up.append(direct[-1] - up)
                proc.drain(0.5, max_s=2.0)
                _close_run(proc)
            finally:
                proc.close()
    return offered, direct, offered_up, direct_up


def _close_run(proc: PtyProcess, reason: str = "benchmark done") -> None:
    mark = len(proc.buffer)
    os.write(proc.master, b"c")
    proc.read_until(b"the reason (it goes", timeout=10, since=mark)
    time.sleep(1.0)  # the prompt's field is disabled for a moment: keys typed before are not taken
    mark = len(proc.buffer)
    for char in reason:  # typed, not pasted in one burst (a burst reads as a paste, which is refused)
        os.write(proc.master, char.encode())
        time.sleep(0.02)
    os.write(proc.master, b"\r")
    proc.read_until(b"closed: abandoned", timeout=10, since=mark)  # the head; not the prompt's own title


def main() -> None:
    state = tempfile.mkdtemp(prefix="opsconsole-bench-")
    os.environ["XDG_STATE_HOME"] = state  # the demo's journal: here, not in the user's state dir
    os.environ["XDG_CONFIG_HOME"] = str(Path(state) / "config")
    from opsconsole.demo.environment import DemoEnvironment

    with DemoEnvironment("api-down", sessions=False) as env:
        assert env.config_path is not None
        config = env.config_path
        print("1/3 wizard open to its first step...", file=sys.stderr, flush=True)
        opened = _open_rounds(config)
        print("2/3 a check step against its slowest check...", file=sys.stderr, flush=True)
        ratios = asyncio.run(_check_rounds(config, env))
        print("3/3 resume after SIGKILL...", file=sys.stderr, flush=True)
        offered, direct, offered_up, direct_up = _kill_resume_rounds(config)
    print(f"wizard open to its first step: median {median(opened) * 1000:.0f} ms over {len(opened)} "
          f"({', '.join(f'{v * 1000:.0f}' for v in opened)}) (target under 150 ms)")
    print(f"check step vs its slowest check: median {median(ratios):.2f}x "
          f"({', '.join(f'{v:.2f}' for v in ratios)}) (target within 1.3x)")
    print(f"after SIGKILL, start to the same step (offer, Enter): median {median(offered):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in offered)}); `runbook resume`: median {median(direct):.2f} s "
          f"({', '.join(f'{v:.2f}' for v in direct)}) (target under 2 s)")
    print(f"  the same from the console's start (its screen taken, Python imported): offer, Enter: median "
          f"{median(offered_up):.2f} s; `runbook resume`: median {median(direct_up):.2f} s")
    print(json.dumps({"open_first_step_ms": round(median(opened) * 1000, 1),
                      "check_step_vs_slowest": round(median(ratios), 2),
                      "resume_after_kill_s": round(median(offered), 2),
                      "runbook_resume_s": round(median(direct), 2),
                      "resume_after_kill_from_console_start_s": round(median(offered_up), 2),
                      "runbook_resume_from_console_start_s": round(median(direct_up), 2)}))


if __name__ == "__main__":
    main()
