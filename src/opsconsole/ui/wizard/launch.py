"""Opening wizards from the console: a new run, resuming a run the journal holds open, following
another console's run read-only, and the offer at start ("Resume API Down / 500 Errors at step 3 of 4
(started 03:12 by alice from 10.1.2.3)").

A run is held with the operator lock `runbook:<id>`: a second console that opens it is told who
runs it and since when, and may follow it (rebuilt from the shared journal every few seconds).
Building what a wizard needs (adapters, kernel, the runbook files) happens in a thread, so keys
stay instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

    from opsconsole.actions.kernel import ActionKernel
    from opsconsole.actions.locks import LockHeld, OperatorLocks
    from opsconsole.audit import Journal
    from opsconsole.runbooks.engine import Wizard
    from opsconsole.runbooks.loader import RunbookCatalog
    from opsconsole.runbooks.model import Runbook
    from opsconsole.runbooks.vocabulary import Vocabulary
    from opsconsole.services import CheckRunner, Services


@dataclass
class Context:
    runner: CheckRunner
    kernel: ActionKernel | None
    journal: Journal
    vocabulary: Vocabulary
    catalog: RunbookCatalog
    locks: OperatorLocks | None
    links: dict[str, str]


def _services(app: App[Any]) -> Services:
    services: Services = app.services  # type: ignore[attr-defined]
    return services


async def context(app: App[Any]) -> Context:
    services = _services(app)

    def build() -> Context:
        from opsconsole.runbooks.catalog import links

        return Context(runner=services.runner, kernel=services.kernel, journal=services.wizard_journal(),
                       vocabulary=services.runbook_vocabulary(), catalog=services.runbook_catalog(),
                       locks=services.runbook_locks(), links=links(services.settings))

    return await asyncio.to_thread(build)


def _wizard(app: App[Any], ctx: Context, runbook: Runbook, events: Sequence[Mapping[str, Any]] | None,
            run_id: str | None, *, follow: bool = False) -> Wizard:
    from opsconsole.runbooks.engine import Wizard

    kwargs: dict[str, Any] = dict(journal=ctx.journal, runner=ctx.runner, kernel=ctx.kernel,
                                  vocabulary=ctx.vocabulary, links=ctx.links, locks=None if follow else ctx.locks,
                                  follow=follow, on_result=getattr(app, "record_result", None))
    if run_id is None:
        return Wizard(runbook, Wizard.new_record(runbook), **kwargs)
    return Wizard.from_journal(runbook, run_id, events or [], **kwargs)


def _show(app: App[Any], wizard: Wizard) -> None:
    from opsconsole.ui.wizard.screen import WizardScreen

    for screen in app.screen_stack:
        if isinstance(screen, WizardScreen) and screen.wizard is wizard:
            return
    app.push_screen(WizardScreen(wizard))


def _notify(app: App[Any], text: str, *, severity: str = "warning", title: str = "Runbook") -> None:
    app.notify(text, title=title, severity=severity, markup=False, timeout=12)  # type: ignore[arg-type]


async def open_runbook(app: App[Any], runbook_id: str) -> Wizard | None:
    """The wizard of `runbook_id`: the run already open here, the open run the journal holds
    (resumed), or a new run."""
    from opsconsole.audit import open_wizard_runs

    services = _services(app)
    for wizard in services.wizards.values():
        if wizard.runbook.id == runbook_id and not wizard.closed:
            _show(app, wizard)
            return wizard
    ctx = await context(app)
    runbook = ctx.catalog.get(runbook_id)
    if runbook is None:
        _notify(app, f"no runbook {runbook_id!r}; known: {', '.join(ctx.catalog.runbooks)}", severity="error")
        return None
    events = await asyncio.to_thread(services.journal_events)
    open_runs = [r for r in open_wizard_runs(events) if r.runbook == runbook_id]
    if open_runs:
        return await resume_run(app, open_runs[0].run, events=events, ctx=ctx)
    wizard = _wizard(app, ctx, runbook, None, None)
    if not await _lock_or_follow(app, ctx, wizard, events):
        return None
    services.wizards[wizard.run_id] = wizard
    _show(app, wizard)
    await wizard.open()
    return wizard


async def _lock_or_follow(app: App[Any], ctx: Context, wizard: Wizard, events: Sequence[Mapping[str, Any]]) -> bool:
    """Take the run's lock; held elsewhere: say who and since when, and offer to follow."""
    from opsconsole.audit import open_wizard_runs
    from opsconsole.ui.wizard.dialogs import HeldScreen

    lock = await wizard.take_lock()
    if lock.state == "unavailable":  # ("off", no database configured, is said in the wizard's header)
        _notify(app, lock.message, severity="warning", title="Runbook lock")
    if lock.state != "other":
        return True
    follow = await app.push_screen_wait(HeldScreen(f"{wizard.runbook.title}: {lock.message}"))
    if not follow:
        return False
    fresh = await asyncio.to_thread(_services(app).journal_events)
    runs = [r for r in open_wizard_runs(fresh) if r.runbook == wizard.runbook.id]
    if not runs:
        _notify(app, "their run has no events in the journal yet: try again in a moment")
        return False
    await follow_run(app, runs[0].run, events=fresh, ctx=ctx)
    return False


