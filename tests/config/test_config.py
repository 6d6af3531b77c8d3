"""Configuration: loading, validation (all problems at once), secrets, template, paths."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole import paths
from opsconsole.config import (
    SECTIONS,
    ConfigError,
    ConfigExists,
    ConfigNotFound,
    Problem,
    check_config,
    dump_settings_toml,
    format_problems,
    load_settings,
    read_settings,
    template_text,
    write_config,
    write_template,
)
from opsconsole.settings import RequeueTarget, Secret

CANARY = "canary-S3CRET-value-7f3a9c"
SECRET_ENV_VARS = (
    "VERCEL_TOKEN",
    "SUPABASE_ACCESS_TOKEN",
    "SUPABASE_SERVICE_ROLE_KEY",
    "DATABASE_URL",
    "SUPABASE_POOLER_URL",
    "N8N_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "OPS_TEST_TOKEN",
)

FULL = """
[environment]
name = "staging"
read_only = true

[api]
health_url = "https://api.example.com/health"
timeout_s = 3

[vercel]
api_url = "https://api.vercel.com"
project_id = "prj_abc"
team_id = "team_xyz"
token = { env = "OPS_TEST_TOKEN" }
status_url = "https://www.vercel-status.com"

[supabase]
project_ref = "abcdefghijklmnopqrst"
api_url = ""
management_url = "https://api.supabase.com"
status_url = "https://status.supabase.com"
access_token = { file = "secrets/supabase_pat" }
service_role_key = { env = "SUPABASE_SERVICE_ROLE_KEY" }
database_url = { env = "DATABASE_URL" }
pooler_url = { env = "SUPABASE_POOLER_URL" }

[n8n]
api_url = "https://n8n.example.com/api/v1"
api_key = "n8n-literal-key"
workflows = ["aBc123", "42"]

[twilio]
account_sid = { env = "TWILIO_ACCOUNT_SID" }
auth_token = { env = "TWILIO_AUTH_TOKEN" }
api_url = "https://api.twilio.com"
monitor_url = "https://monitor.twilio.com"

[dlq]
table = "public.dead_letter_messages"
requeue = { kind = "pgmq", queue = "campaign_processing" }
never_requeue_error_codes = [21610, 30004]

[audit]
path = "journal/audit.jsonl"

[checks]
interval_s = 15
timeout_s = 7.5
long_running_s = 120

