"""`opsconsole runbook list | show | lint | resume`, as a user runs them (a real process), and the run
in `opsconsole timeline`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from opsconsole.audit import Journal
from opsconsole.runbooks.engine import Wizard
from opsconsole.runbooks.loader import builtin_runbooks
from tests.runbooks.helpers import ALICE, vocabulary
from tests.runbooks.test_lint import BROKEN
from tests.test_cli import run_cli


def _config(tmp_path: Path, *, runbooks: Path | None = None) -> Path:
    path = tmp_path / "config.toml"
    lines = ['[environment]\nname = "drill"\n', f'[audit]\npath = "{tmp_path / "journal.jsonl"}"\n']
    if runbooks is not None:
        lines.append(f'[runbooks]\ndir = "{runbooks}"\n')
    path.write_text("".join(lines))
    os.chmod(path, 0o600)
    return path


def test_list_and_show(tmp_path: Path) -> None:
    listing = run_cli("runbook", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    data = json.loads(listing.stdout)
    assert [r["id"] for r in data["runbooks"]] == ["api-down", "supabase-queries", "n8n-sync", "twilio-webhooks",
                                                    "rollback", "backup-restore"]
    text = run_cli("runbook", "list").stdout
    assert "api-down          API Down / 500 Errors: 4 steps  (suggested by api.health)" in text
    show = run_cli("runbook", "show", "backup-restore")
    assert show.returncode == 0
    assert "2. [action] Initiate the restore" in show.stdout
    assert "action: backups.restore (destructive)" in show.stdout
    assert "the operator types 'OFFLINE' before the step can start, pass or be skipped" in show.stdout
    assert "WARNING: DOWNTIME WARNING: Restoring from a backup" in show.stdout
    unknown = run_cli("runbook", "show", "nope")
    assert unknown.returncode == 64 and "no runbook 'nope'; known: api-down" in unknown.stderr


def test_lint_exits_nonzero_naming_file_step_and_key(tmp_path: Path) -> None:
    clean = run_cli("runbook", "lint")
    assert clean.returncode == 0 and clean.stdout.strip() == "6 files: 0 errors: OK", clean.stdout
    bad = tmp_path / "api-down.toml"
    bad.write_text(BROKEN)
    res = run_cli("runbook", "lint", str(bad))
    assert res.returncode == 1
    assert f"{bad}: runbook api-down: step restart: key action: unknown action id 'vercel.redeplo'" in res.stdout
    assert f"{bad}: runbook api-down: step terminate: key warning: db.terminate is destructive" in res.stdout
    as_json = json.loads(run_cli("runbook", "lint", "--json", str(tmp_path)).stdout)
    assert as_json["files"] == 1 and as_json["errors"] >= 7
    missing = run_cli("runbook", "lint", str(tmp_path / "nope.toml"))
    assert missing.returncode == 1 and "no such file or folder" in missing.stdout


def test_a_broken_team_file_is_named_and_the_builtin_used(tmp_path: Path) -> None:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "api-down.toml").write_text(BROKEN)
    config = _config(tmp_path, runbooks=folder)
    res = run_cli("--config", str(config), "runbook", "list")
    assert res.returncode == 0 and "API Down / 500 Errors: 4 steps" in res.stdout
    assert f"{folder / 'api-down.toml'}: not used (" in res.stderr and "using the built-in API Down" in res.stderr
    lint = run_cli("--config", str(config), "runbook", "lint")
    assert lint.returncode == 1 and "7 files:" in lint.stdout.splitlines()[-1]


async def test_resume_without_an_open_run_and_the_run_in_the_timeline(tmp_path: Path) -> None:
    config = _config(tmp_path)
    none = run_cli("--config", str(config), "runbook", "resume")
    assert none.returncode == 1 and "no open wizard run" in none.stderr
    rb = next(r for r in builtin_runbooks() if r.id == "api-down")
    from opsconsole.services import CheckRunner
    from tests.runbooks.helpers import checks

    journal = Journal(tmp_path / "journal.jsonl", environment="drill", operator=ALICE)
    wiz = Wizard(rb, Wizard.new_record(rb), journal=journal, runner=CheckRunner(checks().values(), timeout_s=2),
                 kernel=None, vocabulary=vocabulary(), links={})
    await wiz.open()
    await wiz.manual("done", "no errors in the runtime logs")
    timeline = run_cli("--config", str(config), "timeline")
    assert timeline.returncode == 0
    assert f"### API Down / 500 Errors (run {wiz.run_id})" in timeline.stdout
    assert "| 2. Check logs: Supabase API logs or Vercel runtime logs | done | alice from 10.1.2.3 on bastion-1 |" \
        in timeline.stdout
    bad_id = run_cli("--config", str(config), "runbook", "resume", "nosuchrun")
    assert bad_id.returncode == 1 and "no open run 'nosuchrun'" in bad_id.stderr


def test_start_help_says_it_continues_an_open_run() -> None:
    res = run_cli("runbook", "start", "--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "(a new run)" not in text
    assert "continues the run of ID the journal holds open" in text
    assert "starts a new run only when there is none" in text
