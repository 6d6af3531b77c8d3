"""Command line: parses arguments, builds Settings, hands them to bootstrap. See design.md."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from opsconsole import __version__

if TYPE_CHECKING:
    from opsconsole.domain.models import CheckResult
    from opsconsole.settings import Settings


def _env_name(value: str) -> str:
    from opsconsole.paths import check_env_name

    return check_env_name(value)


GLOBAL_OPTIONS = ("--config", "--env", "--read-only", "--theme")
EX_USAGE = 64  # sysexits.h: the command was used incorrectly (the `action` command's bad usage)


def _global_options(*, top: bool) -> argparse.ArgumentParser:
    """The options every command accepts, before or after the sub-command (same meaning).

    At the top they have real defaults; on each sub-command they are SUPPRESSed, so a value
    given after the sub-command overrides one given before it, and an absent one changes nothing."""
    g = argparse.ArgumentParser(add_help=False)
    quiet: dict[str, object] = {} if top else {"default": argparse.SUPPRESS}
    g.add_argument("--config", metavar="PATH", help="config file (default: $OPSCONSOLE_CONFIG or "
                   "<config dir>/config.toml; see `opsconsole config path`)", **quiet)  # type: ignore[arg-type]
    g.add_argument("--env", metavar="NAME", type=_env_name, help="use <config dir>/NAME.toml",
                   **quiet)  # type: ignore[arg-type]
    g.add_argument("--read-only", action="store_true", help="refuse and hide every mutating action",
                   **quiet)  # type: ignore[arg-type]
    g.add_argument("--theme", metavar="NAME", help="theme name (opsconsole-dark, opsconsole-light, "
                   "opsconsole-contrast, a Textual theme or one of yours)", **quiet)  # type: ignore[arg-type]
    return g


def _parser() -> argparse.ArgumentParser:
    top = _global_options(top=True)
    shared = [_global_options(top=False)]
    p = argparse.ArgumentParser(
        prog="opsconsole", parents=[top],
        description="The production runbook as a live terminal console: checks, guarded actions, guided steps.",
        epilog="Without a sub-command, opens the console on the configured environment. --config, --env, "
               "--read-only and --theme work before or after any sub-command.",
    )
    p.add_argument("--version", action="version", version=f"opsconsole {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", parents=shared, help="the console against the embedded demo environment",
                          description="Start a real PostgreSQL and loopback simulators of every service, "
                                      "then open the console on them. Everything stops when you quit.")
    demo.add_argument("--scenario", default=None, help=_scenario_help())
    demo_sub = demo.add_subparsers(dest="demo_command", metavar="serve")
    serve = demo_sub.add_parser("serve", parents=shared, help="only the demo environment, until interrupted",
                                description="Run the demo environment without the console; with "
                                            "--print-config, print the path of a config file that points at "
                                            "it (use it with `opsconsole --config PATH` or `check`).")
    serve.add_argument("--scenario", default=None, dest="serve_scenario", help=_scenario_help())
    serve.add_argument("--print-config", action="store_true", help="print the generated config file's path")

    check = sub.add_parser("check", parents=shared, help="one round of every live check, no UI",
                           description="Run every live check once and print the results. Exit code: 0 all OK, "
                                       "1 some WARN, 2 some FAIL, 3 UNKNOWN (worst wins; FAIL outranks UNKNOWN).")
    check.add_argument("--json", action="store_true", help="print JSON in the documented format")
    check.add_argument("--only", metavar="SYSTEM[,SYSTEM]", help="only these systems or check ids")

    timeline = sub.add_parser("timeline", parents=shared, help="the incident timeline from the audit journal",
                              description="Print the audit journal as an incident timeline: Markdown a "
                                          "postmortem can start from, or the raw JSONL events. Actions that "
                                          "started and never recorded an end are listed as outcome unknown.")
    timeline.add_argument("--since", metavar="DURATION", help="only events newer than this, e.g. 90s, 30m, 2h, 1d")
    timeline.add_argument("--format", choices=("md", "jsonl"), default="md", help="md (default) or jsonl")

    config = sub.add_parser("config", parents=shared, help="write a template, validate, or show paths",
                            description="Manage the configuration file.")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    init = config_sub.add_parser("init", parents=shared, help="write a commented template (mode 0600)",
                                 description="Write a commented configuration template (mode 0600).")
    init.add_argument("--path", metavar="PATH", help="where to write it (default: the config path)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    config_sub.add_parser("check", parents=shared, help="validate and print every problem at once",
                          description="Validate the configuration and its secrets; print every problem.")
    config_sub.add_parser("path", parents=shared, help="print where configuration, themes and the journal live",
                          description="Print where configuration, themes, state and the journal live.")

    from opsconsole.cli.action import add_action_parser

    add_action_parser(sub, shared)
    from opsconsole.cli.logs import add_logs_parser

    add_logs_parser(sub, shared)
    from opsconsole.cli.runbook import add_runbook_parser

    add_runbook_parser(sub, shared)
    return p


def _scenario_help() -> str:
    from opsconsole.demo.scenario import DEFAULT_SCENARIO, SCENARIOS

    return f"one of {', '.join(SCENARIOS)} (default: {DEFAULT_SCENARIO})"


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in `argv` (skipping global options and their values), if any."""
    takes_value = {"--config", "--env", "--theme"}
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in takes_value:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _config_path(args: argparse.Namespace) -> Path:
    from opsconsole.paths import resolve_config_path

    return resolve_config_path(args.config, args.env)


