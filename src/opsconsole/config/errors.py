"""What is wrong with a config file, and how it is said: `Problem` (file, key, expected, found,
hint; never a secret's value), the exceptions that carry them, and how a raw TOML value is
described in a message.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal

from opsconsole import paths
from opsconsole.domain.text import printable

Severity = Literal["error", "warning"]
MISSING_FOUND = "nothing (the key is missing)"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file. Its text never contains a secret's value.

    `str()` is `file: key: expected X, found Y` (plus `; hint`). When `expected` is empty the
    problem is a free-form sentence in `found` (e.g. invalid TOML, a permissions warning).
    """

    file: str
    key: str
    expected: str
    found: str
    severity: Severity = "error"
    hint: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f" line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        head = f"{where}: {self.key}: " if self.key else f"{where}: "
        body = f"expected {self.expected}, found {self.found}" if self.expected else self.found
        return head + body + (f"; {self.hint}" if self.hint else "")


class ConfigError(Exception):
    """The config cannot be used. `problems` lists every error; `str()` shows one per line."""

    def __init__(self, problems: Sequence[Problem], message: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        self._message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self._message is not None:
            return self._message
        return "\n".join(str(p) for p in self.problems)


class ConfigNotFound(ConfigError):
    """There is no file at the path; the message tells a first-time user what to run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        init = "opsconsole config init"
        if _same_path(path, _default_config_path_or_none()):
            init_cmd = init
        else:
            init_cmd = f"{init} --path {shlex.quote(str(path))}"
        message = (
            f"no configuration file at {path}\n"
            f"  {init_cmd}\n"
            f"      writes a commented template there (mode 0600) for you to fill in\n"
            f"  opsconsole demo\n"
            f"      tries the console on the embedded demo environment, no configuration needed"
        )
        problem = Problem(
            file=str(path),
            key="",
            expected="",
            found="no configuration file here",
            hint=f"run `{init_cmd}` to write a template, or `opsconsole demo` to try the console",
        )
        super().__init__([problem], message)


class ConfigExists(ConfigError):
    """`write_template` refused to overwrite an existing file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        message = (
            f"{path} already exists; not overwriting it. Check it with `opsconsole config check`, "
            f"or move it away first to write a fresh template there"
        )
        problem = Problem(str(path), "", "", "the file already exists; not overwriting it")
        super().__init__([problem], message)


def _default_config_path_or_none() -> Path | None:
    try:
        return paths.default_config_path(None)
    except Exception:  # platformdirs cannot fail in practice; a message must never crash
        return None


def _same_path(a: Path, b: Path | None) -> bool:
    if b is None:
        return False
    return os.path.abspath(a.expanduser()) == os.path.abspath(b.expanduser())


# --------------------------------------------------------------------------- describing values


def kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if value == "" else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return "a date/time"
    return type(value).__name__


def quote(text: str) -> str:
    return '"' + printable(text, single_line=True, limit=60) + '"'


def describe(value: object) -> str:
    """A non-secret value as shown in a problem: its TOML type and (short) value."""
    if isinstance(value, bool):
        return f"a boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{kind_of(value)} {value}"
    if isinstance(value, str):
        return "an empty string" if value == "" else f"a string {quote(value)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return describe_table(value)
    return kind_of(value)


def describe_table(value: Mapping[str, object]) -> str:
    if not value:
        return "an empty table"
    names = ", ".join(printable(k, single_line=True, limit=30) for k in value)
    return f"a table with key{'s' if len(value) != 1 else ''} {names}"


def suggest(word: str, choices: Iterable[str], fmt: str = '"{}"') -> str:
    import difflib  # only when there is a typo to explain

    match = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f"did you mean {fmt.format(match[0])}?" if match else ""
