"""Theme files (TOML) -> Textual themes: the built-in ones plus the user's own."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "opsconsole-dark"
CONTRAST_THEME = "opsconsole-contrast"
_FIELDS = {"name", "primary", "secondary", "warning", "error", "success", "accent", "foreground",
           "background", "surface", "panel", "boost", "dark", "luminosity_spread", "text_alpha",
           "variables", "ansi"}


def colour_depth(env: Mapping[str, str]) -> int:
    """How many colours the terminal claims: 16777216 (COLORTERM truecolor/24bit, or a TERM naming
    truecolor/24bit/direct), 256 (a TERM naming 256color), else 16 (xterm, screen, tmux, linux,
    vt100…). Any other non-empty COLORTERM is a terminal advertising colour beyond the basic
    palette: treated as 256."""
    colorterm = env.get("COLORTERM", "").strip().lower()
    term = env.get("TERM", "").strip().lower()
    if colorterm in ("truecolor", "24bit") or any(word in term for word in ("truecolor", "24bit", "direct")):
        return 16_777_216
    if "256color" in term or colorterm:
        return 256
    return 16


def no_color_requested(env: Mapping[str, str]) -> bool:
    """NO_COLOR (no-color.org) is set. Present at all counts, as Textual itself treats it."""
    return "NO_COLOR" in env


def theme_for_terminal(env: Mapping[str, str]) -> str:
    """The theme when none is chosen (`--theme`, `[ui] theme`): on a 16-colour terminal the
    contrast theme, which uses only the 16 ANSI colours and so follows the terminal's own palette
    (the default theme's truecolours would be squeezed into whatever 16 colours are nearest);
    under NO_COLOR too (no colour is sent at all, and its styles lean on bold and reverse)."""
    if no_color_requested(env) or colour_depth(env) <= 16:
        return CONTRAST_THEME
    return DEFAULT_THEME


@dataclass(frozen=True)
class ThemeProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def theme_from_data(data: dict[str, Any], origin: str) -> Theme:
    """Validate one theme's data; raises ValueError with the reason."""
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ValueError("'name' must be a non-empty string")
    if not isinstance(data.get("primary"), str):
        raise ValueError("'primary' colour is required")
    for key, value in data.items():
        if key in {"name", "dark", "ansi", "luminosity_spread", "text_alpha", "variables"}:
            continue
        try:
            Color.parse(value)
        except ColorParseError as exc:
            raise ValueError(f"{key} = {value!r} is not a colour ({exc})") from None
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        raise ValueError("[variables] must map names to colour strings")
    return Theme(**data)


def load_theme_file(path: Path) -> Theme:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return theme_from_data(data, str(path))


def builtin_themes() -> list[Theme]:
    """The themes shipped in the top-level themes/ folder, installed as the `opsconsole.themes` package."""
    folder = resources.files("opsconsole.themes")
    themes = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            themes.append(theme_from_data(tomllib.loads(entry.read_text(encoding="utf-8")), entry.name))
    return themes


def user_themes(folder: Path | None) -> tuple[list[Theme], list[ThemeProblem]]:
    """Themes from the user's config dir; a broken file is reported, never fatal."""
    if folder is None or not folder.is_dir():
        return [], []
    themes: list[Theme] = []
    problems: list[ThemeProblem] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            themes.append(load_theme_file(path))
        except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError) as exc:
            problems.append(ThemeProblem(str(path), str(exc)))
    return themes, problems
