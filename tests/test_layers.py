"""The core never imports Textual, Rich or the UI (design.md: layers)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import opsconsole

CORE = ("opsconsole.domain", "opsconsole.adapters", "opsconsole.runbooks", "opsconsole.config",
        "opsconsole.settings", "opsconsole.services", "opsconsole.bootstrap", "opsconsole.paths",
        "opsconsole.demo", "opsconsole.audit", "opsconsole.actions")
FORBIDDEN = ("textual", "rich", "opsconsole.ui")
SRC = Path(opsconsole.__file__).parent


def _core_files() -> list[Path]:
    files = []
    for path in SRC.rglob("*.py"):
        module = "opsconsole." + ".".join(path.relative_to(SRC).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        if module.startswith(CORE):
            files.append(path)
    return files


def test_core_modules_do_not_import_textual_statically() -> None:
    offenders = []
    files = _core_files()
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith(FORBIDDEN):
                    offenders.append(f"{path.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_importing_the_core_loads_no_textual() -> None:
    modules = sorted(m.name for m in pkgutil.walk_packages([str(SRC)], "opsconsole.")
                     if m.name.startswith(CORE))
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules) +
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') "
            "or m.startswith('opsconsole.ui')]\nprint(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
