"""--config, --env, --read-only and --theme mean the same before and after every sub-command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.cli import _parser

# Every leaf command line, with what it needs to parse.
COMMANDS: list[list[str]] = [
    [], ["demo"], ["demo", "serve"], ["check"], ["timeline"], ["config", "init"], ["config", "check"],
    ["config", "path"], ["action", "list"], ["action", "preview", "db.cancel"], ["action", "run", "db.cancel"],
]
GLOBALS = ["--config", "/tmp/x.toml", "--env", "staging", "--read-only", "--theme", "opsconsole-light"]


def _globals(ns: argparse.Namespace) -> tuple[object, ...]:
    return ns.config, ns.env, ns.read_only, ns.theme


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "console")
def test_global_options_parse_the_same_before_and_after(command: list[str]) -> None:
    parser = _parser()
    before = parser.parse_args([*GLOBALS, *command])
    after = parser.parse_args([*command, *GLOBALS])
    assert _globals(before) == _globals(after) == ("/tmp/x.toml", "staging", True, "opsconsole-light")
    plain = parser.parse_args(command)
    assert _globals(plain) == (None, None, False, None)
    # after the sub-command wins over before it, as the last word does
    mixed = parser.parse_args(["--config", "/tmp/a.toml", *command, "--config", "/tmp/b.toml"])
    assert mixed.config == "/tmp/b.toml"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, env=full, check=False)


def test_each_command_gives_the_same_result_both_ways(tmp_path: Path) -> None:
    cfg = tmp_path / "quiet.toml"
    cfg.write_text('[environment]\nname = "quiet"\n[audit]\npath = "' + str(tmp_path / "j.jsonl") + '"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for command in (["check"], ["check", "--json"], ["timeline"], ["config", "check"], ["config", "path"],
                    ["action", "list", "--json"]):
        a = run_cli("--config", str(cfg), *command, env=env)
        b = run_cli(*command, "--config", str(cfg), env=env)
        assert "unrecognized arguments" not in a.stderr + b.stderr, command
        assert a.returncode == b.returncode, (command, a.stderr, b.stderr)
        strip = ("checked_at", "Window", "up to")
        assert [ln for ln in a.stdout.splitlines() if not any(s in ln for s in strip)] == \
               [ln for ln in b.stdout.splitlines() if not any(s in ln for s in strip)], command
        assert "quiet" in a.stdout or command == ["config", "path"] or command == ["config", "check"]
    # --env NAME picks <config dir>/NAME.toml in both positions
    (tmp_path / "xdg" / "opsconsole").mkdir(parents=True)
    (tmp_path / "xdg" / "opsconsole" / "staging.toml").write_text('[environment]\nname = "staging-env"\n')
    for args in (["--env", "staging", "check"], ["check", "--env", "staging"]):
        res = run_cli(*args, env=env)
        assert res.stdout.startswith("staging-env: "), (args, res.stderr)
    # --read-only in both positions refuses an action
    for args in (["--read-only", "action", "run", "db.cancel"], ["action", "run", "db.cancel", "--read-only"]):
        res = run_cli("--config", str(cfg), *args, "--param", "pids=1", "--yes", env=env)
        assert res.returncode == 4 and "read-only mode (quiet)" in res.stderr, (args, res.stderr)
    # config init writes where --config points, in both positions
    for i, args in enumerate((["--config", "{p}", "config", "init"], ["config", "init", "--config", "{p}"])):
        target = tmp_path / f"init-{i}.toml"
        res = run_cli(*[a.replace("{p}", str(target)) for a in args], env=env)
        assert res.returncode == 0 and target.exists(), res.stderr
