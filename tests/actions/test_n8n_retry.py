"""`n8n.retry` through the real kernel (bootstrap wiring, journal), the real adapter and the n8n simulator:
preview -> confirmation -> one at a time, followed -> journal; every refusal, the stop after three
consecutive failures, the 404 of an n8n older than 1.112, a retry whose start cannot be confirmed, the
operator lock, the drill walked to green, and `opsconsole action run n8n.retry` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.locks import OperatorLocks
from opsconsole.actions.model import Confirmation, Outcome, OutcomeStatus, Preview, Refusal, RefusalReason
from opsconsole.actions.n8n import RetryExecutions, RetryHooks, RetryProgress
from opsconsole.audit import Operator
from opsconsole.bootstrap import build_services
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.scenario import N8N_WORKFLOWS, PROJECT_REF
from opsconsole.demo.sim import Fault, FaultPlan
from opsconsole.demo.sims import n8n as n8n_sim
from opsconsole.demo.world import DemoWorld
from opsconsole.domain.models import Status
from opsconsole.services import Services
from opsconsole.settings import (
    AuditSettings,
    ChecksSettings,
    EnvironmentSettings,
    N8nSettings,
    Secret,
    Settings,
    SupabaseSettings,
)
from tests.adapters.n8n_twilio import N8N_CANARY, SECRETS

CONSOLE_YES = Confirmation(key="y", start_key="R", elapsed_s=1.0)


@dataclass
class N8nEnv:
    sim: n8n_sim.N8nSimulator
    faults: FaultPlan
    base: str
    tmp: Path
    world: DemoWorld

    def settings(self, *, read_only: bool = False, database_url: str | None = None) -> Settings:
        supabase = None if database_url is None else SupabaseSettings(
            project_ref=PROJECT_REF, database_url=Secret.literal(database_url))
        return Settings(environment=EnvironmentSettings(name="drill", read_only=read_only),
                        n8n=N8nSettings(api_url=f"{self.base}/api/v1", api_key=Secret.literal(N8N_CANARY),
                                        workflows=N8N_WORKFLOWS),
                        supabase=supabase, checks=ChecksSettings(timeout_s=5.0),
                        audit=AuditSettings(path=str(self.journal_path)))

    @property
    def journal_path(self) -> Path:
        return self.tmp / "journal.jsonl"

    def events(self) -> list[dict[str, Any]]:
        path = self.journal_path
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def control(self, path: str, body: Any = None) -> Any:
        resp = httpx.post(f"{self.base}/__sim/n8n{path}", json=body or {}, timeout=5.0)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def state(self) -> Any:
        return httpx.get(f"{self.base}/__sim/n8n/state", timeout=5.0).json()

    def api(self, path: str, **params: Any) -> Any:
        return httpx.get(f"{self.base}/api/v1{path}", params=params, headers={"X-N8N-API-KEY": N8N_CANARY},
                         timeout=5.0).json()

    def failed(self, text: str, workflow: str = "1001") -> list[str]:
        """Failed executions of `workflow` whose error contains `text`, newest first."""
        body = self.api("/executions", workflowId=workflow, includeData="true", limit=250)
        out = []
        for ex in body["data"]:
            error = ex["data"]["resultData"].get("error") or {}
            if ex["status"] in ("error", "crashed") and text in str(error.get("message", "")):
                out.append(ex["id"])
        return out


@pytest.fixture
def n8n(tmp_path: Path) -> Iterator[N8nEnv]:
    world = DemoWorld("n8n-sync")
    faults = FaultPlan()
    sim = n8n_sim.build(faults, "n8n-sync", SECRETS, world=world)
    base = sim.start()
    env = N8nEnv(sim, faults, base, tmp_path, world)
    env.control("/features", {"retry_run_s": 0.1})
    try:
        yield env
    finally:
        sim.stop()


@pytest.fixture
async def services(n8n: N8nEnv) -> AsyncIterator[Services]:
    svc = build_services(n8n.settings())
    yield svc
    await svc.aclose()


def _kernel(services: Services) -> ActionKernel:
    kernel = services.kernel
    assert kernel is not None
    return kernel


async def _retry(services: Services, ids: list[str], **params: Any) -> tuple[Preview, Outcome, list[RetryProgress]]:
    kernel = _kernel(services)
    preview = await kernel.prepare("n8n.retry", {"execution": ids, **params})
    assert isinstance(preview, Preview), preview
    seen: list[RetryProgress] = []
    action = kernel.get("n8n.retry")
    assert isinstance(action, RetryExecutions)
    action.hooks[preview.preview_id] = RetryHooks(progress=seen.append)
    outcome = await kernel.run(preview, CONSOLE_YES)
    assert isinstance(outcome, Outcome), outcome
    return preview, outcome, seen


def _retries_of(n8n: N8nEnv, original: str) -> list[dict[str, Any]]:
    body = n8n.api("/executions", limit=250)
    return [e for e in body["data"] if e["retryOf"] == original]


# -- one and several ------------------------------------------------------------------------------
async def test_retry_one_transient_failure_follows_it_to_success_and_journals_it(
        n8n: N8nEnv, services: Services) -> None:
    (target, *_rest) = n8n.failed("not able to process")  # a CRM 503: transient
    preview, outcome, seen = await _retry(services, [target])
    assert preview.target == f"execution {target} (Supabase → CRM sync)" and preview.confirm_text == target
    assert preview.lock_keys == (f"n8n:execution:{target}",) and preview.warning == ""
    assert preview.items[0]["execution"] == target and preview.items[0]["workflow"] == "Supabase → CRM sync"
    assert "Upsert contacts (CRM): The service was not able to process your request" in preview.items[0]["error"]
    assert any("load_workflow=false" in line for line in preview.lines)
    assert any("credential CRM API key · httpHeaderAuth passes" in line for line in preview.lines)

    assert outcome.status is OutcomeStatus.OK, outcome.summary
    (item,) = outcome.items
    new_id = item["new_execution"]
    assert item["result"] == "succeeded" and item["status"] == "success" and new_id
    assert outcome.summary == f"1 of 1 retried execution succeeded (new executions: {target} → {new_id})"
    assert [p.event for p in seen] == ["start", "started", "finished"]
    assert seen[1].new_execution_id == new_id and f"→ new execution {new_id}" in seen[1].line
    retried = n8n.api(f"/executions/{target}")
    assert retried["retrySuccessId"] == new_id
    new = n8n.api(f"/executions/{new_id}")
    assert (new["mode"], new["retryOf"], new["status"]) == ("retry", target, "success")

    events = n8n.events()
    started, note, final = (e for e in events if e.get("action") == "n8n.retry")
    assert started["outcome"] == "started" and final["outcome"] == "ok" and started["attempt"] == final["attempt"]
    assert note["kind"] == "note" and note["execution"] == target and note["new_execution"] == new_id
    assert note["preview_id"] == started["preview"]["preview_id"] and note["result"] == "succeeded"
    assert final["preview"]["lock_keys"] == [f"n8n:execution:{target}"]
    assert N8N_CANARY not in n8n.journal_path.read_text()


async def test_retry_several_warns_honestly_about_the_broken_credential(n8n: N8nEnv, services: Services) -> None:
    jwt = n8n.failed("JWT expired")[:2]
    crashed = n8n.api("/executions", status="crashed", workflowId="1002")["data"][0]["id"]
    preview, outcome, seen = await _retry(services, [*jwt, crashed])
    assert preview.target.startswith("3 executions (") and preview.confirm_text == "3 executions"
    assert sorted(preview.lock_keys) == sorted(f"n8n:execution:{i}" for i in [*jwt, crashed])
    assert "2 of the 3 executions" in preview.warning and "Supabase prod (service role)" in preview.warning
    assert "will fail again until the credential is fixed in n8n" in preview.warning
    assert "Authorization failed - please check your credentials" in preview.warning
    assert preview.lines[0].startswith("⚠ their retries will fail again: Supabase prod (service role)")
    by_id = {it["id"]: it for it in outcome.items}
    assert outcome.status is OutcomeStatus.PARTIAL
    assert [by_id[i]["result"] for i in jwt] == ["failed_again", "failed_again"]
    assert all("Supabase: JWT expired" in by_id[i]["detail"] for i in jwt)
    assert by_id[crashed]["result"] == "succeeded"
    new_ids = [p.new_execution_id for p in seen if p.event == "started"]
    assert len(new_ids) == 3 and all(new_ids)
    assert [p.execution_id for p in seen if p.event == "start"] == [*jwt, crashed]  # one at a time, in order
    notes = [e for e in n8n.events() if e["kind"] == "note"]
    assert [n["execution"] for n in notes] == [*jwt, crashed]
    assert outcome.summary.startswith("1 of 3 retried executions succeeded, 2 failed (new executions: ")


async def test_after_the_credential_is_fixed_the_preview_has_no_warning_and_retries_succeed(
        n8n: N8nEnv, services: Services) -> None:
    jwt = n8n.failed("JWT expired")[:2]
    n8n.control("/credentials/sbProdSvcRole7Kq/fix")
    preview, outcome, _ = await _retry(services, jwt, load_workflow=True)
    assert preview.warning == "" and not preview.lines[0].startswith("⚠")
    assert any("load_workflow=true" in line for line in preview.lines) and preview.params["load_workflow"] is True
    assert outcome.status is OutcomeStatus.OK and all(i["result"] == "succeeded" for i in outcome.items)


# -- refusals -------------------------------------------------------------------------------------
async def test_refuses_succeeded_retried_running_and_unknown_executions(n8n: N8nEnv, services: Services) -> None:
    kernel = _kernel(services)
    (transient, *_rest) = n8n.failed("not able to process")
    _, done, _ = await _retry(services, [transient])
    assert done.ok
    ok_id = n8n.api("/executions", status="success", limit=1)["data"][0]["id"]
    (running,) = n8n.control("/executions", {"kind": "running", "seconds": 120})["ids"]
    refused = await kernel.prepare("n8n.retry", {"execution": [ok_id, transient, running, "99999999"]})
    assert isinstance(refused, Refusal) and refused.reason is RefusalReason.NOTHING_TO_DO
    reasons = {e["id"]: e["reason"] for e in refused.details["excluded"]}
    assert reasons[ok_id] == "succeeded: there is nothing to retry"
    assert reasons[transient].startswith("already retried successfully (execution ")
    assert reasons[running] == "still running (status running): retry it once it has finished"
    assert reasons["99999999"].startswith("not found in n8n")

    jwt = n8n.failed("JWT expired")[0]
    mixed = await kernel.prepare("n8n.retry", {"execution": f"{jwt},{ok_id},{running}"})  # the CLI's form
    assert isinstance(mixed, Preview)
    assert [i["execution"] for i in mixed.items] == [jwt]
    assert {e["id"] for e in mixed.excluded} == {ok_id, running}

    bad = await kernel.prepare("n8n.retry", {"execution": ["12a"]})
    assert isinstance(bad, Refusal) and bad.reason is RefusalReason.INVALID and "not an n8n execution id" in bad.message
    none = await kernel.prepare("n8n.retry", {})
    assert isinstance(none, Refusal) and none.reason is RefusalReason.INVALID
    assert "execution is required" in none.message


async def test_a_retry_of_a_retry_that_succeeded_resolves_the_whole_family(n8n: N8nEnv, services: Services) -> None:
    kernel = _kernel(services)
    original = n8n.failed("JWT expired")[0]
    _, first, _ = await _retry(services, [original])
    failed_retry = first.items[0]["new_execution"]
    assert first.items[0]["result"] == "failed_again"
    n8n.control("/credentials/sbProdSvcRole7Kq/fix")
    _, second, _ = await _retry(services, [failed_retry])  # retry the failed retry, not the original
    assert second.ok
    refused = await kernel.prepare("n8n.retry", {"execution": [original]})
    assert isinstance(refused, Refusal), refused
    (excluded,) = refused.details["excluded"]
    assert excluded["reason"].startswith("already retried successfully through a retry of it (execution ")


async def test_read_only_refuses_before_reading_anything(n8n: N8nEnv) -> None:
    svc = build_services(n8n.settings(read_only=True))
    try:
        before = len(n8n.sim.requests)
        refused = await _kernel(svc).prepare("n8n.retry", {"execution": ["5300"]})
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.READ_ONLY
        assert len(n8n.sim.requests) == before
    finally:
        await svc.aclose()


# -- stopping -------------------------------------------------------------------------------------
async def test_a_bulk_retry_stops_after_three_consecutive_failures(n8n: N8nEnv, services: Services) -> None:
    jwt = n8n.failed("JWT expired")[:6]
    assert len(jwt) == 6
    posts_before = sum(1 for m, p in n8n.sim.requests if m == "POST" and p.endswith("/retry"))
    _, outcome, seen = await _retry(services, jwt)
    results = [i["result"] for i in outcome.items]
    assert results == ["failed_again"] * 3 + ["not_retried"] * 3
    assert outcome.status is OutcomeStatus.FAILED
    assert "stopped after 3 consecutive failures: 3 not retried" in outcome.summary
    assert all(i["detail"] == "not retried: stopped after 3 consecutive failures" for i in outcome.items[3:])
    assert seen[-1].event == "stopped" and "3 not retried" in seen[-1].line
    posts = sum(1 for m, p in n8n.sim.requests if m == "POST" and p.endswith("/retry"))
    assert posts - posts_before == 3
    assert [e["execution"] for e in n8n.events() if e["kind"] == "note"] == jwt[:3]


async def test_a_success_resets_the_count_of_consecutive_failures(n8n: N8nEnv, services: Services) -> None:
    jwt = n8n.failed("JWT expired")[:4]
    (transient, *_rest) = n8n.failed("not able to process")
    order = [jwt[0], jwt[1], transient, jwt[2], jwt[3]]
    _, outcome, _ = await _retry(services, order)
    assert [i["result"] for i in outcome.items] == ["failed_again", "failed_again", "succeeded", "failed_again",
                                                     "failed_again"]


async def test_an_n8n_older_than_1_112_is_explained_and_stops_at_once(n8n: N8nEnv, services: Services) -> None:
    n8n.control("/features", {"retry": False})
    jwt = n8n.failed("JWT expired")[:3]
    _, outcome, _ = await _retry(services, jwt)
    assert outcome.status is OutcomeStatus.FAILED
    first, *rest = outcome.items
    assert first["result"] == "not_started" and "older than 1.112" in first["detail"]
    assert "Upgrade n8n to 1.112 or newer" in first["detail"]
    assert [i["result"] for i in rest] == ["not_retried", "not_retried"]
    assert sum(1 for m, p in n8n.sim.requests if m == "POST" and p.endswith("/retry")) == 1


async def test_a_retry_without_an_answer_is_never_sent_twice(n8n: N8nEnv, services: Services) -> None:
    jwt = n8n.failed("JWT expired")[:2]
    action = _kernel(services).get("n8n.retry")
    assert isinstance(action, RetryExecutions)
    action.retry_timeout_s = 0.5
    n8n.faults.set("n8n", Fault("delay", delay_s=1.5, path=f"/api/v1/executions/{jwt[0]}/retry", times=1))
    _, outcome, _ = await _retry(services, jwt)
    first, second = outcome.items
    assert first["result"] == "unknown" and "could not tell whether the retry" in first["detail"]
    assert "not run twice" in outcome.summary and second["result"] == "not_retried"
    assert sum(1 for m, p in n8n.sim.requests if m == "POST" and p.endswith("/retry")) == 1
    for _ in range(50):  # the delayed request reaches n8n after 1.5 s
        if _retries_of(n8n, jwt[0]):
            break
        await asyncio.sleep(0.1)
    assert len(_retries_of(n8n, jwt[0])) == 1  # n8n did run it, once: the console was right not to resend


async def test_a_retry_still_running_after_the_follow_limit_stops_the_run(n8n: N8nEnv, services: Services) -> None:
    n8n.control("/features", {"retry_run_s": 30})
    jwt = n8n.failed("JWT expired")[:2]
    action = _kernel(services).get("n8n.retry")
    assert isinstance(action, RetryExecutions)
    action.follow_timeout_s = 0.6
    _, outcome, _ = await _retry(services, jwt)
    first, second = outcome.items
    assert first["result"] == "still_running" and first["new_execution"]
    assert "follow it in n8n" in first["detail"] and second["result"] == "not_retried"


async def test_the_operator_can_stop_a_bulk_retry_after_the_execution_in_progress(
        n8n: N8nEnv, services: Services) -> None:
    kernel = _kernel(services)
    jwt = n8n.failed("JWT expired")[:3]
    preview = await kernel.prepare("n8n.retry", {"execution": jwt})
    assert isinstance(preview, Preview)
    hooks = RetryHooks()

    def stop_after_first(p: RetryProgress) -> None:
        if p.event == "finished":
            hooks.cancel.set()

    hooks.progress = stop_after_first
    action = kernel.get("n8n.retry")
    assert isinstance(action, RetryExecutions)
    action.hooks[preview.preview_id] = hooks
    outcome = await kernel.run(preview, CONSOLE_YES)
    assert isinstance(outcome, Outcome)
    assert [i["result"] for i in outcome.items] == ["failed_again", "not_retried", "not_retried"]
    assert "stopped by the operator: 2 not retried" in outcome.summary


# -- the operator lock ----------------------------------------------------------------------------
async def test_another_console_holding_the_execution_lock_refuses(n8n: N8nEnv, incident_env: DemoEnvironment) -> None:
    from opsconsole.demo.seed import OWNER_ROLE

    dsn = incident_env.postgres.dsn(OWNER_ROLE, incident_env.secrets.db_password)
    svc = build_services(n8n.settings(database_url=dsn))
    other = OperatorLocks(Secret.literal(dsn), Operator(user="alice", host="bastion-2"))
    jwt = n8n.failed("JWT expired")[0]
    held = await other.acquire(f"n8n:execution:{jwt}")
    try:
        kernel = _kernel(svc)
        preview = await kernel.prepare("n8n.retry", {"execution": [jwt]})
        assert isinstance(preview, Preview)
        result = await kernel.run(preview, CONSOLE_YES)
        assert isinstance(result, Refusal) and result.reason is RefusalReason.LOCK_HELD, result
        assert "alice" in result.message
        assert not _retries_of(n8n, jwt)  # nothing was retried
    finally:
        release = getattr(held, "release", None)
        if release is not None:
            await release()
        await svc.aclose()


# -- the drill, walked to green -------------------------------------------------------------------
async def test_fix_the_credential_retry_everything_and_the_drill_turns_green(n8n: N8nEnv, services: Services) -> None:
    results = await services.runner.run_all(["n8n"])
    assert {r.id: r.status for r in results} == {"n8n.executions": Status.FAIL, "n8n.credentials": Status.FAIL}
    assert n8n.world.has("n8n-failing")
    n8n.control("/credentials/sbProdSvcRole7Kq/fix")  # runbook step 3, done in n8n's UI
    assert n8n.world.has("n8n-failing")  # the failures still wait for their retry
    page = await services.n8n_failed_page(None, 100)
    ids = [r.id for r in page.rows if r.started_at.timestamp() > time.time() - 3600]
    assert len(ids) > 15
    _, outcome, _ = await _retry(services, ids)
    assert outcome.ok, outcome.summary
    results = await services.runner.run_all(["n8n"])
    statuses = {r.id: r.status for r in results}
    assert statuses == {"n8n.executions": Status.OK, "n8n.credentials": Status.OK}, [r.summary for r in results]
    executions = next(r for r in results if r.id == "n8n.executions")
    assert executions.summary.startswith("no failed executions left in the last hour:")
    assert not n8n.world.has("n8n-failing")
    state = n8n.state()
    assert state["resolved"] and state["unresolved_failures"] == 0 and state["problem_active"] is False


async def test_the_world_breaking_the_credential_again_makes_retries_fail(n8n: N8nEnv, services: Services) -> None:
    n8n.control("/credentials/sbProdSvcRole7Kq/fix")
    n8n.world.resolve("n8n-failing")  # say the drill was walked to green...
    assert (await services.runner.run_all(["n8n.credentials"]))[0].status is Status.OK
    n8n.world.cause("n8n-failing")  # ...and then the service-role key was rotated again
    assert (await services.runner.run_all(["n8n.credentials"]))[0].status is Status.FAIL
    jwt = n8n.failed("JWT expired")[:1]
    preview, outcome, _ = await _retry(services, jwt)
    assert "fails n8n's own test right now" in preview.warning
    assert outcome.items[0]["result"] == "failed_again"


# -- the command line, as a real process ----------------------------------------------------------
def _config(n8n: N8nEnv) -> Path:
    path = n8n.tmp / "drill.toml"
    data = {"environment": {"name": "drill"},
            "n8n": {"api_url": f"{n8n.base}/api/v1", "api_key": {"env": "N8N_DRILL_KEY"},
                    "workflows": list(N8N_WORKFLOWS)},
            "audit": {"path": str(n8n.journal_path)}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(tomli_w.dumps(data))
    return path


def _cli(n8n: N8nEnv, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "N8N_DRILL_KEY": N8N_CANARY}
    return subprocess.run([sys.executable, "-m", "opsconsole", "--config", str(_config(n8n)), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=90, check=False, env=env)


def test_action_run_n8n_retry_from_the_command_line_shows_progress(n8n: N8nEnv) -> None:
    jwt = n8n.failed("JWT expired")[0]
    (transient, *_rest) = n8n.failed("not able to process")
    listing = _cli(n8n, "action", "list")
    assert listing.returncode == 0 and "n8n.retry" in listing.stdout and "disruptive" in listing.stdout
    preview = _cli(n8n, "action", "preview", "n8n.retry", "--param", f"execution={jwt},{transient}")
    assert preview.returncode == 0, preview.stderr
    assert "WARNING: 1 of the 2 executions" in preview.stderr and "will fail again" in preview.stderr
    assert f"{jwt} · Supabase → CRM sync" in preview.stdout and "confirm with --yes" in preview.stdout
    assert not _retries_of(n8n, jwt)  # a preview changes nothing

    run = _cli(n8n, "action", "run", "n8n.retry", "--param", f"execution={jwt},{transient}", "--yes")
    assert run.returncode == 1, run.stderr  # partial: the JWT one failed again
    new_jwt = _retries_of(n8n, jwt)[0]["id"]
    new_ok = _retries_of(n8n, transient)[0]["id"]
    assert f"[1/2] retrying {jwt} (Supabase → CRM sync)" in run.stderr
    assert f"[1/2] {jwt} → new execution {new_jwt}" in run.stderr
    assert f"[2/2] {transient}: new execution {new_ok} succeeded" in run.stderr
    assert "\nPARTIAL: 1 of 2 retried executions succeeded, 1 failed" in run.stdout
    assert f"id={transient}, result=succeeded, detail=new execution {new_ok} succeeded" in run.stdout
    final = [e for e in n8n.events() if e.get("action") == "n8n.retry" and e["kind"] == "action"][-1]
    assert final["outcome"] == "partial" and final["confirmation"]["via"] == "cli"
    assert N8N_CANARY not in n8n.journal_path.read_text() and N8N_CANARY not in run.stdout + run.stderr

    again = _cli(n8n, "action", "run", "n8n.retry", "--param", f"execution={transient}", "--yes", "--json")
    assert again.returncode == 4  # nothing to do: it was retried successfully
    body = json.loads(again.stdout)
    assert body["status"] == "refused" and body["refused"]["reason"] == "nothing_to_do"


def test_action_run_against_an_old_n8n_fails_with_the_version_needed(n8n: N8nEnv) -> None:
    n8n.control("/features", {"retry": False})
    jwt = n8n.failed("JWT expired")[0]
    run = _cli(n8n, "action", "run", "n8n.retry", "--param", f"execution={jwt}", "--yes", "--json")
    assert run.returncode == 2, run.stderr
    body = json.loads(run.stdout)
    assert body["status"] == "failed" and "older than 1.112" in body["outcome"]["items"][0]["detail"]

