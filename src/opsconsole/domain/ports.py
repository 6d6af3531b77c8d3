"""Ports: what the services need from adapters."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from opsconsole.domain.models import CheckResult


@runtime_checkable
class Check(Protocol):
    """One live check. `run` must return a CheckResult for every expected failure
    (timeouts, HTTP errors, bad bodies); the runner turns anything else into UNKNOWN."""

    @property
    def id(self) -> str: ...

    @property
    def system(self) -> str: ...

    @property
    def title(self) -> str: ...

    async def run(self) -> CheckResult: ...


class Closeable(Protocol):
    async def aclose(self) -> None: ...


class Adapter(Protocol):
    """One external system: owns its client(s), offers its checks, closes on exit."""

    @property
    def system(self) -> str: ...

    def checks(self) -> list[Check]: ...

    async def aclose(self) -> None: ...