[ui]
theme = "nord"
"""

MINIMAL = '[environment]\nname = "staging"\n'


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Per-test XDG dirs and no ambient OPSCONSOLE_CONFIG or secret variables."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(paths.CONFIG_ENV_VAR, raising=False)
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.problems


def keys(problems: list[Problem]) -> set[str]:
    return {p.key for p in problems}


def env_config(extra: str) -> str:
    return MINIMAL + "\n" + extra


# --------------------------------------------------------------------------- good configs


def test_full_config_loads_every_field(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg" / "config.toml", FULL)
    s = load_settings(path)
    assert s.source == path
    assert s.environment.name == "staging" and s.environment.read_only is True
    assert s.api is not None and s.api.timeout_s == 3.0 and isinstance(s.api.timeout_s, float)
    assert s.vercel is not None
    assert (s.vercel.project_id, s.vercel.team_id) == ("prj_abc", "team_xyz")
    assert s.vercel.token == Secret.env("OPS_TEST_TOKEN")
    assert s.supabase is not None
    assert s.supabase.project_api_url == "https://abcdefghijklmnopqrst.supabase.co"
    assert s.supabase.access_token is not None and s.supabase.access_token.kind == "file"
    # A relative secret file is relative to the config file, not to the working directory.
    assert s.supabase.access_token.ref == str(tmp_path / "cfg" / "secrets" / "supabase_pat")
    assert s.n8n is not None and s.n8n.workflows == ("aBc123", "42")
    assert s.n8n.api_key.kind == "literal" and s.n8n.api_key.reveal() == "n8n-literal-key"
    assert s.twilio is not None and s.twilio.monitor_url == "https://monitor.twilio.com"
    assert s.dlq is not None
    assert s.dlq.requeue == RequeueTarget(kind="pgmq", target="", queue="campaign_processing")
    assert s.dlq.never_requeue_error_codes == (21610, 30004)
    assert s.audit.path == str(tmp_path / "cfg" / "journal" / "audit.jsonl")
    assert (s.checks.interval_s, s.checks.timeout_s, s.checks.long_running_s) == (15.0, 7.5, 120.0)
    assert s.ui.theme == "nord"


def test_minimal_config_turns_optional_sections_off(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path / "config.toml", MINIMAL))
    assert s.environment.name == "staging" and s.environment.read_only is False
    assert (s.api, s.vercel, s.supabase, s.n8n, s.twilio, s.dlq) == (None,) * 6
    assert s.audit.path == "" and s.ui.theme == ""
    assert s.checks.interval_s == 10.0


def test_defaults_apply_to_keys_left_out(tmp_path: Path) -> None:
    text = env_config(
        '[vercel]\nproject_id = "prj_1"\ntoken = { env = "VERCEL_TOKEN" }\nteam_id = ""\n'
        "[dlq]\n"
        '[supabase]\nproject_ref = "abcdefghijklmnopqrst"\n'
    )
    s = load_settings(write(tmp_path / "c.toml", text))
    assert s.vercel is not None
    assert s.vercel.api_url == "https://api.vercel.com" and s.vercel.team_id is None
    assert s.dlq is not None and s.dlq.requeue == RequeueTarget() and 21610 in s.dlq.never_requeue_error_codes
    assert s.supabase is not None and s.supabase.access_token is None


def test_secret_written_as_subtable_is_accepted(tmp_path: Path) -> None:
    text = env_config(
        '[n8n]\napi_url = "https://n8n.example.com/api/v1"\n[n8n.api_key]\nenv = "N8N_API_KEY"\n'
    )
    s = load_settings(write(tmp_path / "c.toml", text))
    assert s.n8n is not None and s.n8n.api_key == Secret.env("N8N_API_KEY")


# --------------------------------------------------------------------------- bad input


def test_malformed_toml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[environment]\nname = "x"\nread_only = maybe\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(f"{path} line 3, column 13: invalid TOML: Invalid value")
    assert "opsconsole config check" in message
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (3, 13)


def test_malformed_toml_at_end_of_document_still_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", '[environment]\nname = "unterminated')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "line 2" in str(info.value) and "Unterminated string" in str(info.value)


def test_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[environment]\nname = "\xff"\n')
    assert "not UTF-8" in str(problems_of(path)[0])


def test_unknown_key_and_section_suggest_the_right_name(tmp_path: Path) -> None:
    text = env_config('[api]\nhelth_url = "https://x.example"\n[vercell]\nproject_id = "p"\n')
    problems = problems_of(write(tmp_path / "c.toml", text))
    by_key = {p.key: p for p in problems}
    assert 'did you mean "health_url"?' in str(by_key["api.helth_url"])
    assert "did you mean [vercel]?" in str(by_key["[vercell]"])
    assert "api.health_url" in by_key  # the real key is now missing, and that is said too


@pytest.mark.parametrize(
    ("extra", "key", "found"),
    [
        ('[api]\nhealth_url = "https://x.example"\ntimeout_s = "5"\n', "api.timeout_s", 'a string "5"'),
        ('[api]\nhealth_url = "https://x.example"\ntimeout_s = 0\n', "api.timeout_s", "an integer 0"),
        ("[checks]\ninterval_s = -2.5\n", "checks.interval_s", "a number -2.5"),
        ("[checks]\nlong_running_s = nan\n", "checks.long_running_s", "nan"),
        ("[checks]\ntimeout_s = true\n", "checks.timeout_s", "a boolean true"),
        (
            '[n8n]\napi_url = "https://n.example"\napi_key = "k"\nworkflows = "all"\n',
            "n8n.workflows",
            "a string",
        ),
        (
            '[n8n]\napi_url = "https://n.example"\napi_key = "k"\nworkflows = [12]\n',
            "n8n.workflows[0]",
            "integer",
        ),
        (
            '[dlq]\nnever_requeue_error_codes = [21610, "30004"]\n',
            "dlq.never_requeue_error_codes[1]",
            "string",
        ),
        ("[dlq]\nnever_requeue_error_codes = 21610\n", "dlq.never_requeue_error_codes", "an integer"),
        ("[ui]\ntheme = 3\n", "ui.theme", "an integer 3"),
        ('api = "https://x.example"\n', "api", "a string"),
    ],
)
def test_wrong_types_name_the_key_and_what_was_found(
    tmp_path: Path, extra: str, key: str, found: str
) -> None:
    # Top-level keys must come before the first table, so put `extra` first when it has no header.
    text = extra + MINIMAL if not extra.startswith("[") else env_config(extra)
    problems = problems_of(write(tmp_path / "c.toml", text))
    match = [p for p in problems if p.key == key]
    assert match, problems
    assert found in match[0].found
    assert str(match[0]).startswith(f"{tmp_path / 'c.toml'}: {key}: expected ")


def test_read_only_as_string_is_a_type_error(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path / "c.toml", '[environment]\nname = "x"\nread_only = "yes"\n'))
    assert problem.key == "environment.read_only" and "without quotes" in problem.hint


@pytest.mark.parametrize("name", ['""', '"   "', '"a\\u001bb"'])
def test_environment_name_must_be_non_empty_printable(tmp_path: Path, name: str) -> None:
    problems = problems_of(write(tmp_path / "c.toml", f"[environment]\nname = {name}\n"))
    assert keys(problems) == {"environment.name"}


@pytest.mark.parametrize("text", ["", '[api]\nhealth_url = "https://x.example"\n'])
def test_environment_section_is_required(tmp_path: Path, text: str) -> None:
    assert "[environment]" in keys(problems_of(write(tmp_path / "c.toml", text)))


@pytest.mark.parametrize(
    "url",
    ["ftp://api.example.com/health", "api.example.com/health", "https://", "http://[::1", "https://h:99999/"],
)
def test_urls_must_be_http_or_https_with_a_host(tmp_path: Path, url: str) -> None:
    problems = problems_of(write(tmp_path / "c.toml", env_config(f'[api]\nhealth_url = "{url}"\n')))
    assert keys(problems) == {"api.health_url"}
    assert "http:// or https:// URL" in problems[0].expected


def test_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    text = env_config(f'[api]\nhealth_url = "https://ops:{CANARY}@api.example.com/health"\n')
    problems = problems_of(write(tmp_path / "c.toml", text))
    assert keys(problems) == {"api.health_url"}
    assert CANARY not in str(problems[0])


def test_plain_http_to_a_remote_api_warns_but_loopback_does_not(tmp_path: Path) -> None:
    text = env_config(
        '[n8n]\napi_url = "http://n8n.example.com/api/v1"\napi_key = { env = "N8N_API_KEY" }\n'
        '[vercel]\napi_url = "http://127.0.0.1:8123"\nproject_id = "p"\ntoken = { env = "VERCEL_TOKEN" }\n'
    )
    _, warnings = read_settings(write(tmp_path / "c.toml", text))
    assert keys(warnings) == {"n8n.api_url"}
    assert all(p.severity == "warning" for p in warnings)


@pytest.mark.parametrize(
    "ref", ["ABCDEFGHIJKLMNOPQRST", "abcdefghijklmnopqrs", "abcdefghijklmnopqrstu", "abcdefghij123456789a"]
)
def test_supabase_project_ref_is_20_lowercase_letters(tmp_path: Path, ref: str) -> None:
    problems = problems_of(write(tmp_path / "c.toml", env_config(f'[supabase]\nproject_ref = "{ref}"\n')))
    assert keys(problems) == {"supabase.project_ref"}
    assert "20 lowercase letters" in problems[0].expected and ref in problems[0].found


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ('{ envv = "VERCEL_TOKEN" }', 'did you mean "env"?'),
        ('{ fiel = "/x" }', 'did you mean "file"?'),
        ('{ env = "A", file = "/b" }', "not both"),
        ("{}", ""),
        ("{ env = 5 }", ""),
        ('{ env = "" }', ""),
        ('{ env = "not a name!" }', "not its value"),
        ('{ file = "" }', ""),
        ("12345", ""),
        ("true", ""),
        ('["x"]', ""),
        ('""', ""),
    ],
)
def test_bad_secret_shapes_name_the_key(tmp_path: Path, value: str, hint: str) -> None:
    text = env_config(f'[vercel]\nproject_id = "p"\ntoken = {value}\n')
    problems = problems_of(write(tmp_path / "c.toml", text))
    assert keys(problems) == {"vercel.token"}
    assert hint in problems[0].hint


def test_secret_shaped_number_is_not_echoed(tmp_path: Path) -> None:
    text = env_config('[twilio]\naccount_sid = 987654321987\nauth_token = { env = "TWILIO_AUTH_TOKEN" }\n')
    (problem,) = problems_of(write(tmp_path / "c.toml", text))
    assert "987654321987" not in str(problem)


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ('[vercel]\ntoken = { env = "VERCEL_TOKEN" }\n', {"vercel.project_id"}),
        ("[vercel]\n", {"vercel.project_id", "vercel.token"}),
        ('[vercel]\nproject_id = ""\ntoken = { env = "VERCEL_TOKEN" }\n', {"vercel.project_id"}),
        ('[n8n]\napi_url = "https://n.example/api/v1"\n', {"n8n.api_key"}),
        ('[twilio]\nauth_token = "x"\n', {"twilio.account_sid"}),
        ("[supabase]\n", {"supabase.project_ref"}),
        ("[api]\ntimeout_s = 3\n", {"api.health_url"}),
    ],
)
def test_required_keys_of_a_present_section(tmp_path: Path, extra: str, missing: set[str]) -> None:
    problems = problems_of(write(tmp_path / "c.toml", env_config(extra)))
    assert keys(problems) == missing


@pytest.mark.parametrize(
    ("requeue", "key"),
    [
        ('{ kind = "pgmg", queue = "q" }', "dlq.requeue.kind"),
        ('{ target = "public.q" }', "dlq.requeue.kind"),
        ('{ kind = "pgmq" }', "dlq.requeue.queue"),
        ('{ kind = "table" }', "dlq.requeue.target"),
        ('{ kind = "table", target = "public.q; drop table x" }', "dlq.requeue.target"),
        ('{ kind = "table", target = "public.q", queue = "q" }', "dlq.requeue.queue"),
        ('{ kind = "pgmq", queue = "q", tagret = "x" }', "dlq.requeue.tagret"),
        ('"public.q"', "dlq.requeue"),
    ],
)
def test_dlq_requeue_shape(tmp_path: Path, requeue: str, key: str) -> None:
    problems = problems_of(write(tmp_path / "c.toml", env_config(f"[dlq]\nrequeue = {requeue}\n")))
    assert key in keys(problems)


def test_dlq_table_must_be_an_identifier(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path / "c.toml", env_config('[dlq]\ntable = "x; drop"\n')))
    assert keys(problems) == {"dlq.table"}


def test_empty_never_requeue_list_is_a_warning(tmp_path: Path) -> None:
    settings, warnings = read_settings(
        write(tmp_path / "c.toml", env_config("[dlq]\nnever_requeue_error_codes = []\n"))
    )
    assert settings.dlq is not None and settings.dlq.never_requeue_error_codes == ()
    assert keys(warnings) == {"dlq.never_requeue_error_codes"}


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[environment]
name = ""
read_only = "no"

[api]
health_url = "ftp://x"
timeout_s = -1

[vercel]
project_id = "p"
token = { envv = "VERCEL_TOKEN" }

[supabase]
project_ref = "TooShort"

[dlq]
requeue = { kind = "bogus" }

[checks]
intervall_s = 5
"""
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    expected = {
        "environment.name",
        "environment.read_only",
        "api.health_url",
        "api.timeout_s",
        "vercel.token",
        "supabase.project_ref",
        "dlq.requeue.kind",
        "checks.intervall_s",
    }
    assert keys(info.value.problems) == expected
    lines = str(info.value).splitlines()
    assert len(lines) == len(expected)
    assert all(
        line.startswith(f"{path}: ") and ": expected " in line and ", found " in line for line in lines
    )


