"""`opsconsole action list | preview | run`: the guarded actions from a script or a shell.

The same kernel as the console: the same parameters (declared once per action), preview,
refusals, operator locks and journal (the events are identical in shape; their confirmation
says `"via": "cli"`). Exit codes (design.md): 0 done, 1 partial, 2 failed, 4 refused
(read-only, stale, locked, not confirmed, nothing to do, not configured here), 64 bad usage
(unknown action, unknown parameter, bad value). Warnings go to stderr before anything runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from opsconsole.actions.catalog import ActionInfo
    from opsconsole.actions.kernel import ActionKernel
    from opsconsole.actions.model import Confirmation, ConfirmationRequirement, Outcome, Preview, Refusal
    from opsconsole.services import Services

EX_DONE, EX_PARTIAL, EX_FAILED, EX_REFUSED, EX_USAGE = 0, 1, 2, 4, 64


def add_action_parser(sub: Any, shared: list[argparse.ArgumentParser]) -> None:
    action = sub.add_parser(
        "action", parents=shared, help="list, preview or run a guarded action (same kernel as the console)",
        description="The console's guarded actions from the command line: same preview, confirmation, "
                    "refusals, operator locks and audit journal. Exit codes: 0 done, 1 partial, 2 failed, "
                    "4 refused, 64 bad usage.")
    verbs = action.add_subparsers(dest="action_command", metavar="list|preview|run", required=True)
    listing = verbs.add_parser("list", parents=shared, help="every action: id, tier, parameters, availability",
                               description="Every registered action with its id, risk tier, parameters and "
                                           "whether it can run here.")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    for verb, text in (("preview", "what the action would affect; changes nothing"),
                       ("run", "preview, confirm, run; journaled")):
        p = verbs.add_parser(verb, parents=shared, help=text, description=(
            "Dry run: print exactly what the confirmation dialog would show (targets, counts, what is left "
            "out and why, warnings, the confirm text a destructive action needs). Changes nothing."
            if verb == "preview" else
            "Run an action through the kernel. --yes confirms reversible and disruptive actions; a "
            "destructive one needs --confirm with the preview's confirm text. On a terminal without them "
            "you are shown the preview and asked; without a terminal and without them it is refused."))
        p.add_argument("action_id", metavar="ACTION", help="the action id (see `opsconsole action list`)")
        p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                       help="a parameter (repeatable), e.g. --param pids=4242,4243")
        p.add_argument("--json", action="store_true", help="print the preview or the outcome as one JSON object")
        if verb == "run":
            how = p.add_mutually_exclusive_group()
            how.add_argument("--yes", action="store_true", help="confirm a reversible or disruptive action")
            how.add_argument("--confirm", metavar="TEXT",
                             help="confirm a destructive action: the preview's confirm text, exactly")


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _catalog_entry(info: ActionInfo, kernel: ActionKernel | None, settings_read_only: bool) -> dict[str, Any]:
    registered = None
    if kernel is not None:
        try:
            registered = kernel.get(info.id)
        except KeyError:
            registered = None
    why_not = ""
    if settings_read_only:  # first: it holds for every action, configured or not
        why_not = "read-only mode: every mutating action is refused"
        if registered is None:
            why_not += f"; not configured here either: needs {info.needs or 'its configuration section'}"
    elif registered is None:
        why_not = f"not configured: needs {info.needs or 'its configuration section'}"
    return {
        "id": info.id, "title": info.title, "tier": info.tier.value, "description": info.description,
        "key": info.start_key or None, "params": [s.to_json() for s in info.params if s.cli],
        "rules": [r.describe for r in info.rules],
        "available": not why_not, "why_not": why_not or None,
    }


def _list(services: Services, as_json: bool, out: TextIO) -> int:
    from opsconsole.actions.catalog import KNOWN_ACTIONS

    kernel = services.kernel
    read_only = bool(services.settings.environment.read_only)
    rows = [_catalog_entry(info, kernel, read_only) for info in KNOWN_ACTIONS]
    if as_json:
        print(json.dumps({"environment": services.settings.environment.name, "read_only": read_only,
                          "actions": rows}, ensure_ascii=False), file=out)
        return EX_DONE
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        state = "available" if r["available"] else r["why_not"]
        print(f"{r['id']:<{width}}  {r['tier']:<11}  {r['title']}  ({state})", file=out)
        for p in r["params"]:
            need = ", required" if p["required"] else ""
            print(f"    {p['name']} ({p['type']}{need}): {p['help']}", file=out)
        for rule in r["rules"]:
            print(f"    ({rule})", file=out)
    return EX_DONE


def _exit_for_refusal(refusal: Refusal, *, stage: str) -> int:
    from opsconsole.actions.model import RefusalReason

    if stage == "prepare" and refusal.reason is RefusalReason.INVALID:
        return EX_USAGE
    if refusal.reason is RefusalReason.UNAVAILABLE:
        return EX_FAILED
    return EX_REFUSED


def _exit_for_outcome(outcome: Outcome) -> int:
    from opsconsole.actions.model import OutcomeStatus

    return {OutcomeStatus.OK: EX_DONE, OutcomeStatus.PARTIAL: EX_PARTIAL}.get(outcome.status, EX_FAILED)


def _confirm_hint(requirement: ConfirmationRequirement) -> str:
    from opsconsole.actions.model import ConfirmationKind

    if requirement.kind is ConfirmationKind.TYPED:
        return f"destructive: confirm with --confirm {json.dumps(requirement.expected_text, ensure_ascii=False)}"
    return "confirm with --yes"


def _show_preview(preview: Preview, requirement: ConfirmationRequirement, out: TextIO) -> None:
    from opsconsole.actions.model import plain
    from opsconsole.domain.text import printable

    def line(text: Any) -> str:
        return printable(str(text), single_line=True, limit=300)

    print(f"{preview.tier.value.upper()} · {line(preview.title)}", file=out)
    print(f"Target: {line(preview.target)}", file=out)
    for text in preview.lines:
        print(f"  {line(text)}", file=out)
    items = plain(preview.items)
    if items and not preview.lines:
        for item in items[:50]:
            print("  - " + line(", ".join(f"{k}={v}" for k, v in item.items())), file=out)
        if len(items) > 50:
            print(f"  … and {len(items) - 50:,} more", file=out)
    for ex in plain(preview.excluded):
        reason = line(ex.get("reason", ""))
        if reason and any(reason in text for text in preview.lines):
            continue  # the action's own lines already say it
        print(f"Not affected: {line(ex.get('pid', ex.get('id', '?')))} — {reason}", file=out)
    print(f"Data as of: {preview.data_as_of.strftime('%Y-%m-%d %H:%M:%S UTC')}", file=out)
    print(_confirm_hint(requirement), file=out)


def _preview_json(preview: Preview, requirement: ConfirmationRequirement) -> dict[str, Any]:
    from opsconsole.actions.model import ConfirmationKind

    typed = requirement.kind is ConfirmationKind.TYPED
    return {"action": preview.action_id, "preview": preview.to_json(),
            "confirmation": {"kind": requirement.kind.value, "flag": "--confirm" if typed else "--yes",
                             "text": requirement.expected_text if typed else None,
                             "prompt": requirement.prompt}}


def _refusal_json(action_id: str, refusal: Refusal) -> dict[str, Any]:
    return {"action": action_id, "status": "refused", "refused": refusal.to_json()}


def _ask(requirement: ConfirmationRequirement, stdin: TextIO, stderr: TextIO) -> tuple[str, str]:
    """(how, typed) from the operator at a terminal; how is "prompt" or "" (declined)."""
    from opsconsole.actions.model import ConfirmationKind

    if requirement.kind is ConfirmationKind.TYPED:
        stderr.write(f"Type {requirement.expected_text} to confirm (anything else refuses): ")
        stderr.flush()
        answer = stdin.readline().rstrip("\r\n")
        return ("prompt", answer) if answer else ("", "")
    stderr.write("Proceed? [y/N] ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    return ("prompt", "") if answer in ("y", "yes") else ("", "")


def _progress_printer(stderr: TextIO) -> Any:
    last = [0.0]
    last_state: list[Any] = [None]

    def report(progress: Any) -> None:
        line = getattr(progress, "line", None)
        if isinstance(line, str):  # an action that narrates each step (n8n.retry): every line matters
            stderr.write(f"  {line}\n")
            stderr.flush()
            return
        now = time.monotonic()
        if hasattr(progress, "line"):  # a build or promotion: every change of state, else every 10 s
            state = (getattr(progress, "state", None), getattr(progress, "message", None))
            if state == last_state[0] and now - last[0] < 10.0:
                return
            last_state[0], last[0] = state, now
            from opsconsole.domain.text import printable

            stderr.write(f"  {printable(progress.line(), single_line=True, limit=300)}\n")
            stderr.flush()
            return
        if now - last[0] < 1.0:
            return
        last[0] = now
        expected = f" of {progress.expected:,}" if getattr(progress, "expected", None) else ""
        stderr.write(f"  {progress.action}: {progress.changed:,}{expected} done, chunk {progress.chunks_done}\n")
        stderr.flush()

    return report


async def _grace(seconds: float) -> None:
    """On a terminal, `--confirm` on a held warning counts down before anything runs (Ctrl+C stops it)."""
    left = int(seconds + 0.999)
    while left > 0:
        _err(f"  starting in {left} s — Ctrl+C stops it; nothing has been done yet")
        await asyncio.sleep(1.0)
        left -= 1


def _status_printer(stderr: TextIO) -> Any:
    """Progress of a long action whose hook receives a status object with `describe(now)`."""
    from opsconsole.domain.models import utcnow

    last: dict[str, Any] = {"at": 0.0, "head": ""}

    def report(progress: Any) -> None:
        now = time.monotonic()
        text = progress.describe(utcnow()) if hasattr(progress, "describe") else str(progress)
        head = text.split(" for ")[0]
        if now - float(last["at"]) < 10.0 and head == last["head"]:
            return
        last.update(at=now, head=head)
        stderr.write(f"  {text}\n")
        stderr.flush()

    return report


async def _run(services: Services, args: argparse.Namespace, params: Mapping[str, str], *,
               stdin: TextIO, out: TextIO) -> int:
    from opsconsole.actions.model import Confirmation, Outcome, Preview, Refusal

    kernel = services.kernel
    action_id = str(args.action_id)
    if kernel is None:
        _err("opsconsole action: no action kernel (a bug)")
        return EX_FAILED
    known = None if kernel.read_only else _known(kernel, action_id, services)  # read-only refuses everything
    if known is not None:
        return known
    prepared = await kernel.prepare(action_id, params, from_cli=True)
    if isinstance(prepared, Refusal):
        code = _exit_for_refusal(prepared, stage="prepare")
        if args.json:
            print(json.dumps(_refusal_json(action_id, prepared), ensure_ascii=False), file=out)
        _err(f"refused: {prepared.message}")
        return code
    assert isinstance(prepared, Preview)
    preview = prepared
    requirement = kernel.requirement(preview, start_key="cli")
    if preview.warning:  # before anything else, and on stderr so a pipe cannot swallow it
        _err(f"WARNING: {preview.warning}")
    if args.action_command == "preview":
        if args.json:
            print(json.dumps(_preview_json(preview, requirement), ensure_ascii=False), file=out)
        else:
            _show_preview(preview, requirement, out)
        return EX_DONE

    confirmation: Confirmation
    if args.confirm is not None:
        confirmation = Confirmation.from_cli("--confirm", typed=str(args.confirm))
        if preview.warning_hold_s and stdin.isatty() and sys.stderr.isatty():
            await _grace(preview.warning_hold_s)  # a command recalled from the shell history can still be stopped
    elif args.yes:
        confirmation = Confirmation.from_cli("--yes")
    elif stdin.isatty() and sys.stderr.isatty():
        _show_preview(preview, requirement, sys.stderr)
        opened = time.monotonic()
        how, typed = await asyncio.to_thread(_ask, requirement, stdin, sys.stderr)
        if not how:
            await kernel.cancelled(preview, reason="the operator declined at the prompt")
            _err("not confirmed: nothing was done")
            if args.json:
                print(json.dumps({"action": action_id, "status": "cancelled"}), file=out)
            return EX_REFUSED
        confirmation = Confirmation.from_cli(how, typed=typed, elapsed_s=time.monotonic() - opened)
    else:
        confirmation = Confirmation.from_cli("")  # refused by the policy, and journaled as refused
    if not args.json:
        _show_preview(preview, requirement, out)
    progress_hooks = getattr(kernel.get(action_id), "progress_hooks", None)
    if isinstance(progress_hooks, dict):  # long actions (a restore) report their progress to stderr
        progress_hooks[preview.preview_id] = _status_printer(sys.stderr)
    hooks = getattr(kernel.get(action_id), "hooks", None)
    if isinstance(hooks, dict):
        from opsconsole.actions.dlq import RunHooks

        hooks[preview.preview_id] = RunHooks(progress=_progress_printer(sys.stderr))
    result = await kernel.run(preview, confirmation)
    if isinstance(result, Refusal):
        if args.json:
            print(json.dumps(_refusal_json(action_id, result), ensure_ascii=False), file=out)
        _err(f"refused: {result.message}")
        return _exit_for_refusal(result, stage="run")
    assert isinstance(result, Outcome)
    if result.journal_error:
        _err(f"WARNING: the action ran but its journal event could not be written: {result.journal_error}")
    if args.json:
        print(json.dumps({"action": action_id, "status": result.status.value, "outcome": result.to_json(),
                          "preview_id": preview.preview_id}, ensure_ascii=False), file=out)
    else:
        _show_outcome(result, out)
    return _exit_for_outcome(result)


def _show_outcome(outcome: Outcome, out: TextIO) -> None:
    from opsconsole.actions.model import plain
    from opsconsole.domain.text import printable

    print(f"{outcome.status.value.upper()}: {printable(outcome.summary, single_line=True, limit=400)}", file=out)
    for item in plain(outcome.items)[:100]:
        shown = {k: v for k, v in item.items() if k in ("pid", "id", "result", "detail", "changed", "ids", "refused")}
        print("  - " + printable(", ".join(f"{k}={v}" for k, v in (shown or item).items()), single_line=True,
                                 limit=300), file=out)


def _known(kernel: ActionKernel, action_id: str, services: Services) -> int | None:
    """None when `action_id` is registered here; else the exit code, having said why."""
    from opsconsole.actions.catalog import KNOWN_ACTIONS, action_info

    try:
        kernel.get(action_id)
        return None
    except KeyError:
        pass
    info = action_info(action_id)
    if info is not None:
        _err(f"refused: {action_id} cannot run here: not configured (needs {info.needs or '?'}); "
             f"see `opsconsole config check`")
        return EX_REFUSED
    from opsconsole.domain.text import printable

    ids = ", ".join(a.id for a in KNOWN_ACTIONS)
    _err(f"opsconsole action: unknown action {printable(action_id, single_line=True, limit=60)!r}; known: {ids}")
    return EX_USAGE


def cmd_action(args: argparse.Namespace, *, stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    from opsconsole.actions.params import ParamError, parse_assignments
    from opsconsole.bootstrap import build_services
    from opsconsole.cli import _load

    settings = _load(args)
    if settings is None:
        return EX_USAGE
    services = build_services(settings)
    stream_out = out or sys.stdout
    if args.action_command == "list":
        try:
            return _list(services, bool(args.json), stream_out)
        finally:
            asyncio.run(services.aclose())
    params = parse_assignments(list(args.param))
    if isinstance(params, ParamError):
        _err(f"opsconsole action: {'; '.join(params.problems)}")
        asyncio.run(services.aclose())
        return EX_USAGE

    async def go() -> int:
        try:
            return await _run(services, args, params, stdin=stdin or sys.stdin, out=stream_out)
        finally:
            await services.aclose()

    try:
        return asyncio.run(go())
    except KeyboardInterrupt:
        _err("interrupted: the journal records the attempt; check what it did before retrying")
        return 130


__all__ = ["EX_DONE", "EX_FAILED", "EX_PARTIAL", "EX_REFUSED", "EX_USAGE", "add_action_parser", "cmd_action"]
