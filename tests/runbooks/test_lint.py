"""Runbook files: the built-in ones cover runbook.md and are clean; lint names the file, the step and
the key of every problem; a broken team file never stops anything (the built-in one is used)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsconsole.runbooks.catalog import STEPS, steps_for_tab
from opsconsole.runbooks.lint import lint_file, lint_runbook
from opsconsole.runbooks.loader import BUILTIN_ORDER, builtin_runbooks, builtin_texts, load_catalog, parse_text
from tests.runbooks.helpers import vocabulary

RUNBOOK_MD = Path("/work/shared/runbook.md")


def test_the_six_builtin_runbooks_parse_and_lint_clean() -> None:
    vocab = vocabulary()
    runbooks = builtin_runbooks()
    assert [rb.id for rb in runbooks] == list(BUILTIN_ORDER)
    for name, text in builtin_texts():
        rb, problems = parse_text(text, name)
        assert rb is not None and problems == [], (name, problems)
        assert lint_runbook(rb, vocab) == [], name


def test_every_numbered_step_of_the_runbook_is_a_step_in_its_own_words() -> None:
    """runbook.md's numbered steps (bold names) each appear, in its words, as a numbered step."""
    by_title = {rb.title: rb for rb in builtin_runbooks()}
    expected = {
        "API Down / 500 Errors": ["Check Status", "Check Logs", "Restart", "Database Connection"],
        "Supabase Queries Failing": ["Check Service Status", "Check Resource Usage", "Check Credentials"],
        "n8n Sync Failing": ["Check Execution Log", "Retry", "Supabase Access"],
        "Webhooks Failing (Twilio)": ["Check DLQ", "Twilio Logs", "Re-queue"],
        "How to Rollback": ["Vercel", "Supabase Migration"],
        "Backups & Restore Plan": ["Severity Check", "Initiate"],
    }
    if RUNBOOK_MD.exists():  # the names, as runbook.md has them today
        found = re.findall(r"^\d+\.\s+\*\*([^*:]+):?\*\*", RUNBOOK_MD.read_text(), flags=re.M)
        assert sorted(found) == sorted(n for names in expected.values() for n in names)
    for title, names in expected.items():
        rb = by_title[title]
        numbered = [s for s in rb.steps if s.number]
        for number, name in enumerate(names, start=1):
            steps = [s for s in numbered if s.number == number]
            assert steps, (title, number)
            assert any(s.text.startswith(name) for s in steps), (title, name, [s.text for s in steps])
    # the branches the runbook states
    sq = by_title["Supabase Queries Failing"]
    assert sq.step("resources").on_fail == "kill" and sq.step("kill").action == "db.terminate"
    restore = by_title["Backups & Restore Plan"]
    assert restore.step("severity").on_fail == "sql-fix"
    assert restore.step("restore").ack == "OFFLINE" and restore.step("restore").warning.startswith("DOWNTIME WARNING")
    revert = by_title["How to Rollback"].step("revert")
    assert revert.ack == "DATA LOSS" and "Data loss possible" in revert.warning


def test_the_tab_lists_come_from_the_runbook_files() -> None:
    assert [s.text for s in steps_for_tab("api")] == ["Check status: /health and the Vercel dashboard",
                                                       "Check logs: Supabase API logs or Vercel runtime logs"]
    restore = next(s for s in STEPS if s.step_id == "restore")
    assert restore.tab == "backups" and restore.kind == "action"
    assert restore.warning.startswith("DOWNTIME WARNING") and restore.link == "supabase_backups"
    assert {s.step_id for s in STEPS if s.runbook == "supabase-queries"} == {"status", "resources", "kill",
                                                                            "credentials"}


BROKEN = """
id = "api-down"
title = "API Down (our own)"
triggers = ["api.helth"]
[[steps]]
id = "status"
title = "Check"
kind = "check"
checks = ["api.health", "nope.check"]
on_fail = "nowhere"
[[steps]]
id = "restart"
title = "Restart"
kind = "action"
action = "vercel.redeplo"
link = "vercel_dashbaord"
[[steps]]
id = "orphan"
title = "Orphan"
kind = "manual"
next = "status"
[[steps]]
id = "terminate"
title = "Kill"
kind = "action"
action = "db.terminate"
params = { pids = "not-a-pid" }
[[steps]]
id = "a"
title = "A"
kind = "manual"
next = "b"
[[steps]]
id = "b"
title = "B"
kind = "manual"
next = "a"
"""