# --------------------------------------------------------------------------- missing file


def test_missing_file_offers_init_and_demo(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    with pytest.raises(ConfigNotFound) as info:
        load_settings(path)
    message = str(info.value)
    assert f"no configuration file at {path}" in message
    assert f"opsconsole config init --path {path}" in message
    assert "opsconsole demo" in message
    assert isinstance(info.value, ConfigError) and info.value.problems


def test_missing_default_file_suggests_plain_config_init() -> None:
    with pytest.raises(ConfigNotFound) as info:
        load_settings(paths.default_config_path())
    assert "opsconsole config init\n" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "directory" in str(problems_of(tmp_path)[0])


# --------------------------------------------------------------------------- check_config: secrets & machine


def test_check_reports_unset_env_secret_and_accepts_a_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "c.toml", env_config('[vercel]\nproject_id = "p"\ntoken = { env = "OPS_TEST_TOKEN" }\n')
    )
    (problem,) = check_config(path)
    assert problem.key == "vercel.token" and problem.is_error and "OPS_TEST_TOKEN" in str(problem)
    monkeypatch.setenv("OPS_TEST_TOKEN", "")
    assert "empty" in check_config(path)[0].found
    monkeypatch.setenv("OPS_TEST_TOKEN", CANARY)
    assert check_config(path) == []
    settings = load_settings(path)
    assert settings.vercel is not None and settings.vercel.token.reveal() == CANARY


