"""`opsconsole action list | preview | run` as a user runs it: a real process, against the embedded
PostgreSQL, through the same kernel as the console. Every refusal, the exit codes, the JSON
output, the terminal prompt, the journal (identical in shape to the console's), and the
write-ahead record of an action SIGKILLed mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
import tomli_w
from psycopg import sql
from psycopg.rows import TupleRow

from opsconsole.actions.catalog import KNOWN_ACTIONS
from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.locks import LockHandle, OperatorLocks
from opsconsole.actions.model import Confirmation, Outcome, Preview
from opsconsole.audit import Journal, Operator, unfinished_attempts
from opsconsole.config import load_settings
from opsconsole.demo.postgres import DemoPostgres
from opsconsole.demo.scenario import PROJECT_REF, DemoSecrets
from opsconsole.demo.seed import OWNER_ROLE, WORKER_ROLE, generate_messages, seed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the embedded demo database needs Linux or macOS")

CANARY_PASSWORD = "canary-cli-pw-7Hq2xZ"
BOB = Operator(user="bob", ssh_client="198.51.100.9", host="bastion-2")

LIST_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["environment", "read_only", "actions"], "additionalProperties": False,
    "properties": {
        "environment": {"type": "string"}, "read_only": {"type": "boolean"},
        "actions": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["id", "title", "tier", "description", "key", "params", "rules", "available", "why_not"],
            "properties": {
                "id": {"type": "string"}, "title": {"type": "string"},
                "tier": {"enum": ["reversible", "disruptive", "destructive"]},
                "description": {"type": "string"}, "key": {"type": ["string", "null"]},
                "rules": {"type": "array", "items": {"type": "string"}},
                "available": {"type": "boolean"}, "why_not": {"type": ["string", "null"]},
                "params": {"type": "array", "items": {
                    "type": "object", "required": ["name", "type", "required", "help", "expects"],
                    "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                                   "required": {"type": "boolean"}, "help": {"type": "string"},
                                   "expects": {"type": "string"}, "choices": {"type": "array"}}}},
            }}},
    },
}
PREVIEW_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["action", "preview", "confirmation"], "additionalProperties": False,
    "properties": {
        "action": {"type": "string"},
        "confirmation": {"type": "object", "required": ["kind", "flag", "text", "prompt"]},
        "preview": {"type": "object", "required": [
            "preview_id", "action_id", "title", "tier", "target", "confirm_text", "data_as_of", "lines", "items",
            "excluded", "warning", "params", "lock_key", "lock_keys"]},
    },
}
OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["action", "status"],
    "properties": {
        "action": {"type": "string"},
        "status": {"enum": ["ok", "partial", "failed", "refused", "cancelled"]},
        "outcome": {"type": "object", "required": ["status", "summary", "items", "error"]},
        "refused": {"type": "object", "required": ["reason", "message", "details"]},
    },
}


@dataclass
class Db:
    pg: DemoPostgres
    secrets: DemoSecrets
    tmp: Path
    dlq: str = ""
    queue: str = ""

    def dsn(self, role: str = OWNER_ROLE) -> str:
        return self.pg.dsn(role, self.secrets.db_password)

    def admin(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.pg.admin_dsn, autocommit=True)

    def config(self, name: str, *, dlq: str | None = None, queue: str | None = None, max_age_s: float = 30.0,
               read_only: bool = False, audit: Path | None = None) -> Path:
        path = self.tmp / f"{name}.toml"
        data: dict[str, Any] = {
            "environment": {"name": "drill", "read_only": read_only},
            "supabase": {"project_ref": PROJECT_REF, "database_url": self.dsn(),
                         "management_url": "http://127.0.0.1:9", "status_url": "http://127.0.0.1:9"},
            "dlq": {"table": dlq or self.dlq, "requeue": {"kind": "table", "target": queue or self.queue}},
            "actions": {"max_preview_age_s": max_age_s},
            "audit": {"path": str(audit or self.journal_path)},
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(tomli_w.dumps(data))
        return path

    @property
    def journal_path(self) -> Path:
        return self.tmp / "audit" / "drill.jsonl"

    def events(self, path: Path | None = None) -> list[dict[str, Any]]:
        p = path or self.journal_path
        return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []

    def state(self, pid: int) -> str | None:
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
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Db]:
    secrets = dataclasses.replace(DemoSecrets.for_scenario("incident"), db_password=CANARY_PASSWORD)
    pg = DemoPostgres().start()
    try:
        seed(pg.admin_dsn, "incident", secrets, messages=400)
        d = Db(pg, secrets, tmp_path_factory.mktemp("cli"))
        d.dlq, d.queue = _tables(d, "base", 600)
        yield d
    finally:
        pg.stop()


def _tables(db: Db, name: str, n: int, *, waiting_share: float = 1.0) -> tuple[str, str]:
    dlq, queue = f"lab.{name}_dlq", f"lab.{name}_queue"
    with psycopg.connect(db.dsn(), autocommit=True) as owner:
        owner.execute("create schema if not exists lab")
        for src, dst in (("public.dead_letter_messages", dlq), ("public.campaign_queue", queue)):
            owner.execute(sql.SQL("create table {} (like {} including all)").format(
                sql.Identifier(*dst.split(".")), sql.Identifier(*src.split("."))))
        generate_messages(owner, n, table=dlq, queue_table=queue, waiting_share=waiting_share)
    return dlq, queue


@pytest.fixture
def victims(db: Db) -> Iterator[list[psycopg.Connection[TupleRow]]]:
    conns: list[psycopg.Connection[TupleRow]] = []
    yield conns
    for conn in conns:
        with contextlib.suppress(psycopg.Error, OSError):
            conn.cancel_safe(timeout=2.0)
        with contextlib.suppress(psycopg.Error, OSError):
            conn.close()


def victim(db: Db, conns: list[psycopg.Connection[TupleRow]]) -> int:
    conn = psycopg.connect(db.dsn(WORKER_ROLE), application_name="victim", autocommit=True, connect_timeout=5)
    conns.append(conn)
    conn.pgconn.send_query(b"/* victim */ select pg_sleep(600)")
    pid = conn.info.backend_pid
    assert db.wait_state(pid, {"active"}) == "active"
    return pid


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`opsconsole ARGS` with no terminal (stdin is /dev/null)."""
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, check=False)


