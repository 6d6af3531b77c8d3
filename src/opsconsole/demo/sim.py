"""A small framework for loopback HTTP simulators with fault injection.

Each simulated service runs its own `ThreadingHTTPServer` on 127.0.0.1 (real sockets, a real
port), checks auth like the real service, and consults a shared `FaultPlan` before answering,
so tests and benchmarks can make any service hang, answer slowly, fail with a status
(429 with Retry-After included), send HTML, truncated JSON or a huge body.

Faults can be set in-process (`FaultPlan.set`) or over HTTP on any simulator:
`POST /__sim/faults` with `{"service": "vercel", "kind": "status", "status": 500}`,
`DELETE /__sim/faults` to clear; this is how a separate `demo serve` process is driven.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("hang", "delay", "status", "html", "truncated", "huge", "reset")


@dataclass(frozen=True)
class Fault:
    """One injected failure. `path` limits it to request paths starting with that prefix."""

    kind: str
    status: int = 500
    delay_s: float = 0.0
    retry_after: str | None = None
    path: str = ""
    body: str | None = None
    huge_bytes: int = 5 * 1024 * 1024
    times: int | None = None  # None: until cleared

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")


class FaultPlan:
    """Thread-safe registry of faults per service name ('*' = every service)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[str, list[list[Any]]] = {}

    def set(self, service: str, fault: Fault) -> None:
        with self._lock:
            self._faults.setdefault(service, []).append([fault, fault.times])

    def clear(self, service: str | None = None) -> None:
        with self._lock:
            if service is None:
                self._faults.clear()
            else:
                self._faults.pop(service, None)

    def take(self, service: str, path: str) -> Fault | None:
        with self._lock:
            for name in (service, "*"):
                for entry in self._faults.get(name, []):
                    fault, left = entry
                    if fault.path and not path.startswith(fault.path):
                        continue
                    if left is not None:
                        if left <= 0:
                            continue
                        entry[1] = left - 1
                    return fault  # type: ignore[no-any-return]
        return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]  # lower-case keys
    body: bytes

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text, bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def encode(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        if self.body is None:
            return b"", self.content_type or "application/json"
        return json.dumps(self.body).encode(), self.content_type or "application/json; charset=utf-8"


Handler = Callable[[Request, "re.Match[str]"], Response]
AuthCheck = Callable[[Request], Response | None]


def json_error(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=body, headers=headers or {})


def bearer(token: Callable[[], str], *, unauthorized: Callable[[], Response],
           forbidden: Callable[[], Response] | None = None) -> AuthCheck:
    """Auth check for `Authorization: Bearer <token>`: missing -> 401, wrong -> 403 or 401."""

    def check(req: Request) -> Response | None:
        value = req.headers.get("authorization", "")
        if not value.lower().startswith("bearer "):
            return unauthorized()
        if value[7:].strip() != token():
            return (forbidden or unauthorized)()
        return None

    return check


def basic(user: str, password: Callable[[], str], *, unauthorized: Callable[[], Response]) -> AuthCheck:
    import base64

    def check(req: Request) -> Response | None:
        value = req.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return unauthorized()
        try:
            got = base64.b64decode(value[6:].strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return unauthorized()
        if got != f"{user}:{password()}":
            return unauthorized()
        return None

    return check


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Simulator:
    """One simulated service on one loopback port."""

    def __init__(self, name: str, faults: FaultPlan, *, auth: AuthCheck | None = None,
                 open_paths: tuple[str, ...] = ()) -> None:
        self.name = name
        self.faults = faults
        self.auth = auth
        self.open_paths = open_paths  # paths that need no auth (e.g. /healthz)
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) log for tests
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._released = threading.Event()  # set on stop: this simulator's hung handlers return

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile(f"^{pattern}$"), fn))
            return fn

        return deco

    @property
    def port(self) -> int:
        assert self._server is not None, "simulator not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> str:
        sim = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = f"{sim.name}-sim"
            # Headers and body go out in two writes: with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms per request on Linux loopback). Real services answer in milliseconds.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _serve(self) -> None:
                sim._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        self._released.clear()
        server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sim-{self.name}", daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- request handling -------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(method=h.command, path=parts.path, query=parse_qs(parts.query, keep_blank_values=True),
                      headers={k.lower(): v for k, v in h.headers.items()}, body=body)
        self.requests.append((req.method, req.path))
        if req.path == "/__sim/faults":
            self._send(h, self._control(req))
            return
        fault = self.faults.take(self.name, req.path)
        if fault is not None and self._apply_fault(h, fault):
            return
        if not any(req.path.startswith(p) for p in self.open_paths) and self.auth is not None:
            denied = self.auth(req)
            if denied is not None:
                self._send(h, denied)
                return
        for method, pattern, fn in self.routes:
            m = pattern.match(req.path)
            if m and (method == req.method or (method == "GET" and req.method == "HEAD")):
                try:
                    resp = fn(req, m)
                except Exception as exc:  # a simulator bug must not kill the server thread
                    resp = Response(500, {"error": {"message": f"simulator error: {exc}"}})
                self._send(h, resp, head=req.method == "HEAD")
                return
        self._send(h, self.not_found(req))

    def not_found(self, req: Request) -> Response:
        return Response(404, {"error": {"code": "not_found", "message": f"no route for {req.method} {req.path}"}})

    def _control(self, req: Request) -> Response:
        if req.method == "DELETE":
            self.faults.clear(req.q("service"))
            return Response(200, {"cleared": True})
        if req.method == "POST":
            try:
                spec = dict(req.json())
                service = spec.pop("service", "*")
                self.faults.set(str(service), Fault(**spec))
            except (TypeError, ValueError) as exc:
                return Response(400, {"error": str(exc)})
            return Response(200, {"set": True})
        return Response(405, {"error": "use POST or DELETE"})

    def _apply_fault(self, h: BaseHTTPRequestHandler, fault: Fault) -> bool:
        """Apply `fault`; True when the response has been fully dealt with."""
        if fault.kind == "hang":
            self._released.wait(fault.delay_s or 3600)
            h.close_connection = True
            return True
        if fault.kind == "delay":
            self._released.wait(fault.delay_s)
            return False  # then answer normally
        if fault.kind == "reset":
            h.close_connection = True
            return True
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body: Any = fault.body if fault.body is not None else {
                "error": {"code": "simulated", "message": f"simulated HTTP {fault.status}"}}
            self._send(h, Response(fault.status, body, headers))
            return True
        if fault.kind == "html":
            html = fault.body or ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
                                  "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>")
            self._send(h, Response(fault.status if fault.status != 500 else 200, html,
                                   content_type="text/html; charset=utf-8"))
            return True
        if fault.kind == "truncated":
            self._send(h, Response(200, fault.body or '{"data": [{"id": "1", "status": "err',
                                   content_type="application/json"))
            return True
        if fault.kind == "huge":
            chunk = b'{"padding": "' + b"x" * (fault.huge_bytes - 20) + b'"}'
            self._send(h, Response(200, chunk, content_type="application/json"))
            return True
        return False

    def _send(self, h: BaseHTTPRequestHandler, resp: Response, head: bool = False) -> None:
        payload, ctype = resp.encode()
        try:
            h.send_response(resp.status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(payload)))
            for k, v in resp.headers.items():
                h.send_header(k, v)
            h.end_headers()
            if not head:
                h.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


def now() -> datetime:
    return datetime.now(UTC)


def epoch_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def monotonic() -> float:
    return time.monotonic()