async def resume_run(app: App[Any], run_id: str, *, events: Sequence[Mapping[str, Any]] | None = None,
                     ctx: Context | None = None) -> Wizard | None:
    """Continue a run the journal holds open, at the step it was at, with its history."""
    from opsconsole.audit import wizard_runs

    services = _services(app)
    if run_id in services.wizards:
        _show(app, services.wizards[run_id])
        return services.wizards[run_id]
    ctx = ctx or await context(app)
    if events is None:
        events = await asyncio.to_thread(services.journal_events)
    record = next((r for r in wizard_runs(events) if r.run == run_id), None)
    if record is None or not record.open:
        _notify(app, f"run {run_id} is not open in the journal", severity="error")
        return None
    runbook = ctx.catalog.get(record.runbook)
    if runbook is None:
        _notify(app, f"run {run_id} walks runbook {record.runbook!r}, which is not offered any more (a team file "
                     "removed or broken?): `opsconsole runbook list`", severity="error")
        return None
    wizard = _wizard(app, ctx, runbook, events, run_id)
    if not await _lock_or_follow(app, ctx, wizard, events):
        return None
    services.wizards[wizard.run_id] = wizard
    _show(app, wizard)
    await wizard.resume(events)
    return wizard


async def follow_run(app: App[Any], run_id: str, *, events: Sequence[Mapping[str, Any]] | None = None,
                     ctx: Context | None = None) -> Wizard | None:
    """Watch another console's run, read-only, rebuilt from the shared journal."""
    from opsconsole.audit import wizard_runs

    ctx = ctx or await context(app)
    if events is None:
        events = await asyncio.to_thread(_services(app).journal_events)
    record = next((r for r in wizard_runs(events) if r.run == run_id), None)
    runbook = ctx.catalog.get(record.runbook) if record is not None else None
    if record is None or runbook is None:
        _notify(app, f"run {run_id} cannot be followed: it is not in the journal", severity="error")
        return None
    wizard = _wizard(app, ctx, runbook, events, run_id, follow=True)
    _show(app, wizard)
    return wizard


async def offer_resume(app: App[Any]) -> None:
    """At start: open runs left by a console that was killed or disconnected, and runs another
    console walks right now (it holds their lock `runbook:<id>`): those are offered to follow."""
    from opsconsole.ui.wizard.dialogs import ResumeScreen

    services = _services(app)
    runs = await asyncio.to_thread(services.open_runs)
    runs = [r for r in runs if r.run not in services.wizards][:8]
    if not runs:
        return
    locks = await asyncio.to_thread(services.runbook_locks)
    offers: list[tuple[str, str]] = []
    live: set[str] = set()
    for run in runs:
        holder = await _holder(locks, run.runbook)
        if holder is None:
            offers.append((run.run, f"Resume {run.message()}"))
            continue
        live.add(run.run)
        since = f" since {holder.since:%H:%M} UTC" if holder.since is not None else ""
        offers.append((run.run, f"Follow {run.message()}: live in another console, {holder.holder} runs it{since}"))
    choice = await app.push_screen_wait(ResumeScreen(offers, live=live))
    if choice is None:
        return
    verb, run_id = choice
    if verb == "follow":
        await follow_run(app, run_id)
    else:
        await resume_run(app, run_id)


async def _holder(locks: OperatorLocks | None, runbook_id: str) -> LockHeld | None:
    """Who holds the run's lock now (None: nobody, or it cannot be told: then resuming says so)."""
    from opsconsole.actions.locks import LockError

    if locks is None:
        return None
    try:
        return await locks.holder(f"runbook:{runbook_id}")
    except LockError:
        return None


async def picker(app: App[Any]) -> None:
    """`w`: choose a runbook (failing triggers and open runs shown beside each)."""
    from opsconsole.audit import open_wizard_runs
    from opsconsole.domain.models import Status
    from opsconsole.ui.wizard.dialogs import PickerScreen

    services = _services(app)
    ctx = await context(app)
    events = await asyncio.to_thread(services.journal_events)
    open_by_runbook = {}
    for run in reversed(open_wizard_runs(events)):
        open_by_runbook[run.runbook] = run
    rows = []
    for rb in ctx.catalog.ordered():
        failing = [cid for cid in rb.triggers
                   if (res := services.board.results.get(cid)) is not None and res.status is Status.FAIL]
        state = []
        here = next((w for w in services.wizards.values() if w.runbook.id == rb.id and not w.closed), None)
        if here is not None:
            visit = here.visit
            state.append(f"open here at step {visit.index if visit else 1} of {len(rb.steps)}")
        elif rb.id in open_by_runbook:
            state.append(f"open run: {open_by_runbook[rb.id].message().removeprefix(rb.title).strip()}")
        if failing:
            state.append(", ".join(f"{cid} FAIL" for cid in failing))
        rows.append((rb.id, rb.title, " · ".join(state) or f"{len(rb.steps)} steps"))
    choice = await app.push_screen_wait(PickerScreen(rows, ctx.catalog.notices))
    if choice:
        await open_runbook(app, choice)