def _new_events(db: Db, before: int) -> list[dict[str, Any]]:
    return db.events()[before:]


# -- list ------------------------------------------------------------------------------------------


def test_list_names_every_action_with_its_parameters_and_where_it_can_run(db: Db) -> None:
    cfg = db.config("list")
    res = cli("action", "list", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, LIST_SCHEMA)
    assert [a["id"] for a in doc["actions"]] == [a.id for a in KNOWN_ACTIONS]
    by_id = {a["id"]: a for a in doc["actions"]}
    assert by_id["db.terminate"]["tier"] == "destructive" and by_id["db.terminate"]["available"]
    assert by_id["db.terminate"]["params"][0]["name"] == "pids" and by_id["db.terminate"]["params"][0]["required"]
    assert by_id["dlq.requeue"]["rules"] == ["exactly one of ids or filter"]
    assert "expected_digest" in {p["name"] for p in by_id["dlq.fix_payload"]["params"]}
    # read-only (given after the sub-command) makes nothing available, and says why
    ro = json.loads(cli("action", "list", "--json", "--read-only", "--config", str(cfg)).stdout)
    assert not any(a["available"] for a in ro["actions"]) and ro["read_only"]
    configured = {a["id"] for a in doc["actions"] if a["available"]}  # this config has no [vercel] or [n8n]
    assert all("read-only" in a["why_not"] for a in ro["actions"] if a["id"] in configured)
    assert by_id["vercel.promote"]["why_not"] == "not configured: needs [vercel]"
    # an environment without a database: every action is listed as not configured
    bare = db.tmp / "bare.toml"
    bare.write_text('[environment]\nname = "bare"\n')
    doc = json.loads(cli("--config", str(bare), "action", "list", "--json").stdout)
    assert all(not a["available"] and "not configured" in a["why_not"] for a in doc["actions"])
    text = cli("action", "list", "--config", str(cfg)).stdout
    assert "db.terminate" in text and "pids (int_list, required)" in text


