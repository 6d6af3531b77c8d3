"""Run a command in a real pseudo-terminal and time what it paints (shared by benchmarks)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Sequence


class PtyProcess:
    def __init__(self, argv: Sequence[str], *, cols: int = 100, rows: int = 30,
                 env: dict[str, str] | None = None) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        full_env.update(env or {})
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=full_env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.buffer = b""

    def read_until(self, marker: bytes, timeout: float = 20.0, since: int = 0) -> float:
        """Seconds since start until `marker` appears in the output after byte `since` (pass
        `len(proc.buffer)` taken before the key that paints it, or an earlier paint answers)."""
        deadline = time.perf_counter() + timeout
        while marker not in self.buffer[since:]:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{marker!r} not painted within {timeout} s; got {self.buffer[-400:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    raise RuntimeError(f"process ended; output: {self.buffer[-800:]!r}") from None
                self.buffer += chunk
        return time.perf_counter() - self.started

    def drain(self, quiet_s: float = 0.3, max_s: float = 10.0) -> None:
        """Read until the screen is quiet for `quiet_s`, or for `max_s` at most (a screen with a
        ticking clock is never quiet)."""
        until = time.perf_counter() + max_s
        while time.perf_counter() < until:
            ready, _, _ = select.select([self.master], [], [], quiet_s)
            if not ready:
                return
            try:
                self.buffer += os.read(self.master, 65536)
            except OSError:
                return

    def key_to_frame(self, key: bytes, timeout: float = 5.0) -> float:
        """Seconds from writing `key` to the first output written in response."""
        self.drain(0.15)
        start = time.perf_counter()
        os.write(self.master, key)
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            raise TimeoutError("no frame after key press")
        self.buffer += os.read(self.master, 65536)
        return time.perf_counter() - start

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.master)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
