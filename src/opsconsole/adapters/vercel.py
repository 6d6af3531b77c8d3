"""Vercel: which deployment serves production, and did the newest one fail?

Runbook steps "Check Vercel Dashboard", "Redeploy latest commit" and "Promote the previous
working deployment" all start from the same picture: the current production deployment, the
newest production attempt and the recent history. The token is resolved on every request so a
rotated secret is picked up, and it never leaves the Authorization header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from opsconsole.adapters.http import HttpOutcome, describe_status, fetch, new_client
from opsconsole.adapters.statuspage import StatusPageCheck
from opsconsole.domain.deploys import BuildEvent, Deployment, PromotionJob
from opsconsole.domain.models import CheckResult, Status, utcnow
from opsconsole.domain.ports import Check
from opsconsole.domain.text import printable
from opsconsole.settings import SecretError, Settings, VercelSettings

SERVICE = "Vercel"
DEPLOYMENTS_PATH = "/v6/deployments"  # /v7 has the same query and shape (apis.md §1)
PROJECT_PATH = "/v9/projects/{project}"
CREATE_PATH = "/v13/deployments"
DEPLOYMENT_PATH = "/v13/deployments/{ident}"
EVENTS_PATH = "/v3/deployments/{ident}/events"
PROMOTE_PATH = "/v10/projects/{project}/promote/{deployment}"
RUNTIME_LOGS_PATH = "/v1/projects/{project}/deployments/{deployment}/runtime-logs"
STREAM_ACCEPT = "application/stream+json"
MAX_ERROR_BODY = 64 * 1024  # what is read of a refused stream's body (its error message)
PAGE_MAX = 100  # Vercel's maximum `limit`
RECENT = 10  # deployments listed in the check details
STUCK_BUILD_S = 15 * 60  # a production build older than this is worth a warning

_GIT_PREFIXES = ("github", "gitlab", "bitbucket")


class VercelError(Exception):
    """A Vercel call failed in an expected way; the message is safe to show (no secrets)."""

    def __init__(self, message: str, status: Status = Status.FAIL) -> None:
        super().__init__(message)
        self.status = status


def _txt(value: Any, limit: int = 120) -> str:
    return printable(str(value), single_line=True, limit=limit) if value not in (None, "") else ""


def _git(meta: Mapping[str, Any], field: str) -> str:
    for prefix in _GIT_PREFIXES:
        value = meta.get(f"{prefix}Commit{field}")
        if isinstance(value, str) and value:
            return value
    return ""


def _when(raw: Mapping[str, Any], keys: tuple[str, ...] = ("createdAt", "created")) -> datetime | None:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
    return None


def parse_deployment(raw: Any) -> Deployment | None:
    """A Deployment from a list item (`uid`), a v13 answer or `targets.production` (`id`)."""
    if not isinstance(raw, Mapping):
        return None
    ident = raw.get("uid") or raw.get("id")
    created = _when(raw)
    if not isinstance(ident, str) or not ident or created is None:
        return None
    meta = raw.get("meta") if isinstance(raw.get("meta"), Mapping) else {}
    assert isinstance(meta, Mapping)
    creator = raw.get("creator") if isinstance(raw.get("creator"), Mapping) else {}
    assert isinstance(creator, Mapping)
    message = _git(meta, "Message").strip().splitlines()
    rollback = raw.get("isRollbackCandidate")
    substate = raw.get("readySubstate")
    return Deployment(
        id=_txt(ident, 60),
        project_name=_txt(raw.get("name"), 100),
        url=_txt(raw.get("url"), 200) or None,
        state=_txt(raw.get("readyState") or raw.get("state") or "UNKNOWN", 20).upper(),
        target=_txt(raw.get("target"), 30) or None,
        created_at=created,
        sha=_txt(_git(meta, "Sha"), 64),
        message=printable(message[0], single_line=True, limit=120) if message else "",
        ref=_txt(_git(meta, "Ref"), 100),
        creator=_txt(creator.get("username") or creator.get("githubLogin") or creator.get("email")
                     or creator.get("uid"), 60),
        ready_substate=_txt(substate, 20) or None,
        error_code=_txt(raw.get("errorCode"), 60),
        error_message=_txt(raw.get("errorMessage"), 200),
        inspector_url=_txt(raw.get("inspectorUrl"), 300) or None,
        rollback_candidate=rollback if isinstance(rollback, bool) else None,
        building_at=_when(raw, ("buildingAt",)),
        ready_at=_when(raw, ("ready", "readyAt", "buildErrorAt", "canceledAt")),
    )


def ago(seconds: float) -> str:
    """Compact age for an 80-column summary: '40 s', '12 min', '3 h', '2 d'."""
    s = int(seconds)
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def _label(dep: Deployment) -> str:
    """'a1b2c3d "Fix pool size" (main)' — or the id when the deployment has no git metadata."""
    parts = [dep.short_sha or dep.id]
    if dep.message:
        parts.append(f'"{printable(dep.message, single_line=True, limit=50)}"')
    if dep.ref:
        parts.append(f"({printable(dep.ref, limit=30)})")
    return " ".join(parts)


def _q(value: str) -> str:
    return quote(value, safe="")


def _retry_after_s(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def parse_event(raw: Any) -> BuildEvent | None:
    """A build event in either shape the spec allows (fields at the top or under `payload`)."""
    if not isinstance(raw, Mapping):
        return None
    payload = raw.get("payload") if isinstance(raw.get("payload"), Mapping) else raw
    assert isinstance(payload, Mapping)
    kind = raw.get("type")
    text = payload.get("text")
    if not isinstance(kind, str):
        return None
    created = _when(raw, ("created", "date")) or _when(payload, ("created", "date"))
    info = payload.get("info") if isinstance(payload.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    if not isinstance(text, str) or not text:
        state = info.get("readyState")
        text = f"deployment state {state}" if isinstance(state, str) else ""
    level = raw.get("level") if isinstance(raw.get("level"), str) else ""
    return BuildEvent(type=_txt(kind, 30), text=printable(text, single_line=True, limit=400),
                      created_at=created, level=str(level))


def parse_job(raw: Any) -> PromotionJob | None:
    if not isinstance(raw, Mapping):
        return None
    to_id, from_id, status = raw.get("toDeploymentId"), raw.get("fromDeploymentId"), raw.get("jobStatus")
    if not isinstance(to_id, str) or not isinstance(status, str):
        return None
    return PromotionJob(from_id=_txt(from_id, 60), to_id=_txt(to_id, 60), status=_txt(status, 20),
                        requested_at=_when(raw, ("requestedAt",)), type=_txt(raw.get("type") or "promote", 20))


@dataclass(frozen=True, slots=True)
class StreamRefused:
    """A runtime-logs stream that could not be opened: why, and how long to wait before retrying."""

    problem: str
    status_code: int | None = None
    kind: str = "http"  # http | network | timeout | token
    retry_after_s: float | None = None


class VercelAdapter:
    """Vercel REST API for one project; one shared client (also used for the status page)."""

    system = "vercel"

    def __init__(self, settings: Settings) -> None:
        if settings.vercel is None:
            raise ValueError("[vercel] is not configured")
        self.settings: VercelSettings = settings.vercel
        self.timeout_s = settings.checks.timeout_s
        self.base_url = self.settings.api_url.rstrip("/")
        self._client = new_client(timeout_s=self.timeout_s)
        self._checks: list[Check] = [
            VercelDeploymentCheck(self),
            StatusPageCheck("vercel.status_page", "vercel", "Vercel status page", self.settings.status_url,
                            self._client, self.timeout_s),
        ]

    def checks(self) -> list[Check]:
        return list(self._checks)

    @property
    def project_id(self) -> str:
        return self.settings.project_id

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- plumbing ------------------------------------------------------------------------
    def token_problem(self, exc: SecretError) -> str:
        hint = self.settings.token.hint
        return f"Vercel token unavailable: {exc}" + ("" if hint in str(exc) else f" — check {hint}")

    def _params(self, **extra: Any) -> dict[str, Any]:
        params: dict[str, Any] = {k: v for k, v in extra.items() if v is not None}
        if self.settings.team_id:
            params["teamId"] = self.settings.team_id
        return params

    async def get(self, path: str, **params: Any) -> HttpOutcome:
        """GET a Vercel path with team scope and the Bearer token. Raises SecretError only."""
        headers = {"Authorization": f"Bearer {self.settings.token.reveal()}"}
        return await fetch(self._client, self.base_url + path, service=SERVICE,
                           credential=self.settings.token.hint, params=self._params(**params),
                           headers=headers, timeout_s=self.timeout_s)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token.reveal()}"}

    async def post(self, path: str, body: Any, *, expect: str = "json", **params: Any) -> HttpOutcome:
        """POST with team scope; never retried (a retry could start a second build or promotion)."""
        return await fetch(self._client, self.base_url + path, service=SERVICE, method="POST",
                           credential=self.settings.token.hint, params=self._params(**params),
                           headers=self._auth(), json_body=body, timeout_s=self.timeout_s, expect=expect,
                           retries=0)

    @property
    def project_path(self) -> str:
        return PROJECT_PATH.format(project=_q(self.settings.project_id))

    async def get_deployment(self, ident: str) -> tuple[Deployment | None, HttpOutcome]:
        """`GET /v13/deployments/{id}`: one deployment, with its build times. Raises SecretError only."""
        outcome = await self.get(DEPLOYMENT_PATH.format(ident=_q(ident)))
        if outcome.problem is not None:
            return None, outcome
        dep = parse_deployment(outcome.data)
        if dep is None:
            return None, replace(outcome, kind="bad_shape",
                                 problem="Vercel answered without a deployment id and creation time")
        return dep, outcome

    async def redeploy(self, source: Deployment, *, reason: str = "opsconsole redeploy",
                       ) -> tuple[Deployment | None, HttpOutcome]:
        """`POST /v13/deployments` with `deploymentId`: a new build of `source`'s commit and settings,
        for production. Returns the new deployment (QUEUED or BUILDING). Raises SecretError only."""
        body = {"name": source.project_name or self.settings.project_id, "project": self.settings.project_id,
                "deploymentId": source.id, "target": "production", "withLatestCommit": False,
                "meta": {"opsconsoleReason": reason[:200], "redeployOf": source.id}}
        outcome = await self.post(CREATE_PATH, body)
        if outcome.problem is not None:
            return None, outcome
        dep = parse_deployment(outcome.data)
        if dep is None:
            return None, replace(outcome, kind="bad_shape", problem="Vercel accepted the redeploy but answered "
                                 "without the new deployment's id: check the Deploy tab before retrying")
        return dep, outcome

    async def build_events(self, ident: str, limit: int = 200) -> tuple[list[BuildEvent], HttpOutcome]:
        """The newest `limit` build events of a deployment, oldest first. Raises SecretError only."""
        outcome = await self.get(EVENTS_PATH.format(ident=_q(ident)), direction="backward", limit=limit)
        if outcome.problem is not None:
            return [], outcome
        raw = outcome.data if isinstance(outcome.data, list) else []
        events = [e for e in (parse_event(r) for r in raw) if e is not None]
        events.sort(key=lambda e: e.created_at or datetime.min.replace(tzinfo=UTC))
        return events, outcome

    async def promote(self, deployment_id: str) -> HttpOutcome:
        """`POST /v10/projects/{id}/promote/{deployment}`: 201 or 202 when accepted (no body).
        Raises SecretError only."""
        path = PROMOTE_PATH.format(project=_q(self.settings.project_id), deployment=_q(deployment_id))
        outcome = await self.post(path, {}, expect="text")  # success has no body
        if outcome.kind == "http" and outcome.status_code is not None and outcome.text:
            data: Any = None
            with contextlib.suppress(ValueError):
                data = json.loads(outcome.text)
            if data is not None:  # the error body is JSON: say Vercel's own words
                outcome = replace(outcome, data=data, problem=describe_status(
                    SERVICE, outcome.status_code, credential=self.settings.token.hint, data=data,
                    retry_after=outcome.retry_after_s, url=outcome.url))
        return outcome

    async def rollback_info(self) -> tuple[PromotionJob | None, Deployment | None, HttpOutcome]:
        """The last promotion job and the deployment serving production now. Raises SecretError only."""
        outcome = await self.get(self.project_path, rollbackInfo="true")
        if outcome.problem is not None:
            return None, None, outcome
        data = outcome.data if isinstance(outcome.data, dict) else {}
        targets = data.get("targets") if isinstance(data.get("targets"), dict) else {}
        assert isinstance(targets, dict)
        return parse_job(data.get("lastAliasRequest")), parse_deployment(targets.get("production")), outcome

    @contextlib.asynccontextmanager
    async def runtime_logs(self, deployment_id: str, *, stall_s: float = 30.0,
                           ) -> AsyncIterator[StreamRefused | AsyncIterator[bytes]]:
        """The runtime-logs stream of a deployment (`Accept: application/stream+json`, NDJSON).

        Yields either why it could not be opened, or the raw byte chunks; a read that waits longer
        than `stall_s` raises httpx.ReadTimeout, an interrupted body httpx.RemoteProtocolError or
        ReadError (the follower turns them into "stalled" / "cut"). Raises SecretError only."""
        path = RUNTIME_LOGS_PATH.format(project=_q(self.settings.project_id), deployment=_q(deployment_id))
        url = self.base_url + path
        headers = {**self._auth(), "Accept": STREAM_ACCEPT}
        timeout = httpx.Timeout(self.timeout_s, read=stall_s)
        try:
            cm = self._client.stream("GET", url, params=self._params(), headers=headers, timeout=timeout)
            resp = await cm.__aenter__()
        except httpx.TimeoutException:
            yield StreamRefused(f"Vercel did not answer within {self.timeout_s:g} s", kind="timeout")
            return
        except httpx.HTTPError as exc:
            host = urlsplit(url).netloc
            why = printable(str(exc) or type(exc).__name__, single_line=True, limit=120)
            yield StreamRefused(f"cannot reach Vercel at {host}: {why}", kind="network")
            return
        try:
            if not 200 <= resp.status_code < 300:
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ERROR_BODY:
                        break
                data: Any = None
                with contextlib.suppress(ValueError):
                    data = json.loads(body.decode("utf-8", errors="replace"))
                retry = _retry_after_s(resp.headers.get("retry-after"))
                yield StreamRefused(describe_status(SERVICE, resp.status_code, credential=self.settings.token.hint,
                                                    data=data, retry_after=retry, url=url),
                                    status_code=resp.status_code, retry_after_s=retry)
                return
            yield resp.aiter_bytes()
        finally:
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                await cm.__aexit__(None, None, None)

    async def _page(self, *, limit: int, target: str | None, until: int | None,
                    ) -> tuple[list[Deployment], int | None, HttpOutcome]:
        outcome = await self.get(DEPLOYMENTS_PATH, projectId=self.settings.project_id, limit=limit,
                                 target=target, until=until)
        if outcome.problem is not None:
            return [], None, outcome
        data = outcome.data
        items = data.get("deployments") if isinstance(data, dict) else None
        if not isinstance(items, list):
            bad = replace(outcome, kind="bad_shape",
                          problem="Vercel answered without a deployments list — check [vercel] api_url")
            return [], None, bad
        pagination = data.get("pagination") if isinstance(data, dict) else None
        nxt = pagination.get("next") if isinstance(pagination, dict) else None
        deployments = [d for d in (parse_deployment(i) for i in items) if d is not None]
        until = int(nxt) if isinstance(nxt, int | float) and not isinstance(nxt, bool) else None
        return deployments, until, outcome

    async def fetch_deployments(self, limit: int, *, target: str | None = None,
                                page_size: int = PAGE_MAX) -> tuple[list[Deployment], HttpOutcome]:
        """Newest first, following `pagination.next` (sent back as `until`) up to `limit`.

        Failures come back as the failing outcome (empty list); raises SecretError only.
        """
        found: list[Deployment] = []
        until: int | None = None
        limit = max(1, limit)
        page_size = max(1, min(page_size, PAGE_MAX))
        while True:
            page, nxt, outcome = await self._page(limit=min(page_size, limit - len(found)), target=target,
                                                  until=until)
            if outcome.problem is not None:
                return [], outcome
            found.extend(page)
            if not page or nxt is None or len(found) >= limit or (until is not None and nxt >= until):
                return found[:limit], outcome
            until = nxt

    async def list_deployments(self, limit: int = 20, *, target: str | None = None,
                               page_size: int = PAGE_MAX) -> list[Deployment]:
        """The project's newest deployments (all targets unless `target`). Raises VercelError."""
        try:
            found, outcome = await self.fetch_deployments(limit, target=target, page_size=page_size)
        except SecretError as exc:
            raise VercelError(self.token_problem(exc)) from None
        if outcome.problem is not None:
            raise VercelError(outcome.problem, outcome.status)
        return found

    async def current_production(self) -> tuple[dict[str, Any] | None, HttpOutcome]:
        """`targets.production` of the project: the deployment serving production now."""
        outcome = await self.get(PROJECT_PATH.format(project=quote(self.settings.project_id, safe="")))
        if outcome.problem is not None:
            return None, outcome
        data = outcome.data
        targets = data.get("targets") if isinstance(data, dict) else None
        prod = targets.get("production") if isinstance(targets, dict) else None
        return (prod if isinstance(prod, dict) else None), outcome


