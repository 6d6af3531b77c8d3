"""Shared fixtures: isolated XDG dirs for every test, one demo environment per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.demo.environment import DemoEnvironment


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's config, state or themes."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("OPSCONSOLE_CONFIG", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    # The console picks its theme from the terminal (16 colours: the contrast theme): every test and
    # snapshot runs as on a 256-colour terminal, whatever TERM the test run itself has (CI has none).
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("COLORTERM", raising=False)
    for name in ("TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def incident_env() -> Iterator[DemoEnvironment]:
    """The default demo scenario: real PostgreSQL, pooler proxy, long queries, simulators."""
    with DemoEnvironment("incident", messages=3000) as env:
        yield env


@pytest.fixture(scope="session")
def healthy_env() -> Iterator[DemoEnvironment]:
    with DemoEnvironment("healthy", sessions=False) as env:
        yield env


@pytest.fixture
def clean_faults(incident_env: DemoEnvironment) -> Iterator[DemoEnvironment]:
    incident_env.faults.clear()
    yield incident_env
    incident_env.faults.clear()