def _load(args: argparse.Namespace) -> Settings | None:
    from opsconsole.config import ConfigError, load_settings

    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        _err(str(exc))
        return None
    if getattr(args, "read_only", False):
        settings = dataclasses.replace(
            settings, environment=dataclasses.replace(settings.environment, read_only=True))
    return settings


def run_console(settings: Settings, theme: str | None, *, start_runbook: str | None = None,
                resume_run: str | None = None) -> int:
    """The console; `start_runbook` opens that runbook's wizard, `resume_run` resumes that open run."""
    from opsconsole.bootstrap import build_services
    from opsconsole.paths import user_themes_dir
    from opsconsole.ui.app import OpsApp

    # SIGHUP (the SSH connection dropped) exits cleanly: locks released, the open run stays resumable.
    signal.signal(signal.SIGHUP, _on_sigterm)
    app = OpsApp(build_services(settings), theme=theme, user_theme_dir=user_themes_dir(),
                 start_runbook=start_runbook, resume_run=resume_run)
    app.run()
    return app.return_code or 0


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def cmd_demo(args: argparse.Namespace) -> int:
    from opsconsole.config import ConfigError, load_settings
    from opsconsole.demo.environment import DemoEnvironment, DemoError
    from opsconsole.demo.scenario import DEFAULT_SCENARIO

    serving = args.demo_command == "serve"
    scenario = (args.serve_scenario if serving else args.scenario) or args.scenario or DEFAULT_SCENARIO
    read_only = bool(args.read_only)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    if not serving:
        print(f"Starting the demo environment ({scenario})…", file=sys.stderr)
    try:
        env = DemoEnvironment(scenario, read_only=read_only)
        env.start()
    except DemoError as exc:
        _err(f"opsconsole demo: {exc}")
        return 2
    try:
        assert env.config_path is not None
        if serving:
            if args.print_config:
                print(env.config_path, flush=True)
            else:
                print(f"Demo environment ({scenario}) ready in {env.ready_s:.2f} s. Config: {env.config_path}\n"
                      f"Use it with: opsconsole --config {env.config_path}\nCtrl+C stops it.", flush=True)
            _wait_forever()
            return 0
        try:
            settings = load_settings(env.config_path)
        except ConfigError as exc:
            _err(f"opsconsole demo: generated config is invalid (a bug): {exc}")
            return 2
        return run_console(settings, args.theme)
    except KeyboardInterrupt:
        return 130
    finally:
        env.stop()


def _wait_forever() -> None:
    import threading

    threading.Event().wait()


