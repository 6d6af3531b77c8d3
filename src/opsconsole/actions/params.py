"""Typed action parameters, declared once per action and read the same way everywhere.

An action lists its parameters as `ParamSpec`s. The same specs check what the console passes
(native values: a list of PIDs), what a runbook file says (TOML values) and what
`opsconsole action ... --param KEY=VALUE` typed (strings): `coerce_params` turns any of them
into the plain values the action expects, or into one `ParamError` naming every problem, the
valid names and what each expects. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from opsconsole.domain.text import printable

MAX_LIST_ITEMS = 100_000
MAX_TEXT = 10_000


class ParamType(enum.StrEnum):
    INT = "int"
    INT_LIST = "int_list"  # 1,2,3 (ranges 4-7 allowed on the command line)
    STR = "str"
    STR_LIST = "str_list"  # a,b,c
    BOOL = "bool"  # true/false, yes/no, 1/0, on/off
    DURATION = "duration"  # 90s, 15m, 2h, 1d, 1h30m -> seconds (int)
    TIMESTAMP = "timestamp"  # ISO 8601 with a zone, e.g. 2026-12-01T03:00:00Z -> str (normalised, UTC)
    DLQ_FILTER = "dlq_filter"  # the Twilio DLQ tab's `/` syntax, checked by its parser


_TYPE_HELP = {
    ParamType.INT: "an integer",
    ParamType.INT_LIST: "integers separated by commas, e.g. 1,2,3 or a range 4-7",
    ParamType.STR: "text",
    ParamType.STR_LIST: "values separated by commas",
    ParamType.BOOL: "true or false",
    ParamType.DURATION: "a duration such as 90s, 15m, 2h or 1d",
    ParamType.TIMESTAMP: "an ISO 8601 time with a zone, e.g. 2026-12-01T03:00:00Z",
    ParamType.DLQ_FILTER: "a filter in the DLQ tab's / syntax, e.g. 'code:30008 age<1h'",
}


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One parameter: its name, type, whether it is required, and what it means (for help)."""

    name: str
    type: ParamType
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = MAX_TEXT  # for str: longer values are refused
    cli: bool = True  # False: set by the console only (e.g. a digest it computed); refused from the CLI

    @property
    def expects(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return _TYPE_HELP[self.type]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type.value, "required": self.required, "help": self.help,
                "expects": self.expects, **({"choices": list(self.choices)} if self.choices else {})}


@dataclass(frozen=True, slots=True)
class ParamRule:
    """A rule across parameters: `check(values)` returns the problem, or None."""

    describe: str
    check: Callable[[Mapping[str, Any]], str | None]


def one_of(*names: str) -> ParamRule:
    """Exactly one of `names` must be given."""
    joined = " or ".join(names)

    def check(values: Mapping[str, Any]) -> str | None:
        given = [n for n in names if n in values]
        if not given:
            return f"give {joined}"
        if len(given) > 1:
            return f"give only one of {joined} (got {', '.join(given)})"
        return None

    return ParamRule(f"exactly one of {joined}", check)


@dataclass(frozen=True, slots=True)
class ParamError:
    """Why parameters were refused: every problem at once, plus what is valid."""

    problems: tuple[str, ...]
    specs: tuple[ParamSpec, ...] = ()
    rules: tuple[ParamRule, ...] = field(default=())

    @property
    def message(self) -> str:
        text = "; ".join(self.problems)
        return f"{text}. Valid parameters: {describe_params(self.specs, self.rules)}"


def describe_params(specs: Sequence[ParamSpec], rules: Sequence[ParamRule] = ()) -> str:
    """`pids (required, integers separated by commas…): the backend PIDs; …` for error messages."""
    if not specs:
        return "none"
    parts = [f"{s.name} ({'required, ' if s.required else ''}{s.expects}): {s.help}" for s in specs if s.cli]
    text = "; ".join(parts)
    if rules:
        text += " — " + "; ".join(r.describe for r in rules)
    return text


def parse_assignments(pairs: Sequence[str]) -> dict[str, str] | ParamError:
    """`["pids=1,2", "reason=spam"]` (the command line's `--param KEY=VALUE`) as a dict."""
    out: dict[str, str] = {}
    problems: list[str] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--param {printable(pair, single_line=True, limit=60)!r} is not KEY=VALUE")
            continue
        if key in out:
            problems.append(f"parameter {printable(key, single_line=True, limit=40)} is given twice")
            continue
        out[key] = value
    return ParamError(tuple(problems)) if problems else out