def test_check_secret_file_resolution_and_permissions(tmp_path: Path) -> None:
    secret_file = write(tmp_path / "secrets" / "token", CANARY + "\n", mode=0o600)
    path = write(
        tmp_path / "c.toml", env_config('[vercel]\nproject_id = "p"\ntoken = { file = "secrets/token" }\n')
    )
    assert check_config(path) == []
    settings = load_settings(path)
    assert settings.vercel is not None and settings.vercel.token.reveal() == CANARY

    secret_file.chmod(0o644)
    (problem,) = check_config(path)
    assert problem.is_error and problem.key == "vercel.token"
    assert "0644" in problem.found and f"chmod 600 {secret_file}" in problem.hint
    assert CANARY not in str(problem)

    secret_file.unlink()
    (problem,) = check_config(path)
    assert problem.found == "no such file"


def test_literal_secret_in_a_world_readable_config_warns(tmp_path: Path) -> None:
    text = env_config(f'[n8n]\napi_url = "https://n8n.example.com/api/v1"\napi_key = "{CANARY}"\n')
    path = write(tmp_path / "c.toml", text, mode=0o644)
    (problem,) = check_config(path)
    assert problem.severity == "warning" and problem.key == "n8n.api_key"
    assert "literal secret in a config file readable by others" in str(problem)
    assert f"chmod 600 {path}" in str(problem) and "env" in str(problem)
    assert CANARY not in str(problem)
    path.chmod(0o600)
    assert check_config(path) == []


