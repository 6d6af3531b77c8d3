"""Loopback simulator of the two Twilio APIs the console reads: Monitor v1 Alerts and 2010 Messages.

Both are served from one port (the config points `monitor_url` and `api_url` at it), behind HTTP
Basic `AccountSid:AuthToken` like the real thing; bad credentials get Twilio's 20003 JSON error.
Shapes follow `twilio_monitor_v1.yaml` / `twilio_api_v2010.yaml`: Monitor dates are ISO 8601
(`2015-07-30T20:00:00Z`, the only form the SDK parses), 2010 dates are RFC 2822, Monitor paging
uses absolute `meta.next_page_url` (pointing back at this simulator), 2010 paging relative
`next_page_uri`. Traffic keeps flowing minute by minute while the simulator runs.

Scenarios:
- healthy: delivered messages, a warning now and then, one old (> 1 h) delivery error.
- incident: since ~45 minutes before start, a burst of error alerts: mostly 30008, webhook
  failures 11200 / 11205 / 11217 against our status-callback endpoint, some 21610; one webhook
  alert carries hostile text (terminal escape + markup) in its URL-encoded alert_text.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from opsconsole.demo.scenario import DemoSecrets, has
from opsconsole.demo.sim import FaultPlan, Request, Response, Simulator, basic, now

HISTORY = timedelta(hours=6)
STATUS_CALLBACK_URL = "https://api.example.com/webhooks/twilio/status"
INBOUND_URL = "https://api.example.com/webhooks/twilio/inbound"
FROM_NUMBER = "+14155550100"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
HOSTILE_MSG = "Internal Server Error \x1b[2J\x1b[31m[red]x[/] PWNED"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc2822(dt: datetime) -> str:
    return format_datetime(dt.astimezone(UTC).replace(microsecond=0))


def _error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, _error_body(status, code, message), headers or {})


def _sid(prefix: str, rng: random.Random) -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


@dataclass
class _Alert:
    sid: str
    at: datetime
    error_code: str
    log_level: str
    text_pairs: list[tuple[str, str]]
    resource_sid: str | None
    request_method: str | None = None
    request_url: str | None = None
    response_body: str = ""
    service_sid: str | None = None

    def json(self, account_sid: str, base: str, *, full: bool = False) -> dict[str, Any]:
        created = self.at + timedelta(seconds=1)
        out: dict[str, Any] = {
            "account_sid": account_sid,
            "alert_text": urlencode(self.text_pairs),
            "api_version": "2010-04-01",
            "date_created": _iso(created),
            "date_generated": _iso(self.at),
            "date_updated": _iso(created),
            "error_code": self.error_code,
            "log_level": self.log_level,
            "more_info": f"https://www.twilio.com/docs/errors/{self.error_code}",
            "request_method": self.request_method,
            "request_url": self.request_url,
            "resource_sid": self.resource_sid,
            "service_sid": self.service_sid,
            "sid": self.sid,
            "url": f"{base}/v1/Alerts/{self.sid}",
        }
        if full:
            out["request_variables"] = urlencode([("MessageSid", self.resource_sid or ""),
                                                  ("MessageStatus", "delivered"),
                                                  ("AccountSid", account_sid)])
            out["response_body"] = self.response_body
            out["response_headers"] = "Content-Type=text%2Fhtml" if self.response_body else ""
            out["request_headers"] = urlencode([("X-Twilio-Signature", "redacted"),
                                                ("Content-Type", "application/x-www-form-urlencoded")])
        return out


@dataclass
class _Message:
    sid: str
    at: datetime
    to: str
    body: str
    status: str
    error_code: int | None = None
    error_message: str | None = None
    service_sid: str = "MG" + "5e" * 16

    def json(self, account_sid: str) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{self.sid}"
        sent = self.at + timedelta(seconds=2)
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": _rfc2822(self.at),
            "date_sent": _rfc2822(sent),
            "date_updated": _rfc2822(sent + timedelta(seconds=3)),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": FROM_NUMBER,
            "messaging_service_sid": self.service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None if self.status == "failed" else "-0.00790",
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass
class _World:
    """Messages and alerts of one account, generated per complete minute as time passes."""

    scenario: str
    account_sid: str
    started: datetime
    lock: threading.Lock = field(default_factory=threading.Lock)
    alerts: list[_Alert] = field(default_factory=list)  # oldest first
    messages: list[_Message] = field(default_factory=list)  # oldest first
    generated_until: datetime | None = None
    old_error_done: bool = False
    hostile_done: bool = False

    @property
    def incident_start(self) -> datetime:
        return self.started - timedelta(minutes=45)

    def advance(self, t: datetime) -> None:
        """Generate every complete minute up to `t` (callers hold the lock)."""
        minute = self.generated_until or (self.started - HISTORY).replace(second=0, microsecond=0)
        while minute + timedelta(minutes=1) <= t:
            self._minute(minute)
            minute += timedelta(minutes=1)
        self.generated_until = minute

    def _message(self, rng: random.Random, at: datetime, status: str, code: int | None = None) -> _Message:
        msg = _Message(sid=_sid("SM", rng), at=at, to=f"+1555{rng.randint(0, 9999999):07d}",
                       body="Reminder: your appointment is tomorrow at 10:00. Reply STOP to opt out.",
                       status=status, error_code=code)
        self.messages.append(msg)
        return msg

    def _alert(self, rng: random.Random, at: datetime, code: str, pairs: list[tuple[str, str]], *,
               resource: str | None, level: str = "error", method: str | None = None, url: str | None = None,
               response_body: str = "") -> None:
        self.alerts.append(_Alert(sid=_sid("NO", rng), at=at, error_code=code, log_level=level,
                                  text_pairs=pairs, resource_sid=resource, request_method=method,
                                  request_url=url, response_body=response_body))

    def _minute(self, minute: datetime) -> None:
        index = int(minute.timestamp()) // 60
        rng = random.Random(f"twilio:{self.scenario}:{index}")

        def at() -> datetime:
            return minute + timedelta(seconds=rng.randint(0, 59))

        for _ in range(2):
            self._message(rng, at(), "delivered")
        if index % 40 == 0:
            msg = self._message(rng, at(), "received")
            self._alert(rng, at(), "12200", [("Msg", "Content is not allowed in prolog."),
                                             ("sourceComponent", "12000"), ("ErrorCode", "12200"),
                                             ("LogLevel", "WARN"), ("url", INBOUND_URL)],
                        resource=msg.sid, level="warning", method="POST", url=INBOUND_URL)
        if not has(self.scenario, "twilio-failing"):
            if not self.old_error_done and minute >= self.started - timedelta(hours=2):
                self.old_error_done = True
                msg = self._message(rng, at(), "undelivered", 30003)
                self._alert(rng, at(), "30003", [("sourceComponent", "14100"), ("ErrorCode", "30003"),
                                                 ("LogLevel", "ERROR"),
                                                 ("Msg", "Unreachable destination handset"),
                                                 ("EmailNotification", "false")], resource=msg.sid)
            return
        if minute < self.incident_start:
            return
        for _ in range(rng.choice((1, 1, 2))):  # carrier catch-all, the bulk of the burst
            msg = self._message(rng, at(), "undelivered", 30008)
            self._alert(rng, at(), "30008", [("sourceComponent", "14100"), ("ErrorCode", "30008"),
                                             ("LogLevel", "ERROR"), ("Msg", "Unknown error"),
                                             ("EmailNotification", "false")], resource=msg.sid)
        if index % 9 == 0:
            msg = self._message(rng, at(), "delivered")
            self._alert(rng, at(), "11200", [("Msg", "Bad Gateway"), ("sourceComponent", "14100"),
                                             ("httpResponse", "502"), ("url", STATUS_CALLBACK_URL),
                                             ("ErrorCode", "11200"), ("LogLevel", "ERROR")],
                        resource=msg.sid, method="POST", url=STATUS_CALLBACK_URL,
                        response_body="<html><body><h1>502 Bad Gateway</h1></body></html>")
        if index % 15 == 3:
            msg = self._message(rng, at(), "delivered")
            self._alert(rng, at(), "11205", [("Msg", "Connection timed out after 15000 ms"),
                                             ("sourceComponent", "14100"), ("url", STATUS_CALLBACK_URL),
                                             ("ErrorCode", "11205"), ("LogLevel", "ERROR")],
                        resource=msg.sid, method="POST", url=STATUS_CALLBACK_URL)
        if index % 12 == 5:
            msg = self._message(rng, at(), "delivered")
            text = "Internal Server Error"
            if not self.hostile_done:
                self.hostile_done = True
                text = HOSTILE_MSG
            self._alert(rng, at(), "11217", [("Msg", text), ("sourceComponent", "14100"),
                                             ("httpResponse", "500"), ("url", STATUS_CALLBACK_URL),
                                             ("ErrorCode", "11217"), ("LogLevel", "ERROR")],
                        resource=msg.sid, method="POST", url=STATUS_CALLBACK_URL,
                        response_body='{"error":"internal"}')
        if index % 10 == 7:
            msg = self._message(rng, at(), "failed", 21610)
            msg.error_message = "Attempt to send to unsubscribed recipient"
            api_url = f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Messages.json"
            self._alert(rng, at(), "21610", [("Msg", "Attempt to send to unsubscribed recipient"),
                                             ("sourceComponent", "12000"), ("ErrorCode", "21610"),
                                             ("LogLevel", "ERROR"), ("To", msg.to)],
                        resource=msg.sid, method="POST", url=api_url)


def _parse_date(value: str, *, end: bool) -> datetime | None:
    """Twilio accepts `YYYY-MM-DD` or `YYYY-MM-DDThh:mm:ssZ` (GMT)."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        if fmt == "%Y-%m-%d" and end:
            dt += timedelta(days=1) - timedelta(microseconds=1)
        return dt
    return None


