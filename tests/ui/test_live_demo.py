"""The console against the real demo environment: live checks, faults, hostile text."""

from __future__ import annotations

import pytest

from opsconsole.bootstrap import build_services
from opsconsole.config import load_settings
from opsconsole.demo.environment import DemoEnvironment
from opsconsole.demo.sim import Fault
from opsconsole.domain.models import Status
from opsconsole.services import CHECK_IDS
from opsconsole.ui.app import OpsApp
from opsconsole.ui.widgets.status import CheckCard, StatusBadge


async def _run_until_all_reported(app: OpsApp, pilot: object) -> None:
    for _ in range(150):
        await pilot.pause(0.1)  # type: ignore[attr-defined]
        if len(app.services.board.results) == len(CHECK_IDS) and not app.checks_in_flight:
            return
    raise AssertionError(f"only {sorted(app.services.board.results)} reported")


async def test_incident_demo_every_check_reports_and_hostile_text_is_literal(
        clean_faults: DemoEnvironment) -> None:
    assert clean_faults.config_path is not None
    app = OpsApp(build_services(load_settings(clean_faults.config_path)))
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_until_all_reported(app, pilot)
        results = app.services.board.results
        assert results["api.health"].status is Status.FAIL
        assert all(r.status is not Status.OFF for r in results.values())
        await pilot.press("2")
        await pilot.pause(0.3)
        card = app.query_one("#card-supabase-status_page", CheckCard)
        summary = str(card.query_one(".card-summary").render())
        assert "[bold red]x[/]" in summary and "\x1b" not in summary


@pytest.mark.parametrize("fault", [Fault(kind="status", status=500), Fault(kind="html"),
                                   Fault(kind="truncated"), Fault(kind="huge")])
async def test_every_service_failing_at_once_keeps_the_app_running(clean_faults: DemoEnvironment,
                                                                   fault: Fault) -> None:
    env = clean_faults
    env.faults.set("*", fault)
    assert env.config_path is not None
    app = OpsApp(build_services(load_settings(env.config_path)))
    async with app.run_test(size=(100, 30)) as pilot:
        await _run_until_all_reported(app, pilot)
        assert app.is_running
        http_checks = [cid for cid in CHECK_IDS if not cid.startswith(("db.", "dlq.", "supabase.pooler"))]
        for cid in http_checks:
            result = app.services.board.results[cid]
            assert result.status in (Status.FAIL, Status.UNKNOWN, Status.WARN), (cid, result)
            assert "Traceback" not in result.summary
        assert app.query_one("#badge-api", StatusBadge).has_class("-fail")
        await pilot.press("4")
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert app.is_running
