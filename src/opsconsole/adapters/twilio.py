"""Twilio: error alerts of the last hour (runbook "Webhooks Failing" → "Twilio Logs … Errors").

Reads Monitor v1 Alerts through the official `twilio` SDK, as the brief of the product demands,
but never lets the SDK's blocking HTTP stack decide how long a check takes or how much it
reads: the SDK gets `BoundedHttpClient` (a sync httpx client with hard timeouts, a body cap, no
redirects, no proxy variables), each SDK call runs in a worker thread under a deadline, and the
client is pinned to the configured `monitor_url` / `api_url` with TWILIO_EDGE / TWILIO_REGION
ignored (they would rewrite the host to `*.edge.region.twilio.com`). Credentials are revealed
per round, when the SDK client is built, and are never part of a summary, detail or exception.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from opsconsole.adapters.http import DEFAULT_MAX_BYTES, USER_AGENT
from opsconsole.domain import twilio_codes
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import SecretError, Settings, TwilioSettings

SERVICE = "Twilio"
WINDOW = timedelta(hours=1)
PAGE_SIZE = 200  # Monitor allows up to 1000; 200 keeps each page small on a slow link
MAX_ALERTS = 1000  # read at most this many alerts per round (then the count is "≥")
MAX_PAGES = 20
WARN_AT = 1
FAIL_AT = 10  # ten error alerts in an hour is an incident even without webhook failures
NEWEST = 10  # alerts listed in the details
CONSOLE_ERRORS_URL = "https://console.twilio.com/us1/monitor/logs/debugger/errors"
# A non-empty mapping without TWILIO_* keys: the SDK falls back to os.environ for an empty one.
_NO_ENV: dict[str, str] = {"OPSCONSOLE_TWILIO_ISOLATED": "1"}
# Noise keys of alert_text that say nothing to an operator.
_TEXT_NOISE = frozenset({"sourceComponent", "ErrorCode", "LogLevel", "EmailNotification"})

_log = logging.getLogger("opsconsole.twilio.http")
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("twilio_deadline", default=None)
T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- failures -------------------------------------------------------------------------------------
class TwilioTransportError(Exception):
    """The exchange itself failed (timeout, refused, huge or non-JSON body). Message is safe to show."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class TwilioApiError(Exception):
    """Twilio answered with an HTTP error; `code` is Twilio's own error code when it sent one."""

    def __init__(self, http_status: int, code: int | None, message: str, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {http_status}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class TwilioShapeError(Exception):
    """Twilio answered 200 with JSON the SDK could not turn into records."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One expected failure, ready for a CheckResult."""

    status: Status
    summary: str
    kind: str
    http_status: int | None = None
    code: int | None = None
    retry_after_s: float | None = None


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utcnow()).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


