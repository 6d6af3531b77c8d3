"""The kernel judges a preview's age against each check's own interval ([checks] intervals).

`[actions] max_preview_age_s` always applies; an action whose preview is built on live checks'
data (`checks = (...)`) is also refused once that data is older than the checks' staleness limit
(two of each check's own intervals), the rule the badges and cards use. No database is needed:
these actions are reversible (no operator lock) and the journal is a file in tmp_path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsconsole.actions.kernel import ActionKernel
from opsconsole.actions.model import (
    Confirmation,
    Outcome,
    OutcomeStatus,
    Preview,
    Refusal,
    RefusalReason,
    RiskTier,
)
from opsconsole.audit import Journal, Operator
from opsconsole.settings import AuditSettings, ChecksSettings, EnvironmentSettings, Settings

T0 = datetime(2026, 12, 1, 3, 0, 0, tzinfo=UTC)


class CheckBasedAction:
    """A reversible test action whose preview is built on the data of `checks`."""

    tier = RiskTier.REVERSIBLE
    start_key = "z"
    description = "a test action built on live checks' data"
    params = ()

    def __init__(self, action_id: str, checks: tuple[str, ...], clock: list[datetime]) -> None:
        self.id = action_id
        self.title = f"Test {action_id}"
        self.checks = checks
        self.clock = clock
        self.runs = 0

    async def build_preview(self, params: Mapping[str, Any]) -> Preview | Refusal:
        return Preview(action_id=self.id, title=self.title, tier=self.tier, target="the test target",
                       confirm_text="test-target", data_as_of=self.clock[0], items=({"name": "t"},))

    async def execute(self, preview: Preview) -> Outcome:
        self.runs += 1
        return Outcome(OutcomeStatus.OK, "done", ({"name": "t", "result": "done"},))


def _kernel(tmp_path: Path, clock: list[datetime]) -> ActionKernel:
    settings = Settings(environment=EnvironmentSettings(name="drill"),
                        audit=AuditSettings(path=str(tmp_path / "drill.jsonl")),
                        checks=ChecksSettings(interval_s=10, timeout_s=5,
                                              intervals={"api.health": 5, "supabase.resources": 60}))
    kernel = ActionKernel(settings, Journal.for_settings(settings, Operator(user="alice")), locks=None,
                          clock=lambda: clock[0])
    for action_id, checks in (("test.health", ("api.health",)), ("test.plain", ()),
                              ("test.resources", ("supabase.resources",)),
                              ("test.both", ("supabase.resources", "n8n.executions"))):
        kernel.register(CheckBasedAction(action_id, checks, clock))  # type: ignore[arg-type]
    return kernel


async def _run_at(kernel: ActionKernel, clock: list[datetime], action_id: str, age_s: float) -> Outcome | Refusal:
    clock[0] = T0
    preview = await kernel.prepare(action_id, {})
    assert isinstance(preview, Preview), preview
    clock[0] = T0 + timedelta(seconds=age_s)
    req = kernel.requirement(preview)
    return await kernel.run(preview, Confirmation(key=req.confirm_key, start_key="z", elapsed_s=1.0,
                                                  typed=preview.confirm_text))


def test_the_limit_is_the_tightest_of_the_setting_and_the_checks_staleness(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path, [T0])
    assert kernel.preview_age_limit(kernel.get("test.plain")) == (30.0, "")
    limit, why = kernel.preview_age_limit(kernel.get("test.health"))
    assert limit == 10.0 and "api.health is polled every 5 s, stale after 10 s" in why
    # a check polled every 60 s is stale after 120 s: it never loosens max_preview_age_s
    assert kernel.preview_age_limit(kernel.get("test.resources")) == (30.0, "")
    # n8n.executions has no interval of its own: interval_s (10 s), stale after 20 s
    assert kernel.preview_age_limit(kernel.get("test.both"))[0] == 20.0


@pytest.mark.parametrize(("action_id", "age_s", "refused"), [
    ("test.health", 9, False), ("test.health", 11, True),
    ("test.plain", 11, False), ("test.plain", 31, True),
    ("test.resources", 29, False), ("test.resources", 31, True),
    ("test.both", 19, False), ("test.both", 21, True),
])
async def test_a_preview_older_than_its_checks_staleness_is_refused(tmp_path: Path, action_id: str, age_s: float,
                                                                   refused: bool) -> None:
    clock = [T0]
    kernel = _kernel(tmp_path, clock)
    result = await _run_at(kernel, clock, action_id, age_s)
    if refused:
        assert isinstance(result, Refusal) and result.reason is RefusalReason.STALE, result
        assert result.message.startswith(f"previewed on data {age_s:.0f} s old (limit ")
        assert result.message.endswith("refresh and confirm again")
    else:
        assert isinstance(result, Outcome) and result.ok, result


async def test_the_refusal_names_the_check_and_is_journaled(tmp_path: Path) -> None:
    clock = [T0]
    kernel = _kernel(tmp_path, clock)
    result = await _run_at(kernel, clock, "test.health", 12)
    assert isinstance(result, Refusal)
    assert result.message == ("previewed on data 12 s old (limit 10 s; api.health is polled every 5 s, stale "
                              "after 10 s): refresh and confirm again")
    events = kernel.journal.read().events
    assert events[-1]["outcome"] == "refused" and events[-1]["result"]["reason"] == "stale"
