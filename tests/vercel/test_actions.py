"""vercel.redeploy and vercel.promote through the kernel and the real adapter, against the Vercel and API
simulators sharing one world: preview -> confirmation -> progress -> final state -> journal, the undo,
every refusal, every error status (FaultPlan), and a POST that is never retried."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.model import Confirmation, Outcome, OutcomeStatus, Preview, Refusal, RefusalReason
from opsconsole.actions.vercel import DeployHooks, DeployProgress, last_promotion
from opsconsole.adapters.api_health import ApiAdapter
from opsconsole.adapters.vercel import VercelAdapter
from opsconsole.audit import Journal, Operator
from opsconsole.bootstrap import build_services
from opsconsole.demo.sim import Fault
from opsconsole.domain.models import Status, utcnow
from opsconsole.settings import Settings
from tests.vercel.conftest import SECRETS, VercelEnv

YES = {"vercel.redeploy": Confirmation(key="y", start_key="R", elapsed_s=1.0),
       "vercel.promote": Confirmation(key="y", start_key="P", elapsed_s=1.0)}


@asynccontextmanager
async def kernel_for(settings: Settings, *, clock: Any = None) -> AsyncIterator[ActionKernel]:
    """The kernel as bootstrap builds it (journal, the adapter shared with the checks); fast polls."""
    services = build_services(settings)
    kernel = services.kernel
    assert kernel is not None
    if clock is not None:
        kernel.clock = clock
    for action_id in ("vercel.redeploy", "vercel.promote"):
        kernel.get(action_id).poll_s = 0.1  # type: ignore[attr-defined]
    try:
        yield kernel
    finally:
        await services.aclose()


async def run(kernel: ActionKernel, action_id: str, params: dict[str, Any] | None = None,
              ) -> tuple[Preview, Outcome | Refusal, list[DeployProgress]]:
    preview = await kernel.prepare(action_id, params or {})
    assert isinstance(preview, Preview), preview
    seen: list[DeployProgress] = []
    kernel.get(action_id).hooks[preview.preview_id] = DeployHooks(progress=seen.append)  # type: ignore[attr-defined]
    return preview, await kernel.run(preview, YES[action_id]), seen


def journal(env: VercelEnv) -> list[dict[str, Any]]:
    return [json.loads(line) for line in env.audit.read_text().splitlines()]


async def api_health(settings: Settings) -> Status:
    adapter = ApiAdapter(settings)
    try:
        return (await adapter.checks()[0].run()).status
    finally:
        await adapter.aclose()


@pytest.mark.scenario("bad-deploy")
async def test_promote_end_to_end_then_undo(vercel_env: VercelEnv) -> None:
    env = vercel_env
    settings = env.settings()
    bad = env.state.production
    assert bad is not None
    previous = next(d for d in env.state.deployments if d["target"] == "production" and d["readyState"] == "READY"
                    and d["created"] < bad["created"])
    assert await api_health(settings) is Status.FAIL
    async with kernel_for(settings) as kernel:
        preview, result, seen = await run(kernel, "vercel.promote")
        assert preview.target.startswith(previous["uid"])
        text = "\n".join(preview.lines)
        for expected in (bad["uid"], bad["meta"]["githubCommitSha"][:7], "Raise campaign worker concurrency",
                         "47m old", previous["uid"], previous["meta"]["githubCommitSha"][:7], "the previous working"):
            assert expected in text, expected
        assert preview.lock_key == "vercel:prj_opsdemo0000000000000000000"
        assert isinstance(result, Outcome) and result.status is OutcomeStatus.OK, result
        assert seen[0].state == "pending" and seen[-1].state == "succeeded" and seen[-1].final
        assert env.state.production_id == previous["uid"]
        assert not env.world.has("bad-deploy")
        assert await api_health(settings) is Status.OK
        events = journal(env)
        assert [e["outcome"] for e in events] == ["started", "ok"]
        item = events[-1]["result"]["items"][0]
        assert item["from"] == bad["uid"] and item["to"] == previous["uid"]
        assert SECRETS.vercel_token not in env.audit.read_text()
        record = last_promotion(events)
        assert record is not None and record.from_id == bad["uid"]

        # u: the way back, found from the journal, again through preview and confirmation
        back, result, _ = await run(kernel, "vercel.promote", {"undo": True})
        assert back.target.startswith(bad["uid"]) and back.params == {"deployment": bad["uid"], "undo": True}
        assert any("undoes the promote of" in line for line in back.lines)
        assert isinstance(result, Outcome) and result.ok, result
        assert env.state.production_id == bad["uid"] and env.world.has("bad-deploy")  # the bad code is back
        assert await api_health(settings) is Status.FAIL


@pytest.mark.scenario("api-down")
async def test_redeploy_cycles_wedged_instances(vercel_env: VercelEnv) -> None:
    env = vercel_env
    settings = env.settings()
    serving = env.state.production
    assert serving is not None
    adapter = ApiAdapter(settings)
    try:
        result = await adapter.checks()[0].run()
    finally:
        await adapter.aclose()
    assert result.status is Status.FAIL and "runtime" in result.summary
    async with httpx.AsyncClient() as client:
        body = (await client.get(env.api.base_url + "/health")).text
    assert "event loop blocked" in body and "pool exhausted" not in body  # what a wedged instance says
    async with kernel_for(settings) as kernel:
        preview, outcome, seen = await run(kernel, "vercel.redeploy")
        assert preview.params == {"deployment": serving["uid"]}
        assert any("a new build of the same commit" in line for line in preview.lines)
        assert isinstance(outcome, Outcome) and outcome.ok, outcome
        states = [p.state for p in seen]
        assert states[0] == "QUEUED" and "BUILDING" in states and states[-1] == "READY"
        new_id = seen[0].deployment.id if seen[0].deployment else ""
        assert new_id and new_id != serving["uid"] and env.state.production_id == new_id
        assert not env.world.has("api-wedged")
        assert await api_health(settings) is Status.OK
        item = journal(env)[-1]["result"]["items"][0]
        assert item["new_deployment"] == new_id and item["final_state"] == "READY"
        assert item["served_before"] == serving["uid"]
        posts = [r for r in env.vercel.requests if r == ("POST", "/v13/deployments")]
        assert len(posts) == 1


@pytest.mark.scenario("bad-deploy")
async def test_redeploy_of_a_broken_commit_shows_the_build_error(vercel_env: VercelEnv) -> None:
    env = vercel_env
    broken = next(d for d in env.state.deployments if d["target"] == "production" and d["readyState"] == "ERROR")
    serving = env.state.production_id
    async with kernel_for(env.settings()) as kernel:
        preview, outcome, seen = await run(kernel, "vercel.redeploy", {"deployment": broken["uid"]})
        assert any(f"production serves {serving}" in line for line in preview.lines)
        assert isinstance(outcome, Outcome) and outcome.status is OutcomeStatus.FAILED
        assert "Property 'maxConcurrency' does not exist" in outcome.summary
        assert seen[-1].state == "ERROR"
        assert env.state.production_id == serving  # production keeps serving
        item = journal(env)[-1]["result"]["items"][0]
        assert item["final_state"] == "ERROR" and "maxConcurrency" in item["error"]


@pytest.mark.scenario("bad-deploy")
async def test_promote_refusals(vercel_env: VercelEnv) -> None:
    env = vercel_env
    current = env.state.production_id
    errored = next(d["uid"] for d in env.state.deployments if d["readyState"] == "ERROR")
    async with kernel_for(env.settings()) as kernel:
        already = await kernel.prepare("vercel.promote", {"deployment": current})
        assert isinstance(already, Refusal) and already.reason is RefusalReason.NOTHING_TO_DO
        assert "already serves production" in already.message
        not_ready = await kernel.prepare("vercel.promote", {"deployment": errored})
        assert isinstance(not_ready, Refusal) and not_ready.reason is RefusalReason.INVALID
        assert "is ERROR: only a READY deployment" in not_ready.message
        bad_id = await kernel.prepare("vercel.promote", {"deployment": "dpl_x/../../etc"})
        assert isinstance(bad_id, Refusal) and bad_id.reason is RefusalReason.INVALID
        missing = await kernel.prepare("vercel.promote", {"deployment": "dpl_doesnotexist"})
        assert isinstance(missing, Refusal) and "not found" in missing.message
        both = await kernel.prepare("vercel.promote", {"deployment": current, "undo": True})
        assert isinstance(both, Refusal) and "not both" in both.message
        nothing = await kernel.prepare("vercel.promote", {"undo": True})
        assert isinstance(nothing, Refusal) and nothing.reason is RefusalReason.NOTHING_TO_DO
        preview_dep = next(d for d in env.state.deployments if d["target"] is None and d["readyState"] == "READY")
        warned = await kernel.prepare("vercel.promote", {"deployment": preview_dep["uid"]})
        assert isinstance(warned, Preview) and "preview deployment" in warned.warning
        assert "rebuilds it with the production environment" in warned.warning


@pytest.mark.scenario("bad-deploy")
async def test_read_only_and_stale_are_refused(vercel_env: VercelEnv) -> None:
    env = vercel_env
    async with kernel_for(env.settings(read_only=True)) as kernel:
        for action_id in ("vercel.promote", "vercel.redeploy"):
            refused = await kernel.prepare(action_id, {})
            assert isinstance(refused, Refusal) and refused.reason is RefusalReason.READ_ONLY
    later = [utcnow()]
    async with kernel_for(env.settings(max_age_s=5), clock=lambda: later[0]) as kernel:
        preview = await kernel.prepare("vercel.promote", {})
        assert isinstance(preview, Preview)
        later[0] = utcnow() + timedelta(seconds=60)
        stale = await kernel.run(preview, YES["vercel.promote"])
        assert isinstance(stale, Refusal) and stale.reason is RefusalReason.STALE
    assert not any(r[0] == "POST" for r in env.vercel.requests)


@pytest.mark.scenario("bad-deploy")
async def test_production_changed_since_the_preview(vercel_env: VercelEnv) -> None:
    env = vercel_env
    async with kernel_for(env.settings()) as kernel:
        preview = await kernel.prepare("vercel.promote", {})
        assert isinstance(preview, Preview)
        other = next(d["uid"] for d in env.state.deployments if d["target"] == "production"
                     and d["readyState"] == "READY" and d["uid"] not in (env.state.production_id,
                                                                          preview.params["deployment"]))
        with env.state.lock:  # another console promoted something meanwhile
            env.state._serve(other, utcnow().timestamp() * 1000)
        result = await kernel.run(preview, YES["vercel.promote"])
        assert isinstance(result, Outcome) and result.status is OutcomeStatus.FAILED
        assert "production changed since the preview" in result.summary
        assert not any(r[0] == "POST" for r in env.vercel.requests)


ERRORS = [
    (Fault(kind="status", status=402, times=1, body=json.dumps({"error": {"code": "payment_required",
                                                                          "message": "Missing payment"}})),
     "HTTP 402", "plan or billing", True),
    (Fault(kind="status", status=403, times=1, body=json.dumps({"error": {"code": "forbidden",
                                                                          "message": "Not authorized"}})),
     "HTTP 403", "scope", True),
    (Fault(kind="status", status=409, times=1), "409", "nothing was done", True),
    (Fault(kind="status", status=429, retry_after="42", times=1), "429", "retry after 42 s", True),
    (Fault(kind="status", status=500, times=1), "HTTP 500", "may or may not have started", False),
    (Fault(kind="hang", delay_s=10, times=1), "did not answer", "may or may not have started", False),
]


@pytest.mark.parametrize(("fault", "status_text", "meaning", "nothing_done"), ERRORS,
                         ids=["402", "403", "409", "429", "500", "timeout"])
@pytest.mark.parametrize("action_id", ["vercel.promote", "vercel.redeploy"])
@pytest.mark.scenario("bad-deploy")
async def test_error_statuses_are_clear_and_never_retried(vercel_env: VercelEnv, action_id: str, fault: Fault,
                                                          status_text: str, meaning: str,
                                                          nothing_done: bool) -> None:
    env = vercel_env
    before = env.state.production_id
    async with kernel_for(env.settings()) as kernel:
        preview = await kernel.prepare(action_id, {})
        assert isinstance(preview, Preview)
        path = "/v10/projects/" if action_id == "vercel.promote" else "/v13/deployments"
        env.faults.set("vercel", Fault(**{**fault.__dict__, "path": path}))
        env.vercel.requests.clear()
        result = await kernel.run(preview, YES[action_id])
        assert isinstance(result, Outcome) and result.status is OutcomeStatus.FAILED
        assert status_text in result.summary and meaning in result.summary, result.summary
        assert ("nothing was done" in result.summary) is nothing_done
        assert SECRETS.vercel_token not in result.summary
        posts = [r for r in env.vercel.requests if r[0] == "POST"]
        assert len(posts) == 1  # a POST is never retried
        assert env.state.production_id == before
        final = journal(env)[-1]
        assert final["outcome"] == "failed" and final["result"]["items"][0]["result"] == (
            "refused" if nothing_done else "unknown")


@pytest.mark.scenario("bad-deploy")
async def test_409_from_vercel_when_already_current(vercel_env: VercelEnv) -> None:
    """The simulator's own 409: the target became production between the preview and the POST."""
    env = vercel_env
    adapter = VercelAdapter(env.settings())
    try:
        outcome = await adapter.promote(env.state.production_id)
    finally:
        await adapter.aclose()
    assert outcome.status_code == 409 and "already the current production deployment" in (outcome.problem or "")


