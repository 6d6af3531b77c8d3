"""What the widgets show, as pure functions: ages and staleness, latencies, check details, help."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsconsole.ui.format import (
    LEVELS,
    describe_details,
    facts_text,
    freshness,
    label,
    latency_line,
    level,
    slow_latency,
    value_text,
)
from opsconsole.ui.help import help_lines

NOW = datetime(2026, 12, 1, 3, 12, 9, tzinfo=UTC)


def _fresh(age_s: float, interval_s: float = 10, timeout_s: float = 8) -> str:
    return freshness(NOW - timedelta(seconds=age_s), NOW, interval_s=interval_s, timeout_s=timeout_s,
                     stale_after_s=2 * interval_s).note


def test_an_age_appears_only_once_the_next_result_is_overdue() -> None:
    assert _fresh(3) == "" and _fresh(17.9) == ""  # the next answer may still be on its way
    assert _fresh(18.5) == "18s old"  # interval (10) + timeout (8) passed: overdue
    assert _fresh(25) == "STALE 25s"  # two intervals
    assert _fresh(3 * 60 + 5) == "STALE 3m"  # and it coarsens: minutes, then hours
    assert _fresh(2 * 3600 + 65) == "STALE 2h01m"


def test_each_check_is_judged_against_its_own_interval() -> None:
    assert _fresh(45, interval_s=60, timeout_s=8) == ""  # supabase.resources, polled every 60 s
    assert _fresh(70, interval_s=60, timeout_s=8) == "1m old"
    assert _fresh(121, interval_s=60, timeout_s=8) == "STALE 2m"
    assert _fresh(21, interval_s=10, timeout_s=8) == "STALE 21s"


@pytest.mark.parametrize(("ms", "shown"), [(None, ""), (12.0, ""), (999.0, ""), (1000.0, ">1s"), (1999.0, ">1s"),
                                           (2500.0, ">2s"), (12_000.0, ">12s")])
def test_the_strip_shows_a_latency_only_when_slow_in_whole_seconds(ms: float | None, shown: str) -> None:
    assert slow_latency(ms) == shown


def test_latency_line_uses_a_fixed_scale_and_fits_the_width() -> None:
    assert level(10) == LEVELS[0] and level(150) == LEVELS[2] and level(10_000) == LEVELS[-1]
    line = latency_line([40, 150, 3000], 80)
    assert line.startswith("/health ▁▃▇  now 3.0 s")
    assert "median 150 ms · max 3.0 s" in line
    # a new spike does not change how the older bars look (no rescaling)
    assert latency_line([40, 150, 3000, 9000], 80).startswith("/health ▁▃▇█  ")
    narrow = latency_line(list(range(100)), 60)
    assert len(narrow) <= 60
    assert latency_line([], 80) == "/health latency: no data yet"


def test_labels_drop_units_into_the_value() -> None:
    assert label("http_status") == "HTTP status"
    assert label("connect_ms") == "Connect" and value_text("connect_ms", 1531.3) == "1.5 s"
    assert label("expires_in_days") == "Expires in" and value_text("expires_in_days", 5.0) == "5 days"
    assert value_text("cpu_pct", 94.2) == "94 %"
    assert value_text("duration_s", 842.0) == "14m" and value_text("threshold_s", 10.0) == "10 s"
    assert value_text("pitr_enabled", False) == "no"
    assert value_text("created_at", "2026-12-01T20:33:10Z") == "2026-12-01 20:33:10 UTC"
    # counts are grouped, identifiers never are
    assert value_text("waiting", 1680) == "1,680" and value_text("port", 35951) == "35951"
    assert value_text("pid", 123456) == "123456" and value_text("blocked_by", [4242, 4243]) == "4242, 4243"
    assert value_text("degraded_components", []) == "none"


def test_details_become_labelled_facts_and_tables_never_raw_dicts() -> None:
    details = {
        "project_id": "prj_1", "current_id": "dpl_7",
        "current": {"id": "dpl_7", "url": "x.vercel.app", "state": "READY", "sha": "9f8e7d6"},
        "components": {"database": "down", "twilio": "ok"},
        "disk_pct": {"/": 52.0, "/data": 70.0},
        "deployments": [{"id": "dpl_8", "state": "ERROR"}, {"id": "dpl_7", "state": "READY"}],
        "services": {"db": {"status": "ACTIVE_HEALTHY"}, "pooler": {"status": "UNHEALTHY", "error": "timeout"}},
        "message": "[bold]x[/] \x1b[31m",
    }
    facts, tables = describe_details(details)
    text = facts_text(facts)
    assert "Project ID: prj_1" in text
    assert "Current ID" not in text  # said by `current` below
    assert "Current\n  ID: dpl_7\n  URL: x.vercel.app\n  State: READY" in text
    assert "Components: Database down, Twilio ok" in text
    assert "Disk:       / 52 %, /data 70 %" in text
    assert "{" not in text and "=" not in text
    assert "[bold]x[/] ␛[31m" in text and "\x1b" not in text  # literal, escapes defused
    assert [t.title for t in tables] == ["Deployments", "Services"]
    assert tables[0].columns == (("id", "ID"), ("state", "State"))
    assert tables[1].columns == (("name", "Name"), ("status", "Status"), ("error", "Error"))
    assert tables[1].cells(tables[1].rows[1]) == ["pooler", "UNHEALTHY", "timeout"]


def test_help_lists_the_tabs_keys_first_and_filters_as_you_type() -> None:
    entries = [("c", "Cancel query"), ("x", "Terminate"), ("q", "Quit"), ("question_mark", "Help"),
               ("right_square_bracket", "Next page")]
    sections = {"c": "Database tab", "x": "Database tab", "q": "Everywhere", "question_mark": "Everywhere",
                "right_square_bracket": "Database tab"}
    lines = help_lines(entries, sections, {})
    assert lines[0] == "Database tab" and lines[1].split() == ["c", "Cancel", "query"]
    assert "Everywhere" in lines and lines.index("Everywhere") > lines.index("Database tab")
    assert any(line.split()[:1] == ["?"] for line in lines)
    assert any(line.split()[:1] == ["]"] for line in lines)
    filtered = help_lines(entries, sections, {}, "term")
    assert filtered == ["Database tab", filtered[1]] and "Terminate" in filtered[1]
    assert help_lines(entries, sections, {}, "EVERYWHERE")[0] == "Everywhere"  # by section too
    assert help_lines(entries, sections, {}, "zzz") == ["no key matches 'zzz' (Esc clears the filter)"]
