"""The warning hold: a warning-bearing preview can demand that its warning has been on screen for
`warning_hold_s` before any confirmation counts, in the console and at the CLI prompt alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsconsole.actions.model import Confirmation, Preview, RefusalReason, RiskTier
from opsconsole.actions.policy import WARNING_HOLD_S, check_confirmation, hold_remaining, requirement_for

AS_OF = datetime(2026, 11, 27, 3, 12, 9, tzinfo=UTC)
REF = "opsdemoprojectrefabc"


def held_preview(hold: float = WARNING_HOLD_S, tier: RiskTier = RiskTier.DESTRUCTIVE) -> Preview:
    return Preview(action_id="backups.restore", title="Restore the database", tier=tier, target=REF,
                   confirm_text=REF, data_as_of=AS_OF, warning="DOWNTIME WARNING: the database goes OFFLINE",
                   warning_hold_s=hold)


def check_of(refusal: object) -> str | None:
    if refusal is None:
        return None
    assert getattr(refusal, "reason", None) is RefusalReason.CONFIRMATION
    return str(refusal.details["check"])  # type: ignore[attr-defined]


def test_hold_is_copied_into_the_requirement_and_the_prompt_says_so() -> None:
    req = requirement_for(held_preview(), "R")
    assert req.warning_hold_s == WARNING_HOLD_S == 5.0
    assert "5 s" in req.prompt and req.to_json()["warning_hold_s"] == 5.0
    assert held_preview().to_json()["warning_hold_s"] == 5.0


@pytest.mark.parametrize("elapsed", [0.41, 1.0, 4.0, 4.99])
def test_no_confirmation_counts_before_the_hold_even_with_the_text_typed(elapsed: float) -> None:
    req = requirement_for(held_preview(), "R")
    press = Confirmation(key="y", start_key="R", elapsed_s=elapsed, typed=REF)
    assert check_of(check_confirmation(req, press)) == "warning_hold"
    assert hold_remaining(req, elapsed) == pytest.approx(5.0 - elapsed)


def test_after_the_hold_the_typed_text_still_decides() -> None:
    req = requirement_for(held_preview(), "R")
    assert check_confirmation(req, Confirmation(key="y", start_key="R", elapsed_s=5.0, typed=REF)) is None
    assert check_of(check_confirmation(req, Confirmation(key="y", start_key="R", elapsed_s=9, typed=""))) \
        == "typed_empty"
    assert check_of(check_confirmation(req, Confirmation(key="y", start_key="R", elapsed_s=9, typed=REF[:-1]))) \
        == "typed_mismatch"


def test_hold_applies_to_every_tier_that_asks_for_it() -> None:
    for tier in (RiskTier.REVERSIBLE, RiskTier.DISRUPTIVE):
        req = requirement_for(held_preview(tier=tier), "c")
        assert check_of(check_confirmation(req, Confirmation(key="y", start_key="c", elapsed_s=2))) == "warning_hold"
        assert check_confirmation(req, Confirmation(key="y", start_key="c", elapsed_s=6)) is None


def test_no_hold_keeps_the_old_rules() -> None:
    req = requirement_for(held_preview(hold=0.0), "R")
    assert req.warning_hold_s == 0.0 and "on screen" not in req.prompt
    assert check_confirmation(req, Confirmation(key="y", start_key="R", elapsed_s=0.5, typed=REF)) is None


def test_cli_prompt_is_held_but_an_upfront_confirm_flag_is_not() -> None:
    req = requirement_for(held_preview(), "cli")
    quick = Confirmation.from_cli("prompt", typed=REF, elapsed_s=1.2)
    assert check_of(check_confirmation(req, quick)) == "warning_hold"
    assert check_confirmation(req, Confirmation.from_cli("prompt", typed=REF, elapsed_s=5.5)) is None
    # --confirm TEXT: typed in advance, non-interactive; the warning is printed before anything runs
    assert check_confirmation(req, Confirmation.from_cli("--confirm", typed=REF)) is None
    assert check_of(check_confirmation(req, Confirmation.from_cli("--yes"))) == "typed_empty"
