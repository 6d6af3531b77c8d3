"""The audit journal: operator, append/read, secrets masked, concurrent writers, failures, timeline."""

from __future__ import annotations

import enum
import errno
import json
import os
import pwd
import re
import socket
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from opsconsole import paths
from opsconsole.audit import (
    Journal,
    JournalError,
    Operator,
    parse_duration,
    render_timeline,
    timeline_entries,
    timeline_jsonl,
    timeline_markdown,
)
from opsconsole.domain.text import printable
from opsconsole.settings import AuditSettings, EnvironmentSettings, Secret, Settings, SupabaseSettings, VercelSettings

OPERATOR = Operator(user="alice", sudo_user="bob", ssh_client="203.0.113.7", host="bastion-1")
T0 = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock, so `since` windows are exact."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def journal(path: Path, **kwargs: Any) -> Journal:
    kwargs.setdefault("operator", OPERATOR)
    return Journal(path, environment="production", **kwargs)


def action(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "action", "action": "vercel.promote", "title": "Promote deployment", "tier": "disruptive",
        "target": "dpl_123", "params": {"deployment": "dpl_123"}, "preview": "dpl_123 (commit abc1234)",
        "typed": "y", "outcome": "ok", "error": None, "result": {"promoted": True},
    }
    event.update(overrides)
    return event


# ------------------------------------------------------------------------------------------- operator


def test_operator_from_fake_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_login() -> str:
        raise OSError("no controlling terminal")

    def no_passwd(uid: int) -> Any:
        raise KeyError(uid)

    monkeypatch.setattr(os, "getlogin", no_login)
    monkeypatch.setattr(pwd, "getpwuid", no_passwd)
    monkeypatch.setattr(socket, "gethostname", lambda: "bastion-1")
    op = Operator.detect({"USER": "alice", "SUDO_USER": "bob",
                          "SSH_CONNECTION": "203.0.113.7 51234 10.0.0.5 22"})
    assert op == OPERATOR
    assert op.label == "alice (sudo from bob) from 203.0.113.7 on bastion-1"
    assert op.to_json() == {"user": "alice", "sudo_user": "bob", "ssh_client": "203.0.113.7", "host": "bastion-1"}
    assert Operator.from_json(op.to_json()) == op


def test_operator_prefers_login_name_and_tolerates_missing_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getlogin", lambda: "carol")
    monkeypatch.setattr(socket, "gethostname", lambda: "bastion-2")
    op = Operator.detect({"USER": "root", "SSH_CONNECTION": "  "})
    assert op == Operator(user="carol", sudo_user=None, ssh_client=None, host="bastion-2")
    assert op.label == "carol on bastion-2"
    assert Operator.detect({"SUDO_USER": "carol"}).label == "carol (via sudo) on bastion-2"
    # The real machine: something non-empty, whatever the container provides.
    assert Operator.detect().user
    assert Operator.from_json("garbage").user == "garbage"
    assert Operator.from_json(None).user == "unknown"


# ------------------------------------------------------------------------------------------- append / read


def test_append_read_round_trip(tmp_path: Path) -> None:
    j = journal(tmp_path / "j.jsonl")
    first = j.append(action())
    second = j.record_manual_step(step="rotate-keys", outcome="skipped", reason="no access to the dashboard")
    third = j.record_note("paged the database team")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert re.fullmatch(r"[0-9a-f]{32}", first["id"]) and first["id"] != second["id"]
    assert first["environment"] == "production"
    assert first["operator"] == OPERATOR.to_json()
    assert first["kind"] == "action" and first["outcome"] == "ok" and first["result"] == {"promoted": True}
    got = j.read()
    assert got.events == [first, second, third] and got.malformed == 0 and got.exists
    raw = (tmp_path / "j.jsonl").read_bytes()
    assert raw.count(b"\n") == 3 and raw.endswith(b"\n")


def test_reserved_keys_are_set_by_the_journal(tmp_path: Path) -> None:
    j = journal(tmp_path / "j.jsonl", clock=Clock())
    written = j.append({"kind": "note", "text": "x", "ts": "1999-01-01T00:00:00Z", "environment": "staging",
                        "operator": "mallory", "id": "fixed"})
    assert written["ts"] == "2026-11-27T03:00:00.000Z"
    assert written["environment"] == "production" and written["operator"]["user"] == "alice"
    assert written["id"] != "fixed"