# -- the SDK's HTTP client -------------------------------------------------------------------------
class BoundedHttpClient(HttpClient):  # type: ignore[misc]  # the SDK ships no type information
    """`twilio.http.HttpClient` on a sync httpx client: a hung or huge response cannot hang the
    worker thread or fill memory. Non-2xx answers are handed back to the SDK, which raises
    its own exceptions; transport problems and non-JSON 2xx bodies raise TwilioTransportError.
    """

    def __init__(self, *, timeout_s: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(logger=_log, is_async=False, timeout=timeout_s)
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,  # no proxy / netrc surprises from the environment
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
        )

    def last_headers(self) -> Mapping[str, str]:
        """Headers of the newest response on this thread (for Retry-After)."""
        headers: Mapping[str, str] = getattr(self._local, "headers", {})
        return headers

    def request(self, method: str, uri: str, params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None, timeout: float | None = None,
                allow_redirects: bool = False) -> TwilioResponse:
        limit = float(timeout or self.timeout or 10.0)
        deadline = _DEADLINE.get()
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0.05:
                raise TwilioTransportError("timeout", f"{SERVICE} did not answer in time (round deadline "
                                                      "reached)")
            limit = min(limit, remaining)
        ends = time.monotonic() + limit
        merged = dict(headers or {})
        merged["User-Agent"] = f"{merged.get('User-Agent', 'twilio-python')} {USER_AGENT}"
        self._local.headers = {}
        try:
            with self._client.stream(method, uri, params=dict(params) if params else None,
                                     data=dict(data) if data else None, headers=merged, auth=auth,
                                     timeout=limit, follow_redirects=allow_redirects) as resp:
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise TwilioTransportError(
                        "too_large", f"{SERVICE} sent a {int(declared) / 1e6:.1f} MB body; refused to read "
                                     f"more than {self.max_bytes / 1e6:.1f} MB")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TwilioTransportError(
                            "too_large", f"{SERVICE} sent more than {self.max_bytes / 1e6:.1f} MB; stopped "
                                         "reading")
                    if time.monotonic() > ends:
                        raise TwilioTransportError("timeout", f"{SERVICE} did not finish answering within "
                                                              f"{limit:.1f} s")
                    chunks.append(chunk)
                status = resp.status_code
                resp_headers = {k.lower(): v for k, v in resp.headers.items()}
        except httpx.TimeoutException:
            raise TwilioTransportError("timeout", f"{SERVICE} did not answer within {limit:.1f} s") from None
        except httpx.ConnectError as exc:
            detail = printable(str(exc), single_line=True, limit=120)
            if "refused" in detail.lower() or "errno 111" in detail.lower():
                raise TwilioTransportError("refused", f"{SERVICE} refused the connection at {_host(uri)} "
                                                      "— is the URL right and the service up?") from None
            message = f"cannot reach {SERVICE} at {_host(uri)}: {detail}"
            raise TwilioTransportError("network", message) from None
        except httpx.HTTPError as exc:
            detail = printable(str(exc), single_line=True, limit=120)
            raise TwilioTransportError("network", f"{SERVICE}: {type(exc).__name__}: {detail}") from None
        self._local.headers = resp_headers
        body = b"".join(chunks)
        text = body.decode("utf-8", errors="replace")
        if 200 <= status < 300 and method.upper() != "DELETE":
            _require_json(status, text, resp_headers.get("content-type", ""), len(body))
        return TwilioResponse(status, text, resp_headers)

    def close(self) -> None:
        self._client.close()


def _require_json(status: int, text: str, content_type: str, size: int) -> None:
    """Turn a 2xx non-JSON body into a clear error before the SDK's json.loads does it obscurely."""
    try:
        json.loads(text)
    except ValueError as exc:
        if "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
            raise TwilioTransportError("not_json", f"{SERVICE} answered HTTP {status} with an HTML page "
                                                   "where JSON was expected (proxy, login or error page?)"
                                       ) from None
        why = printable(str(exc) if text.strip() else "empty body", single_line=True, limit=80)
        raise TwilioTransportError("bad_json", f"{SERVICE} sent invalid JSON (HTTP {status}, {size} bytes: "
                                               f"{why})") from None


# -- alerts ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlertRow:
    """One Monitor alert, reduced to what an operator needs; text fields already printable."""

    sid: str
    error_code: str
    log_level: str
    date: datetime | None
    request_url: str
    resource_sid: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"sid": self.sid, "error_code": self.error_code,
                "date": self.date.isoformat() if self.date else None, "request_url": self.request_url,
                "resource_sid": self.resource_sid, "text": self.text,
                "meaning": twilio_codes.meaning(self.error_code)}


def readable_alert_text(raw: str) -> str:
    """Twilio's alert_text is URL-encoded `key=value&…`; show Msg first, drop the noise keys."""
    pairs = parse_qsl(raw, keep_blank_values=True)
    if not pairs or not all(k and " " not in k for k, _ in pairs):
        return raw
    msg = [v for k, v in pairs if k == "Msg"]
    rest = [f"{k}={v}" for k, v in pairs if k != "Msg" and k not in _TEXT_NOISE and v]
    return "; ".join([*msg, *rest]) or raw


@dataclass(frozen=True, slots=True)
class _Collected:
    alerts: list[AlertRow]
    pages: int
    capped: bool


