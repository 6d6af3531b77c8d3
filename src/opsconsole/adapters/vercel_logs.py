"""Following Vercel runtime logs: one long-lived NDJSON stream, reopened when it ends or stalls.

`LogFollower.events()` yields what happened as data (connected, entries, ended, stalled, cut,
refused, switched, idle), so the console's log view and `opsconsole logs` show the same
reconnects the same way. Production is followed by default: the deployment serving it is
looked up on every (re)connect and every `recheck_s`, so after a promote the view moves to the
new deployment's logs by itself. Parsing, bounding and filtering live in `domain.logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import httpx

from opsconsole.adapters.vercel import StreamRefused, VercelAdapter, parse_deployment
from opsconsole.domain.deploys import Deployment
from opsconsole.domain.logs import LineSplitter, LogEntry, parse_chunks
from opsconsole.domain.text import printable
from opsconsole.settings import SecretError

BACKOFF_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
AUTH_BACKOFF_S = 30.0  # a rejected token will not fix itself in a second: do not hammer the API


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One thing that happened to the stream. `kind`:

    connecting, connected, entries (with `entries`), ended (the server closed it), stalled (no
    data for `stall_s`), cut (the connection broke, a partial line was dropped), refused (could
    not be opened: `message` says why), switched (production moved to another deployment),
    idle (no data for `idle_s`, when asked for), retrying (waiting `retry_in_s` before reconnecting).
    """

    kind: str
    message: str = ""
    entries: tuple[LogEntry, ...] = ()
    deployment: Deployment | None = None
    retry_in_s: float | None = None
    bad_lines: int = 0
    status_code: int | None = None


Sleeper = Callable[[float], Awaitable[None]]