def test_database_url_shape_is_checked_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = env_config(
        '[supabase]\nproject_ref = "abcdefghijklmnopqrst"\n'
        'database_url = { env = "DATABASE_URL" }\npooler_url = { env = "SUPABASE_POOLER_URL" }\n'
    )
    path = write(tmp_path / "c.toml", text)
    monkeypatch.setenv("DATABASE_URL", f"mysql://u:{CANARY}@db.example.com/x")
    monkeypatch.setenv("SUPABASE_POOLER_URL", f"postgresql://u:{CANARY}@pooler.example.com:5432/postgres")
    problems = {p.key: p for p in check_config(path)}
    assert problems["supabase.database_url"].is_error
    assert problems["supabase.pooler_url"].severity == "warning" and "6543" in str(
        problems["supabase.pooler_url"]
    )
    assert all(CANARY not in str(p) for p in problems.values())
    monkeypatch.setenv("DATABASE_URL", "host=db.example.com dbname=postgres")  # libpq key=value form
    monkeypatch.setenv("SUPABASE_POOLER_URL", "postgresql://u:p@pooler.example.com:6543/postgres")
    assert check_config(path) == []


def test_check_returns_load_problems_instead_of_raising(tmp_path: Path) -> None:
    assert check_config(tmp_path / "absent.toml")[0].found == "no configuration file here"
    broken = write(tmp_path / "broken.toml", "[environment\n")
    (problem,) = check_config(broken)
    assert problem.line == 1
    bad = write(
        tmp_path / "bad.toml", '[environment]\nname = ""\n[vercel]\ntoken = { env = "VERCEL_TOKEN" }\n'
    )
    found = keys(check_config(bad))
    # load errors and machine checks (the unset variable) together
    assert {"environment.name", "vercel.project_id", "vercel.token"} <= found


