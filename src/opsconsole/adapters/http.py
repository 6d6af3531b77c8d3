"""Shared HTTP plumbing for adapters: bounded reads, safe retries, failures as readable data.

Every adapter calls `fetch` instead of httpx directly so that timeouts, refusals, 4xx/5xx,
HTML error pages, truncated JSON and huge bodies all turn into one `HttpOutcome` whose
`problem` an on-call engineer can act on.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from opsconsole.domain.models import Status, utcnow
from opsconsole.domain.text import printable

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
# Longest Retry-After we are willing to sleep through inside one check round.
MAX_RETRY_WAIT_S = 2.0
USER_AGENT = "opsconsole/0.1 (+on-call console)"


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    """What one HTTP exchange gave. `problem` is None when a usable body came back."""

    url: str
    status_code: int | None
    latency_ms: float
    data: Any = None
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    problem: str | None = None
    kind: str = "ok"  # ok | timeout | refused | network | http | not_json | bad_json | too_large
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def status(self) -> Status:
        """Status to report when the exchange itself failed (not what the body says)."""
        if self.problem is None:
            return Status.OK
        if self.kind == "http" and self.status_code == 429:
            return Status.WARN
        return Status.FAIL


def new_client(*, timeout_s: float = 5.0, headers: Mapping[str, str] | None = None,
               auth: httpx.Auth | tuple[str, str] | None = None,
               base_url: str = "") -> httpx.AsyncClient:
    """One client per service (connection reuse); closed by the composition root."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s),
        headers=merged,
        auth=auth,
        base_url=base_url,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=10, max_keepalive_connections=5),
        trust_env=False,
    )


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def _refused(exc: BaseException) -> bool:
    """httpx wraps the OS error ('All connection attempts failed'): look down the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "refused" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def _error_message(data: Any) -> str | None:
    """Pull a service's own error message out of common JSON error shapes."""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("code")
            if isinstance(msg, str):
                return msg
        if isinstance(err, str):
            return err
        for key in ("message", "msg", "detail", "error_description"):
            msg = data.get(key)
            if isinstance(msg, str):
                return msg
    return None


def describe_status(service: str, code: int, *, credential: str | None, data: Any,
                    retry_after: float | None, url: str) -> str:
    """A one-line, actionable summary of an HTTP error status."""
    own = _error_message(data)
    own_txt = f" ({printable(own, single_line=True, limit=120)})" if own else ""
    cred = credential or "the configured credentials"
    if code == 401:
        return f"HTTP 401 from {service}: credentials rejected — check {cred}{own_txt}"
    if code == 403:
        if isinstance(data, dict) and isinstance(data.get("error"), dict) and data["error"].get("invalidToken"):
            return f"HTTP 403 from {service}: token rejected — check {cred}{own_txt}"
        return f"HTTP 403 from {service}: access forbidden — check that {cred} has the needed scope{own_txt}"
    if code == 404:
        path = urlsplit(url).path or "/"
        shown = printable(path, limit=80)
        return f"HTTP 404 from {service}: {shown} not found — check the configured URL and ids{own_txt}"
    if code == 429:
        wait = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
        return f"HTTP 429 from {service}: rate limited{wait}"
    if 500 <= code < 600:
        return f"HTTP {code} from {service}: server error{own_txt}"
    return f"HTTP {code} from {service}{own_txt}"


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    service: str,
    credential: str | None = None,
    method: str = "GET",
    params: Any = None,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    timeout_s: float = 5.0,
    expect: str = "json",
    max_bytes: int = DEFAULT_MAX_BYTES,
    retries: int | None = None,
    ok_statuses: tuple[int, ...] = (),
) -> HttpOutcome:
    """Perform one request with a hard deadline and turn every failure into data.

    Retries (with backoff, honouring Retry-After) only for GET/HEAD: they are idempotent.
    `expect` is "json" (body must parse) or "text". `ok_statuses` lists non-2xx statuses
    the caller wants to interpret itself (e.g. 401 for a key probe).
    """
    idempotent = method.upper() in ("GET", "HEAD")
    attempts = 1 + (retries if retries is not None else (2 if idempotent else 0))
    deadline = time.monotonic() + timeout_s
    started = time.perf_counter()
    outcome: HttpOutcome | None = None
    for attempt in range(attempts):
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            break
        outcome = await _once(client, url, service=service, credential=credential, method=method,
                              params=params, headers=headers, json_body=json_body, timeout_s=remaining,
                              expect=expect, max_bytes=max_bytes, started=started,
                              ok_statuses=ok_statuses)
        if outcome.ok or not idempotent or attempt == attempts - 1:
            break
        wait: float | None = None
        if outcome.kind == "http" and outcome.status_code == 429:
            wait = outcome.retry_after_s if outcome.retry_after_s is not None else 0.5 * (attempt + 1)
        elif (outcome.kind == "http" and outcome.status_code in (502, 503, 504)) or outcome.kind == "network":
            wait = 0.2 * (2**attempt)
        if wait is None:
            break
        if wait > MAX_RETRY_WAIT_S or time.monotonic() + wait >= deadline - 0.05:
            break
        await asyncio.sleep(wait)
    if outcome is None:
        return HttpOutcome(url=url, status_code=None, latency_ms=(time.perf_counter() - started) * 1000,
                           problem=f"{service} did not answer within {timeout_s:g} s", kind="timeout")
    return outcome


