"""The layer rules of design.md, checked at run time and on the source text.

`lint-imports` (the contracts in pyproject.toml) checks the same statically in CI; these tests keep
the rules visible in the test suite and catch what only shows when the modules are really imported.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import opsconsole

CORE = ("opsconsole.domain", "opsconsole.adapters", "opsconsole.runbooks", "opsconsole.config",
        "opsconsole.settings", "opsconsole.services", "opsconsole.bootstrap", "opsconsole.paths",
        "opsconsole.demo", "opsconsole.audit", "opsconsole.actions")
FORBIDDEN = ("textual", "rich", "opsconsole.ui")
# Everything but the entry points (cli, bootstrap, __main__) and the demo itself.
PRODUCT = ("opsconsole.ui", "opsconsole.services", "opsconsole.actions", "opsconsole.runbooks",
           "opsconsole.adapters", "opsconsole.audit", "opsconsole.config", "opsconsole.domain",
           "opsconsole.settings", "opsconsole.paths")
SRC = Path(opsconsole.__file__).parent
# httpx imports Rich for its optional command-line client whenever click and Rich are installed
# (import-linter brings click into the test environment). That import is httpx's, not the console's,
# so the run-time checks load httpx as it is without its CLI extra.
WITHOUT_HTTPX_CLI = "import sys\nsys.modules['httpx._main'] = None\n"


def _module_name(path: Path) -> str:
    module = "opsconsole." + ".".join(path.relative_to(SRC).with_suffix("").parts)
    return module.removesuffix(".__init__")


def _files(prefixes: tuple[str, ...]) -> list[Path]:
    return [path for path in SRC.rglob("*.py") if _under(_module_name(path), prefixes)]


def _imports(path: Path) -> Iterator[str]:
    """Every module an absolute import statement names, wherever it stands (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)  # `from opsconsole import ui`


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _names(prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(SRC)], "opsconsole.") if _under(m.name, prefixes))


def _loaded_after_importing(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    """What a fresh interpreter has loaded under `roots` after importing `modules`."""
    code = (WITHOUT_HTTPX_CLI + "".join(f"import {m}\n" for m in modules) +
            f"roots = {roots!r}\n"
            "print(','.join(sorted(m for m in sys.modules if any(m == r or m.startswith(r + '.') for r in roots))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return [m for m in out.stdout.strip().split(",") if m]


def test_core_modules_do_not_import_textual_statically() -> None:
    files = _files(CORE)
    assert len(files) > 20
    offenders = sorted({f"{path.relative_to(SRC)} imports {name}"
                        for path in files for name in _imports(path) if _under(name, FORBIDDEN)})
    assert offenders == []


def test_importing_the_core_loads_no_textual() -> None:
    assert _loaded_after_importing(_names(CORE), FORBIDDEN) == []


def test_the_product_never_imports_the_demo_statically() -> None:
    """Only cli and bootstrap may start the demo environment; lazy imports count."""
    files = _files(PRODUCT)
    assert len(files) > 40
    offenders = sorted({f"{path.relative_to(SRC)} imports {name}"
                        for path in files for name in _imports(path) if _under(name, ("opsconsole.demo",))})
    assert offenders == []


def test_importing_the_product_loads_no_demo() -> None:
    assert _loaded_after_importing(_names(PRODUCT), ("opsconsole.demo",)) == []