def test_audit_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "journal").mkdir()
    path = write(tmp_path / "c.toml", env_config('[audit]\npath = "journal"\n'))
    (problem,) = check_config(path)
    assert problem.key == "audit.path" and "directory" in problem.found


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_audit_directory_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        path = write(tmp_path / "c.toml", env_config('[audit]\npath = "locked/sub/audit.jsonl"\n'))
        (problem,) = check_config(path)
        assert problem.key == "audit.path" and "cannot write" in problem.found
    finally:
        locked.chmod(0o700)


def test_default_audit_location_is_writable() -> None:
    path = write(paths.config_dir() / "config.toml", MINIMAL)
    assert check_config(path) == []


def test_canary_never_in_problems_or_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "tok", CANARY, mode=0o640)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", f"https://{CANARY}")
    text = f"""
[environment]
name = "prod"

[vercel]
project_id = "p"
token = "{CANARY}"

[n8n]
api_url = "https://n8n.example.com/api/v1"
api_key = {{ file = "tok" }}

[twilio]
account_sid = {{ env = "{CANARY}" }}
auth_token = {{ env = "TWILIO_AUTH_TOKEN" }}

[supabase]
project_ref = "abcdefghijklmnopqrst"
service_role_key = "{CANARY}"
database_url = {{ env = "TWILIO_AUTH_TOKEN" }}
"""
    path = write(tmp_path / "c.toml", text, mode=0o644)
    problems = check_config(path)
    assert problems
    everything = "\n".join(
        [str(p) for p in problems] + [repr(p) for p in problems] + [format_problems(problems)]
    )
    assert CANARY not in everything
    with pytest.raises(ConfigError) as info:
        load_settings(path)  # the env name that is not a variable name is an error
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)

    good = write(
        tmp_path / "good.toml", text.replace(f'{{ env = "{CANARY}" }}', '{ env = "TWILIO_AUTH_TOKEN" }')
    )
    settings = load_settings(good)
    assert CANARY not in repr(settings) and CANARY not in str(settings)


# --------------------------------------------------------------------------- template & writing


def test_template_parses_validates_and_mentions_every_key(tmp_path: Path) -> None:
    text = template_text()
    data = tomllib.loads(text)
    assert set(data) == set(SECTIONS)
    for section, section_keys in SECTIONS.items():
        assert set(data[section]) == set(section_keys), section
        assert f"[{section}]" in text
    assert all(isinstance(v, dict) and set(v) == {"env"} for k, v in data["vercel"].items() if k == "token")
    assert 'token = { env = "VERCEL_TOKEN" }' in text
    assert 'requeue = { kind = "table", target = "public.campaign_queue" }' in text
    assert "never_requeue_error_codes = [21610, 30004, 30005, 30006, 30007]" in text
    assert sum(line.startswith("#") for line in text.splitlines()) > 40

    written = write_template(tmp_path / "deep" / "dir" / "config.toml")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    settings, warnings = read_settings(written)
    assert warnings == []
    assert settings.vercel is not None and settings.supabase is not None and settings.dlq is not None
    assert settings.n8n is not None and settings.twilio is not None and settings.api is not None


