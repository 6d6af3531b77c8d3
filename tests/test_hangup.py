"""An SSH connection dropping ends the console and every demo process within 3 s.

`opsconsole demo` runs in a real pseudo-terminal that is its controlling terminal, as under sshd.
An SSH drop is sshd closing the pty's master side: the kernel then sends SIGHUP to the terminal's
foreground process group. The other form is SIGHUP to the console's process group while the pty
stays open (what a shell does to its jobs when it is hung up). Either way the console and
everything the demo started (PostgreSQL and its workers) must be gone within 3 s.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

HANGUP_BUDGET_S = 3.0
MARKER = b"production (demo)"


def _children() -> dict[int, int]:
    """pid -> parent pid for every process."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def _descendants(root: int) -> set[int]:
    parents = _children()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        nxt = {pid for pid, ppid in parents.items() if ppid in frontier and pid not in found}
        found |= nxt
        frontier = nxt
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie has ended; only its parent has not collected it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _postmasters(pids: set[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"/postgres") and b"-D" in cmdline:
            found.append(pid)
    return found


def _controlling_tty() -> None:
    """In the child, after setsid: make the pty (stdin) the controlling terminal, as sshd does."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _Console:
    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24")
        self.proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "demo", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True, close_fds=True,
                                     preexec_fn=_controlling_tty)
        os.close(slave)
        self.output = b""
        self.master_open = True

    def wait_for(self, marker: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not shown within {timeout} s: {self.output[-600:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError as exc:
                    raise AssertionError(f"console ended early: {self.output[-600:]!r}") from exc

    def drain(self, seconds: float) -> None:
        """Read what the console paints, as a terminal would (a full pty buffer would block its exit)."""
        if not self.master_open:
            time.sleep(seconds)
            return
        ready, _, _ = select.select([self.master], [], [], seconds)
        if ready:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:
                time.sleep(seconds)

    def close_master(self) -> None:
        if self.master_open:
            os.close(self.master)
            self.master_open = False

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.close_master()


def _wait_until_ready(console: _Console) -> set[int]:
    """The first frame is painted and PostgreSQL runs under the console; returns what the demo started."""
    console.wait_for(MARKER, timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        started = _descendants(console.proc.pid)
        if _postmasters(started):
            return started
        time.sleep(0.1)
    raise AssertionError("no PostgreSQL running under the demo console")


@pytest.mark.parametrize("how,wizard", [("pty closed", False), ("SIGHUP to the process group", False),
                                        ("pty closed", True), ("SIGHUP to the process group", True)])
def test_hangup_ends_console_and_demo_within_3s(how: str, wizard: bool) -> None:
    """With `wizard`, the hang-up comes while a wizard's check step runs (its workers busy): a
    SystemExit raised by a process-wide handler there was swallowed by the worker, and the console
    went on spinning with no terminal."""
    console = _Console(*(("--scenario", "api-down") if wizard else ()))
    started: set[int] = set()
    try:
        started = _wait_until_ready(console)
        settle = time.monotonic() + 1.0  # let the first round of checks and the lazy tabs get going
        while time.monotonic() < settle:
            console.drain(0.05)
        if wizard:
            os.write(console.master, b"w")
            console.wait_for(b"Enter opens the guided wizard", timeout=30)
            console.drain(0.3)
            os.write(console.master, b"\r")
            console.wait_for(b"step 1 of 4", timeout=30)
        started |= _descendants(console.proc.pid)
        hung_up = time.monotonic()
        if how == "pty closed":
            console.close_master()  # sshd closing its side: the kernel hangs the terminal up
        else:
            os.killpg(console.proc.pid, signal.SIGHUP)
        deadline = hung_up + HANGUP_BUDGET_S
        while time.monotonic() < deadline:
            if console.proc.poll() is not None and not any(_alive(pid) for pid in started):
                break
            console.drain(0.05)
        elapsed = time.monotonic() - hung_up
        left = sorted(pid for pid in started if _alive(pid))
        assert console.proc.poll() is not None, f"the console still runs {elapsed:.1f} s after the hang-up"
        assert left == [], f"demo processes {left} still run {elapsed:.1f} s after the hang-up"
        print(f"{how}{' (wizard)' if wizard else ''}: console and demo gone {elapsed:.2f} s after the hang-up")
    finally:  # whatever happened, leave nothing running behind
        started |= _descendants(console.proc.pid) if console.proc.poll() is None else set()
        if console.proc.poll() is None:
            console.kill()
        for pid in started:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        console.close_master()
