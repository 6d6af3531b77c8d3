"""Reading a config file: the TOML parsed (a syntax error names its line and column), every
section validated in one pass, and every error raised at once in a `ConfigError`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from opsconsole.config.errors import ConfigError, ConfigNotFound, Problem
from opsconsole.config.fields import Reader
from opsconsole.config.schema import build_settings
from opsconsole.settings import Settings

_TOML_POSITION = re.compile(
    r"^(?P<msg>.*?)\s*\(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)
_TOML_HINTS: Final[Mapping[str, str]] = {
    "Invalid value": 'a value is missing or malformed; strings need double quotes, e.g. name = "staging"',
    "Cannot overwrite a value": "a key is set twice",
    "Cannot declare": "a section or key is declared twice",
    "Unterminated string": "a string is missing its closing quote",
    "Expected '=' after a key": "each line must be key = value; a key with spaces needs quotes",
}


def _toml_problem(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    message = str(exc)
    line: int | None = None
    column: int | None = None
    m = _TOML_POSITION.match(message)
    if m:
        message = m.group("msg")
        if m.group("line"):
            line, column = int(m.group("line")), int(m.group("col"))
        else:  # "at end of document": point at the last line
            lines = text.splitlines() or [""]
            line, column = len(lines), len(lines[-1]) + 1
    hint = next((h for prefix, h in _TOML_HINTS.items() if message.startswith(prefix)), "")
    hint = (hint + "; " if hint else "") + "fix it, then run `opsconsole config check`"
    return Problem(str(path), "", "", f"invalid TOML: {message}", "error", hint, line, column)


def _read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or ConfigError/ConfigNotFound saying exactly why not."""

    def fail(found: str, hint: str = "") -> ConfigError:
        return ConfigError([Problem(str(path), "", "", found, hint=hint)])

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigNotFound(path) from None
    except IsADirectoryError:
        raise fail("this is a directory, not a TOML file", "pass the file's path with --config") from None
    except PermissionError:
        raise fail(
            "cannot be read by this user (permission denied)", "check the file's owner and mode"
        ) from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text (invalid byte at offset {exc.start})", "save the file as UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_toml_problem(path, text, exc)]) from None


def parse(path: Path) -> tuple[Settings, Reader]:
    path = Path(path).expanduser()
    data = _read_toml(path)
    reader = Reader(path)
    settings = build_settings(reader, data)
    return settings, reader


def read_settings(path: Path) -> tuple[Settings, list[Problem]]:
    """Settings plus the warnings found while validating; ConfigError if there is any error."""
    settings, reader = parse(path)
    if reader.errors:
        raise ConfigError(reader.errors)
    return settings, [p for p in reader.problems if not p.is_error]


def load_settings(path: Path) -> Settings:
    """Read and validate `path`. Raises ConfigError listing every problem (ConfigNotFound if absent)."""
    return read_settings(path)[0]