def test_write_template_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", MINIMAL, mode=0o644)
    with pytest.raises(ConfigExists) as info:
        write_template(path)
    assert "already exists" in str(info.value) and str(path) in str(info.value)
    assert path.read_text() == MINIMAL
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temp file left behind

    write_template(path, force=True)
    assert path.read_text() == template_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_template_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_template(tmp_path / "config.toml")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_config_round_trips_demo_like_data(tmp_path: Path) -> None:
    data = {
        "environment": {"name": "production (demo)", "read_only": False},
        "api": {"health_url": "http://127.0.0.1:4001/health", "timeout_s": 5},
        "vercel": {
            "api_url": "http://127.0.0.1:4002",
            "project_id": "prj_demo",
            "team_id": None,
            "token": "demo-literal-token",
        },
        "n8n": {
            "api_url": "http://127.0.0.1:4003/api/v1",
            "api_key": Secret.env("N8N_API_KEY"),
            "workflows": ("1",),
        },
        "dlq": {"requeue": {"kind": "table", "target": "public.campaign_queue"}},
        "audit": {"path": tmp_path / "audit.jsonl"},
    }
    path = write_config(tmp_path / "demo" / "config.toml", data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings, warnings = read_settings(path)
    assert warnings == []
    assert settings.vercel is not None and settings.vercel.token.reveal() == "demo-literal-token"
    assert settings.vercel.team_id is None
    assert settings.n8n is not None and settings.n8n.api_key == Secret.env("N8N_API_KEY")
    assert settings.audit.path == str(tmp_path / "audit.jsonl")
    # write_config replaces an existing file (the demo regenerates its config each run)
    write_config(path, {"environment": {"name": "again"}})
    assert load_settings(path).environment.name == "again"
    assert tomllib.loads(dump_settings_toml({"a": {"b": None, "c": 1}})) == {"a": {"c": 1}}


def test_format_problems_labels_and_counts(tmp_path: Path) -> None:
    err = Problem("f.toml", "api.timeout_s", "a positive number of seconds", "an integer 0")
    warn = Problem("f.toml", "dlq.x", "", "something odd", severity="warning", hint="fix it")
    out = format_problems([warn, err]).splitlines()
    assert out[0] == "error: f.toml: api.timeout_s: expected a positive number of seconds, found an integer 0"
    assert out[1] == "warning: f.toml: dlq.x: something odd; fix it"
    assert out[2] == "1 error, 1 warning"
    assert format_problems([]) == "no problems found"


# --------------------------------------------------------------------------- paths


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG variables apply on Linux")
def test_paths_follow_xdg_variables_at_call_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert paths.config_dir() == tmp_path / "xdg-config" / "opsconsole"
    assert paths.default_config_path() == tmp_path / "xdg-config" / "opsconsole" / "config.toml"
    assert paths.default_config_path("staging") == tmp_path / "xdg-config" / "opsconsole" / "staging.toml"
    assert paths.user_themes_dir() == tmp_path / "xdg-config" / "opsconsole" / "themes"
    assert paths.state_dir() == tmp_path / "xdg-state" / "opsconsole"
    assert paths.cache_dir() == tmp_path / "xdg-cache" / "opsconsole"
    assert (
        paths.default_audit_path("production")
        == tmp_path / "xdg-state" / "opsconsole" / "audit" / "production.jsonl"
    )
    assert paths.default_audit_path("production (demo)").name == "production_demo.jsonl"
    assert paths.default_audit_path("../../etc/x").parent == paths.state_dir() / "audit"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "elsewhere"))
    assert paths.config_dir() == tmp_path / "elsewhere" / "opsconsole"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG variables apply on Linux")
