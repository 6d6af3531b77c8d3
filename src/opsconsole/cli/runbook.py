"""`opsconsole runbook list | show ID | lint [PATH...] | start ID | resume [RUN_ID]`.

`list`, `show` and `lint` read the built-in runbooks and the team's (`[runbooks] dir`, default
`<config dir>/runbooks`); without a config file they use the defaults. `lint` names the file,
the runbook, the step and the key of every problem and exits 1 when any is an error (warnings
alone: 0). `start` and `resume` open the console on that wizard.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from opsconsole.runbooks.loader import Problem, RunbookCatalog
    from opsconsole.runbooks.model import Runbook
    from opsconsole.runbooks.vocabulary import Vocabulary
    from opsconsole.settings import Settings

EX_OK, EX_PROBLEMS, EX_FAILED, EX_USAGE = 0, 1, 2, 64


def add_runbook_parser(sub: Any, shared: list[argparse.ArgumentParser]) -> None:
    rb = sub.add_parser("runbook", parents=shared, help="the incident runbooks (wizards): list, show, lint, start",
                        description="The incident runbooks the console walks as guided wizards: the built-in "
                                    "ones and your team's files ([runbooks] dir, default <config dir>/runbooks).")
    verbs = rb.add_subparsers(dest="runbook_command", metavar="list|show|lint|start|resume", required=True)
    listing = verbs.add_parser("list", parents=shared, help="every runbook: id, title, steps, where it comes from",
                               description="Every runbook the console offers, built-in or your team's.")
    listing.add_argument("--json", action="store_true", help="one JSON object")
    show = verbs.add_parser("show", parents=shared, help="one runbook step by step",
                            description="One runbook, step by step: kind, checks, action, link, warning, branches.")
    show.add_argument("runbook_id", metavar="ID", help="the runbook id (see `opsconsole runbook list`)")
    show.add_argument("--json", action="store_true", help="one JSON object")
    lint = verbs.add_parser("lint", parents=shared, help="check runbook files; exit 1 on any problem",
                            description="Check runbook files: unknown check/action ids and links, on_fail/next "
                                        "targets, unreachable steps, cycles without a check, destructive actions "
                                        "without a warning. Without PATH: the built-in runbooks and your team's "
                                        "folder. Exit 0 clean (warnings allowed), 1 problems found.")
    lint.add_argument("paths", nargs="*", metavar="PATH", help="files or folders of *.toml")
    lint.add_argument("--json", action="store_true", help="the problems as one JSON object")
    start = verbs.add_parser("start", parents=shared, help="the console, opened on this runbook's wizard",
                             description="Open the console on the wizard of runbook ID: it continues the run "
                                         "of ID the journal holds open (at its step, with its history), and "
                                         "starts a new run only when there is none. A run another console "
                                         "walks (it holds the lock runbook:ID) is offered to follow read-only.")
    start.add_argument("runbook_id", metavar="ID", help="the runbook id")
    resume = verbs.add_parser("resume", parents=shared, help="the console, resuming an open run",
                              description="Open the console on a wizard run the journal holds open (a console "
                                          "killed or disconnected mid-run): RUN_ID, or the newest open run.")
    resume.add_argument("run_id", metavar="RUN_ID", nargs="?", help="the run id (default: the newest open run)")


def _settings(args: argparse.Namespace, *, required: bool) -> Settings | None:
    """The configuration; for list/show/lint a missing file means the defaults."""
    from opsconsole.cli import _config_path, _load
    from opsconsole.settings import Settings

    if not required and not _config_path(args).exists():
        return Settings()
    return _load(args)


def _vocabulary() -> Vocabulary:
    from opsconsole.runbooks.catalog import LINK_KEYS
    from opsconsole.runbooks.vocabulary import build_vocabulary
    from opsconsole.services import CHECK_IDS

    return build_vocabulary(CHECK_IDS, LINK_KEYS)


def _catalog(settings: Settings, vocab: Vocabulary) -> RunbookCatalog:
    from opsconsole.runbooks.lint import lint_runbook
    from opsconsole.runbooks.loader import load_catalog, user_runbooks_dir

    return load_catalog(user_runbooks_dir(settings.runbooks.dir), lambda rb: lint_runbook(rb, vocab))


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _step_line(rb: Runbook, index: int, vocab: Vocabulary, links: dict[str, str]) -> list[str]:
    step = rb.steps[index]
    number = f" (runbook step {step.number})" if step.number else ""
    lines = [f"{index + 1}. [{step.kind}] {step.title}{number}   id: {step.id}"]
    if step.text and step.text != step.title:
        lines.append(f"     {step.text}")
    if step.checks:
        marks = [c if vocab.check_built(c) else f"{c} (unknown)" for c in step.checks]
        lines.append(f"     checks: {', '.join(marks)}")
    if step.action:
        ref = vocab.action(step.action)
        state = f" ({ref.tier})" if ref is not None else " (unknown)"
        lines.append(f"     action: {step.action}{state}" + (f" {dict(step.params)}" if step.params else ""))
        for name, source in step.params_from.items():
            lines.append(f"     {name} from {source}")
    if step.link:
        lines.append(f"     where: {links.get(step.link, step.link + ' (not configured here)')}")
    if step.warning:
        lines.append(f"     WARNING: {step.warning}")
    if step.ack:
        lines.append(f"     the operator types {step.ack!r} before the step can start, pass or be skipped")
    nxt = rb.following(step)
    lines.append(f"     then: {nxt}" + (f"; if it fails: {step.on_fail}" if step.on_fail else ""))
    return lines


def _list(catalog: RunbookCatalog, as_json: bool, out: TextIO) -> int:
    rows: list[dict[str, Any]] = [{"id": rb.id, "title": rb.title, "steps": len(rb.steps),
                                   "triggers": list(rb.triggers), "source": rb.source} for rb in catalog.ordered()]
    if as_json:
        print(json.dumps({"runbooks": rows, "notices": catalog.notices}, ensure_ascii=False), file=out)
    else:
        width = max((len(r["id"]) for r in rows), default=4)
        for r in rows:
            trig = f"  (suggested by {', '.join(r['triggers'])})" if r["triggers"] else ""
            src = "" if r["source"] == "built-in" else f"  [{r['source']}]"
            print(f"{r['id']:<{width}}  {r['title']}: {r['steps']} steps{trig}{src}", file=out)
    for notice in catalog.notices:
        _err(notice)
    return EX_OK


def _show(catalog: RunbookCatalog, runbook_id: str, vocab: Vocabulary, settings: Settings, as_json: bool,
          out: TextIO) -> int:
    from opsconsole.runbooks.catalog import links

    rb = catalog.get(runbook_id)
    if rb is None:
        _err(f"opsconsole runbook show: no runbook {runbook_id!r}; known: {', '.join(catalog.runbooks)}")
        return EX_USAGE
    deep = links(settings)
    if as_json:
        steps = [{"id": s.id, "title": s.title, "kind": s.kind, "text": s.text, "checks": list(s.checks),
                  "action": s.action, "params": dict(s.params), "params_from": dict(s.params_from),
                  "warning": s.warning, "ack": s.ack, "link": deep.get(s.link, s.link), "number": s.number,
                  "next": rb.following(s), "on_fail": s.on_fail} for s in rb.steps]
        print(json.dumps({"id": rb.id, "title": rb.title, "triggers": list(rb.triggers),
                          "resolved": list(rb.closing_checks), "source": rb.source, "steps": steps},
                         ensure_ascii=False), file=out)
        return EX_OK
    print(f"{rb.title}  ({rb.id}, {rb.source})", file=out)
    if rb.description:
        print(rb.description, file=out)
    if rb.triggers:
        print(f"suggested when any of these fails: {', '.join(rb.triggers)}", file=out)
    print("", file=out)
    for i in range(len(rb.steps)):
        for line in _step_line(rb, i, vocab, deep):
            print(line, file=out)
    if rb.closing_checks:
        print(f"\nresolved when ok: {', '.join(rb.closing_checks)}", file=out)
    return EX_OK


def _lint_paths(paths: list[str], vocab: Vocabulary) -> tuple[list[Problem], int]:
    from opsconsole.runbooks.lint import lint_file
    from opsconsole.runbooks.loader import Problem

    problems: list[Problem] = []
    files = 0
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                problems.append(Problem(str(path), "no *.toml runbook files in this folder", severity="warning"))
            for f in found:
                files += 1
                problems += lint_file(str(f), vocab)
        elif path.exists():
            files += 1
            problems += lint_file(str(path), vocab)
        else:
            problems.append(Problem(str(path), "no such file or folder"))
    return problems, files


def _lint(args: argparse.Namespace, settings: Settings, vocab: Vocabulary, out: TextIO) -> int:
    from opsconsole.runbooks.lint import lint_runbook
    from opsconsole.runbooks.loader import BUILTIN_SOURCE, builtin_texts, parse_text, user_runbooks_dir

    if args.paths:
        problems, files = _lint_paths(args.paths, vocab)
    else:
        problems = []
        files = 0
        for name, text in builtin_texts():
            files += 1
            rb, found = parse_text(text, f"{BUILTIN_SOURCE}/{name}", source=BUILTIN_SOURCE)
            problems += found + (lint_runbook(rb, vocab) if rb is not None else [])
        folder = user_runbooks_dir(settings.runbooks.dir)
        if folder.is_dir():
            more, n = _lint_paths([str(folder)], vocab)
            problems += [p for p in more if p.message != "no *.toml runbook files in this folder"]
            files += n
    errors = [p for p in problems if p.severity == "error"]
    if args.json:
        print(json.dumps({"files": files, "errors": len(errors), "problems": [p.to_json() for p in problems]},
                         ensure_ascii=False), file=out)
    else:
        for p in problems:
            print(str(p), file=out)
        warnings = len(problems) - len(errors)
        summary = f"{files} file{'s' if files != 1 else ''}: {len(errors)} error{'s' if len(errors) != 1 else ''}"
        summary += f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""
        print(summary if problems else f"{summary}: OK", file=out)
    return EX_PROBLEMS if errors else EX_OK


def cmd_runbook(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    verb = args.runbook_command
    settings = _settings(args, required=verb in ("start", "resume"))
    if settings is None:
        return EX_FAILED
    vocab = _vocabulary()
    if verb == "lint":
        return _lint(args, settings, vocab, out)
    catalog = _catalog(settings, vocab)
    if verb == "list":
        return _list(catalog, args.json, out)
    if verb == "show":
        return _show(catalog, args.runbook_id, vocab, settings, args.json, out)
    for notice in catalog.notices:
        _err(notice)
    from opsconsole.cli import run_console

    if verb == "start":
        if catalog.get(args.runbook_id) is None:
            _err(f"opsconsole runbook start: no runbook {args.runbook_id!r}; known: {', '.join(catalog.runbooks)}")
            return EX_USAGE
        return run_console(settings, args.theme, start_runbook=args.runbook_id)
    # resume
    from opsconsole.audit import Journal, JournalError, Operator, journal_path, open_wizard_runs

    journal = Journal(journal_path(settings), environment=settings.environment.name, operator=Operator(user="-"))
    try:
        runs = open_wizard_runs(journal.read().events)
    except JournalError as exc:
        _err(str(exc))
        return EX_FAILED
    if args.run_id:
        runs = [r for r in runs if r.run == args.run_id]
        if not runs:
            _err(f"opsconsole runbook resume: no open run {args.run_id!r} in {journal.path} "
                 "(`opsconsole timeline` lists the runs)")
            return EX_PROBLEMS
    if not runs:
        _err(f"opsconsole runbook resume: no open wizard run in {journal.path}")
        return EX_PROBLEMS
    return run_console(settings, args.theme, resume_run=runs[0].run)
