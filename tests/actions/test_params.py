"""Typed parameters: the same specs read the command line's strings and the console's values."""

from __future__ import annotations

import pytest

from opsconsole.actions.params import (
    ParamError,
    ParamSpec,
    ParamType,
    coerce_params,
    one_of,
    parse_assignments,
)

SPECS = (
    ParamSpec("pids", ParamType.INT_LIST, "backend PIDs", required=True),
    ParamSpec("dry_run", ParamType.BOOL, "rehearse only"),
    ParamSpec("since", ParamType.DURATION, "how far back"),
    ParamSpec("pitr", ParamType.TIMESTAMP, "point in time"),
    ParamSpec("filter", ParamType.DLQ_FILTER, "DLQ filter"),
    ParamSpec("mode", ParamType.STR, "how", choices=("fast", "safe")),
    ParamSpec("names", ParamType.STR_LIST, "names"),
    ParamSpec("digest", ParamType.STR, "set by the console", cli=False),
)


def test_strings_from_the_command_line_become_typed_values() -> None:
    got = coerce_params(SPECS, {"pids": "3,1,4-6", "dry_run": "yes", "since": "1h30m", "pitr": "2026-12-01T03:00:00Z",
                                "filter": "code:30008 age<15m", "mode": "safe", "names": "a, b,,c"}, from_cli=True)
    assert got == {"pids": [3, 1, 4, 5, 6], "dry_run": True, "since": 5400, "pitr": "2026-12-01T03:00:00Z",
                   "filter": "code:30008 age<15m", "mode": "safe", "names": ["a", "b", "c"]}


def test_native_values_pass_unchanged() -> None:
    assert coerce_params(SPECS, {"pids": [42], "dry_run": False, "digest": "abc"}) == {
        "pids": [42], "dry_run": False, "digest": "abc"}


def test_every_problem_is_reported_at_once_with_what_is_valid() -> None:
    got = coerce_params(SPECS, {"pid": "1", "dry_run": "maybe", "since": "soon", "pitr": "2026-12-01T03:00",
                                "filter": "age<zz", "mode": "reckless", "digest": "x"}, from_cli=True)
    assert isinstance(got, ParamError)
    text = got.message
    for needle in ("unknown parameter pid", "dry_run='maybe' is not valid", "since='soon' is not valid",
                   "no time zone", "filter='age<zz' is not valid", "expected one of fast, safe",
                   "unknown parameter digest", "pids is required", "Valid parameters: pids (required"):
        assert needle in text, needle
    assert "digest" not in text.split("Valid parameters:")[1]  # console-only: not offered on the command line


@pytest.mark.parametrize("value", ["", "1,,x", "5-2", True, 3.5])
def test_bad_int_lists_are_refused(value: object) -> None:
    assert isinstance(coerce_params(SPECS, {"pids": value}), ParamError)


def test_rules_across_parameters() -> None:
    specs = (ParamSpec("ids", ParamType.INT_LIST, "ids"), ParamSpec("filter", ParamType.DLQ_FILTER, "f"))
    rules = (one_of("ids", "filter"),)
    assert coerce_params(specs, {"ids": "1"}, rules=rules) == {"ids": [1]}
    both = coerce_params(specs, {"ids": "1", "filter": "30008"}, rules=rules)
    assert isinstance(both, ParamError) and "only one of ids or filter" in both.message
    neither = coerce_params(specs, {}, rules=rules)
    assert isinstance(neither, ParamError) and "give ids or filter" in neither.message


def test_assignments() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    bad = parse_assignments(["a", "=1", "b=1", "b=2"])
    assert isinstance(bad, ParamError) and len(bad.problems) == 3
