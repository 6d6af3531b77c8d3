"""Snapshots of the n8n tab (failed executions, the credentials card) at 100x30 and 80x24: fixed clock,
fake data with hostile text in an error message (it must show literally)."""

from __future__ import annotations

from typing import Any

import pytest

from opsconsole.ui.app import OpsApp
from tests.fakes import fake_services


async def _show_n8n(pilot: Any) -> None:
    await pilot.press("3")
    for _ in range(3):  # the page, then the errors of its rows, arrive in workers
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


@pytest.mark.parametrize("size", [(100, 30), (80, 24)], ids=["100x30", "80x24"])
def test_n8n_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(OpsApp(fake_services(), live=False), terminal_size=size, run_before=_show_n8n)
