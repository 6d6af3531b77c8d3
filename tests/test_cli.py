"""The command line as a user runs it: a real process, no terminal, against the demo environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.sim import Fault
from opsconsole.services import CHECK_IDS

# The documented `check --json` shape (design.md, public contract).
CHECK_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["environment", "checked_at", "status", "checks"],
    "additionalProperties": False,
    "properties": {
        "environment": {"type": "string"},
        "checked_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
        "status": {"enum": ["ok", "warn", "fail", "unknown", "off"]},
        "checks": {"type": "array", "items": {
            "type": "object",
            "required": ["id", "system", "title", "status", "summary", "latency_ms", "checked_at", "details"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string"}, "system": {"type": "string"}, "title": {"type": "string"},
                "status": {"enum": ["ok", "warn", "fail", "unknown", "off"]},
                "summary": {"type": "string"},
                "latency_ms": {"type": ["number", "null"]},
                "checked_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
                "details": {"type": "object"},
            }}},
    },
}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, env=full_env, check=False)


def test_version_and_help_for_every_command() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("opsconsole ")
    for cmd in ([], ["demo"], ["demo", "serve"], ["check"], ["config"], ["config", "init"],
                ["config", "check"], ["config", "path"], ["timeline"]):
        res = run_cli(*cmd, "--help")
        assert res.returncode == 0, (cmd, res.stderr)
        assert "usage: opsconsole" in res.stdout


def test_missing_config_offers_init_and_demo(tmp_path: Path) -> None:
    res = run_cli("--config", str(tmp_path / "nope.toml"))
    assert res.returncode != 0
    assert "opsconsole config init" in res.stderr and "opsconsole demo" in res.stderr
    assert "Traceback" not in res.stderr


def test_check_json_incident_validates_and_exits_2(incident_env: DemoEnvironment) -> None:
    res = run_cli("--config", str(incident_env.config_path), "check", "--json")
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, CHECK_JSON_SCHEMA)
    assert [c["id"] for c in doc["checks"]] == list(CHECK_IDS)
    assert doc["status"] == "fail" and res.returncode == 2
    by_id = {c["id"]: c for c in doc["checks"]}
    assert by_id["api.health"]["status"] == "fail"
    assert by_id["dlq.depth"]["status"] in ("warn", "fail")
    assert by_id["db.long_running"]["status"] in ("ok", "warn", "fail")
    secrets = incident_env.secrets
    for value in (secrets.vercel_token, secrets.service_role_key, secrets.n8n_api_key, secrets.twilio_auth_token,
                  secrets.db_password, secrets.supabase_access_token):
        assert value not in res.stdout and value not in res.stderr


def test_check_exit_codes_follow_the_worst_status(incident_env: DemoEnvironment,
                                                  healthy_env: DemoEnvironment) -> None:
    ok = run_cli("--config", str(healthy_env.config_path), "check", "--only", "api,vercel")
    assert ok.returncode == 0, ok.stdout
    warn = run_cli("--config", str(incident_env.config_path), "check", "--only", "backups")
    assert warn.returncode == 1, warn.stdout
    assert "WARN" in warn.stdout
    fail = run_cli("--config", str(incident_env.config_path), "check", "--only", "api.health")
    assert fail.returncode == 2


def test_check_unknown_exits_3(clean_faults: DemoEnvironment) -> None:
    env = clean_faults
    env.faults.set("vercel-status", Fault(kind="status", status=200, path="/api/v2/",
                                          body=json.dumps({"status": {"indicator": "sideways"}})))
    res = run_cli("--config", str(env.config_path), "check", "--json", "--only", "vercel.status_page")
    doc = json.loads(res.stdout)
    assert doc["checks"][0]["status"] == "unknown", doc
    assert res.returncode == 3


def test_check_unknown_system_is_a_clear_error(incident_env: DemoEnvironment) -> None:
    res = run_cli("--config", str(incident_env.config_path), "check", "--only", "nosuch")
    assert res.returncode == 3
    assert "unknown system or check id: nosuch" in res.stderr


def test_check_keeps_going_when_a_service_hangs(clean_faults: DemoEnvironment) -> None:
    env = clean_faults
    env.faults.set("n8n", Fault(kind="hang", delay_s=60))
    res = run_cli("--config", str(env.config_path), "check", "--json", timeout=60)
    doc = json.loads(res.stdout)
    n8n = next(c for c in doc["checks"] if c["id"] == "n8n.executions")
    assert n8n["status"] == "fail" and "within" in n8n["summary"]
    assert sum(1 for c in doc["checks"] if c["status"] != "off") == len(CHECK_IDS)


@pytest.mark.parametrize("scenario", ["healthy", "incident"])
def test_demo_serve_prints_config_and_stops_cleanly(scenario: str, tmp_path: Path) -> None:
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "demo", "serve", "--scenario", scenario,
                             "--print-config"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        started = time.perf_counter()
        line = proc.stdout.readline().strip()
        ready = time.perf_counter() - started
        config = Path(line)
        assert config.is_file(), (line, proc.stderr.read() if proc.stderr else "")
        assert (config.stat().st_mode & 0o777) == 0o600
        res = run_cli("--config", str(config), "check", "--only", "api")
        assert res.returncode == (0 if scenario == "healthy" else 2), res.stdout
        print(f"demo serve ready in {ready:.2f} s")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert not config.exists()  # the demo's work dir is removed on exit
    assert _postgres_processes_for(str(config.parent)) == []


def _postgres_processes_for(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmdline and marker in cmdline:
            pids.append(int(entry.name))
    return pids


def test_demo_sigterm_and_sigkill_leave_no_postgres() -> None:
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "demo", "serve", "--print-config"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        workdir = str(Path(proc.stdout.readline().strip()).parent)
        assert _postgres_processes_for(workdir), "postgres should be running under the demo"
        proc.send_signal(sig)
        proc.wait(20)
        import time

        deadline = time.monotonic() + 10
        while _postgres_processes_for(workdir) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _postgres_processes_for(workdir) == [], f"stray postgres after {sig.name}"