# -- preview ---------------------------------------------------------------------------------------


def test_preview_shows_what_the_dialog_would_and_changes_nothing(db: Db, victims: list[Any]) -> None:
    cfg = db.config("preview")
    pid = victim(db, victims)
    before = len(db.events())
    res = cli("action", "preview", "db.terminate", "--param", f"pids={pid},99999", "--json", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, PREVIEW_SCHEMA)
    p = doc["preview"]
    assert p["target"] == f"PID {pid}" and p["confirm_text"] == str(pid)
    assert [e["pid"] for e in p["excluded"]] == [99999] and "no such session" in p["excluded"][0]["reason"]
    assert doc["confirmation"] == {"kind": "typed", "flag": "--confirm", "text": str(pid),
                                   "prompt": doc["confirmation"]["prompt"]}
    assert res.stderr.startswith("WARNING: Terminating closes")  # the warning, on stderr, first
    assert db.state(pid) == "active"  # nothing changed
    assert _new_events(db, before) == []  # a preview is not an attempt
    text = cli("action", "preview", "db.terminate", "--param", f"pids={pid}", "--config", str(cfg))
    assert text.returncode == 0
    assert f"Target: PID {pid}" in text.stdout and f'--confirm "{pid}"' in text.stdout


def test_bad_usage_exits_64_and_lists_what_is_valid(db: Db) -> None:
    cfg = str(db.config("usage"))
    res = cli("action", "preview", "db.cancel", "--param", "pid=1", "--config", cfg)
    assert res.returncode == 64
    assert "unknown parameter pid" in res.stderr and "pids is required" in res.stderr
    assert "Valid parameters: pids (required" in res.stderr
    res = cli("action", "preview", "db.cancel", "--param", "pids=abc", "--config", cfg)
    assert res.returncode == 64 and "pids='abc' is not valid" in res.stderr
    res = cli("action", "preview", "dlq.requeue", "--param", "filter=age<zz", "--config", cfg)
    assert res.returncode == 64 and "filter=" in res.stderr
    res = cli("action", "preview", "dlq.requeue", "--param", "ids=1", "--param", "filter=30008", "--config", cfg)
    assert res.returncode == 64 and "only one of ids or filter" in res.stderr
    res = cli("action", "preview", "no.such", "--config", cfg)
    assert res.returncode == 64 and "known: db.cancel" in res.stderr
    res = cli("action", "preview", "db.cancel", "--param", "novalue", "--config", cfg)
    assert res.returncode == 64 and "is not KEY=VALUE" in res.stderr
    res = cli("action", "frobnicate", "--config", cfg)
    assert res.returncode == 64
    res = cli("action", "run", "db.cancel", "--yes", "--confirm", "x", "--config", cfg)
    assert res.returncode == 64  # --yes and --confirm exclude each other
    for out in (res.stdout, res.stderr):
        assert "Traceback" not in out


# -- run -------------------------------------------------------------------------------------------


