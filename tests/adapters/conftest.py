"""Fixtures shared by the adapter test modules: the API, Vercel and status-page simulators.

They are started once for the whole folder (test_api_health, test_vercel, test_statuspage and test_http
all use them); faults are cleared before and after every test. Modules whose simulators only they use
(Supabase, n8n, Twilio) keep their fixtures to themselves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.web_sims import WebEnv, start_web_env


@pytest.fixture(scope="package")
def web_envs() -> Iterator[dict[str, WebEnv]]:
    out = {scenario: start_web_env(scenario) for scenario in ("healthy", "incident")}
    yield out
    for env in out.values():
        for sim in env.sims.values():
            sim.stop()


@pytest.fixture
def web_healthy(web_envs: dict[str, WebEnv]) -> Iterator[WebEnv]:
    web_envs["healthy"].faults.clear()
    yield web_envs["healthy"]
    web_envs["healthy"].faults.clear()


@pytest.fixture
def web_incident(web_envs: dict[str, WebEnv]) -> Iterator[WebEnv]:
    web_envs["incident"].faults.clear()
    yield web_envs["incident"]
    web_envs["incident"].faults.clear()
