"""Where opsconsole keeps its files, computed on call (never at import).

Computing lazily matters: tests and users change `XDG_CONFIG_HOME`, `XDG_STATE_HOME` or
`OPSCONSOLE_CONFIG` after the module is imported, and the answer must follow them.
All directories come from platformdirs, so Linux honours the XDG variables and macOS and
Windows get their native locations.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Literal, NamedTuple

from platformdirs import user_cache_path, user_config_path, user_state_path

APP_NAME = "opsconsole"
CONFIG_ENV_VAR = "OPSCONSOLE_CONFIG"
"""Environment variable naming the config file; outranked only by `--config`."""

_ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

ConfigSource = Literal["--config", "OPSCONSOLE_CONFIG", "--env", "default"]


class InvalidEnvName(argparse.ArgumentTypeError, ValueError):
    """`--env NAME` that cannot be a file name in the config dir.

    An ArgumentTypeError so `add_argument("--env", type=check_env_name)` prints the message as a
    clean usage error; a ValueError for everyone else.
    """


class ConfigPathChoice(NamedTuple):
    """The config file to use and which rule picked it (for `opsconsole config path`)."""

    path: Path
    source: ConfigSource


def config_dir() -> Path:
    """`user_config_path("opsconsole")`, e.g. `~/.config/opsconsole` on Linux."""
    # appauthor=False: on Windows platformdirs would otherwise nest `opsconsole\opsconsole`.
    return user_config_path(APP_NAME, appauthor=False)


def state_dir() -> Path:
    """`user_state_path("opsconsole")`, e.g. `~/.local/state/opsconsole`; holds the audit journals."""
    return user_state_path(APP_NAME, appauthor=False)


def cache_dir() -> Path:
    """`user_cache_path("opsconsole")`: disposable data (e.g. the demo's database files)."""
    return user_cache_path(APP_NAME, appauthor=False)


def user_themes_dir() -> Path:
    """`<config dir>/themes`: the operator's own theme files, loaded next to the built-in ones."""
    return config_dir() / "themes"


def check_env_name(env: str) -> str:
    """Return `env` if it is usable as `--env NAME`, else raise InvalidEnvName saying why.

    `--env` becomes a file name; a slash or `..` would point outside the config dir.
    """
    if not _ENV_NAME.match(env) or ".." in env:
        raise InvalidEnvName(
            f"--env {env!r} is not a valid environment name: use letters, digits, '.', '_' or '-' "
            f"(it selects {config_dir() / '<NAME>.toml'}); use --config PATH for a file elsewhere"
        )
    return env


def default_config_path(env: str | None = None) -> Path:
    """`<config dir>/config.toml`, or `<config dir>/<NAME>.toml` for `--env NAME`."""
    if env is None:
        return config_dir() / "config.toml"
    return config_dir() / f"{check_env_name(env)}.toml"


def explain_config_path(cli_path: str | os.PathLike[str] | None, env: str | None) -> ConfigPathChoice:
    """The config file and the rule that chose it: `--config` > `OPSCONSOLE_CONFIG` > `--env` > default."""
    if cli_path is not None and str(cli_path) != "":
        return ConfigPathChoice(Path(cli_path).expanduser(), "--config")
    from_env = os.environ.get(CONFIG_ENV_VAR, "").strip()
    if from_env:
        return ConfigPathChoice(Path(from_env).expanduser(), "OPSCONSOLE_CONFIG")
    if env is not None and env != "":
        return ConfigPathChoice(default_config_path(env), "--env")
    return ConfigPathChoice(default_config_path(None), "default")


def resolve_config_path(cli_path: str | os.PathLike[str] | None, env: str | None) -> Path:
    """The config file to read: `--config` > `OPSCONSOLE_CONFIG` > `--env NAME` > `config.toml`."""
    return explain_config_path(cli_path, env).path


def audit_file_name(environment_name: str) -> str:
    """`<environment>.jsonl`, with characters unsafe in a file name replaced by `_`."""
    stem = _UNSAFE_FILE_CHARS.sub("_", environment_name.strip()).strip("._") or "default"
    return f"{stem}.jsonl"


def default_audit_path(environment_name: str) -> Path:
    """`<state dir>/audit/<environment>.jsonl`: one journal per environment, so drills never mix with prod."""
    return state_dir() / "audit" / audit_file_name(environment_name)