class TwilioAdapter:
    """Twilio Monitor alerts through the official SDK; the SDK client is pinned to api_url too."""

    system = "twilio"

    def __init__(self, settings: Settings, *, timeout_s: float | None = None, page_size: int = PAGE_SIZE,
                 max_alerts: int = MAX_ALERTS, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if settings.twilio is None:
            raise ValueError("[twilio] is not configured")
        self.settings: TwilioSettings = settings.twilio
        self.timeout_s = timeout_s if timeout_s is not None else settings.checks.timeout_s
        self.page_size = max(1, min(page_size, 1000))
        self.max_alerts = max(1, max_alerts)
        self.monitor_url = self.settings.monitor_url.rstrip("/")
        self.api_url = self.settings.api_url.rstrip("/")
        self.http = BoundedHttpClient(timeout_s=self.timeout_s, max_bytes=max_bytes)
        self._checks: list[Check] = [TwilioAlertsCheck(self)]

    def checks(self) -> list[Check]:
        return list(self._checks)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.http.close)

    @property
    def credential(self) -> str:
        token, sid = self.settings.auth_token.hint, self.settings.account_sid.hint
        return token if token == sid else f"{token} (and {sid})"

    def secret_problem(self, exc: SecretError) -> str:
        return f"Twilio credentials unavailable: {exc} — check {self.credential}"

    def client(self) -> tuple[Any, str]:
        """A fresh SDK client pinned to the configured URLs, and the account SID (for redaction).

        Raises SecretError. Built per round so rotated credentials are picked up.
        """
        sid = self.settings.account_sid.reveal()
        token = self.settings.auth_token.reveal()
        client = Client(sid, token, account_sid=sid, http_client=self.http, environment=_NO_ENV)
        client.edge = None  # belt and braces: TWILIO_EDGE / TWILIO_REGION must not move the host
        client.region = None
        client.monitor.base_url = self.monitor_url
        client.api.base_url = self.api_url
        return client, sid

    async def call(self, fn: Callable[[], T], *, timeout_s: float | None = None) -> T:
        """Run one blocking SDK operation in a worker thread under a hard deadline.

        Raises TwilioTransportError, TwilioApiError or TwilioShapeError for expected failures.
        """
        limit = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + limit
        http = self.http

        def work() -> T:
            _DEADLINE.set(deadline)  # this thread's copy of the context only
            try:
                return fn()
            except (TwilioTransportError, TwilioApiError, TwilioShapeError):
                raise
            except TwilioRestException as exc:
                raise _api_error(exc.status, exc.code, exc.msg, http.last_headers()) from None
            except TwilioException as exc:
                resp = exc.args[1] if len(exc.args) > 1 else None
                if isinstance(resp, TwilioResponse):
                    raise _api_error_from_response(resp) from None
                raise TwilioShapeError(printable(str(exc), single_line=True, limit=120)) from None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise TwilioShapeError(f"{type(exc).__name__} while reading the answer") from None

        try:
            return await asyncio.wait_for(asyncio.to_thread(work), timeout=limit + 0.25)
        except TimeoutError:
            raise TwilioTransportError("timeout", f"{SERVICE} did not answer within {limit:g} s") from None

    def describe(self, exc: Exception) -> Failure:
        """Expected failures → status and a one-line summary an on-call engineer can act on."""
        if isinstance(exc, TwilioTransportError):
            return Failure(Status.FAIL, exc.message, exc.kind)
        if isinstance(exc, TwilioShapeError):
            return Failure(Status.FAIL, f"{SERVICE} sent an answer without the expected alerts list "
                                        f"({exc}) — check [twilio] monitor_url", "bad_shape")
        if isinstance(exc, SecretError):
            return Failure(Status.FAIL, self.secret_problem(exc), "secret")
        if not isinstance(exc, TwilioApiError):
            raise exc
        status, code = exc.http_status, exc.code
        own = f" {exc.message}" if exc.message else ""
        if code and code != status:
            code_txt = f" (code {code}{own})"
        else:
            code_txt = f" ({exc.message})" if exc.message else ""
        if status == 401:
            summary = f"HTTP 401 from {SERVICE}{code_txt}: credentials rejected — check {self.credential}"
        elif status == 403:
            summary = (f"HTTP 403 from {SERVICE}{code_txt}: access forbidden — check that the account or API "
                       f"key in {self.credential} may read Monitor alerts")
        elif status == 404:
            summary = (f"HTTP 404 from {SERVICE}{code_txt}: Monitor Alerts not found — check [twilio] "
                       f"monitor_url ({printable(self.monitor_url, limit=80)})")
        elif status == 429:
            wait = f", retry after {exc.retry_after_s:.0f} s" if exc.retry_after_s is not None else ""
            return Failure(Status.WARN, f"HTTP 429 from {SERVICE}: rate limited{wait}", "http", status, code,
                           exc.retry_after_s)
        elif 500 <= status < 600:
            summary = f"HTTP {status} from {SERVICE}: server error{code_txt}"
        else:
            summary = f"HTTP {status} from {SERVICE}{code_txt}"
        return Failure(Status.FAIL, printable(summary, single_line=True, limit=240), "http", status, code,
                       exc.retry_after_s)

    # -- reads -------------------------------------------------------------------------------------
    def _collect_alerts(self, client: Any, start: datetime, end: datetime,
                        redact: tuple[str, ...]) -> _Collected:
        """Runs in the worker thread: page through error alerts, newest first, following
        `meta.next_page_url` through the SDK, up to `max_alerts` / MAX_PAGES."""
        rows: list[AlertRow] = []
        pages = 0
        capped = False
        page = client.monitor.v1.alerts.page(log_level="error", start_date=start, end_date=end,
                                             page_size=self.page_size)
        while page is not None:
            pages += 1
            for inst in page:
                row = _row(inst, redact)
                if row.log_level and row.log_level != "error":
                    continue  # a server that ignored LogLevel
                if row.date is not None and row.date < start:
                    continue
                rows.append(row)
                if len(rows) >= self.max_alerts:
                    capped = True
                    break
            if capped or pages >= MAX_PAGES:
                capped = capped or bool(page.next_page_url)
                break
            page = page.next_page()
        return _Collected(rows, pages, capped)

    async def error_alerts(self, window: timedelta = WINDOW) -> _Collected:
        """Error-level alerts of the last `window`. Raises SecretError or the Twilio*Error types."""
        client, sid = self.client()
        token = self.settings.auth_token.reveal()
        end = utcnow()
        start = end - window
        redact = tuple(v for v in (sid, token) if v)
        return await self.call(lambda: self._collect_alerts(client, start, end, redact))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    for value in secrets:
        if value and value in text:
            text = text.replace(value, f"{value[:4]}…" if value.startswith("AC") else "[redacted]")
    return text


