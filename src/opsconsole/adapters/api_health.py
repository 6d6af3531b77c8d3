"""The API's own /health endpoint: runbook step "Check Status: visit /health".

Reports the HTTP status, the latency and, when the body is a JSON health document, the
statuses of the components it lists (database, queue, third parties), because "HTTP 500"
alone does not tell the on-call engineer that the connection pool is exhausted.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx

from opsconsole.adapters.http import HttpOutcome, fetch, new_client
from opsconsole.domain.models import CheckResult, Status
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import ApiSettings, Settings

SLOW_MS = 2000.0  # above this a healthy answer is still a warning
SERVICE = "API"

# Words health endpoints use (ours, Spring Boot actuator, IETF health+json, k8s style).
_GOOD = frozenset({"ok", "up", "pass", "passed", "healthy", "operational", "green", "true", "available"})
_BAD = frozenset({"fail", "failed", "failing", "down", "error", "critical", "unhealthy", "red", "false",
                  "unavailable", "major_outage", "out_of_service"})


def classify(word: str) -> Status:
    """OK / FAIL for the well-known words; anything else (degraded, warn, slow...) is WARN."""
    low = word.strip().lower()
    if low in _GOOD:
        return Status.OK
    if low in _BAD:
        return Status.FAIL
    return Status.WARN


def _status_word(value: Any) -> str | None:
    if isinstance(value, bool):
        return "ok" if value else "down"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _status_word(value.get("status", value.get("healthy")))
    if isinstance(value, list) and value:  # IETF draft: "name": [{"status": "pass"}, ...]
        words = [w for w in (_status_word(v) for v in value) if w is not None]
        return max(words, key=lambda w: classify(w).severity) if words else None
    return None


def components_of(body: Any) -> dict[str, str]:
    """{name: status word} from `checks`, `components`, `details` or `services`; printable."""
    if not isinstance(body, dict):
        return {}
    for key in ("checks", "components", "details", "services", "dependencies"):
        block = body.get(key)
        if isinstance(block, dict) and block:
            out: dict[str, str] = {}
            for name, value in block.items():
                word = _status_word(value)
                if word is not None:
                    out[printable(str(name), single_line=True, limit=40)] = printable(
                        word, single_line=True, limit=30)
            if out:
                return out
    return {}


def _parse_body(outcome: HttpOutcome) -> tuple[Any, str | None]:
    """(parsed JSON or None, problem). Plain text ("OK") is fine; broken JSON and HTML are not."""
    text = outcome.text.strip()
    ctype = outcome.headers.get("content-type", "").lower()
    if "html" in ctype or text[:15].lower().startswith(("<!doctype", "<html")):
        return None, "an HTML page, not a health response (proxy, login page or SPA fallback route?)"
    looks_json = "json" in ctype or text.startswith(("{", "["))
    if not looks_json:
        return None, None
    try:
        return json.loads(text), None
    except ValueError as exc:
        why = printable(str(exc), single_line=True, limit=60)
        return None, f"invalid JSON ({len(outcome.text)} chars: {why})"


class ApiHealthCheck:
    """`api.health`: GET [api] health_url, no auth."""

    id = "api.health"
    system = "api"
    title = "API /health"

    def __init__(self, api: ApiSettings, client: httpx.AsyncClient, timeout_s: float) -> None:
        self.url = api.health_url
        self._client = client
        self.timeout_s = timeout_s

    def _result(self, status: Status, summary: str, latency_ms: float | None,
                details: dict[str, Any]) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status, summary=summary,
                           latency_ms=latency_ms, details={"url": self.url, **details})

    async def run(self) -> CheckResult:
        outcome = await fetch(self._client, self.url, service=SERVICE, timeout_s=self.timeout_s,
                              expect="text")
        code = outcome.status_code
        if outcome.kind != "http" and outcome.problem is not None:  # timeout, refused, too large...
            return self._result(Status.FAIL, outcome.problem, outcome.latency_ms,
                                {"http_status": code, "error": outcome.kind})
        assert code is not None
        head = f"HTTP {code} in {outcome.latency_ms:.0f} ms"
        body, body_problem = _parse_body(outcome)
        components = components_of(body)
        details: dict[str, Any] = {"http_status": code, "components": components}
        if isinstance(body, dict):
            for key in ("status", "version"):
                if isinstance(body.get(key), str | int | float):
                    details[key] = printable(str(body[key]), single_line=True, limit=60)
        bad = {n: s for n, s in components.items() if classify(s) is not Status.OK}
        worst_first = sorted(bad.items(), key=lambda kv: -classify(kv[1]).severity)
        bad_txt = ", ".join(f"{n}: {s}" for n, s in worst_first)

        if not 200 <= code < 300:
            status = Status.WARN if code == 429 else Status.FAIL
            why = bad_txt or _http_hint(code, outcome, body, body_problem)
            return self._result(status, f"{head} — {why}" if why else head, outcome.latency_ms, details)
        if body_problem is not None:
            return self._result(Status.FAIL, f"{head} but the body is {body_problem}", outcome.latency_ms,
                                details)
        overall = details.get("status")
        notes: list[str] = []
        status = Status.OK
        if isinstance(overall, str) and classify(overall) is Status.FAIL:
            status = Status.FAIL
            notes.append(f"reports status {overall!r}")
        if bad:
            status = Status.FAIL if status is Status.FAIL else Status.WARN
            notes.append(bad_txt)
        if outcome.latency_ms > SLOW_MS:
            status = Status.FAIL if status is Status.FAIL else Status.WARN
            notes.append(f"slow (over {SLOW_MS / 1000:g} s)")
        summary = f"{head} — {'; '.join(notes)}" if notes else head
        return self._result(status, summary, outcome.latency_ms, details)


def _http_hint(code: int, outcome: HttpOutcome, body: Any, body_problem: str | None) -> str:
    """What an operator should make of a non-2xx answer without component statuses."""
    if code == 429:
        wait = outcome.retry_after_s
        return "rate limited" + (f", retry after {wait:.0f} s" if wait is not None else "")
    if code in (401, 403):
        return "the endpoint asks for credentials (deployment protection or a proxy in front?)"
    if code == 404:
        path = printable(urlsplit(outcome.url).path or "/", limit=60)
        return f"{path} not found — check [api] health_url"
    if body_problem is not None and body_problem.startswith("an HTML page"):
        return "an HTML error page (proxy, load balancer or platform error page?)"
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return printable(value, single_line=True, limit=100)
    text = outcome.text.strip()
    if text and not text.startswith(("<", "{", "[")) and len(text) < 200:
        return printable(text, single_line=True, limit=100)
    return "server error" if code >= 500 else ""


class ApiAdapter:
    """The API itself: one client, one check."""

    system = "api"

    def __init__(self, settings: Settings) -> None:
        if settings.api is None:
            raise ValueError("[api] is not configured")
        self.settings = settings.api
        self.timeout_s = min(settings.checks.timeout_s, settings.api.timeout_s)
        self._client = new_client(timeout_s=self.timeout_s)
        self._check = ApiHealthCheck(settings.api, self._client, self.timeout_s)

    def checks(self) -> list[Check]:
        return [self._check]

    async def aclose(self) -> None:
        await self._client.aclose()