class VercelDeploymentCheck:
    """`vercel.deployment`: the current production deployment and the newest production attempt."""

    id = "vercel.deployment"
    system = "vercel"
    title = "Vercel production deployment"

    def __init__(self, adapter: VercelAdapter) -> None:
        self.adapter = adapter

    def _result(self, status: Status, summary: str, latency_ms: float | None,
                details: Mapping[str, Any]) -> CheckResult:
        return CheckResult(id=self.id, system=self.system, title=self.title, status=status, summary=summary,
                           latency_ms=latency_ms,
                           details={"project_id": self.adapter.settings.project_id, **details})

    async def run(self) -> CheckResult:
        try:
            self.adapter.settings.token.reveal()  # fail once, before three calls would each fail
            (job, prod, project_out), (prods, prods_out), (recent, recent_out) = await asyncio.gather(
                self.adapter.rollback_info(),
                self.adapter.fetch_deployments(5, target="production"),
                self.adapter.fetch_deployments(RECENT),
            )
        except SecretError as exc:
            return self._result(Status.FAIL, self.adapter.token_problem(exc), None,
                                {"credential": self.adapter.settings.token.hint})
        outcomes = (project_out, prods_out, recent_out)
        latency = max(o.latency_ms for o in outcomes)
        for outcome in outcomes:
            if outcome.problem is not None:
                return self._result(outcome.status, outcome.problem, latency,
                                    {"http_status": outcome.status_code, "error": outcome.kind})
        return self._assess(prod, prods, recent, latency, job)

    def _assess(self, current: Deployment | None, prods: list[Deployment], recent: list[Deployment],
                latency: float, job: PromotionJob | None = None) -> CheckResult:
        known = {d.id: d for d in (*recent, *prods)}
        if current is not None:
            current = known.get(current.id, current)
        elif prods:  # no targets.production in the answer: best guess is the newest READY one
            current = next((d for d in prods if d.state == "READY"), None)
        newest = prods[0] if prods else current
        current_id = current.id if current else None
        details: dict[str, Any] = {
            "current_id": current_id,
            "current": current.to_dict() if current else None,
            "newest_production": newest.to_dict() if newest else None,
            "deployments": [d.to_dict(current_id=current_id) for d in recent],
        }
        now = utcnow()
        if current is None or current.state != "READY":
            what = "no READY production deployment" if current is None else \
                f"production deployment {_label(current)} is {current.state}"
            extra = f"; newest is {newest.state} {_label(newest)}, {ago(newest.age_s(now))} ago" \
                if newest is not None and newest is not current else ""
            return self._result(Status.FAIL, what + extra, latency, details)
        serving = f"serving {_label(current)}, {ago(current.age_s(now))} old"
        assert newest is not None
        if newest.id == current.id:
            return self._result(Status.OK, f"READY {_label(current)} · {ago(current.age_s(now))} ago",
                                latency, details)
        age = ago(newest.age_s(now))
        if (job is not None and job.status == "succeeded" and job.to_id == current.id
                and job.requested_at is not None and job.requested_at > newest.created_at
                and (newest.failed or newest.state == "READY")):
            # Someone promoted (rolled back to) what serves, after the newest build: a decision, not a fault.
            details["promoted_at"] = job.requested_at.isoformat()
            summary = (f"{serving}; promoted {ago((now - job.requested_at).total_seconds())} ago, after the newest "
                       f"production deployment {_label(newest)} ({newest.state}, {age} ago)")
            return self._result(Status.OK, summary, latency, details)
        if newest.failed:
            error = newest.error_message or newest.error_code
            why = f" — {error}" if error else ""
            summary = (f"newest production deployment {newest.state} {age} ago: {_label(newest)}{why}; "
                       f"still serving {current.short_sha or current.id} ({ago(current.age_s(now))} old)")
            return self._result(Status.FAIL, summary, latency, details)
        if newest.in_progress:
            stuck = newest.age_s(now) > STUCK_BUILD_S
            summary = f"{serving}; newer {_label(newest)} {newest.state} for {age}"
            return self._result(Status.WARN if stuck else Status.OK, summary, latency, details)
        if newest.state == "READY":
            summary = (f"{serving}, but newer READY {_label(newest)} is not promoted "
                       "(rolled back, or auto-promotion off?)")
            return self._result(Status.WARN, summary, latency, details)
        return self._result(Status.WARN, f"{serving}; newest production deployment is {newest.state}",
                            latency, details)