@pytest.mark.scenario("bad-deploy")
async def test_lock_held_by_another_console_is_refused(vercel_env: VercelEnv, lock_db: str) -> None:
    from opsconsole.actions.locks import LockHandle, OperatorLocks

    env = vercel_env
    settings = env.settings(database_url=lock_db)
    bob = OperatorLocks(lock_db, Operator(user="bob", ssh_client="198.51.100.9", host="bastion-2"))
    held = await bob.acquire("vercel:prj_opsdemo0000000000000000000")
    assert isinstance(held, LockHandle)
    try:
        async with kernel_for(settings) as kernel:
            preview = await kernel.prepare("vercel.promote", {})
            assert isinstance(preview, Preview)
            refused = await kernel.run(preview, YES["vercel.promote"])
            assert isinstance(refused, Refusal) and refused.reason is RefusalReason.LOCK_HELD
            assert "bob" in refused.message
            assert not any(r[0] == "POST" for r in env.vercel.requests)
    finally:
        await held.release()
    async with kernel_for(settings) as kernel:  # released: the next attempt runs
        _preview, result, _ = await run(kernel, "vercel.promote")
        assert isinstance(result, Outcome) and result.ok
        assert journal(env)[-1]["lock"]["taken"] is True


def test_journal_reader_ignores_other_events() -> None:
    events: list[dict[str, Any]] = [
        {"kind": "action", "action": "vercel.promote", "outcome": "failed", "result": {"items": [{"from": "a",
                                                                                                  "to": "b"}]}},
        {"kind": "action", "action": "vercel.promote", "outcome": "ok", "ts": "2026-11-27T03:12:00.000Z",
         "operator": {"user": "alice"}, "result": {"items": [{"from": "dpl_a", "to": "dpl_b"}]}},
        {"kind": "action", "action": "vercel.redeploy", "outcome": "ok", "result": {"items": [{"from": "x"}]}},
        {"kind": "note", "text": "hi"},
    ]
    record = last_promotion(events)
    assert record is not None and (record.from_id, record.to_id, record.operator) == ("dpl_a", "dpl_b", "alice")
    assert last_promotion(events[:1]) is None
    assert Journal  # the real reader is exercised end to end above
