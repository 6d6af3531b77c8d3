"""The guarded-action kernel and the database actions against the embedded PostgreSQL, with real
long-running sessions: cancel/terminate hit exactly the chosen PIDs, everything that must refuse
does (read-only, stale, bad confirmation, unwritable journal, another console holding the lock),
permission denied is explained, and the journal holds one complete, secret-free event per attempt."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import TupleRow

from opsconsole.actions.database import (
    ALREADY_GONE,
    PERMISSION_DENIED,
    SIGNALLED,
    CancelBackends,
    database_actions,
)
from opsconsole.actions.kernel import ActionKernel, GuardedAction
from opsconsole.actions.locks import LockError, LockHandle, LockHeld, OperatorLocks
from opsconsole.actions.model import (
    Confirmation,
    Outcome,
    OutcomeStatus,
    Preview,
    Refusal,
    RefusalReason,
    RiskTier,
)
from opsconsole.adapters.postgres import PostgresAdapter
from opsconsole.audit import Journal, Operator
from opsconsole.demo.postgres import DemoPostgres
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets
from opsconsole.demo.seed import OWNER_ROLE, READER_ROLE, WORKER_ROLE, seed
from opsconsole.demo.sessions import LongRunningSessions
from opsconsole.domain.models import utcnow
from opsconsole.settings import (
    ActionsSettings,
    AuditSettings,
    ChecksSettings,
    EnvironmentSettings,
    Secret,
    Settings,
    SupabaseSettings,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")

CANARY_DB_PASSWORD = "canary-db-pw-Q9x7Lm2Vt"  # the DSN password of every role
CANARY_TOKEN = "canary-token-Hf83KdW0pZ"  # another configured secret
ALICE = Operator(user="alice", ssh_client="203.0.113.7", host="bastion-1")
BOB = Operator(user="bob", sudo_user="bob", ssh_client="198.51.100.9", host="bastion-2")


# -- the database and its sessions -----------------------------------------------------------------

@dataclass
class Db:
    pg: DemoPostgres
    secrets: DemoSecrets
    sessions: LongRunningSessions

    def dsn(self, role: str = OWNER_ROLE) -> str:
        return self.pg.dsn(role, self.secrets.db_password)

    def settings(self, tmp_path: Path, *, read_only: bool = False, max_age_s: float = 30.0,
                 audit: Path | None = None, database_url: str | None = None) -> Settings:
        return Settings(
            environment=EnvironmentSettings(name="drill", read_only=read_only),
            supabase=SupabaseSettings(project_ref=PROJECT_REF,
                                      database_url=Secret.literal(database_url or self.dsn()),
                                      access_token=Secret.literal(CANARY_TOKEN)),
            audit=AuditSettings(path=str(audit or tmp_path / "audit" / "drill.jsonl")),
            checks=ChecksSettings(timeout_s=5.0),
            actions=ActionsSettings(max_preview_age_s=max_age_s))

    def admin(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.pg.admin_dsn, autocommit=True)

    def state(self, pid: int) -> str | None:
        """The session's state, None when it no longer exists."""
        with self.admin() as conn:
            row = conn.execute("select coalesce(state, '') from pg_stat_activity where pid = %s", [pid]).fetchone()
        return None if row is None else str(row[0])

    def wait_state(self, pid: int, want: set[str | None], timeout_s: float = 5.0) -> str | None:
        deadline = time.monotonic() + timeout_s
        state = self.state(pid)
        while state not in want and time.monotonic() < deadline:
            time.sleep(0.05)
            state = self.state(pid)
        return state


@pytest.fixture(scope="module")
def db() -> Iterator[Db]:
    secrets = dataclasses.replace(DemoSecrets.for_scenario("incident"), db_password=CANARY_DB_PASSWORD)
    pg = DemoPostgres().start()
    try:
        seed(pg.admin_dsn, "incident", secrets)
        with LongRunningSessions(pg, "incident", secrets, sleep_s=600) as sessions:
            yield Db(pg, secrets, sessions)
    finally:
        pg.stop()