async def _once(client: httpx.AsyncClient, url: str, *, service: str, credential: str | None,
                method: str, params: Any, headers: Mapping[str, str] | None, json_body: Any,
                timeout_s: float, expect: str, max_bytes: int, started: float,
                ok_statuses: tuple[int, ...]) -> HttpOutcome:
    def ms() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream(method, url, params=params, headers=headers, json=json_body,
                                     timeout=timeout_s) as resp:
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    return HttpOutcome(url=url, status_code=resp.status_code, latency_ms=ms(),
                                       headers=dict(resp.headers), kind="too_large",
                                       problem=f"{service} sent a {int(declared) / 1e6:.1f} MB body; "
                                               f"refused to read more than {max_bytes / 1e6:.1f} MB")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return HttpOutcome(url=url, status_code=resp.status_code, latency_ms=ms(),
                                           headers=dict(resp.headers), kind="too_large",
                                           problem=f"{service} sent more than {max_bytes / 1e6:.1f} MB; "
                                                   "stopped reading")
                    chunks.append(chunk)
                body = b"".join(chunks)
                status_code = resp.status_code
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
    except TimeoutError:
        return HttpOutcome(url=url, status_code=None, latency_ms=ms(), kind="timeout",
                           problem=f"{service} did not answer within {timeout_s:.1f} s")
    except httpx.TimeoutException:
        return HttpOutcome(url=url, status_code=None, latency_ms=ms(), kind="timeout",
                           problem=f"{service} did not answer within {timeout_s:.1f} s")
    except httpx.ConnectError as exc:
        if _refused(exc):
            return HttpOutcome(url=url, status_code=None, latency_ms=ms(), kind="refused",
                               problem=f"{service} refused the connection at {_host(url)} — "
                                       "is the URL right and the service up?")
        return HttpOutcome(url=url, status_code=None, latency_ms=ms(), kind="network",
                           problem=f"cannot reach {service} at {_host(url)}: "
                                   f"{printable(str(exc) or type(exc).__name__, single_line=True, limit=120)}")
    except httpx.HTTPError as exc:
        return HttpOutcome(url=url, status_code=None, latency_ms=ms(), kind="network",
                           problem=f"{service}: {type(exc).__name__}: "
                                   f"{printable(str(exc), single_line=True, limit=120)}")

    text = body.decode("utf-8", errors="replace")
    data: Any = None
    parse_error: str | None = None
    content_type = resp_headers.get("content-type", "")
    if expect == "json" and text.strip():
        try:
            data = json.loads(text)
        except ValueError as exc:
            parse_error = str(exc)
    retry_after = _retry_after(resp_headers)
    is_html = "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))

    if not (200 <= status_code < 300) and status_code not in ok_statuses:
        return HttpOutcome(url=url, status_code=status_code, latency_ms=ms(), data=data, text=text,
                           headers=resp_headers, kind="http", retry_after_s=retry_after,
                           problem=describe_status(service, status_code, credential=credential, data=data,
                                                   retry_after=retry_after, url=url))
    if expect == "json":
        if is_html and data is None:
            return HttpOutcome(url=url, status_code=status_code, latency_ms=ms(), text=text,
                               headers=resp_headers, kind="not_json",
                               problem=f"{service} answered HTTP {status_code} with an HTML page where JSON "
                                       "was expected (proxy, login or error page?)")
        if parse_error is not None or data is None:
            why = printable(parse_error or "empty body", single_line=True, limit=80)
            return HttpOutcome(url=url, status_code=status_code, latency_ms=ms(), text=text,
                               headers=resp_headers, kind="bad_json",
                               problem=f"{service} sent invalid JSON (HTTP {status_code}, {len(body)} bytes: "
                                       f"{why})")
    return HttpOutcome(url=url, status_code=status_code, latency_ms=ms(), data=data, text=text,
                       headers=resp_headers, retry_after_s=retry_after)