def test_file_0600_and_new_directories_0700(tmp_path: Path) -> None:
    settings = Settings(environment=EnvironmentSettings(name="prod eu/1"))
    j = Journal.for_settings(settings, operator=OPERATOR)
    assert j.path == paths.default_audit_path("prod eu/1")
    assert j.path.parent.parent == paths.state_dir()
    assert not j.path.parent.exists()
    assert j.check_writable() is None
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600
    assert j.path.stat().st_size == 0
    for directory in (j.path.parent, paths.state_dir()):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    j.append({"kind": "note", "text": "hello"})
    assert stat.S_IMODE(j.path.stat().st_mode) == 0o600

    custom = Settings(audit=AuditSettings(path=str(tmp_path / "elsewhere" / "audit.jsonl")))
    assert Journal.for_settings(custom, operator=OPERATOR).path == tmp_path / "elsewhere" / "audit.jsonl"


def test_append_creates_missing_directories_itself(tmp_path: Path) -> None:
    j = journal(tmp_path / "a" / "b" / "j.jsonl")
    j.record_note("first")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert len(j.read().events) == 1


class Tier(enum.Enum):
    DESTRUCTIVE = "destructive"


@dataclass(frozen=True)
class Pid:
    pid: int
    query: str


def test_values_that_are_not_json_are_recorded_readably(tmp_path: Path) -> None:
    j = journal(tmp_path / "j.jsonl")
    written = j.append(action(tier=Tier.DESTRUCTIVE, target=[Pid(42, "select 1")],
                              params={"at": T0, "path": tmp_path, "codes": {30007, 21610}, "ratio": float("nan"),
                                      "api_key": "k-123456", "source": Secret.env("SOME_VAR_NAME")}))
    assert written["tier"] == "destructive"
    assert written["target"] == [{"pid": 42, "query": "select 1"}]
    assert written["params"]["at"] == "2026-11-27T03:00:00.000Z"
    assert written["params"]["path"] == str(tmp_path)
    assert written["params"]["codes"] == [21610, 30007]
    assert written["params"]["ratio"] == "nan"
    assert written["params"]["api_key"] == "***"  # a key named like a credential is masked whatever it holds
    assert written["params"]["source"] == "<secret from env SOME_VAR_NAME>"  # where from, never the value


