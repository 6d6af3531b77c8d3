"""A loopback TCP proxy standing in for Supavisor's transaction-mode port (6543) in the demo.

It forwards bytes to the demo PostgreSQL, so the console connects through it with exactly the
code it uses against Supabase, and it can be made to fail the ways a pooler fails:

* `ok`     forward;
* `refuse` close the listening socket (new connections are refused) and drop open ones;
* `hang`   accept, read and never answer (a pooler that is up but stuck);
* `slow`   wait `delay_s` before forwarding a new connection.

Auth failures need no mode: postgres itself rejects a wrong password.

Threads: one accept thread that owns the listening socket (so `refuse` can close and reopen it
without cross-thread closes) and one thread per connection; every loop wakes every 0.1 s to
check for stop, so `stop()` returns promptly and leaves no thread behind.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType

MODES = ("ok", "refuse", "hang", "slow")
_TICK_S = 0.1


class PoolerProxy:
    """`start()` listens on 127.0.0.1 (`port`), forwards to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0, mode: str = "ok",
                 delay_s: float = 3.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown pooler mode {mode!r}; expected one of {', '.join(MODES)}")
        self.target = (target_host, target_port)
        self._requested_port = port
        self._port: int | None = None
        self._mode = mode
        self._delay_s = delay_s
        self._cond = threading.Condition()
        self._mode_gen = 0  # bumped on every mode change
        self._applied_gen = 0  # what the accept thread has applied
        self._drop_gen = 0  # bumped when open connections must be dropped (refuse)
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._handlers: set[threading.Thread] = set()
        self.accepted = 0  # connections accepted since start (tests, drill)

    # -- public -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("pooler proxy not started")
        return self._port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        self.set_mode(value)

    @property
    def delay_s(self) -> float:
        return self._delay_s

    def set_mode(self, mode: str, *, delay_s: float | None = None, wait_s: float = 2.0) -> None:
        """Switch the fault; returns once the accept thread applied it (listener closed/reopened)."""
        if mode not in MODES:
            raise ValueError(f"unknown pooler mode {mode!r}; expected one of {', '.join(MODES)}")
        with self._cond:
            if delay_s is not None:
                self._delay_s = delay_s
            self._mode = mode
            self._mode_gen += 1
            if mode == "refuse":
                self._drop_gen += 1
            gen = self._mode_gen
            if self._accept_thread is not None:
                self._cond.wait_for(lambda: self._applied_gen >= gen or self._stopping.is_set(),
                                    timeout=wait_s)

    def start(self) -> PoolerProxy:
        if self._accept_thread is not None:
            return self
        self._stopping.clear()
        listener = self._listen(self._requested_port) if self._mode != "refuse" else None
        if listener is not None:
            self._port = int(listener.getsockname()[1])
        else:  # starting in refuse mode: reserve nothing, but fix the port number now
            self._port = self._requested_port or _free_port()
        self._applied_gen = self._mode_gen
        self._accept_thread = threading.Thread(target=self._serve, args=(listener,), name="demo-pooler",
                                               daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, join every thread. Idempotent."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._accept_thread = self._accept_thread, None
        if thread is not None:
            thread.join(timeout=5)
        with self._cond:
            handlers = list(self._handlers)
        for h in handlers:
            h.join(timeout=5)

    def __enter__(self) -> PoolerProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------
    @staticmethod
    def _listen(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            s.settimeout(_TICK_S)
        except OSError:
            s.close()
            raise
        return s

    def _serve(self, listener: socket.socket | None) -> None:
        try:
            while not self._stopping.is_set():
                with self._cond:
                    want_open = self._mode != "refuse"
                    gen = self._mode_gen
                if want_open and listener is None:
                    try:
                        listener = self._listen(self.port)
                    except OSError:  # port taken meanwhile: behave as refused, retry next tick
                        listener = None
                elif not want_open and listener is not None:
                    listener.close()
                    listener = None
                with self._cond:
                    self._applied_gen = max(self._applied_gen, gen)
                    self._cond.notify_all()
                if listener is None:
                    self._stopping.wait(_TICK_S)
                    continue
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    continue
                self._spawn(client)
        finally:
            if listener is not None:
                listener.close()

    def _spawn(self, client: socket.socket) -> None:
        with self._cond:
            mode, delay, drop_gen = self._mode, self._delay_s, self._drop_gen
            self.accepted += 1
            t = threading.Thread(target=self._handle, args=(client, mode, delay, drop_gen),
                                 name="demo-pooler-conn", daemon=True)
            self._handlers.add(t)
        t.start()

    def _dropped(self, drop_gen: int) -> bool:
        return self._stopping.is_set() or self._drop_gen != drop_gen

    def _handle(self, client: socket.socket, mode: str, delay: float, drop_gen: int) -> None:
        upstream: socket.socket | None = None
        try:
            client.setblocking(False)
            if mode == "hang":
                self._swallow(client, drop_gen)
                return
            if mode == "slow":
                waited = 0.0
                while waited < delay and not self._dropped(drop_gen):
                    step = min(_TICK_S, delay - waited)
                    self._stopping.wait(step)
                    waited += step
                if self._dropped(drop_gen):
                    return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.setblocking(False)
            self._pump(client, upstream, drop_gen)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    with contextlib.suppress(OSError):
                        s.close()
            with self._cond:
                self._handlers.discard(threading.current_thread())

    def _swallow(self, client: socket.socket, drop_gen: int) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            while not self._dropped(drop_gen):
                for _key, _ in sel.select(_TICK_S):
                    if not client.recv(65536):
                        return

    def _pump(self, client: socket.socket, upstream: socket.socket, drop_gen: int) -> None:
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while not self._dropped(drop_gen):
                for key, _ in sel.select(_TICK_S):
                    src = key.fileobj
                    assert isinstance(src, socket.socket)
                    try:
                        data = src.recv(65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        return
                    self._send_all(peer[src], data, drop_gen)


    def _send_all(self, sock: socket.socket, data: bytes, drop_gen: int) -> None:
        """sendall for a non-blocking socket: waits for buffer space in short steps, gives up on stop."""
        view = memoryview(data)
        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_WRITE)
            while view and not self._dropped(drop_gen):
                try:
                    sent = sock.send(view)
                except BlockingIOError:
                    sel.select(_TICK_S)
                    continue
                view = view[sent:]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