class LogFollower:
    """Streams a deployment's runtime logs (production's when `deployment_id` is None)."""

    def __init__(self, adapter: VercelAdapter, *, deployment_id: str | None = None, stall_s: float = 30.0,
                 backoff_s: Sequence[float] = BACKOFF_S, recheck_s: float = 15.0, idle_s: float | None = None,
                 sleep: Sleeper = asyncio.sleep) -> None:
        self.adapter = adapter
        self.fixed_id = deployment_id
        self.stall_s = stall_s
        self.backoff_s = tuple(backoff_s) or BACKOFF_S
        self.recheck_s = recheck_s
        self.idle_s = idle_s
        self._sleep = sleep
        self.deployment: Deployment | None = None
        self.reconnects = 0
        self.connected = False

    async def _resolve(self) -> Deployment | str:
        """The deployment to follow, or why it cannot be found."""
        try:
            if self.fixed_id is not None:
                dep, outcome = await self.adapter.get_deployment(self.fixed_id)
                return dep if dep is not None else (outcome.problem or "deployment not found")
            raw, outcome = await self.adapter.current_production()
        except SecretError as exc:
            return self.adapter.token_problem(exc)
        if outcome.problem is not None:
            return outcome.problem
        dep = parse_deployment(raw)
        return dep if dep is not None else "Vercel reports no deployment serving production"

    def _delay(self, failures: int) -> float:
        return self.backoff_s[min(failures, len(self.backoff_s) - 1)]

    async def events(self, *, follow: bool = True) -> AsyncIterator[StreamEvent]:
        """What happens, until the caller stops iterating (or, with follow=False, the stream ends)."""
        failures = 0
        while True:
            dep = await self._resolve()
            if isinstance(dep, str):
                yield StreamEvent("refused", dep)
                if not follow:
                    return
                delay = self._delay(failures)
                failures += 1
                yield StreamEvent("retrying", f"reconnecting in {delay:g} s", retry_in_s=delay)
                await self._sleep(delay)
                continue
            if self.deployment is not None and dep.id != self.deployment.id:
                yield StreamEvent("switched", f"production is now {dep.id} ({dep.short_sha or '?'}): "
                                  "following its logs", deployment=dep)
            self.deployment = dep
            yield StreamEvent("connecting", f"opening the runtime logs of {dep.id}", deployment=dep)
            got_data = False
            end: StreamEvent
            async for event in self._one_stream(dep, follow=follow):
                if event.kind == "entries":
                    got_data = True
                if event.kind in ("ended", "stalled", "cut", "refused", "switched-away", "idle"):
                    end = event
                    break
                yield event
            else:  # pragma: no cover - _one_stream always ends with one of the kinds above
                end = StreamEvent("ended", "the stream ended")
            self.connected = False
            if end.kind == "switched-away":
                continue  # reconnect at once, to the new production deployment
            yield end
            if not follow:
                return
            delay = self._delay(0 if got_data else failures)
            failures = 0 if got_data else failures + 1
            if end.kind == "refused" and end.status_code in (401, 403):
                delay = max(delay, AUTH_BACKOFF_S)
            if end.retry_in_s is not None:
                delay = max(delay, end.retry_in_s)
            self.reconnects += 1
            yield StreamEvent("retrying", f"reconnecting in {delay:g} s", retry_in_s=delay, deployment=dep)
            await self._sleep(delay)

    async def _one_stream(self, dep: Deployment, *, follow: bool) -> AsyncIterator[StreamEvent]:
        try:
            stream_cm = self.adapter.runtime_logs(dep.id, stall_s=self.stall_s)
            stream = await stream_cm.__aenter__()
        except SecretError as exc:
            yield StreamEvent("refused", self.adapter.token_problem(exc), status_code=403)
            return
        try:
            if isinstance(stream, StreamRefused):
                yield StreamEvent("refused", stream.problem, status_code=stream.status_code,
                                  retry_in_s=stream.retry_after_s, deployment=dep)
                return
            self.connected = True
            yield StreamEvent("connected", f"streaming the runtime logs of {dep.id}", deployment=dep)
            async for event in self._pump(dep, stream, follow=follow):
                yield event
        finally:
            with contextlib.suppress(Exception):
                await stream_cm.__aexit__(None, None, None)

    async def _pump(self, dep: Deployment, stream: AsyncIterator[bytes], *,
                    follow: bool) -> AsyncIterator[StreamEvent]:
        """Reads on a task (so waiting can be bounded without cancelling a read half-way)."""
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=64)

        async def reader() -> None:
            try:
                async for chunk in stream:
                    await queue.put(chunk)
                await queue.put(None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the consumer, which decides what it means
                await queue.put(exc)

        task = asyncio.create_task(reader())
        splitter = LineSplitter()
        last_data = last_check = time.monotonic()
        try:
            while True:
                timeouts = [self.recheck_s] if follow and self.fixed_id is None else []
                if self.idle_s is not None:
                    timeouts.append(max(0.05, self.idle_s - (time.monotonic() - last_data)))
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=min(timeouts) if timeouts else None)
                except TimeoutError:
                    item = b""
                now = time.monotonic()
                if isinstance(item, bytes) and item:
                    last_data = now
                    entries, bad = parse_chunks(splitter, item)
                    if entries or bad:
                        yield StreamEvent("entries", entries=tuple(entries), bad_lines=bad, deployment=dep)
                elif item is None:
                    cut = splitter.close()
                    note = f"; {cut:,} bytes of an unfinished line dropped" if cut else ""
                    yield StreamEvent("ended", f"the stream ended{note}", deployment=dep)
                    return
                elif isinstance(item, BaseException):
                    cut = splitter.close()
                    if isinstance(item, httpx.ReadTimeout):
                        yield StreamEvent("stalled", f"no data for {self.stall_s:g} s", deployment=dep)
                    else:
                        why = printable(str(item) or type(item).__name__, single_line=True, limit=120)
                        note = f"; {cut:,} bytes of an unfinished line dropped" if cut else ""
                        yield StreamEvent("cut", f"the connection broke ({why}){note}", deployment=dep)
                    return
                if self.idle_s is not None and now - last_data >= self.idle_s:
                    splitter.close()
                    yield StreamEvent("idle", f"no new lines for {self.idle_s:g} s", deployment=dep)
                    return
                if follow and self.fixed_id is None and now - last_check >= self.recheck_s:
                    last_check = now
                    current = await self._resolve()
                    if isinstance(current, Deployment) and current.id != dep.id:
                        splitter.close()
                        yield StreamEvent("switched-away", deployment=current)
                        return
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