class Victims:
    """Sessions running `pg_sleep(600)` (or idle in transaction), opened by the test as app roles."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.conns: list[psycopg.Connection[TupleRow]] = []

    def open(self, role: str = WORKER_ROLE, app: str = "victim", *, sleep: bool = True) -> int:
        conn = psycopg.connect(self.db.dsn(role), application_name=app, autocommit=True, connect_timeout=5)
        self.conns.append(conn)
        pid = conn.info.backend_pid
        if sleep:
            conn.pgconn.send_query(b"/* victim */ select pg_sleep(600)")
            assert self.db.wait_state(pid, {"active"}) == "active"
        return pid

    def close(self) -> None:
        for conn in reversed(self.conns):
            with contextlib.suppress(psycopg.Error, OSError):
                conn.cancel_safe(timeout=2.0)
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()
        self.conns.clear()


@pytest.fixture
def victims(db: Db) -> Iterator[Victims]:
    v = Victims(db)
    try:
        yield v
    finally:
        v.close()


# -- kernels -----------------------------------------------------------------------------------------

def make_kernel(settings: Settings, operator: Operator = ALICE, *, clock: Any = utcnow,
                extra: tuple[GuardedAction, ...] = ()) -> ActionKernel:
    kernel = ActionKernel(settings, Journal.for_settings(settings, operator),
                          locks=OperatorLocks.for_settings(settings, operator), clock=clock)
    for action in (*database_actions(settings), *extra):
        kernel.register(action)
    return kernel


def confirm(kernel: ActionKernel, preview: Preview, *, key: str | None = None, typed: str | None = None,
            elapsed_s: float = 1.0, repeat: bool = False) -> Confirmation:
    """What the dialog would collect from an operator doing it right (unless overridden)."""
    action = kernel.get(preview.action_id)
    req = kernel.requirement(preview, action.start_key)
    return Confirmation(key=req.confirm_key if key is None else key, start_key=action.start_key,
                        elapsed_s=elapsed_s, repeat=repeat,
                        typed=preview.confirm_text if typed is None else typed)


async def prepared(kernel: ActionKernel, action_id: str, params: Mapping[str, Any]) -> Preview:
    preview = await kernel.prepare(action_id, params)
    assert isinstance(preview, Preview), preview
    return preview


def all_events(settings: Settings) -> list[dict[str, Any]]:
    path = Path(settings.audit.path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(settings: Settings) -> list[dict[str, Any]]:
    """The final event of every attempt (the write-ahead `started` events left out)."""
    return [e for e in all_events(settings) if e.get("outcome") != "started"]


def journal_bytes(settings: Settings) -> bytes:
    return Path(settings.audit.path).read_bytes()


COMPLETE_KEYS = {"ts", "id", "environment", "operator", "kind", "action", "title", "tier", "target", "params",
                 "preview", "typed", "outcome", "error", "result"}


def assert_complete(event: Mapping[str, Any], outcome: str) -> None:
    assert set(event) >= COMPLETE_KEYS, COMPLETE_KEYS - set(event)
    assert event["kind"] == "action" and event["outcome"] == outcome, event
    assert event["preview"]["lines"] and event["preview"]["data_as_of"]
    assert event["operator"]["user"] in ("alice", "bob")


class PausingAction:
    """A test-only action on target "test:target" that waits for `release` while executing."""

    def __init__(self, tier: RiskTier = RiskTier.DISRUPTIVE, action_id: str = "test.pause") -> None:
        self.id = action_id
        self.title = f"Test {tier} action"
        self.tier = tier
        self.start_key = "p"
        self.description = "a test action that waits"
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0
        self.fail_with: Exception | None = None

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target="the test target",
                       confirm_text="test-target", data_as_of=utcnow(), lines=("Pause on the test target",),
                       items=({"name": "test-target"},), params=dict(params), lock_key="test:target")

    async def execute(self, preview: Preview) -> Outcome:
        self.runs += 1
        self.entered.set()
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return Outcome(OutcomeStatus.OK, "done", ({"name": "test-target", "result": "done"},))


# -- cancel / terminate hit exactly the chosen PIDs -------------------------------------------------

async def test_cancel_hits_exactly_the_chosen_pids(db: Db, victims: Victims, tmp_path: Path) -> None:
    a, b, c = (victims.open(app=f"victim-{n}") for n in "abc")
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.cancel", {"pids": [b, a]})
    assert preview.tier is RiskTier.DISRUPTIVE and preview.target == f"2 sessions ({a}, {b})"
    assert [it["pid"] for it in preview.items] == [a, b] and preview.excluded == ()
    assert all(it["user"] == WORKER_ROLE and it["state"] == "active" for it in preview.items)
    assert all("pg_sleep(600)" in it["query"] for it in preview.items)
    assert any(f"PID {a}" in line and "victim-a" in line for line in preview.lines)
    req = kernel.requirement(preview, "c")
    assert req.confirm_key == "y" and preview.target in req.prompt

    result = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(result, Outcome), result
    assert result.status is OutcomeStatus.OK, result.summary
    assert {it["pid"]: it["result"] for it in result.items} == {a: SIGNALLED, b: SIGNALLED}
    assert "cancelled 2 of 2 sessions" in result.summary
    # The chosen queries stopped, their connections stay; the other one keeps running.
    assert db.wait_state(a, {"idle"}) == "idle" and db.wait_state(b, {"idle"}) == "idle"
    assert db.state(c) == "active"
    [event] = events(settings)
    assert_complete(event, "ok")
    assert event["action"] == "db.cancel" and event["params"] == {"pids": [a, b]}


async def test_terminate_hits_exactly_the_chosen_pids(db: Db, victims: Victims, tmp_path: Path) -> None:
    a, b, c = (victims.open(app=f"victim-{n}") for n in "abc")
    idle_tx = victims.open(app="victim-idle-tx", sleep=False)
    victims.conns[-1].execute("begin")
    victims.conns[-1].execute("select 1")
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.terminate", {"pids": [a, c, idle_tx]})
    assert preview.tier is RiskTier.DESTRUCTIVE and preview.confirm_text == "3 sessions"
    assert preview.warning and "cannot be undone" in preview.warning
    assert {it["pid"]: it["state"] for it in preview.items}[idle_tx] == "idle in transaction"
    req = kernel.requirement(preview, "x")
    assert req.expected_text == "3 sessions" and req.confirm_key == "y"

    result = await kernel.run(preview, confirm(kernel, preview, typed="3 sessions"))
    assert isinstance(result, Outcome) and result.status is OutcomeStatus.OK, result
    assert all(it["result"] == SIGNALLED and "ended" in it["detail"] for it in result.items)
    for pid in (a, c, idle_tx):
        assert db.wait_state(pid, {None}) is None
    assert db.state(b) == "active"
    [event] = events(settings)
    assert_complete(event, "ok")
    assert event["typed"] == "3 sessions" and event["tier"] == "destructive"


async def test_single_pid_terminate_types_the_pid(db: Db, victims: Victims, tmp_path: Path) -> None:
    pid = victims.open()
    kernel = make_kernel(db.settings(tmp_path))
    preview = await prepared(kernel, "db.terminate", {"pids": [pid]})
    assert preview.target == f"PID {pid}" and preview.confirm_text == str(pid)
    assert preview.lock_keys == (f"db.backend:{pid}",)
    result = await kernel.run(preview, confirm(kernel, preview, typed=str(pid)))
    assert isinstance(result, Outcome) and result.ok, result
    assert db.wait_state(pid, {None}) is None


# -- what is never touched ---------------------------------------------------------------------------

async def test_console_connections_non_client_backends_and_unknown_pids_are_excluded(
        db: Db, victims: Victims, tmp_path: Path) -> None:
    victim = victims.open()
    console = victims.open(app="opsconsole", sleep=False)  # what the console's own session looks like
    with db.admin() as conn:
        row = conn.execute("select pid from pg_stat_activity where backend_type = 'checkpointer'").fetchone()
    assert row is not None
    checkpointer = int(row[0])
    missing = 2**31 - 7
    kernel = make_kernel(db.settings(tmp_path))
    preview = await prepared(kernel, "db.terminate", {"pids": [victim, console, checkpointer, missing]})
    assert [it["pid"] for it in preview.items] == [victim]
    reasons = {e["pid"]: e["reason"] for e in preview.excluded}
    assert "opsconsole" in reasons[console]
    assert "not a client session (checkpointer)" in reasons[checkpointer]
    assert "no such session" in reasons[missing]
    assert preview.target == f"PID {victim}" and preview.params == {"pids": [victim]}
    assert any(f"Not touched: PID {checkpointer}" in line for line in preview.lines)

    nothing = await kernel.prepare("db.cancel", {"pids": [console, checkpointer]})
    assert isinstance(nothing, Refusal) and nothing.reason is RefusalReason.NOTHING_TO_DO
    assert str(checkpointer) in nothing.message
    # A preview that would include the console's own preview connection: its PID is unknowable in
    # advance, so the SQL's pg_backend_pid() guard is exercised through a forged row instead.
    own = CancelBackends(db.settings(tmp_path))._exclusion({"own": True, "application_name": "x"})
    assert own == "the console's own connection"
    assert db.state(console) == "idle" and db.state(checkpointer) is not None


@pytest.mark.parametrize("params", [{}, {"pids": []}, {"pids": ["4242"]}, {"pids": [True]}, {"pids": [-1]},
                                    {"pids": [1], "dsn": "x"}, {"pids": list(range(1, 200))}])
async def test_invalid_params_are_refused(db: Db, tmp_path: Path, params: dict[str, Any]) -> None:
    kernel = make_kernel(db.settings(tmp_path))
    refusal = await kernel.prepare("db.cancel", params)
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.INVALID, refusal


async def test_a_pid_that_ended_meanwhile_is_reported_not_an_error(db: Db, victims: Victims,
                                                                   tmp_path: Path) -> None:
    a, b = victims.open(app="victim-a"), victims.open(app="victim-b")
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.terminate", {"pids": [a, b]})
    victims.conns[0].cancel_safe(timeout=2.0)
    victims.conns[0].close()
    assert db.wait_state(a, {None}) is None
    result = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(result, Outcome) and result.status is OutcomeStatus.OK, result
    by_pid = {it["pid"]: it for it in result.items}
    assert by_pid[a]["result"] == ALREADY_GONE and "ended" in by_pid[a]["detail"]
    assert by_pid[b]["result"] == SIGNALLED
    assert "1 had ended already" in result.summary
    assert_complete(events(settings)[0], "ok")


async def test_a_reused_pid_is_not_signalled(db: Db, victims: Victims, tmp_path: Path) -> None:
    """Same PID, different backend_start: a new session that merely got the old PID is left alone."""
    pid = victims.open()
    kernel = make_kernel(db.settings(tmp_path))
    preview = await prepared(kernel, "db.cancel", {"pids": [pid]})
    item = dict(preview.items[0])
    item["backend_start"] = (datetime.fromisoformat(item["backend_start"]) - timedelta(hours=1)).isoformat()
    forged = dataclasses.replace(preview, items=(item,))
    result = await kernel.run(forged, confirm(kernel, forged))
    assert isinstance(result, Outcome)
    assert result.items[0]["result"] == ALREADY_GONE and "newer session" in result.items[0]["detail"]
    assert db.state(pid) == "active"


async def test_permission_denied_is_explained_not_crashed_on(db: Db, victims: Victims, tmp_path: Path) -> None:
    """`ops` is not in pg_signal_backend and not a member of authenticator (as on Supabase)."""
    theirs = victims.open(READER_ROLE, app="metabase-report")
    ours = victims.open(WORKER_ROLE, app="worker")
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.terminate", {"pids": [theirs, ours]})
    assert {it["pid"]: it["may_signal"] for it in preview.items} == {theirs: False, ours: True}
    assert any("may not signal role authenticator" in line for line in preview.lines)
    result = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(result, Outcome) and result.status is OutcomeStatus.PARTIAL, result
    by_pid = {it["pid"]: it for it in result.items}
    assert by_pid[ours]["result"] == SIGNALLED
    denied = by_pid[theirs]
    assert denied["result"] == PERMISSION_DENIED
    assert f"role {OWNER_ROLE} may not signal backends of role {READER_ROLE}" in denied["detail"]
    assert "pg_signal_backend" in denied["detail"]
    assert "1 permission denied" in result.summary
    assert db.state(theirs) == "active" and db.wait_state(ours, {None}) is None

    preview2 = await prepared(kernel, "db.cancel", {"pids": [theirs]})
    failed = await kernel.run(preview2, confirm(kernel, preview2))
    assert isinstance(failed, Outcome) and failed.status is OutcomeStatus.FAILED
    assert failed.items[0]["result"] == PERMISSION_DENIED and db.state(theirs) == "active"
    outcomes = [e["outcome"] for e in events(settings)]
    assert outcomes == ["partial", "failed"]
    assert events(settings)[1]["error"]


# -- refusals ------------------------------------------------------------------------------------------

async def test_every_registered_action_is_refused_in_read_only_mode(db: Db, victims: Victims,
                                                                    tmp_path: Path) -> None:
    pid = victims.open()
    writable = db.settings(tmp_path, audit=tmp_path / "rw.jsonl")
    settings = db.settings(tmp_path, read_only=True)
    extras = tuple(PausingAction(tier, f"test.{tier}") for tier in RiskTier)
    kernel = make_kernel(settings, extra=extras)
    helper = make_kernel(writable, extra=tuple(PausingAction(tier, f"test.{tier}") for tier in RiskTier))
    actions = kernel.actions()
    assert {a.id for a in actions} == {"db.cancel", "db.terminate", *(a.id for a in extras)}
    assert kernel.read_only and kernel.visible_actions() == []
    params: dict[str, dict[str, Any]] = {"db.cancel": {"pids": [pid]}, "db.terminate": {"pids": [pid]}}
    for action in actions:
        refusal = await kernel.prepare(action.id, params.get(action.id, {}))
        assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.READ_ONLY, action.id
        assert "read-only" in refusal.message
        # Invoked any other way: a preview built elsewhere, a perfect confirmation.
        preview = await prepared(helper, action.id, params.get(action.id, {}))
        result = await kernel.run(preview, confirm(kernel, preview))
        assert isinstance(result, Refusal) and result.reason is RefusalReason.READ_ONLY, action.id
    assert all(a.runs == 0 for a in extras)
    assert db.state(pid) == "active"
    journal = events(settings)
    assert len(journal) == len(actions) and {e["outcome"] for e in journal} == {"refused"}
    assert all(e["result"]["reason"] == "read_only" for e in journal)


async def test_stale_preview_is_refused(db: Db, victims: Victims, tmp_path: Path) -> None:
    pid = victims.open()
    settings = db.settings(tmp_path, max_age_s=30)
    later = [utcnow()]
    kernel = make_kernel(settings, clock=lambda: later[0])
    preview = await prepared(kernel, "db.cancel", {"pids": [pid]})
    later[0] = preview.data_as_of + timedelta(seconds=31)
    result = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(result, Refusal) and result.reason is RefusalReason.STALE
    assert result.message == "previewed on data 31 s old (limit 30 s): refresh and confirm again"
    assert db.state(pid) == "active"
    later[0] = preview.data_as_of + timedelta(seconds=29)
    fresh = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(fresh, Outcome) and fresh.ok
    assert [e["outcome"] for e in events(settings)] == ["refused", "ok"]


async def test_bad_confirmations_are_refused_and_journaled(db: Db, victims: Victims, tmp_path: Path) -> None:
    pid = victims.open()
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.terminate", {"pids": [pid]})
    attempts = {
        "enter": confirm(kernel, preview, key="enter"),
        "start_key": confirm(kernel, preview, key="x"),
        "repeat": confirm(kernel, preview, repeat=True),
        "too_fast": confirm(kernel, preview, elapsed_s=0.1),
        "typed_mismatch": confirm(kernel, preview, typed=str(pid + 1)),
        "typed_empty": confirm(kernel, preview, typed=""),
    }
    for check, confirmation in attempts.items():
        result = await kernel.run(preview, confirmation)
        assert isinstance(result, Refusal) and result.reason is RefusalReason.CONFIRMATION, check
        assert result.details["check"] == check
    assert db.state(pid) == "active"
    journal = events(settings)
    assert len(journal) == len(attempts)
    for event in journal:
        assert_complete(event, "refused")
    assert [e["typed"] for e in journal][-2:] == [str(pid + 1), ""]
    # The same preview still works once confirmed properly, and only once.
    done = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(done, Outcome) and done.ok
    again = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(again, Refusal) and again.reason is RefusalReason.INVALID and "already used" in again.message


async def test_unwritable_journal_stops_mutating_actions(db: Db, victims: Victims, tmp_path: Path) -> None:
    pid = victims.open()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where the audit directory should be")
    broken = db.settings(tmp_path, audit=blocker / "audit.jsonl")  # ENOTDIR
    kernel = make_kernel(broken)
    assert kernel.journal_problem() is not None
    refusal = await kernel.prepare("db.cancel", {"pids": [pid]})
    assert isinstance(refusal, Refusal) and refusal.reason is RefusalReason.JOURNAL
    assert "cannot write the audit journal" in refusal.message and "Mutating actions are stopped" in refusal.message
    # A preview built while the journal was fine, confirmed after it broke.
    preview = await prepared(make_kernel(db.settings(tmp_path)), "db.cancel", {"pids": [pid]})
    result = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(result, Refusal) and result.reason is RefusalReason.JOURNAL
    assert "Not a directory" in result.message or "not a directory" in result.message.lower()
    assert db.state(pid) == "active"


async def test_cancelled_dialog_is_journaled(db: Db, victims: Victims, tmp_path: Path) -> None:
    pid = victims.open()
    settings = db.settings(tmp_path)
    kernel = make_kernel(settings)
    preview = await prepared(kernel, "db.cancel", {"pids": [pid]})
    assert await kernel.cancelled(preview) is None
    [event] = events(settings)
    assert_complete(event, "cancelled")
    assert db.state(pid) == "active"


# -- operator locks ------------------------------------------------------------------------------------

async def test_two_consoles_contend_for_the_same_lock(db: Db, tmp_path: Path) -> None:
    settings_a = db.settings(tmp_path, audit=tmp_path / "shared.jsonl")
    settings_b = db.settings(tmp_path, audit=tmp_path / "shared.jsonl")
    action_a, action_b = PausingAction(), PausingAction()
    console_a = make_kernel(settings_a, ALICE, extra=(action_a,))
    console_b = make_kernel(settings_b, BOB, extra=(action_b,))
    preview_a = await prepared(console_a, "test.pause", {})
    preview_b = await prepared(console_b, "test.pause", {})
    before = utcnow()
    task = asyncio.create_task(console_a.run(preview_a, confirm(console_a, preview_a)))
    try:
        await asyncio.wait_for(action_a.entered.wait(), 5)
        refused = await console_b.run(preview_b, confirm(console_b, preview_b))
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.LOCK_HELD, refused
        assert refused.details["holder"] == ALICE.label
        since = datetime.fromisoformat(refused.details["since"])
        assert before - timedelta(seconds=1) <= since <= utcnow()
        assert ALICE.label in refused.message and "since" in refused.message
        assert action_b.runs == 0
        held = await OperatorLocks.for_settings(settings_b, BOB).holder("test:target")  # type: ignore[union-attr]
        assert held is not None and held.holder == ALICE.label
    finally:
        action_a.release.set()
        done = await asyncio.wait_for(task, 10)
    assert isinstance(done, Outcome) and done.ok
    # A released it: B can act now (with a fresh preview).
    action_b.release.set()
    preview_b2 = await prepared(console_b, "test.pause", {})
    later = await console_b.run(preview_b2, confirm(console_b, preview_b2))
    assert isinstance(later, Outcome) and later.ok
    journal = events(settings_a)
    assert [(e["operator"]["user"], e["outcome"]) for e in journal] == [
        ("bob", "refused"), ("alice", "ok"), ("bob", "ok")]
    assert journal[0]["result"]["reason"] == "lock_held"
    assert journal[1]["lock"]["taken"] is True


async def test_lock_held_on_a_backend_blocks_the_other_consoles_terminate(db: Db, victims: Victims,
                                                                          tmp_path: Path) -> None:
    pid = victims.open()
    settings = db.settings(tmp_path)
    alice_locks = OperatorLocks.for_settings(settings, ALICE)
    assert alice_locks is not None
    handle = await alice_locks.acquire(f"db.backend:{pid}")
    assert isinstance(handle, LockHandle)
    try:
        bob = make_kernel(settings, BOB)
        preview = await prepared(bob, "db.terminate", {"pids": [pid]})
        refused = await bob.run(preview, confirm(bob, preview))
        assert isinstance(refused, Refusal) and refused.reason is RefusalReason.LOCK_HELD
        assert refused.details["holder"] == ALICE.label and refused.details["key"] == f"db.backend:{pid}"
        assert db.state(pid) == "active"
        # The lock connection is visible as an opsconsole connection and never a target itself.
        activity = await PostgresAdapter(settings).activity()
        lock_conn = activity.by_pid(handle.backend_pid)
        assert lock_conn is not None and lock_conn.console
    finally:
        await handle.release()
    assert handle.released
    preview = await prepared(bob, "db.terminate", {"pids": [pid]})
    ok = await bob.run(preview, confirm(bob, preview))
    assert isinstance(ok, Outcome) and ok.ok


async def test_locks_refuse_the_transaction_pooler_and_unreachable_databases(db: Db, tmp_path: Path) -> None:
    pooled = OperatorLocks(f"postgresql://ops:{CANARY_DB_PASSWORD}@127.0.0.1:6543/postgres", ALICE)
    assert pooled.check() is not None and "6543" in str(pooled.check())
    with pytest.raises(LockError, match="transaction pooler"):
        await pooled.acquire("x")
    settings = db.settings(tmp_path, database_url=f"postgresql://ops:{CANARY_DB_PASSWORD}@127.0.0.1:6543/postgres")
    action = PausingAction()
    action.release.set()
    kernel = make_kernel(settings, extra=(action,))
    preview = await prepared(kernel, "test.pause", {})
    refused = await kernel.run(preview, confirm(kernel, preview))
    assert isinstance(refused, Refusal) and refused.reason is RefusalReason.LOCK_FAILED
    assert "nothing was done" in refused.message and action.runs == 0
    closed = OperatorLocks(db.pg.dsn(OWNER_ROLE, CANARY_DB_PASSWORD, port=1), ALICE, timeout_s=2)
    with pytest.raises(LockError) as err:
        await closed.acquire("x")
    assert CANARY_DB_PASSWORD not in str(err.value)
    assert CANARY_DB_PASSWORD.encode() not in journal_bytes(settings)


async def test_locks_are_all_or_nothing_across_keys(db: Db, tmp_path: Path) -> None:
    settings = db.settings(tmp_path)
    a, b = OperatorLocks.for_settings(settings, ALICE), OperatorLocks.for_settings(settings, BOB)
    assert a is not None and b is not None
    first = await a.acquire("k:2")
    assert isinstance(first, LockHandle)
    try:
        held = await b.acquire("k:1", "k:2", "k:3")
        assert isinstance(held, LockHeld) and held.key == "k:2" and held.holder == ALICE.label
        # B took nothing: k:1 is free for A.
        again = await a.acquire("k:1")
        assert isinstance(again, LockHandle)
        await again.release()
    finally:
        await first.release()
    assert await b.holder("k:2") is None


# -- journal: one complete event per attempt, no secret ---------------------------------------------

async def test_journal_has_one_complete_event_per_attempt_and_no_secret(db: Db, victims: Victims,
                                                                        tmp_path: Path) -> None:
    pid = victims.open()
    settings = db.settings(tmp_path)
    leaky = PausingAction(RiskTier.REVERSIBLE, "test.leaky")
    leaky.release.set()
    leaky.fail_with = RuntimeError(f"connect to {db.dsn()} failed, token {CANARY_TOKEN}")
    kernel = make_kernel(settings, extra=(leaky,))

    p1 = await prepared(kernel, "db.cancel", {"pids": [pid]})
    r1 = await kernel.run(p1, confirm(kernel, p1, key="enter"))  # refused: Enter
    r2 = await kernel.run(p1, confirm(kernel, p1))  # ok
    p3 = await prepared(kernel, "test.leaky", {})
    r3 = await kernel.run(p3, confirm(kernel, p3))  # failed with secrets in the exception
    forged = dataclasses.replace(p3, params={"url": db.dsn()}, preview_id="forged")
    r4 = await kernel.run(forged, confirm(kernel, forged))  # refused: params carry a DSN
    assert isinstance(r1, Refusal) and isinstance(r2, Outcome) and r2.ok
    assert isinstance(r3, Outcome) and r3.status is OutcomeStatus.FAILED and "RuntimeError" in r3.error
    assert isinstance(r4, Refusal) and r4.reason is RefusalReason.INVALID
    for shown in (r3.summary, r3.error, r4.message):
        assert CANARY_DB_PASSWORD not in shown and CANARY_TOKEN not in shown
    refused_leak = await kernel.prepare("test.leaky", {"dsn": Secret.literal("x")})
    assert isinstance(refused_leak, Refusal) and refused_leak.reason is RefusalReason.INVALID

    raw = journal_bytes(settings)
    assert CANARY_DB_PASSWORD.encode() not in raw and CANARY_TOKEN.encode() not in raw
    journal = events(settings)
    assert [e["outcome"] for e in journal] == ["refused", "ok", "failed", "refused"]
    for event, outcome in zip(journal, ["refused", "ok", "failed", "refused"], strict=True):
        assert_complete(event, outcome)
        assert event["environment"] == "drill"
    assert journal[1]["result"]["items"][0]["pid"] == pid
    assert journal[2]["error"] and "RuntimeError" in journal[2]["error"]
    assert len({e["id"] for e in journal}) == 4
    # written ahead: the attempts that got past the gate wrote `started` first, with the same attempt id
    everything = all_events(settings)
    assert [e["outcome"] for e in everything] == ["refused", "started", "ok", "started", "failed", "refused"]
    assert everything[1]["attempt"] == everything[2]["attempt"] and everything[3]["attempt"] == everything[4]["attempt"]
    assert len({e["attempt"] for e in everything}) == 4
    assert everything[1]["preview"] == everything[2]["preview"] and everything[1]["result"] is None
    assert all(e["pid"] == os.getpid() for e in everything)


# -- the live Database view --------------------------------------------------------------------------

async def test_activity_shows_the_blocking_chain(db: Db, tmp_path: Path) -> None:
    adapter = PostgresAdapter(db.settings(tmp_path))
    try:
        snap = await adapter.activity()
        own_pid = adapter._conn.info.backend_pid if adapter._conn is not None else None
    finally:
        await adapter.aclose()
    assert snap.ok, snap.error
    assert own_pid is not None
    workers = db.sessions.pids()["campaign-worker"]
    holder, waiter = workers[-2], workers[-1]
    h, w = snap.by_pid(holder), snap.by_pid(waiter)
    assert h is not None and w is not None
    assert h.state == "idle in transaction" and holder in w.blocked_by and waiter in h.blocking
    assert snap.blocking_chains()[holder] == (waiter,)
    assert w.wait == "Lock:transactionid" or w.wait_event_type == "Lock"
    assert all(b.backend_type == "client backend" for b in snap.backends)
    assert snap.by_pid(own_pid) is None  # our own session (other consoles' sessions may show)
    metabase = snap.by_pid(db.sessions.pids()["metabase"][0])
    assert metabase is not None and metabase.user == READER_ROLE and metabase.duration_s >= 0
    assert "pg_sleep" in metabase.query and metabase.backend_start is not None
    assert snap.hidden == 0


async def test_activity_failure_is_data(db: Db, tmp_path: Path) -> None:
    adapter = PostgresAdapter(db.settings(tmp_path, database_url=db.pg.dsn(OWNER_ROLE, "wrong-password")))
    try:
        snap = await adapter.activity()
    finally:
        await adapter.aclose()
    assert not snap.ok and snap.backends == () and "password authentication failed" in str(snap.error)
    assert "wrong-password" not in str(snap.error)


async def test_a_preview_runs_once_even_when_confirmed_twice_at_once(db: Db, tmp_path: Path) -> None:
    settings = db.settings(tmp_path)
    action = PausingAction(RiskTier.REVERSIBLE, "test.twice")
    action.release.set()
    kernel = make_kernel(settings, extra=(action,))
    preview = await prepared(kernel, "test.twice", {})
    results = await asyncio.gather(*(kernel.run(preview, confirm(kernel, preview)) for _ in range(3)))
    assert action.runs == 1
    assert sum(isinstance(r, Outcome) and r.ok for r in results) == 1
    assert sum(isinstance(r, Refusal) and r.reason is RefusalReason.INVALID for r in results) == 2
    assert sorted(e["outcome"] for e in events(settings)) == ["ok", "refused", "refused"]