def test_cancel_and_terminate_through_the_command_line(db: Db, victims: list[Any]) -> None:
    cfg = str(db.config("run"))
    a, b = victim(db, victims), victim(db, victims)
    before = len(db.events())
    res = cli("action", "run", "db.cancel", "--param", f"pids={a}", "--yes", "--config", cfg)
    assert res.returncode == 0, res.stderr
    assert "OK: cancelled 1 of 1 session" in res.stdout
    assert db.wait_state(a, {"idle"}) == "idle"
    res = cli("action", "run", "db.terminate", "--param", f"pids={b}", "--confirm", str(b), "--json", "--config", cfg)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, OUTCOME_SCHEMA)
    assert doc["status"] == "ok" and doc["outcome"]["items"][0]["result"] == "signalled"
    assert db.wait_state(b, {None}) is None
    events = _new_events(db, before)
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("db.cancel", "started"), ("db.cancel", "ok"), ("db.terminate", "started"), ("db.terminate", "ok")]
    assert events[0]["attempt"] == events[1]["attempt"] != events[2]["attempt"] == events[3]["attempt"]
    assert events[3]["typed"] == str(b) and events[3]["confirmation"]["via"] == "cli"
    assert events[3]["lock"]["taken"] is True
    assert CANARY_PASSWORD not in db.journal_path.read_text()


def test_every_refusal_is_exit_4_and_journaled(db: Db, victims: list[Any]) -> None:
    cfg = str(db.config("refusals"))
    pid = victim(db, victims)
    before = len(db.events())
    # destructive with --yes only; then the wrong text; then no terminal and no flag
    for extra, words in ((["--yes"], "--yes is not enough"), (["--confirm", "4242"], "does not match"),
                         ([], "no terminal to ask on")):
        res = cli("action", "run", "db.terminate", "--param", f"pids={pid}", *extra, "--config", cfg)
        assert res.returncode == 4, (extra, res.stderr)
        assert words in res.stderr
    # read-only, before and after the sub-command
    for args in (["--read-only", "action", "run"], ["action", "run", "--read-only"]):
        res = cli(*args, "db.cancel", "--param", f"pids={pid}", "--yes", "--config", cfg)
        assert res.returncode == 4 and "read-only" in res.stderr
    # stale: a preview older than max_preview_age_s
    res = cli("action", "run", "db.cancel", "--param", f"pids={pid}", "--yes", "--config",
              str(db.config("stale", max_age_s=0.001)))
    assert res.returncode == 4 and "s old (limit 0.001 s)" in res.stderr
    # nothing to do
    res = cli("action", "run", "db.cancel", "--param", "pids=99999", "--yes", "--config", cfg)
    assert res.returncode == 4 and "nothing to cancel" in res.stderr
    assert db.state(pid) == "active"  # none of them touched the session
    refused = [e for e in _new_events(db, before) if e["outcome"] == "refused"]
    checks = [e["result"]["details"].get("check") for e in refused if e["result"]["reason"] == "confirmation"]
    assert checks == ["typed_empty", "typed_mismatch", "empty"]
    assert {e["result"]["reason"] for e in refused} == {"confirmation", "stale"}
    assert not any(e["outcome"] == "started" for e in _new_events(db, before))


async def test_a_lock_held_by_another_console_is_refused_with_its_holder(db: Db, victims: list[Any]) -> None:
    cfg = str(db.config("locked"))
    pid = victim(db, victims)
    locks = OperatorLocks(db.dsn(), BOB)
    held = await locks.acquire(f"db.backend:{pid}")
    assert isinstance(held, LockHandle)
    try:
        res = await asyncio.to_thread(cli, "action", "run", "db.cancel", "--param", f"pids={pid}", "--yes",
                                      "--config", cfg)
    finally:
        await held.release()
    assert res.returncode == 4 and "bob" in res.stderr
    assert db.state(pid) == "active"
    last = db.events()[-1]
    assert last["outcome"] == "refused" and last["result"]["reason"] == "lock_held"