def _page_size(req: Request) -> int | Response:
    raw = req.q("PageSize")
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        return _error(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
    return int(raw)


def _start_index(req: Request, sids: list[str], size: int) -> tuple[int, int] | Response:
    """(index of the first row, page number) from PageToken (preferred) or Page."""
    raw_page = req.q("Page") or "0"
    if not raw_page.isdigit():
        return _error(400, 20001, "Page must be a non-negative integer")
    page = int(raw_page)
    token = req.q("PageToken")
    if token:
        last = token[2:] if token.startswith("PA") else ""
        try:
            return sids.index(last) + 1, page
        except ValueError:
            return _error(400, 20001, "Invalid PageToken")
    return page * size, page


def build(faults: FaultPlan, scenario: str, secrets: DemoSecrets) -> Simulator:
    """The Twilio simulator (not started): Monitor `/v1/Alerts` and 2010 `/Accounts/{AC}/Messages`."""
    account = secrets.twilio_account_sid
    world = _World(scenario=scenario, account_sid=account, started=now())
    with world.lock:
        world.advance(world.started)

    def unauthorized() -> Response:
        return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    class _TwilioSimulator(Simulator):
        def not_found(self, req: Request) -> Response:
            return _error(404, 20404, f"The requested resource {req.path} was not found")

    sim = _TwilioSimulator("twilio", faults, auth=basic(account, lambda: secrets.twilio_auth_token,
                                                         unauthorized=unauthorized))

    def base(req: Request) -> str:
        host = req.headers.get("host")
        return f"http://{host}" if host else sim.base_url

    @sim.route("GET", "/v1/Alerts")
    def list_alerts(req: Request, m: Any) -> Response:
        size = _page_size(req)
        if isinstance(size, Response):
            return size
        level = req.q("LogLevel")
        start = end = None
        for name in ("StartDate", "EndDate"):
            raw = req.q(name)
            if raw:
                parsed = _parse_date(raw, end=name == "EndDate")
                if parsed is None:
                    return _error(400, 20001, f"Invalid {name}: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ")
                if name == "StartDate":
                    start = parsed
                else:
                    end = parsed
        with world.lock:
            world.advance(now())
            rows = sorted(world.alerts, key=lambda a: (a.at, a.sid), reverse=True)
        if level:
            rows = [a for a in rows if a.log_level == level]
        if start is not None:
            rows = [a for a in rows if a.at + timedelta(seconds=1) >= start]
        if end is not None:
            rows = [a for a in rows if a.at + timedelta(seconds=1) <= end]
        pos = _start_index(req, [a.sid for a in rows], size)
        if isinstance(pos, Response):
            return pos
        first, page = pos
        chunk = rows[first:first + size]
        root = base(req)
        params = [(k, v) for k in ("LogLevel", "StartDate", "EndDate") if (v := req.q(k))]

        def url(page_no: int, token: str | None) -> str:
            query = [*params, ("PageSize", str(size)), ("Page", str(page_no))]
            if token:
                query.append(("PageToken", token))
            return f"{root}/v1/Alerts?{urlencode(query)}"

        has_next = first + size < len(rows) and bool(chunk)
        meta = {
            "first_page_url": url(0, None),
            "key": "alerts",
            "next_page_url": url(page + 1, "PA" + chunk[-1].sid) if has_next else None,
            "page": page,
            "page_size": size,
            "previous_page_url": url(page - 1, None) if page > 0 else None,
            "url": url(page, req.q("PageToken")),
        }
        return Response(200, {"alerts": [a.json(account, root) for a in chunk], "meta": meta})

    @sim.route("GET", "/v1/Alerts/(?P<sid>[^/]+)")
    def fetch_alert(req: Request, m: Any) -> Response:
        with world.lock:
            world.advance(now())
            found = next((a for a in world.alerts if a.sid == m.group("sid")), None)
        if found is None:
            return _error(404, 20404, f"The requested resource /v1/Alerts/{m.group('sid')} was not found")
        return Response(200, found.json(account, base(req), full=True))

    def _account_ok(req: Request, m: Any) -> Response | None:
        if m.group("ac") != account:
            return _error(404, 20404, f"The requested resource {req.path} was not found")
        return None

    @sim.route("GET", r"/2010-04-01/Accounts/(?P<ac>[^/]+)/Messages\.json")
    def list_messages(req: Request, m: Any) -> Response:
        denied = _account_ok(req, m)
        if denied is not None:
            return denied
        size = _page_size(req)
        if isinstance(size, Response):
            return size
        with world.lock:
            world.advance(now())
            rows = sorted(world.messages, key=lambda x: (x.at, x.sid), reverse=True)
        to, sender = req.q("To"), req.q("From")
        if to:
            rows = [x for x in rows if x.to == to]
        if sender and sender != FROM_NUMBER:
            rows = []
        for key, keep in (("DateSent", "day"), ("DateSent<", "before"), ("DateSent>", "after")):
            raw = req.q(key)
            if not raw:
                continue
            lo, hi = _parse_date(raw, end=False), _parse_date(raw, end=True)
            if lo is None or hi is None:
                return _error(400, 20001, f"Invalid {key}")
            sent = [(x, x.at + timedelta(seconds=2)) for x in rows]
            if keep == "day":
                rows = [x for x, s in sent if lo <= s <= hi]
            elif keep == "before":
                rows = [x for x, s in sent if s <= hi]
            else:
                rows = [x for x, s in sent if s >= lo]
        pos = _start_index(req, [x.sid for x in rows], size)
        if isinstance(pos, Response):
            return pos
        first, page = pos
        chunk = rows[first:first + size]
        path = f"/2010-04-01/Accounts/{account}/Messages.json"
        params = [(k, v) for k in ("To", "From", "DateSent", "DateSent<", "DateSent>") if (v := req.q(k))]

        def uri(page_no: int, token: str | None) -> str:
            query = [*params, ("PageSize", str(size)), ("Page", str(page_no))]
            if token:
                query.append(("PageToken", token))
            return f"{path}?{urlencode(query)}"

        has_next = first + size < len(rows) and bool(chunk)
        return Response(200, {
            "end": first + len(chunk) - 1 if chunk else first,
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(page + 1, "PA" + chunk[-1].sid) if has_next else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1, None) if page > 0 else None,
            "messages": [x.json(account) for x in chunk],
            "start": first,
            "uri": uri(page, req.q("PageToken")),
        })

    @sim.route("GET", r"/2010-04-01/Accounts/(?P<ac>[^/]+)/Messages/(?P<sid>[^/]+)\.json")
    def fetch_message(req: Request, m: Any) -> Response:
        denied = _account_ok(req, m)
        if denied is not None:
            return denied
        with world.lock:
            world.advance(now())
            found = next((x for x in world.messages if x.sid == m.group("sid")), None)
        if found is None:
            return _error(404, 20404, f"The requested resource {req.path} was not found")
        return Response(200, found.json(account))

    return sim