def _row(inst: Any, redact: tuple[str, ...]) -> AlertRow:
    def field(name: str, limit: int) -> str:
        value = getattr(inst, name, None)
        if value in (None, ""):
            return ""
        return printable(_redact(str(value), redact), single_line=True, limit=limit)

    raw_date = getattr(inst, "date_created", None)
    text = getattr(inst, "alert_text", None) or ""
    return AlertRow(
        sid=field("sid", 40),
        error_code=field("error_code", 12),
        log_level=field("log_level", 12),
        date=raw_date if isinstance(raw_date, datetime) else None,
        request_url=field("request_url", 200),
        resource_sid=field("resource_sid", 40),
        text=printable(_redact(readable_alert_text(str(text)), redact), single_line=True, limit=200),
    )


def _api_error(status: int, code: Any, message: Any, headers: Mapping[str, str]) -> TwilioApiError:
    text = message if isinstance(message, str) else ""
    for prefix in ("Unable to fetch record: ", "Unable to fetch page: ", "Unable to fetch record",
                   "Unable to fetch page"):
        text = text.removeprefix(prefix)
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    return TwilioApiError(int(status), number, printable(text, single_line=True, limit=120),
                          _retry_after(headers))


def _api_error_from_response(resp: TwilioResponse) -> TwilioApiError:
    """For list calls the SDK raises a bare TwilioException carrying the response; read Twilio's
    JSON error (`{"code": 20003, "message": "Authenticate", …}`) out of it ourselves."""
    code: Any = None
    message: Any = None
    try:
        body = json.loads(resp.text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        code, message = body.get("code"), body.get("message")
        if message is None and isinstance(body.get("error"), dict):
            message = body["error"].get("message")
    headers = resp.headers if isinstance(resp.headers, Mapping) else {}
    return _api_error(resp.status_code, code, message, {str(k).lower(): str(v) for k, v in headers.items()})


class TwilioAlertsCheck:
    """`twilio.alerts`: Monitor error alerts in the last hour, counted by error code.

    Status rule: OK with no error alerts; WARN with 1–9; FAIL with 10 or more, or with any
    webhook failure (11200, 11205, 11217) — those mean Twilio cannot reach *our* endpoint, so
    status callbacks are being lost right now. HTTP 429 is WARN; other failures to read are FAIL.
    """

    id = "twilio.alerts"
    system = "twilio"
    title = "Twilio error alerts"

    def __init__(self, adapter: TwilioAdapter) -> None:
        self.adapter = adapter

    def _result(self, status: Status, summary: str, latency_ms: float | None,
                details: Mapping[str, Any]) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status, summary=summary,
                           latency_ms=latency_ms,
                           details={"window_minutes": 60, "console_url": CONSOLE_ERRORS_URL,
                                    "credential": self.adapter.credential, **details})

    async def run(self) -> CheckResult:
        started = time.perf_counter()
        try:
            collected = await self.adapter.error_alerts()
        except (SecretError, TwilioTransportError, TwilioApiError, TwilioShapeError) as exc:
            failure = self.adapter.describe(exc)
            return self._result(failure.status, failure.summary, (time.perf_counter() - started) * 1000,
                                {"error": failure.kind, "http_status": failure.http_status,
                                 "twilio_code": failure.code, "retry_after_s": failure.retry_after_s})
        return self._assess(collected, (time.perf_counter() - started) * 1000)

    def _assess(self, collected: _Collected, latency_ms: float) -> CheckResult:
        alerts = sorted(collected.alerts, key=lambda a: a.date or _EPOCH,
                        reverse=True)
        total = len(alerts)
        counts = Counter(a.error_code or "?" for a in alerts)
        webhook = sum(n for c, n in counts.items() if twilio_codes.is_webhook_failure(c))
        catch_all = counts.get(str(twilio_codes.CATCH_ALL_CODE), 0)
        by_code = [{"code": c, "count": n, "meaning": twilio_codes.meaning(c),
                    "transient": twilio_codes.is_transient(c)} for c, n in counts.most_common()]
        if total == 0:
            status = Status.OK
        elif total >= FAIL_AT or webhook:
            status = Status.FAIL
        else:
            status = Status.WARN
        details: dict[str, Any] = {
            "total": total, "capped": collected.capped, "pages": collected.pages, "by_code": by_code,
            "webhook_failures": webhook, "catch_all_30008": catch_all,
            "newest": [a.to_json() for a in alerts[:NEWEST]],
            "thresholds": {"warn_at": WARN_AT, "fail_at": FAIL_AT, "fail_on_webhook_codes":
                           sorted(twilio_codes.WEBHOOK_CODES)},
        }
        if total == 0:
            return self._result(status, "no error alerts in the last hour", latency_ms, details)
        more = "≥" if collected.capped else ""
        noun = "alert" if total == 1 else "alerts"
        parts: list[str] = []
        if catch_all:
            parts.append(f"30008 ×{catch_all}")
        parts += [f"{c} ×{counts[str(c)]}" for c in sorted(twilio_codes.WEBHOOK_CODES) if counts.get(str(c))]
        others = [(c, n) for c, n in counts.most_common()
                  if c != str(twilio_codes.CATCH_ALL_CODE) and not twilio_codes.is_webhook_failure(c)]
        parts += [f"{c} ×{n}" for c, n in others[:2]]
        if len(others) > 2:
            parts.append(f"+{len(others) - 2} more codes")
        summary = f"{more}{total} error {noun} in the last hour: " + ", ".join(parts)
        if webhook:
            summary += f" — webhook failures ×{webhook}: Twilio cannot reach our endpoint"
        elif catch_all:
            summary += " — 30008 is the carrier catch-all: retry, escalate with SIDs if it persists"
        return self._result(status, printable(summary, single_line=True, limit=240), latency_ms, details)
