"""`opsconsole config check`: everything reading checks, plus this machine (each secret
resolvable and private, the audit journal writable), reported instead of raised.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from opsconsole import paths
from opsconsole.config.errors import ConfigError, Problem
from opsconsole.config.fields import Reader
from opsconsole.config.reading import parse
from opsconsole.config.secrets import check_secret
from opsconsole.settings import Settings


def _check_audit(r: Reader, settings: Settings) -> None:
    target = (
        Path(settings.audit.path)
        if settings.audit.path
        else paths.default_audit_path(settings.environment.name)
    )
    key = "audit.path"
    if target.is_dir():
        r.add(key, "a file path for the audit journal", f"{target}, which is a directory")
        return
    if target.exists():
        if not os.access(target, os.W_OK):
            r.add(key, f"an audit journal this user can append to ({target})", "a file it cannot write")
        return
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        r.add(
            key,
            f"a writable directory for the audit journal {target}",
            f"{ancestor}, which this user cannot write to",
            hint='set [audit] path = "..." to a writable location',
        )


def check_config(path: Path) -> list[Problem]:
    """Everything `load_settings` checks plus this machine: secrets resolvable, permissions, audit dir.

    Returns problems (errors and warnings) instead of raising, so `config check` can show them all.
    """
    path = Path(path).expanduser()
    try:
        settings, reader = parse(path)
    except ConfigError as exc:
        return list(exc.problems)
    try:
        config_mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        config_mode = None
    for key, secret in reader.secrets:
        check_secret(reader, key, secret, config_mode)
    if "audit" not in reader.failed:
        _check_audit(reader, settings)
    return list(reader.problems)


def format_problems(problems: Sequence[Problem]) -> str:
    """Lines `error: ...` / `warning: ...`, errors first, and a count, for `config check` output."""
    if not problems:
        return "no problems found"
    ordered = sorted(problems, key=lambda p: not p.is_error)
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    lines = [f"{p.severity}: {p}" for p in ordered]
    lines.append(
        f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}"
    )
    return "\n".join(lines)
