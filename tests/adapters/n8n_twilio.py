"""What test_n8n and test_twilio share: canary secrets that must never show in a result, one
simulator per test, what a clean result looks like, and the fault matrix both run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from opsconsole.demo.scenario import DemoSecrets
from opsconsole.demo.sim import Fault, FaultPlan, Simulator
from opsconsole.domain.models import CheckResult, Status

N8N_CANARY = "n8n-CANARY-7f3a9c-NOT-REAL"
TWILIO_CANARY = "twilio-CANARY-51d2e8-NOT-REAL"
SECRETS = DemoSecrets(n8n_api_key=N8N_CANARY, twilio_auth_token=TWILIO_CANARY)
CANARIES = (N8N_CANARY, TWILIO_CANARY, SECRETS.twilio_account_sid)
FAST = 0.6  # check timeout for the hang cases


@dataclass
class Running:
    sim: Simulator
    faults: FaultPlan
    base: str


@contextmanager
def running(build: Callable[[FaultPlan, str, DemoSecrets], Simulator], scenario: str) -> Iterator[Running]:
    faults = FaultPlan()
    sim = build(faults, scenario, SECRETS)
    base = sim.start()
    try:
        yield Running(sim, faults, base)
    finally:
        sim.stop()


def assert_clean(result: CheckResult) -> str:
    """No secret, no raw ESC, no traceback anywhere in what the console would show or export."""
    dumped = json.dumps(result.to_json(), ensure_ascii=False)
    for canary in CANARIES:
        assert canary not in dumped
    assert "\x1b" not in dumped and "\x9b" not in dumped
    assert "Traceback" not in dumped and "File \"" not in dumped
    assert result.summary and "\n" not in result.summary
    return dumped


def get(url: str, **kwargs: Any) -> httpx.Response:
    """A direct probe of a simulator (sync on purpose: loopback, a few ms)."""
    return httpx.get(url, timeout=5.0, **kwargs)


def close(got: int, expected: int, slack: int = 1) -> bool:
    """Equal up to the traffic that crossed the one-hour edge (or arrived) between two reads;
    a skipped page would lose a whole page (4 or 7 items), far more than the slack."""
    return abs(got - expected) <= slack


# the fault matrix both adapters run: (id, fault or None for a refused connection, status, summary fragment)
FAULTS: list[tuple[str, Fault | None, Status, str]] = [
    ("timeout", Fault("hang"), Status.FAIL, "did not answer within"),
    ("refused", None, Status.FAIL, "refused the connection"),
    ("401", Fault("status", status=401), Status.FAIL, "credentials rejected"),
    ("403", Fault("status", status=403), Status.FAIL, "HTTP 403"),
    ("404", Fault("status", status=404), Status.FAIL, "HTTP 404"),
    ("429", Fault("status", status=429, retry_after="30"), Status.WARN, "rate limited, retry after 30 s"),
    ("500", Fault("status", status=500), Status.FAIL, "HTTP 500"),
    ("html", Fault("html"), Status.FAIL, "HTML page where JSON was expected"),
    ("truncated", Fault("truncated"), Status.FAIL, "invalid JSON"),
    ("huge", Fault("huge"), Status.FAIL, "MB"),
]
