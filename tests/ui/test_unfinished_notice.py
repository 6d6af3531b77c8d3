"""On start the console tells the operator about every action that started and never finished."""

from __future__ import annotations

from typing import Any

from textual.notifications import Notify

from opsconsole.audit import Journal, Operator, journal_path
from opsconsole.ui.app import OpsApp
from tests.fakes import fake_services


async def test_start_up_names_each_attempt_with_no_outcome() -> None:
    services = fake_services()
    journal = Journal(journal_path(services.settings), environment="production",
                      operator=Operator(user="alice", ssh_client="10.1.2.3", host="bastion-9"))
    journal.append({"kind": "action", "attempt": "a1", "pid": 1, "action": "dlq.requeue", "title": "Re-queue",
                    "tier": "disruptive", "target": "40,000 messages [b]x[/b]", "outcome": "started"})
    journal.append({"kind": "action", "attempt": "a2", "pid": 1, "action": "db.cancel", "title": "Cancel",
                    "tier": "disruptive", "target": "PID 4242", "outcome": "started"})
    journal.append({"kind": "action", "attempt": "a2", "action": "db.cancel", "outcome": "ok"})
    seen: list[Any] = []
    app = OpsApp(services, live=False)
    async with app.run_test(size=(100, 30), message_hook=seen.append) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
    notices = [m.notification for m in seen if isinstance(m, Notify)]
    unknown = [n for n in notices if n.title == "Outcome unknown"]
    assert len(unknown) == 1
    assert unknown[0].message.startswith("outcome unknown: dlq.requeue of 40,000 messages [b]x[/b], started ")
    assert "by alice from 10.1.2.3 on bastion-9" in unknown[0].message and not unknown[0].markup
