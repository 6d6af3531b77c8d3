"""The restore state the checks consult: begun by this console or seen in the project status, ended
by the final status; what it says while running and after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsconsole.domain.restore import PROJECT_STATUS, THIS_CONSOLE, RestoreInProgress, RestoreState

T0 = datetime(2026, 11, 27, 3, 12, tzinfo=UTC)


def test_this_consoles_restore_is_followed_and_ended_by_the_action() -> None:
    state = RestoreState()
    state.begin(RestoreInProgress("ref", T0, THIS_CONSOLE, what="daily backup 900", operator="alice",
                                  estimate_s=(120.0, 1200.0)))
    text = state.current().describe(T0 + timedelta(minutes=3))  # type: ignore[union-attr]
    assert text == ("restore in progress: RESTORING for 3m (expected 2m–20m), daily backup 900, started 03:12 UTC "
                    "by alice")
    assert not state.observe("ref", "ACTIVE_HEALTHY", T0)  # the project status does not end this console's own
    assert state.current() is not None
    state.end("ACTIVE_HEALTHY", T0 + timedelta(minutes=7))
    assert state.current() is None
    last = state.last()
    assert last is not None and not last.active
    assert last.describe(T0 + timedelta(hours=1)).startswith("restore ended ACTIVE_HEALTHY after 7m")


def test_a_restore_seen_in_the_project_status_begins_and_ends_there() -> None:
    state = RestoreState()
    assert state.observe("ref", "ACTIVE_HEALTHY", T0) is False and state.current() is None
    assert state.observe("ref", "RESTORING", T0) is True
    assert state.observe("ref", "RESTORING", T0 + timedelta(seconds=5)) is False
    state.enrich(operator="bob@bastion-2", started_at=T0 - timedelta(minutes=2), attempt="abc")
    current = state.current()
    assert current is not None and current.source == PROJECT_STATUS and current.operator == "bob@bastion-2"
    assert "seen in the project status" in current.describe(T0)
    state.observe("ref", "RESTORE_FAILED", T0 + timedelta(minutes=9))
    assert state.current() is None
    last = state.last()
    assert last is not None and last.final_status == "RESTORE_FAILED"
