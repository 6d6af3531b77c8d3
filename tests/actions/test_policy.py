"""The confirmation policy, pure: which confirmation each tier demands and which key presses
can never confirm (Enter, the start key, auto-repeat, too fast, wrong or missing typed text)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsconsole.actions.model import (
    Confirmation,
    ConfirmationKind,
    Outcome,
    OutcomeStatus,
    Preview,
    RefusalReason,
    RiskTier,
)
from opsconsole.actions.policy import (
    ENTER_KEYS,
    MIN_ARM_S,
    REPEAT_WINDOW_S,
    KeyTracker,
    check_confirmation,
    confirm_key_for,
    requirement_for,
)

AS_OF = datetime(2026, 11, 27, 3, 12, 9, tzinfo=UTC)


def preview(tier: RiskTier, *, confirm_text: str = "4242", warning: str = "") -> Preview:
    return Preview(action_id="db.test", title="Terminate session", tier=tier, target="PID 4242",
                   confirm_text=confirm_text, data_as_of=AS_OF, warning=warning, params={"pids": [4242]})


def ok(key: str = "y", *, start: str = "x", elapsed: float = 1.0, typed: str = "") -> Confirmation:
    return Confirmation(key=key, start_key=start, elapsed_s=elapsed, repeat=False, typed=typed)


def check_of(refusal: object) -> str:
    assert refusal is not None
    assert getattr(refusal, "reason", None) is RefusalReason.CONFIRMATION
    return str(refusal.details["check"])  # type: ignore[attr-defined]


# -- requirement per tier -----------------------------------------------------------------------

def test_reversible_is_yes_no_with_focus_on_cancel() -> None:
    req = requirement_for(preview(RiskTier.REVERSIBLE), "r")
    assert req.kind is ConfirmationKind.YES_NO
    assert req.confirm_key == "y" and req.focus == "cancel"
    assert "n" in req.cancel_keys and "escape" in req.cancel_keys
    assert check_confirmation(req, ok(start="r")) is None


def test_disruptive_names_the_target() -> None:
    req = requirement_for(preview(RiskTier.DISRUPTIVE), "c")
    assert req.kind is ConfirmationKind.YES_NO_NAMED
    assert "PID 4242" in req.prompt and "y" in req.prompt
    assert check_confirmation(req, ok(start="c")) is None


def test_destructive_needs_the_exact_text_then_the_key() -> None:
    req = requirement_for(preview(RiskTier.DESTRUCTIVE, confirm_text="3 sessions"), "x")
    assert req.kind is ConfirmationKind.TYPED and req.expected_text == "3 sessions"
    assert "3 sessions" in req.prompt
    assert check_confirmation(req, ok(typed="3 sessions")) is None
    assert check_of(check_confirmation(req, ok(typed=""))) == "typed_empty"
    for wrong in ("3 Sessions", "3 sessions ", " 3 sessions", "3", "4242", "y"):
        assert check_of(check_confirmation(req, ok(typed=wrong))) == "typed_mismatch", wrong


def test_destructive_without_confirm_text_cannot_be_confirmed() -> None:
    req = requirement_for(preview(RiskTier.DESTRUCTIVE, confirm_text=""), "x")
    assert check_of(check_confirmation(req, ok(typed=""))) == "typed_empty"


def test_warning_is_part_of_the_requirement() -> None:
    req = requirement_for(preview(RiskTier.DESTRUCTIVE, warning="The database goes OFFLINE"), "x")
    assert req.warning == "The database goes OFFLINE"


# -- confirm key rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["x", "c", "r", "enter", "", "n", "ctrl+y"])
def test_confirm_key_is_y_unless_started_with_y(start: str) -> None:
    assert confirm_key_for(start) == "y"


def test_confirm_key_avoids_the_start_key() -> None:
    assert confirm_key_for("y") == "Y"
    assert confirm_key_for("Y") == "y"
    assert confirm_key_for("enter", "y") == "Y"  # started from the palette, bound to y
    req = requirement_for(preview(RiskTier.DISRUPTIVE), "enter", action_key="y")
    assert req.confirm_key == "Y" and "shift+y" in req.prompt
    assert check_of(check_confirmation(req, ok("y", start="enter"))) == "start_key"
    assert check_confirmation(req, ok("Y", start="enter")) is None


@pytest.mark.parametrize("tier", list(RiskTier))
@pytest.mark.parametrize("start", ["x", "y", "Y", "enter", "c"])
def test_confirm_key_is_never_enter_nor_the_start_key(tier: RiskTier, start: str) -> None:
    req = requirement_for(preview(tier), start)
    assert req.confirm_key not in ENTER_KEYS and req.confirm_key != start


# -- refused presses -------------------------------------------------------------------------------

@pytest.mark.parametrize("tier", list(RiskTier))
@pytest.mark.parametrize("key", ["enter", "Enter", "ctrl+m", "ctrl+j", "\r", "\n", "return"])
def test_enter_never_confirms(tier: RiskTier, key: str) -> None:
    req = requirement_for(preview(tier), "x")
    assert check_of(check_confirmation(req, ok(key, typed="4242"))) == "enter"


@pytest.mark.parametrize("tier", list(RiskTier))
def test_the_start_key_never_confirms(tier: RiskTier) -> None:
    req = requirement_for(preview(tier), "x")
    assert check_of(check_confirmation(req, ok("x", typed="4242"))) == "start_key"
    req_y = requirement_for(preview(tier), "y")
    assert check_of(check_confirmation(req_y, ok("y", start="y", typed="4242"))) == "start_key"


def test_space_and_other_keys_do_not_confirm() -> None:
    req = requirement_for(preview(RiskTier.DISRUPTIVE), "c")
    assert check_of(check_confirmation(req, ok("space", start="c"))) == "forbidden_key"
    assert check_of(check_confirmation(req, ok("z", start="c"))) == "wrong_key"
    assert check_of(check_confirmation(req, ok("Y", start="c"))) == "wrong_key"
    assert check_of(check_confirmation(req, ok("", start="c"))) == "empty"


@pytest.mark.parametrize("tier", list(RiskTier))
def test_auto_repeat_never_confirms(tier: RiskTier) -> None:
    req = requirement_for(preview(tier), "x")
    held = Confirmation(key="y", start_key="x", elapsed_s=2.0, repeat=True, typed="4242")
    assert check_of(check_confirmation(req, held)) == "repeat"


@pytest.mark.parametrize("tier", list(RiskTier))
def test_too_fast_never_confirms(tier: RiskTier) -> None:
    req = requirement_for(preview(tier), "x")
    assert check_of(check_confirmation(req, ok(elapsed=MIN_ARM_S - 0.01, typed="4242"))) == "too_fast"
    assert check_confirmation(req, ok(elapsed=MIN_ARM_S, typed="4242")) is None


# -- the key tracker (what the dialog uses to fill in Confirmation) --------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_tracker_flags_a_held_key_and_the_start_key_repeating() -> None:
    clock = FakeClock()
    tracker = KeyTracker("x", clock=clock)
    clock.t += 0.05
    assert tracker.press("x").repeat  # the start key still held: auto-repeat
    # A held "y": every event comes ~33 ms after the previous one.
    clock.t += 0.1
    first = tracker.press("y")
    assert not first.repeat and first.elapsed_s < MIN_ARM_S  # refused as too fast
    for _ in range(30):
        clock.t += 0.033
        held = tracker.press("y")
        assert held.repeat
        req = requirement_for(preview(RiskTier.DISRUPTIVE), "x")
        assert check_confirmation(req, held) is not None
    # Released, then pressed once after a pause: that counts.
    clock.t += REPEAT_WINDOW_S + 0.3
    press = tracker.press("y", typed="4242")
    assert not press.repeat and press.elapsed_s >= MIN_ARM_S and press.typed == "4242"
    assert check_confirmation(requirement_for(preview(RiskTier.DESTRUCTIVE), "x"), press) is None


def test_tracker_measures_from_the_dialog_opening() -> None:
    clock = FakeClock()
    tracker = KeyTracker("c", clock=clock)
    clock.t += 0.5
    assert tracker.elapsed() == pytest.approx(0.5)
    conf = tracker.press("y")
    assert conf.start_key == "c" and conf.elapsed_s == pytest.approx(0.5) and not conf.repeat


# -- outcome helper ------------------------------------------------------------------------------

def test_outcome_status_from_items() -> None:
    good = frozenset({"signalled", "already_gone"})
    assert Outcome.from_items([{"result": "signalled"}, {"result": "already_gone"}], good=good,
                              summary="s").status is OutcomeStatus.OK
    assert Outcome.from_items([{"result": "signalled"}, {"result": "permission_denied"}], good=good,
                              summary="s").status is OutcomeStatus.PARTIAL
    assert Outcome.from_items([{"result": "permission_denied"}], good=good, summary="s").status is OutcomeStatus.FAILED
    assert Outcome.from_items([], good=good, summary="s").status is OutcomeStatus.FAILED


def test_preview_json_is_plain() -> None:
    p = preview(RiskTier.DESTRUCTIVE)
    data = p.to_json()
    assert data["tier"] == "destructive" and data["data_as_of"] == "2026-11-27T03:12:09.000Z"
    assert data["params"] == {"pids": [4242]} and data["lock_keys"] == []