def test_dlq_actions_through_the_command_line(db: Db) -> None:
    dlq, queue = _tables(db, "dlqcli", 300)
    cfg = str(db.config("dlq", dlq=dlq, queue=queue))
    with db.admin() as conn:
        ids = [r[0] for r in conn.execute(sql.SQL("select id from {} where status = 'waiting' and error_code = 30008 "
                                                  "and payload ? 'Body' order by id limit 5").format(
            sql.Identifier(*dlq.split(".")))).fetchall()]
    assert len(ids) == 5
    res = cli("action", "run", "dlq.requeue", "--param", f"ids={ids[0]},{ids[1]}", "--yes", "--config", cfg)
    assert res.returncode == 0, res.stderr
    res = cli("action", "run", "dlq.discard", "--param", f"ids={ids[2]}", "--yes", "--config", cfg)
    assert res.returncode == 64 and "reason is required" in res.stderr
    res = cli("action", "run", "dlq.discard", "--param", f"ids={ids[2]},{ids[3]}", "--param", "reason=duplicate",
              "--yes", "--config", cfg)
    assert res.returncode == 0, res.stderr
    res = cli("action", "run", "dlq.undo_discard", "--param", f"ids={ids[3]}", "--yes", "--config", cfg)
    assert res.returncode == 0, res.stderr
    payload = json.dumps({"MessageSid": "SM" + "0" * 32, "To": "+15550001111", "From": "+15550002222", "Body": "hi"})
    res = cli("action", "run", "dlq.fix_payload", "--param", f"id={ids[4]}", "--param", f"payload={payload}",
              "--yes", "--config", cfg)
    assert res.returncode == 0, res.stderr
    res = cli("action", "preview", "dlq.requeue", "--param", "filter=code:30008 age<3d", "--json", "--config", cfg)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["preview"]["target"].endswith(f"into table {queue}")
    with db.admin() as conn:
        status = dict(conn.execute(sql.SQL("select id, status from {} where id = any(%s)").format(
            sql.Identifier(*dlq.split("."))), [ids]).fetchall())
        queued = [r[0] for r in conn.execute(sql.SQL("select dlq_message_id from {} where dlq_message_id = any(%s)")
                                             .format(sql.Identifier(*queue.split("."))), [ids]).fetchall()]
    assert status == {ids[0]: "requeued", ids[1]: "requeued", ids[2]: "discarded", ids[3]: "waiting",
                      ids[4]: "waiting"}
    assert sorted(queued) == ids[:2]