def test_lint_names_file_step_and_key_for_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "api-down.toml"
    path.write_text(BROKEN)
    problems = lint_file(str(path), vocabulary())
    where = {(p.step, p.key) for p in problems if p.severity == "error"}
    assert ("", "triggers") in where  # unknown check id in triggers
    assert ("status", "checks") in where and ("status", "on_fail") in where
    assert ("restart", "action") in where and ("restart", "link") in where
    assert ("terminate", "warning") in where  # destructive without a warning
    assert ("terminate", "params") in where
    assert ("a", "next") in where  # the cycle a -> b -> a has no check step
    text = "\n".join(str(p) for p in problems)
    assert f"{path}: runbook api-down: step restart: key action: unknown action id 'vercel.redeplo'" in text
    assert "cycle a -> b -> a has no check step" in text
    assert all(p.file == str(path) for p in problems)


def test_unreachable_steps_and_unknown_keys() -> None:
    rb, problems = parse_text("""
id = "x"
title = "X"
[[steps]]
id = "one"
title = "One"
kind = "manual"
next = "end"
on-fail = "two"
[[steps]]
id = "two"
title = "Two"
kind = "manual"
""", "x.toml")
    assert rb is not None
    assert [(p.step, p.key) for p in problems] == [("one", "on-fail")] and "did you mean on_fail" in problems[0].message
    lint = [p for p in lint_runbook(rb, vocabulary()) if p.severity == "error"]
    assert [(p.step, p.key) for p in lint] == [("two", "id")] and "unreachable" in lint[0].message


def test_an_action_step_without_a_link_to_do_it_by_hand_is_a_warning() -> None:
    rb, _ = parse_text("""
id = "r"
title = "R"
[[steps]]
id = "promote"
title = "Promote"
kind = "action"
action = "vercel.promote"
""", "r.toml")
    assert rb is not None
    [problem] = lint_runbook(rb, vocabulary())
    assert problem.severity == "warning" and problem.key == "link"


@pytest.mark.parametrize("text,message", [
    ("id = 'x'\ntitle = 'X'\n[[steps]]\nid = 'a'\nkind = 'check'\n", "a check step needs checks"),
    ("not toml at all = = =", "not valid TOML"),
    ("id = 'BAD ID'\ntitle = 'x'\n[[steps]]\nid='a'\ntitle='a'\nkind='manual'\n", "is not a valid id"),
    ("id = 'x'\ntitle = 'X'\n[[steps]]\nid = 'a'\ntitle = 'A'\nkind = 'manual'\nack = 'GO'\n",
     "ack needs a warning"),
])
def test_clear_messages(text: str, message: str) -> None:
    rb, problems = parse_text(text, "t.toml")
    if rb is not None:
        problems += lint_runbook(rb, vocabulary())
    assert any(message in p.message for p in problems), problems


def test_a_team_file_adds_or_overrides_and_a_broken_one_keeps_the_builtin(tmp_path: Path) -> None:
    vocab = vocabulary()
    (tmp_path / "ours.toml").write_text("""
id = "cache-full"
title = "Redis cache full"
triggers = ["api.health"]
[[steps]]
id = "look"
title = "Look at the cache"
kind = "manual"
link = "vercel_logs"
""")
    (tmp_path / "api-down.toml").write_text(BROKEN)
    catalog = load_catalog(tmp_path, lambda rb: lint_runbook(rb, vocab))
    assert "cache-full" in catalog.runbooks and catalog.runbooks["cache-full"].source == str(tmp_path / "ours.toml")
    assert catalog.runbooks["api-down"].title == "API Down / 500 Errors"  # the built-in one stays
    [notice] = catalog.notices
    assert notice.startswith(f"{tmp_path / 'api-down.toml'}: not used (") and "using the built-in API Down" in notice
    # a valid override replaces it
    (tmp_path / "api-down.toml").write_text(builtin_texts()[0][1].replace('title = "API Down / 500 Errors"',
                                                                          'title = "API Down (ours)"'))
    catalog = load_catalog(tmp_path, lambda rb: lint_runbook(rb, vocab))
    assert catalog.runbooks["api-down"].title == "API Down (ours)" and catalog.notices == []
    assert [rb.id for rb in catalog.ordered()][:6] == list(BUILTIN_ORDER)
