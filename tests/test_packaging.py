"""pyproject.toml lists the packages by hand (themes/ is mapped in); this keeps the list complete."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        table: dict[str, object] = tomllib.load(fh)["tool"]["setuptools"]
    return table


def test_every_package_under_src_is_installed() -> None:
    """A sub-package missing from the list would be absent from the wheel while editable installs still work."""
    src = ROOT / "src"
    found = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert set(_setuptools()["packages"]) == found | {"opsconsole.themes"}  # type: ignore[arg-type]


def test_top_level_themes_folder_is_the_themes_package() -> None:
    assert _setuptools()["package-dir"] == {"": "src", "opsconsole.themes": "themes"}
    assert (ROOT / "themes" / "__init__.py").is_file()
    names = sorted(p.name for p in (ROOT / "themes").glob("*.toml"))
    assert names == ["opsconsole-contrast.toml", "opsconsole-dark.toml", "opsconsole-light.toml"]