def _pty_run(args: list[str], answer: str, timeout: float = 60) -> tuple[int, str]:
    """Run `opsconsole ARGS` on a pseudo-terminal, answer its prompt with `answer`."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI, on the terminal
        os.execvp(sys.executable, [sys.executable, "-m", "opsconsole", *args])
    out = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal (it exited)
                    chunk = b""
                if not chunk:
                    _, status = os.waitpid(pid, 0)
                    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
                out += chunk
            if not answered and (b"to confirm" in out or b"Proceed? [y/N]" in out):
                os.write(fd, answer.encode() + b"\r")
                answered = True
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                with contextlib.suppress(OSError):
                    while chunk := os.read(fd, 65536):
                        out += chunk
                return os.waitstatus_to_exitcode(status), out.decode(errors="replace")
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError(f"no exit within {timeout} s: {out.decode(errors='replace')}")
    finally:
        os.close(fd)


def test_on_a_terminal_it_shows_the_preview_and_asks(db: Db, victims: list[Any]) -> None:
    cfg = str(db.config("tty"))
    a, b = victim(db, victims), victim(db, victims)
    code, out = _pty_run(["action", "run", "db.cancel", "--param", f"pids={a}", "--config", cfg], "n")
    assert code == 4 and "Proceed? [y/N]" in out and f"Target: PID {a}" in out
    assert db.state(a) == "active" and db.events()[-1]["outcome"] == "cancelled"
    code, out = _pty_run(["action", "run", "db.cancel", "--param", f"pids={a}", "--config", cfg], "y")
    assert code == 0, out
    assert db.wait_state(a, {"idle"}) == "idle"
    code, out = _pty_run(["action", "run", "db.terminate", "--param", f"pids={b}", "--config", cfg], "wrong")
    assert code == 4 and f"Type {b} to confirm" in out and db.state(b) == "active"
    assert db.events()[-1]["result"]["details"]["check"] == "typed_mismatch"
    code, out = _pty_run(["action", "run", "db.terminate", "--param", f"pids={b}", "--config", cfg], str(b))
    assert code == 0, out
    assert db.wait_state(b, {None}) is None


async def test_cli_journal_events_have_the_same_shape_as_the_console_s(db: Db, victims: list[Any]) -> None:
    cfg = db.config("shape")
    pid = await asyncio.to_thread(victim, db, victims)
    other = await asyncio.to_thread(victim, db, victims)
    before = len(db.events())
    res = await asyncio.to_thread(cli, "action", "run", "db.cancel", "--param", f"pids={pid}", "--yes",
                                  "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    cli_started, cli_final = _new_events(db, before)
    # the console: the same kernel in-process, confirmed with a key in the dialog
    settings = load_settings(cfg)
    from opsconsole.bootstrap import build_services

    services = build_services(settings)
    kernel = services.kernel
    assert isinstance(kernel, ActionKernel)
    try:
        preview = await kernel.prepare("db.cancel", {"pids": [other]})
        assert isinstance(preview, Preview)
        result = await kernel.run(preview, Confirmation(key="y", start_key="c", elapsed_s=1.0))
        assert isinstance(result, Outcome) and result.ok
    finally:
        await services.aclose()
    ui_started, ui_final = db.events()[-2:]

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items() if k not in ("items", "lines", "params")}
        return type(value).__name__

    assert shape(cli_started) == shape(ui_started)
    assert shape(cli_final) == shape(ui_final)
    assert cli_final["confirmation"]["via"] == "cli" and ui_final["confirmation"]["via"] == "console"


# -- the write-ahead journal -------------------------------------------------------------------------


def test_a_requeue_killed_mid_way_is_in_the_journal_as_outcome_unknown(db: Db) -> None:
    total = 300_000
    dlq, queue = _tables(db, "killed", total, waiting_share=1.0)
    journal = db.tmp / "audit" / "killed.jsonl"
    cfg = str(db.config("killed", dlq=dlq, queue=queue, audit=journal))
    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "action", "run", "dlq.requeue", "--param",
                             "filter=status:waiting", "--yes", "--config", cfg],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        queued = 0
        while time.monotonic() < deadline:
            with db.admin() as conn:
                queued = conn.execute(sql.SQL("select count(*) from {}").format(
                    sql.Identifier(*queue.split(".")))).fetchone()[0]  # type: ignore[index]
            if queued >= 5_000:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        assert 0 < queued < total, "the re-queue did not start, or finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    events = db.events(journal)
    assert [e["outcome"] for e in events] == ["started"]
    unknown = unfinished_attempts(events)
    assert len(unknown) == 1 and unknown[0].action == "dlq.requeue"
    assert unknown[0].message().startswith("outcome unknown: dlq.requeue of ")
    timeline = cli("timeline", "--config", cfg)
    assert timeline.returncode == 0, timeline.stderr
    assert "outcome unknown" in timeline.stdout and "Outcome unknown (check before retrying)" in timeline.stdout
    # the invariants hold: every message once, in the DLQ or (re-queued) in the queue exactly once
    with db.admin() as conn:
        dlq_id, queue_id = sql.Identifier(*dlq.split(".")), sql.Identifier(*queue.split("."))
        statuses = dict(conn.execute(sql.SQL("select status, count(*) from {} group by 1").format(dlq_id)).fetchall())
        requeued = {r[0] for r in conn.execute(sql.SQL("select id from {} where status = 'requeued'").format(dlq_id))}
        linked = [r[0] for r in conn.execute(sql.SQL("select dlq_message_id from {}").format(queue_id))]
    assert sum(statuses.values()) == total and set(statuses) <= {"waiting", "requeued", "discarded"}
    assert 0 < len(requeued) < total
    assert len(linked) == len(set(linked)) and set(linked) == requeued
    # the operator checks and records it: no longer unknown
    Journal(journal, environment="drill", operator=Operator(user="alice")).record_verified(
        unknown[0].attempt, verdict="partial", reason=f"{len(requeued):,} re-queued, the rest still waiting")
    assert unfinished_attempts(db.events(journal)) == []