_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_INT = re.compile(r"[+-]?\d{1,18}")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError("not an integer")


def _strict_int(value: Any) -> int:
    """An element of a native list: an int, not its text (the console and TOML pass real ints)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{printable(repr(value), single_line=True, limit=30)} is not an integer")
    return value


def _int_list(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        items = [_strict_int(v) for v in value]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, str):
        items = []
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            low, dash, high = part.partition("-")
            if dash and low.strip().isdigit() and high.strip().isdigit():
                a, b = int(low), int(high)
                if b < a or b - a >= MAX_LIST_ITEMS:
                    raise ValueError(f"bad range {part}")
                items.extend(range(a, b + 1))
            else:
                items.append(_int(part))
            if len(items) > MAX_LIST_ITEMS:
                break
    else:
        raise ValueError("not a list of integers")
    if not items:
        raise ValueError("empty list")
    if len(items) > MAX_LIST_ITEMS:
        raise ValueError(f"more than {MAX_LIST_ITEMS:,} items")
    return items


def _str_list(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    elif isinstance(value, str):
        items = [p.strip() for p in value.split(",")]
    else:
        raise ValueError("not a list")
    items = [i for i in items if i]
    if not items:
        raise ValueError("empty list")
    return items


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("not true or false")


def _duration(value: Any) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = int(value)
    elif isinstance(value, str):
        from opsconsole.audit import parse_duration

        seconds = int(parse_duration(value).total_seconds())
    else:
        raise ValueError("not a duration")
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _timestamp(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ValueError("not an ISO 8601 time") from None
    else:
        raise ValueError("not a time")
    if moment.tzinfo is None:
        raise ValueError("no time zone (add Z for UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dlq_filter(value: Any) -> str:
    from opsconsole.domain.dlq import DlqError, parse_filter

    text = str(value)
    parsed = parse_filter(text)
    if isinstance(parsed, DlqError):
        raise ValueError(parsed.message)
    return text


def _text(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError("not text")
    return str(value)


_LISTS = frozenset({ParamType.INT_LIST, ParamType.STR_LIST})

_COERCE: dict[ParamType, Callable[[Any], Any]] = {
    ParamType.INT: _int,
    ParamType.INT_LIST: _int_list,
    ParamType.STR: _text,
    ParamType.STR_LIST: _str_list,
    ParamType.BOOL: _bool,
    ParamType.DURATION: _duration,
    ParamType.TIMESTAMP: _timestamp,
    ParamType.DLQ_FILTER: _dlq_filter,
}


def coerce_params(specs: Sequence[ParamSpec], raw: Mapping[str, Any], *, rules: Sequence[ParamRule] = (),
                  from_cli: bool = False) -> dict[str, Any] | ParamError:
    """`raw` (strings from the command line, or native values) checked against `specs`.

    Unknown names, bad values, missing required ones and broken rules are all reported at once.
    """
    by_name = {s.name: s for s in specs}
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in raw.items():
        shown = printable(str(name), single_line=True, limit=40)
        spec = by_name.get(name)
        if spec is None or (from_cli and not spec.cli):
            problems.append(f"unknown parameter {shown}")
            continue
        if not spec.required and spec.type in _LISTS and value in ("", [], ()):
            continue  # an empty optional list is the same as none given
        try:
            coerced = _COERCE[spec.type](value)
        except ValueError as exc:
            got = printable(str(value), single_line=True, limit=60)
            problems.append(f"{shown}={got!r} is not valid ({exc}): expected {spec.expects}")
            continue
        if spec.type is ParamType.STR and len(coerced) > spec.max_len:
            problems.append(f"{shown} is longer than {spec.max_len:,} characters")
            continue
        if spec.choices and str(coerced) not in spec.choices:
            problems.append(f"{shown}={printable(str(value), single_line=True, limit=60)!r}: expected {spec.expects}")
            continue
        out[name] = coerced
    for spec in specs:
        if spec.required and spec.name not in raw:
            problems.append(f"{spec.name} is required ({spec.expects})")
    if not problems:
        for rule in rules:
            problem = rule.check(out)
            if problem:
                problems.append(problem)
    if problems:
        return ParamError(tuple(problems), tuple(specs), tuple(rules))
    return out