def test_config_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_dir = tmp_path / "xdg-config" / "opsconsole"
    cli = tmp_path / "cli.toml"
    from_env = tmp_path / "from-env.toml"

    assert paths.explain_config_path(None, None) == (cfg_dir / "config.toml", "default")
    assert paths.explain_config_path(None, "staging") == (cfg_dir / "staging.toml", "--env")
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(from_env))
    assert paths.explain_config_path(None, "staging") == (from_env, "OPSCONSOLE_CONFIG")
    assert paths.resolve_config_path(None, None) == from_env
    assert paths.explain_config_path(cli, "staging") == (cli, "--config")
    assert paths.resolve_config_path(str(cli), None) == cli
    monkeypatch.setenv("OPSCONSOLE_CONFIG", "")
    assert paths.resolve_config_path(None, "staging") == cfg_dir / "staging.toml"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.resolve_config_path("~/ops.toml", None) == tmp_path / "home" / "ops.toml"


@pytest.mark.parametrize("bad", ["../prod", "a/b", "", ".hidden", "x y"])
def test_env_names_cannot_escape_the_config_dir(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid environment name"):
        paths.check_env_name(bad)


def test_config_and_paths_never_import_the_ui() -> None:
    code = (
        "import sys, opsconsole.config, opsconsole.paths; "
        "bad = [m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'rich') or m.startswith('opsconsole.ui')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_problem_text_format() -> None:
    p = Problem("c.toml", "api.timeout_s", "a positive number of seconds", 'a string "5"', hint="unquote it")
    assert (
        str(p)
        == 'c.toml: api.timeout_s: expected a positive number of seconds, found a string "5"; unquote it'
    )


def test_documented_example_is_valid(tmp_path: Path) -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    if not doc.exists():
        pytest.skip("docs/configuration.md not present")
    example = doc.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    toml_text = example.split("```toml\n", 1)[1].split("```", 1)[0]
    settings, warnings = read_settings(write(tmp_path / "c.toml", toml_text))
    assert warnings == [] and settings.environment.name == "production"


def test_check_env_name_works_as_an_argparse_type(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="opsconsole")
    parser.add_argument("--env", type=paths.check_env_name)
    assert parser.parse_args(["--env", "staging"]).env == "staging"
    with pytest.raises(SystemExit):
        parser.parse_args(["--env", "../prod"])
    assert "not a valid environment name" in capsys.readouterr().err


def test_new_keys_log_lines_intervals_migrations_runbooks(tmp_path: Path) -> None:
    from opsconsole.config import ConfigError, load_settings, read_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('[environment]\nname = "x"\n'
                   '[vercel]\nproject_id = "prj_1"\ntoken = { env = "VERCEL_TOKEN" }\nlog_lines = 500\n'
                   '[checks]\nintervals = { "supabase.resources" = 120, db.long_running = 5 }\n'
                   '[migrations]\nrevert_dir = "reverts"\n[runbooks]\ndir = "/srv/runbooks"\n')
    settings = load_settings(cfg)
    assert settings.vercel is not None and settings.vercel.log_lines == 500
    assert settings.checks.interval_for("supabase.resources") == 120
    assert settings.checks.interval_for("db.long_running") == 5  # the unquoted dotted key means the same
    assert settings.checks.interval_for("api.health") == settings.checks.interval_s
    assert settings.migrations.revert_dir == str(tmp_path / "reverts")
    assert settings.runbooks.dir == "/srv/runbooks"
    bare = tmp_path / "bare.toml"
    bare.write_text('[environment]\nname = "x"\n')
    defaults = load_settings(bare)
    assert defaults.checks.interval_for("supabase.resources") == 60  # Supabase: one scrape a minute
    assert defaults.migrations.revert_dir == "" and defaults.runbooks.dir == ""
    bad = tmp_path / "bad.toml"
    bad.write_text('[environment]\nname = "x"\n[vercel]\nproject_id = "p"\ntoken = "t"\nlog_lines = 5\n'
                   '[checks]\nintervals = { "nope" = 1, "api.health" = -1 }\n')
    with pytest.raises(ConfigError) as caught:
        read_settings(bad)
    text = str(caught.value)
    assert "vercel.log_lines: expected a whole number from 100 to 1,000,000" in text
    assert 'checks.intervals.nope: expected a check id such as "supabase.resources"' in text
    assert "checks.intervals.api.health: expected a positive number of seconds" in text