def test_one_physical_line_per_event_whatever_the_text(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = journal(path)
    hostile = "a\nb\rc\u2028d\u2029e\x85f\x9b31mg\x1b[2Jh\x7fi\udcffj ünï"
    written = j.record_note(hostile)
    raw = path.read_bytes()
    assert raw.count(b"\n") == 1
    text = raw.decode("utf-8")
    assert text.splitlines() == [text.rstrip("\n")]
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", text.rstrip("\n"))
    assert "ünï" in text  # ensure_ascii=False: readable with cat/jq
    assert written["text"] == hostile
    assert j.read().events[0]["text"] == hostile


# ------------------------------------------------------------------------------------------- secrets

CANARY = "canary-AUDIT-7f3a9c1e5b"
CANARY_PW = "pw-canary-Q9x2Lm4"
CANARY_ENV = "env-canary-Z8k1Rt6"
CANARY_FILE = "file-canary-H5n3Wc0"


def test_no_secret_reaches_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_TEST_TOKEN", CANARY_ENV)
    secret_file = tmp_path / "token"
    secret_file.write_text(CANARY_FILE + "\n")
    secret_file.chmod(0o600)
    dsn = f"postgresql://postgres.abcdefghijklmnopqrst:{CANARY_PW}@db.abcdefghijklmnopqrst.supabase.co:5432/postgres"
    settings = Settings(
        environment=EnvironmentSettings(name="production"),
        vercel=VercelSettings(project_id="prj_1", token=Secret.env("AUDIT_TEST_TOKEN")),
        supabase=SupabaseSettings(project_ref="abcdefghijklmnopqrst", service_role_key=Secret.literal(CANARY),
                                  database_url=Secret.literal(dsn), access_token=Secret.file(str(secret_file)),
                                  pooler_url=Secret.env("AUDIT_TEST_UNSET_VAR")),
        audit=AuditSettings(path=str(tmp_path / "journal.jsonl")),
    )
    j = Journal.for_settings(settings, operator=OPERATOR)
    assert CANARY not in repr(j) and CANARY not in str(vars(j).get("path"))
    other_dsn = f"postgres://someone:{CANARY_PW}@10.0.0.9:6543/postgres"
    returned = j.append(action(
        action="supabase.restart", target="abcdefghijklmnopqrst",
        params={"note": f"using key {CANARY}", "token": "anything", "database_url": dsn, "dsn": "x",
                "nested": [{"headers": {"Authorization": f"Bearer {CANARY_ENV}"}}, f"pw={CANARY_PW}"],
                f"key-{CANARY}": 1},
        preview=f"Restart project abcdefghijklmnopqrst\nwith {CANARY} via {other_dsn}\nfile {CANARY_FILE}",
        typed="abcdefghijklmnopqrst",
        outcome="failed",
        error=f"connection to {dsn} failed: password {CANARY_PW} rejected; token={CANARY_ENV}",
        result={"stdout": f"SUPABASE_SERVICE_ROLE_KEY={CANARY}", "api_key": CANARY},
    ))
    j.record_manual_step(step="rotate", outcome="done", reason=f"rotated from {CANARY} to a new key")
    raw = (tmp_path / "journal.jsonl").read_bytes()
    for canary in (CANARY, CANARY_PW, CANARY_ENV, CANARY_FILE):
        assert canary.encode() not in raw, canary
        assert canary not in json.dumps(returned)
    # What is not secret survives, so the record is still useful.
    assert b"abcdefghijklmnopqrst" in raw and b"10.0.0.9:6543" in raw
    assert returned["params"]["token"] == "***" and returned["params"]["dsn"] == "***"
    assert returned["preview"].startswith("Restart project abcdefghijklmnopqrst\nwith *** via postgres://someone:***@")
    assert returned["typed"] == "abcdefghijklmnopqrst"
    assert len(j.read().events) == 2


def test_dsn_passwords_and_tokens_masked_without_settings(tmp_path: Path) -> None:
    j = journal(tmp_path / "j.jsonl", secrets=["x"])  # too short to be a credential: not masked everywhere
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJlLXZhbHVl"
    written = j.record_note(f"tried postgresql://app:hunter2secret@db:5432/x with {jwt} and sbp_{'a1' * 20} fix")
    assert written["text"] == "tried postgresql://app:***@db:5432/x with *** and *** fix"


def test_a_rotated_secret_file_is_masked_too(tmp_path: Path) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text("old-key-value-1234")
    secret_file.chmod(0o600)
    settings = Settings(vercel=VercelSettings(project_id="p", token=Secret.file(str(secret_file))),
                        audit=AuditSettings(path=str(tmp_path / "j.jsonl")))
    j = Journal.for_settings(settings, operator=OPERATOR)
    secret_file.write_text("new-key-value-5678")
    written = j.record_note("old-key-value-1234 then new-key-value-5678")
    assert written["text"] == "*** then ***"


# ------------------------------------------------------------------------------------------- concurrency

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from opsconsole.audit import Journal, Operator
    path, writer, count, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    j = Journal(path, environment="drill", operator=Operator(user=f"w{writer}"))
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    for seq in range(count):
        payload = (f"<w{writer}s{seq}>" * 900)[:8192]
        j.append({"kind": "note", "text": payload, "writer": writer, "seq": seq})
""")


def test_concurrent_writers_produce_valid_jsonl(tmp_path: Path) -> None:
    path, go = tmp_path / "shared.jsonl", tmp_path / "go"
    writers, count = 6, 300
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(count), str(go)], env=env)
             for w in range(writers)]
    time.sleep(0.3)  # let every interpreter start, then release them together
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=110) == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert len(lines) == writers * count
    seen = set()
    for line in lines:
        event = json.loads(line)  # every line is a complete JSON object
        writer, seq = event["writer"], event["seq"]
        assert event["text"] == (f"<w{writer}s{seq}>" * 900)[:8192]
        seen.add((writer, seq))
    assert len(seen) == writers * count
    read = Journal(path, environment="drill", operator=OPERATOR).read()
    assert len(read.events) == writers * count and read.malformed == 0


# ------------------------------------------------------------------------------------------- failures


def test_unwritable_journal_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "some_file"
    blocker.write_text("not a directory")
    path = blocker / "journal.jsonl"
    j = journal(path)
    reason = j.check_writable()
    assert reason is not None
    assert str(path) in reason and "Not a directory" in reason
    assert "[audit] path" in reason and "permissions" in reason
    with pytest.raises(JournalError) as info:
        j.append(action())
    message = str(info.value)
    assert str(path) in message and "Not a directory" in message and "[audit] path" in message
    assert "Mutating actions are stopped" in message and "checks keep running" in message
    assert info.value.path == path
    assert blocker.read_text() == "not a directory"
    # Reading says so too (a timeline must not look empty because the path is wrong).
    with pytest.raises(JournalError, match="cannot read"):
        j.read()


def test_unwritable_journal_that_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.mkdir()
    j = journal(path)
    reason = j.check_writable()
    assert reason is not None and "Is a directory" in reason
    with pytest.raises(JournalError, match="Is a directory"):
        j.record_note("x")
    with pytest.raises(JournalError, match="cannot read"):
        j.read()


def test_a_failed_flush_is_an_error_and_leaves_no_half_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.jsonl"
    j = journal(path)
    j.record_note("before")
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(JournalError, match="Input/output error"):
        j.record_note("lost")
    assert path.read_bytes() == before


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    os.mkfifo(path)
    j = journal(path)
    reason = j.check_writable()
    assert reason is not None and str(path) in reason


def test_malformed_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    j = journal(path)
    j.record_note("one")
    with path.open("ab") as fh:
        fh.write(b"not json\n[1, 2]\n{\"kind\": \"note\"}\n{\"ts\": \"yesterday\"}\n\xff\xfe\n\n")
        fh.write(b'{"ts": "2026-11-27T03:00:00.000Z", "kind": "no')  # a torn line, no newline
    j.record_note("two")  # starts on its own line, so it survives the torn one
    got = j.read()
    assert [e["text"] for e in got.events] == ["one", "two"]
    assert got.malformed == 6


# ------------------------------------------------------------------------------------------- durations, since


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
    ("1d", timedelta(days=1)), ("1h30m", timedelta(hours=1, minutes=30)), (" 2H ", timedelta(hours=2)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)), ("1w", timedelta(weeks=1)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-2h", "30m1h", "1.5h", "0m", "2 hours", "99999999999d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_since_filters_the_journal_and_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    clock = Clock()
    j = journal(path, clock=clock)
    for hours, text in ((0, "early"), (2, "middle"), (3, "late")):
        clock.now = T0 + timedelta(hours=hours)
        j.record_note(text)
    assert [e["text"] for e in j.read(since=T0 + timedelta(hours=2)).events] == ["middle", "late"]
    naive = (T0 + timedelta(hours=2, minutes=30)).replace(tzinfo=None)
    assert [e["text"] for e in j.read(since=naive).events] == ["late"]

    settings = Settings(audit=AuditSettings(path=str(path)))
    now = T0 + timedelta(hours=4, minutes=30)
    md = render_timeline(settings, since="2h", fmt="md", now=now)
    assert "late" in md and "middle" not in md and "early" not in md
    assert "2026-11-27 05:30:00 to 2026-11-27 07:30:00 UTC" in md
    everything = render_timeline(settings, since=None, fmt="jsonl", now=now)
    assert [json.loads(line)["text"] for line in everything.splitlines()] == ["early", "middle", "late"]
    with pytest.raises(ValueError, match="format"):
        render_timeline(settings, since=None, fmt="html")
    with pytest.raises(ValueError, match="duration"):
        render_timeline(settings, since="yesterday", fmt="md")


def test_timeline_of_a_missing_journal_is_empty(tmp_path: Path) -> None:
    settings = Settings(audit=AuditSettings(path=str(tmp_path / "nothing.jsonl")))
    md = render_timeline(settings, since=None, fmt="md", now=T0)
    assert "No events in this window." in md and "everything recorded up to 2026-11-27 03:00:00 UTC" in md
    assert "nothing.jsonl (no journal there yet)" in md
    assert render_timeline(settings, since="1h", fmt="jsonl", now=T0) == ""
    assert not (tmp_path / "nothing.jsonl").exists()


# ------------------------------------------------------------------------------------------- markdown


def _unescaped_pipes(line: str) -> int:
    count, backslashes = 0, 0
    for ch in line:
        if ch == "|" and backslashes % 2 == 0:
            count += 1
        backslashes = backslashes + 1 if ch == "\\" else 0
    return count


def test_markdown_timeline_with_hostile_text(tmp_path: Path) -> None:
    clock = Clock()
    j = journal(tmp_path / "j.jsonl", clock=clock)
    hostile = "a|b `code` [bold]red[/bold] \x1b[31mESC\x1b[0m \\| <script> *x* _y_\nsecond line"
    j.append(action(title=hostile, target=f"t|{hostile}", outcome="refused", error=f"stale|{hostile}",
                    preview=f"````\n{hostile}\n```", typed=hostile, params={"why": hostile}))
    clock.now += timedelta(minutes=5)
    j.append(action(outcome="failed", error="HTTP 500"))
    clock.now += timedelta(minutes=1)
    j.record_manual_step(step=hostile, outcome="skipped", reason=hostile)
    clock.now += timedelta(minutes=1)
    j.record_note(hostile)
    j.append(action(outcome="ok"))
    md = timeline_markdown(j.read().events, environment="prod|`x`", since=None, now=T0 + timedelta(hours=1))

    assert "\x1b" not in md and "␛[31m" in md
    inline = md.split("## Action details")[0]  # before the fenced previews, all text is escaped
    assert "[bold]" not in inline and "\\[bold\\]" in inline
    assert "`code`" not in inline and "<script>" not in inline
    lines = md.splitlines()
    assert lines[0] == "# Incident timeline: prod\\|\\`x\\`"
    header = lines.index("| Time (UTC) | Operator | What | Target | Outcome | Error / reason |")
    rows = []
    for line in lines[header:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) == 2 + 5
    assert all(_unescaped_pipes(row) == 7 for row in rows)
    assert "| 2026-11-27 03:00:00 | alice (sudo from bob) from 203.0.113.7 on bastion-1 |" in rows[2]
    assert rows[2].endswith("| refused | stale\\|a\\|b \\`code\\` \\[bold\\]red\\[/bold\\] ␛\\[31mESC␛\\[0m "
                            "\\\\\\| \\<script\\> \\*x\\* \\_y\\_ second line |")

    # A real CommonMark + GFM-table parser agrees: 6 cells a row, and untrusted text formed no code, link,
    # HTML or emphasis (the only markup in the table is the one we wrote).
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(md.split("## Impact")[0])
    assert sum(t.type == "tr_open" for t in tokens) == 1 + 5
    kinds = {child.type for t in tokens if t.type == "inline" for child in (t.children or [])}
    assert kinds <= {"text", "softbreak"}, kinds
    texts = ["".join(c.content for c in t.children or []) for t in tokens if t.type == "inline"]
    assert f"stale|{printable(hostile, single_line=True)}" in texts  # what a reader sees: the text itself

    summary = md.split("## Summary")[1]
    assert "- Actions: 3 (failed 1, ok 1, refused 1)" in summary
    assert "- Manual steps: 1 (skipped 1)" in summary and "- Notes: 1" in summary
    assert "### Refused actions" in summary and "### Failures" in summary and "HTTP 500" in summary
    assert "### Skipped manual steps" in summary
    # The preview keeps its lines in a fence longer than any backtick run inside it.
    assert "`````text\n````\na|b `code`" in md


def test_timeline_entries_and_jsonl_are_time_ordered(tmp_path: Path) -> None:
    late = {"ts": "2026-11-27T04:00:00.000Z", "kind": "note", "text": "late", "operator": {"user": "x"}}
    early = {"ts": "2026-11-27T03:00:00.000Z", "kind": "manual_step", "step": "s", "outcome": "done",
             "reason": "ok\x1b]0;title\x07", "operator": {"user": "y"}}
    entries = timeline_entries([late, early])
    assert [e.what for e in entries] == ["Manual step: s", "Note: late"]
    assert entries[0].detail == "ok␛]0;title\\x07" and entries[0].operator == "y"
    out = timeline_jsonl([late, early])
    assert [json.loads(line)["ts"] for line in out.splitlines()] == [early["ts"], late["ts"]]
    assert "\x1b" not in out and "\x07" not in out
