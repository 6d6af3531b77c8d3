"""`opsconsole logs` and `opsconsole action run vercel.promote|redeploy` as a user runs them: real processes
against the simulators (the config file points at them), exit codes, output, the token never printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.vercel.conftest import SECRETS, VercelEnv


def opsconsole(*args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPSCONSOLE_CONFIG"}
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, input=stdin, check=False)


@pytest.mark.scenario("bad-deploy")
def test_logs_5xx_text_and_json(vercel_env: VercelEnv, tmp_path: Path) -> None:
    cfg = str(vercel_env.config_file(tmp_path / "c.toml"))
    out = opsconsole("logs", "--config", cfg, "--status", "5xx")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) > 20
    assert all(" ERROR " in line and " 500 " in line for line in lines)
    assert "pool exhausted" in out.stdout and "\x1b" not in out.stdout
    as_json = opsconsole("logs", "--json", "--since", "30s", "--level", "info", "--config", cfg)
    assert as_json.returncode == 0, as_json.stderr
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert rows and {r["status"] for r in rows} >= {200, 500}
    newest = max(r["timestampInMs"] for r in rows)
    assert all(r["timestampInMs"] >= newest - 31_000 for r in rows)  # --since
    assert set(rows[0]) >= {"time", "level", "status", "method", "path", "message", "rowId"}
    for text in (out.stdout, out.stderr, as_json.stdout, as_json.stderr):
        assert SECRETS.vercel_token not in text


@pytest.mark.scenario("bad-deploy")
def test_logs_bad_usage_and_failures(vercel_env: VercelEnv, tmp_path: Path) -> None:
    cfg = str(vercel_env.config_file(tmp_path / "c.toml"))
    for args, code, says in ((["--status", "7xx"], 64, "expected 5xx"), (["--since", "soon"], 64, "--since"),
                             (["--level", "loud"], 64, "level"), (["--deployment", "x;rm"], 64, "deployment"),
                             (["--bogus"], 64, "unrecognized")):
        out = opsconsole("logs", "--config", cfg, *args)
        assert out.returncode == code and says in out.stderr, (args, out.returncode, out.stderr)
    unconfigured = opsconsole("logs", "--config", str(vercel_env.config_file(tmp_path / "n.toml", vercel=False)))
    assert unconfigured.returncode == 2 and "not configured: [vercel]" in unconfigured.stderr
    wrong = opsconsole("logs", "--config", str(vercel_env.config_file(tmp_path / "w.toml", token="wrong-tok-99")))
    assert wrong.returncode == 2 and "token rejected" in wrong.stderr and "wrong-tok-99" not in wrong.stderr


@pytest.mark.scenario("bad-deploy")
def test_logs_follow_reconnects_until_interrupted(vercel_env: VercelEnv, tmp_path: Path) -> None:
    vercel_env.state.logs.stream_s = 1.0
    vercel_env.state.logs.backlog_s = 2
    cfg = str(vercel_env.config_file(tmp_path / "c.toml"))
    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "logs", "--follow", "--config", cfg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if sum(1 for r in vercel_env.vercel.requests if r[1].endswith("/runtime-logs")) >= 3:
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "the stream ended" in stderr and "reconnecting in" in stderr and "reconnected" in stderr
    rows = stdout.splitlines()
    ids = [r for r in rows if r.strip()]
    assert ids and len(ids) == len(set(ids))  # a reconnect replays history: printed once


@pytest.mark.scenario("bad-deploy")
def test_action_run_promote_and_undo_through_a_real_process(vercel_env: VercelEnv, tmp_path: Path) -> None:
    env = vercel_env
    cfg = str(env.config_file(tmp_path / "c.toml"))
    bad = env.state.production_id
    refused = opsconsole("action", "run", "vercel.promote", "--config", cfg)  # no terminal, no --yes
    assert refused.returncode == 4 and env.state.production_id == bad
    preview = opsconsole("action", "preview", "vercel.promote", "--json", "--config", cfg)
    assert preview.returncode == 0, preview.stderr
    target = json.loads(preview.stdout)["preview"]["params"]["deployment"]
    done = opsconsole("action", "run", "vercel.promote", "--yes", "--json", "--config", cfg)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["status"] == "ok" and outcome["outcome"]["items"][0]["from"] == bad
    assert "vercel.promote: " + target in done.stderr and "succeeded" in done.stderr  # progress on stderr
    assert env.state.production_id == target and not env.world.has("bad-deploy")
    back = opsconsole("action", "run", "vercel.promote", "--param", "undo=true", "--yes", "--config", cfg)
    assert back.returncode == 0, back.stderr
    assert env.state.production_id == bad and "undoes the promote of" in back.stdout
    bad_param = opsconsole("action", "run", "vercel.promote", "--param", "deployment=nope", "--yes",
                           "--config", cfg)
    assert bad_param.returncode == 64 and "not a Vercel deployment id" in bad_param.stderr
    events = [json.loads(line) for line in env.audit.read_text().splitlines()]
    assert [e["outcome"] for e in events if e["action"] == "vercel.promote"] == [
        "refused", "started", "ok", "started", "ok"]  # a bad parameter is refused before anything is read
    for text in (done.stdout, done.stderr, back.stdout, env.audit.read_text()):
        assert SECRETS.vercel_token not in text


@pytest.mark.scenario("api-down")
def test_action_run_redeploy_prints_the_build(vercel_env: VercelEnv, tmp_path: Path) -> None:
    vercel_env.state.build_s = 5.0  # the command polls every 2 s: long enough to see BUILDING
    cfg = str(vercel_env.config_file(tmp_path / "c.toml"))
    out = opsconsole("action", "run", "vercel.redeploy", "--yes", "--config", cfg)
    assert out.returncode == 0, out.stderr
    assert "QUEUED" in out.stderr and "BUILDING" in out.stderr and "READY" in out.stderr
    assert "OK: redeployed" in out.stdout
    assert not vercel_env.world.has("api-wedged")