def _print_table(results: list[CheckResult], env_name: str, out: TextIO) -> None:
    from opsconsole.domain.models import worst

    overall = worst([r.status for r in results])
    print(f"{env_name}: {overall.value.upper()}", file=out)
    width = max((len(r.id) for r in results), default=10)
    for r in results:
        latency = "" if r.latency_ms is None else f" ({r.latency_ms:.0f} ms)"
        print(f"  {r.status.value.upper():<7} {r.id:<{width}}  {r.summary}{latency}", file=out)


def cmd_check(args: argparse.Namespace) -> int:
    from opsconsole.bootstrap import build_services
    from opsconsole.domain.models import Status, utcnow, worst

    settings = _load(args)
    if settings is None:
        return Status.UNKNOWN.exit_code
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    services = build_services(settings)

    async def go() -> list[CheckResult]:
        try:
            known = {c.id for c in services.runner.checks.values()} | {
                c.system for c in services.runner.checks.values()} | {
                c.id.split(".")[0] for c in services.runner.checks.values()}
            unknown = [o for o in only or [] if o not in known]
            if unknown:
                raise ValueError(f"unknown system or check id: {', '.join(unknown)}; "
                                 f"known: {', '.join(sorted(known))}")
            return await services.runner.run_all(only)
        finally:
            await services.aclose()

    checked_at = utcnow()
    try:
        results = asyncio.run(go())
    except ValueError as exc:
        _err(f"opsconsole check: {exc}")
        return Status.UNKNOWN.exit_code
    overall = worst([r.status for r in results])
    if args.json:
        doc = {"environment": settings.environment.name,
               "checked_at": checked_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
               "status": overall.value, "checks": [r.to_json() for r in results]}
        print(json.dumps(doc, indent=None, ensure_ascii=False))
    else:
        _print_table(results, settings.environment.name, sys.stdout)
    return overall.exit_code


def cmd_config(args: argparse.Namespace) -> int:
    from opsconsole import config, paths

    if args.config_command == "path":
        cfg = _config_path(args)
        print(f"config file:  {cfg}{'' if cfg.exists() else '  (does not exist: opsconsole config init)'}")
        print(f"config dir:   {paths.config_dir()}")
        print(f"themes dir:   {paths.user_themes_dir()}")
        print(f"state dir:    {paths.state_dir()}")
        print(f"audit journal: {paths.state_dir() / 'audit' / '<environment name>.jsonl'} (unless [audit] path)")
        return 0
    if args.config_command == "init":
        target = Path(args.path).expanduser() if args.path else _config_path(args)
        try:
            written = config.write_template(target, force=args.force)
        except (config.ConfigError, OSError) as exc:
            _err(f"opsconsole config init: {exc}")
            return 1
        print(f"Wrote a commented template to {written} (mode 0600). Edit it, then run: opsconsole config check")
        return 0
    # check
    path = _config_path(args)
    problems = config.check_config(path)
    errors = [p for p in problems if p.severity == "error"]
    if not problems:
        print(f"{path}: OK")
        return 0
    print(config.format_problems(problems), file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from opsconsole.audit import JournalError, render_timeline

    settings = _load(args)
    if settings is None:
        return 2
    try:
        print(render_timeline(settings, since=args.since, fmt=args.format), end="")
    except ValueError as exc:
        _err(f"opsconsole timeline: {exc}")
        return 2
    except JournalError as exc:
        _err(str(exc))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `opsconsole action list | head`: the reader left; not an error of ours
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(arguments)
    except SystemExit as exc:
        # `action` promises 64 for bad usage (scripts tell it from "refused" and "failed").
        if exc.code == 2 and _command_of(arguments) in ("action", "logs"):
            return EX_USAGE
        raise
    if args.command == "action":
        from opsconsole.cli.action import cmd_action

        return cmd_action(args)
    if args.command == "runbook":
        from opsconsole.cli.runbook import cmd_runbook

        return cmd_runbook(args)
    if args.command == "timeline":
        return cmd_timeline(args)
    if args.command == "logs":
        from opsconsole.cli.logs import cmd_logs

        return cmd_logs(args)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "config":
        return cmd_config(args)
    settings = _load(args)
    if settings is None:
        return 2
    return run_console(settings, args.theme)
