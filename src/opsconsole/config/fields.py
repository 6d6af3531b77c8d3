"""The validator: `Reader` collects every problem of one file, `Section` gives typed access to
one `[section]` table; each getter validates, records what is wrong and returns a usable
default, so one pass finds every problem. Secrets have their own getter in secrets.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from opsconsole.config.errors import MISSING_FOUND, Problem, Severity, describe, quote, suggest
from opsconsole.domain.text import printable
from opsconsole.settings import Secret


class Missing:
    """Marks a key that is absent (distinct from any TOML value)."""


MISSING: Final = Missing()


class Reader:
    """Collects problems for one file; sections report into it and never raise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)
        self.problems: list[Problem] = []
        self.secrets: list[tuple[str, Secret]] = []  # every secret that parsed, for check_config
        self.failed: set[str] = set()  # sections with at least one error

    def add(
        self, key: str, expected: str, found: str, *, hint: str = "", severity: Severity = "error"
    ) -> None:
        self.problems.append(Problem(self.file, key, expected, found, severity, hint))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


class Section:
    """Typed access to one `[section]` table: each getter validates and records problems."""

    def __init__(self, reader: Reader, name: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
        self.r = reader
        self.name = name
        self.table = table
        for key in table:
            if key not in known:
                self.fail(
                    self.key(printable(key, single_line=True, limit=40)),
                    f"one of the keys of [{name}] ({', '.join(known)})",
                    "an unknown key",
                    hint=suggest(key, known),
                )

    @property
    def ok(self) -> bool:
        return self.name not in self.r.failed

    def key(self, key: str) -> str:
        return f"{self.name}.{key}"

    def fail(self, key: str, expected: str, found: str, *, hint: str = "") -> None:
        self.r.failed.add(self.name)
        self.r.add(key, expected, found, hint=hint)

    def warn(self, key: str, expected: str, found: str, *, hint: str = "") -> None:
        self.r.add(key, expected, found, hint=hint, severity="warning")

    def get(self, key: str) -> Any:
        return self.table.get(key, MISSING)

    def has(self, key: str) -> bool:
        return key in self.table

    # -- scalars

    def text(self, key: str, expected: str, *, default: str = "", required: bool = False) -> str:
        """A string. Required keys must be present and non-blank; optional ones may be ""."""
        value = self.get(key)
        if isinstance(value, Missing):
            if required:
                self.fail(self.key(key), expected, MISSING_FOUND)
            return default
        if not isinstance(value, str):
            self.fail(self.key(key), expected, describe(value))
            return default
        if required and not value.strip():
            self.fail(self.key(key), expected, describe(value) if value else "an empty string")
            return default
        return value

    def url(
        self,
        key: str,
        *,
        default: str = "",
        required: bool = False,
        example: str = "",
        carries_credentials: bool = False,
    ) -> str:
        """An http(s) URL. `carries_credentials`: plain http to a non-local host gets a warning."""
        expected = "an http:// or https:// URL" + (f", e.g. {example}" if example else "")
        value = self.text(key, expected, default=default, required=required)
        if not value:
            return value
        try:
            parts = urlsplit(value)
            host = parts.hostname or ""
            _ = parts.port  # raises ValueError on a malformed port
        except ValueError as exc:
            self.fail(self.key(key), expected, f"{quote(value)}, which is not a valid URL ({exc})")
            return default
        if parts.username is not None or parts.password is not None:
            self.fail(
                self.key(key),
                expected + " without user:password@",
                "a URL with credentials in it (not shown)",
                hint="put credentials in the section's secret keys instead",
            )
            return default
        if parts.scheme not in ("http", "https"):
            scheme = f'scheme "{parts.scheme}"' if parts.scheme else "no scheme"
            self.fail(self.key(key), expected, f"{quote(value)} ({scheme})")
            return default
        if not host:
            self.fail(self.key(key), expected, f"{quote(value)} (no host name)")
            return default
        if carries_credentials and parts.scheme == "http" and not is_loopback(host):
            self.warn(
                self.key(key),
                "https:// for a host other than localhost",
                f"{quote(value)}",
                hint="the API token would travel unencrypted",
            )
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if isinstance(value, Missing):
            return default
        if not isinstance(value, bool):
            hint = "write true or false without quotes" if isinstance(value, str) else ""
            self.fail(self.key(key), "true or false", describe(value), hint=hint)
            return default
        return value

    def seconds(self, key: str, default: float) -> float:
        value = self.get(key)
        if isinstance(value, Missing):
            return default
        expected = "a positive number of seconds"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = "write the number without quotes" if isinstance(value, str) else ""
            self.fail(self.key(key), expected, describe(value), hint=hint)
            return default
        if not math.isfinite(value) or value <= 0:
            self.fail(self.key(key), expected, describe(value))
            return default
        return float(value)

    # -- lists

    def str_list(self, key: str, expected_item: str) -> tuple[str, ...]:
        value = self.get(key)
        if isinstance(value, Missing):
            return ()
        if not isinstance(value, list):
            self.fail(self.key(key), f"a list of {expected_item}s", describe(value))
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                hint = 'quote it: "123"' if isinstance(item, int) and not isinstance(item, bool) else ""
                self.fail(f"{self.key(key)}[{i}]", expected_item, describe(item), hint=hint)
            else:
                out.append(item)
        return tuple(out)

    def int_list(self, key: str, expected_item: str, default: tuple[int, ...]) -> tuple[int, ...]:
        value = self.get(key)
        if isinstance(value, Missing):
            return default
        if not isinstance(value, list):
            self.fail(self.key(key), f"a list of {expected_item}s", describe(value))
            return default
        out: list[int] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or item <= 0:
                hint = "write the number without quotes" if isinstance(item, str) else ""
                self.fail(f"{self.key(key)}[{i}]", expected_item, describe(item), hint=hint)
            else:
                out.append(item)
        return tuple(out)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def relative_to_config(config_path: Path, value: str) -> Path:
    """`~` expanded; a relative path is taken relative to the config file's directory."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (config_path.parent / p).absolute()
