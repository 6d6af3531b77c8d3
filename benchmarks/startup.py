"""Median time from process start to the first painted frame: opsconsole vs a bare Textual app.

The demo environment is started once in this process (already serving, as the issue asks);
each run starts `python -m opsconsole --config <demo config>` in a real pseudo-terminal and
waits for the header to be painted. The floor is a Textual app with one Static, run the
same way. Prints both medians and their ratio; the last line is one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from _pty import PtyProcess, median

from opsconsole.demo.environment import DemoEnvironment

RUNS = 7
# Painted by the header (the window title also says "opsconsole", so that would be too early).
MARKER = b"production (demo)"
BARE = """
from textual.app import App
from textual.widgets import Static
class Bare(App):
    def compose(self):
        yield Static("bare-first-frame")
Bare().run()
"""


def first_frame(argv: list[str], marker: bytes) -> float:
    proc = PtyProcess(argv)
    try:
        return proc.read_until(marker)
    finally:
        proc.close()


def main() -> None:
    with DemoEnvironment("healthy") as env, tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.py"
        bare.write_text(BARE)
        assert env.config_path is not None
        ops_argv = [sys.executable, "-m", "opsconsole", "--config", str(env.config_path)]
        first_frame(ops_argv, MARKER)  # warm the file cache once
        first_frame([sys.executable, str(bare)], b"bare-first-frame")
        ops, floor = [], []
        for _ in range(RUNS):
            ops.append(first_frame(ops_argv, MARKER))
            floor.append(first_frame([sys.executable, str(bare)], b"bare-first-frame"))
    ops_s, floor_s = median(ops), median(floor)
    print(f"opsconsole first frame: median {ops_s:.3f} s over {RUNS} runs ({', '.join(f'{v:.3f}' for v in ops)})")
    print(f"bare Textual app:       median {floor_s:.3f} s ({', '.join(f'{v:.3f}' for v in floor)})")
    print(f"ratio: {ops_s / floor_s:.2f} (target: under 0.6 s and within 1.6x)")
    print(json.dumps({"first_frame_s": round(ops_s, 3), "bare_textual_s": round(floor_s, 3),
                      "ratio": round(ops_s / floor_s, 2)}))


if __name__ == "__main__":
    main()
