"""Reading runbook files: the built-in ones shipped in the package and a team's own.

`parse_text` turns one TOML document into a `Runbook` plus the problems of its shape (unknown
keys, wrong types, missing ids); `runbooks.lint` adds the problems of its meaning (unknown check
or action ids, unreachable steps...). `load_catalog` reads the built-in files, then every
`*.toml` in the team's folder (`[runbooks] dir`, default `<config dir>/runbooks`): a team file
adds a runbook or replaces the built-in one with the same id. A file with any error is not
used; the console keeps the built-in runbook and says why (never stops over a broken file).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from opsconsole.runbooks.model import DEFAULT_EVERY_S, KINDS, TABS, Runbook, Step

BUILTIN_SOURCE = "built-in"
BUILTIN_ORDER: tuple[str, ...] = ("api-down", "supabase-queries", "n8n-sync", "twilio-webhooks", "rollback",
                                  "backup-restore")
MAX_FILE_BYTES = 256 * 1024
MAX_STEPS = 60
MAX_WAIT_S = 3600.0

RUNBOOK_KEYS = ("id", "title", "triggers", "resolved", "description", "steps")
STEP_KEYS = ("id", "title", "text", "kind", "checks", "on_fail", "next", "action", "params", "params_from",
             "warning", "ack", "link", "tab", "number", "wait_s", "every_s")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PARAMS_FROM = re.compile(r"^(?P<check>[a-z0-9_]+\.[a-z0-9_]+):(?P<path>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a runbook file: where (file, runbook, step, key) and what."""

    file: str
    message: str
    runbook: str = ""
    step: str = ""
    key: str = ""
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = [self.file]
        if self.runbook:
            where.append(f"runbook {self.runbook}")
        if self.step:
            where.append(f"step {self.step}")
        if self.key:
            where.append(f"key {self.key}")
        level = "" if self.severity == "error" else f"{self.severity}: "
        return f"{': '.join(where)}: {level}{self.message}"

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "runbook": self.runbook, "step": self.step, "key": self.key,
                "severity": self.severity, "message": self.message}


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Typed access to one table, collecting problems instead of raising."""

    def __init__(self, table: Mapping[str, Any], file: str, runbook: str, step: str,
                 problems: list[Problem]) -> None:
        self.table = table
        self.file, self.runbook, self.step = file, runbook, step
        self.problems = problems

    def problem(self, key: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.file, message, self.runbook, self.step, key, severity))

    def text(self, key: str, *, required: bool = False, limit: int = 4000) -> str:
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, "missing: every runbook and step needs one")
            return ""
        if not isinstance(value, str):
            self.problem(key, f"must be a string, not {type(value).__name__} {_preview(value)}")
            return ""
        if len(value) > limit:
            self.problem(key, f"longer than {limit} characters")
            return value[:limit]
        return value.strip()

    def ident(self, key: str, *, required: bool = False) -> str:
        value = self.text(key, required=required)
        if value and not _ID.match(value):
            self.problem(key, f"{value!r} is not a valid id: lowercase letters, digits, '-' and '_' "
                              "(at most 64, starting with a letter or digit)")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            self.problem(key, f"must be a list of strings, e.g. {key} = [{value!r}]")
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"must be a list of strings, not {_preview(value)}")
            return ()
        return tuple(v.strip() for v in value)

    def number(self, key: str, default: float, *, low: float, high: float, integer: bool = False) -> float:
        value = self.table.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            self.problem(key, f"must be {'an integer' if integer else 'a number'}, not {_preview(value)}")
            return default
        if not low <= value <= high:
            self.problem(key, f"must be between {low:g} and {high:g}, not {value}")
            return default
        return float(value)

    def table_of(self, key: str) -> dict[str, Any]:
        value = self.table.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(key, f"must be a table, e.g. {key} = {{ name = \"value\" }}, not {_preview(value)}")
            return {}
        return dict(value)

    def unknown_keys(self, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        for key in self.table:
            if key not in allowed:
                close = [k for k in allowed if k.replace("_", "") == key.replace("-", "").replace("_", "")]
                hint = f" (did you mean {close[0]}?)" if close else f"; known keys: {', '.join(allowed)}"
                self.problem(key, f"unknown {what} key{hint}")


def _step(raw: Any, position: int, file: str, runbook: str, problems: list[Problem]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(Problem(file, f"steps[{position}] must be a table ([[steps]])", runbook, key="steps"))
        return None
    probe = raw.get("id")
    step_name = probe if isinstance(probe, str) and probe else f"#{position + 1}"
    r = _Reader(raw, file, runbook, step_name, problems)
    r.unknown_keys(STEP_KEYS, "step")
    step_id = r.ident("id", required=True)
    kind = r.text("kind", required=True)
    if kind and kind not in KINDS:
        r.problem("kind", f"{kind!r} is not a step kind: use check, action or manual")
    text = r.text("text", limit=4000)
    title = r.text("title", limit=200) or text.split("\n", 1)[0][:200]
    if not title:
        r.problem("title", "missing: give the step a title (or a text)")
    params = r.table_of("params")
    params_from: dict[str, str] = {}
    for name, source in r.table_of("params_from").items():
        if not isinstance(source, str) or not _PARAMS_FROM.match(source.strip()):
            r.problem("params_from", f"{name}: expected \"<check id>:<path>\" such as "
                                     f"\"db.long_running:sessions.pid\", not {_preview(source)}")
            continue
        params_from[str(name)] = source.strip()
    tab = r.text("tab")
    if tab and tab not in TABS:
        r.problem("tab", f"{tab!r} is not a tab: use one of {', '.join(TABS)}")
        tab = ""
    number = int(r.number("number", 0, low=0, high=99, integer=True))
    wait_s = r.number("wait_s", 0.0, low=0, high=MAX_WAIT_S)
    every_s = r.number("every_s", DEFAULT_EVERY_S, low=0.5, high=600)
    return Step(id=step_id or step_name, title=title, kind=kind, text=text, checks=r.strings("checks"),
                on_fail=r.ident("on_fail"), next=r.ident("next"), action=r.text("action", limit=80),
                params=params, params_from=params_from, warning=r.text("warning"), ack=r.text("ack", limit=80),
                link=r.text("link", limit=80), tab=tab, number=number, wait_s=wait_s, every_s=every_s)


def parse_data(data: Mapping[str, Any], file: str, *, source: str = "") -> tuple[Runbook | None, list[Problem]]:
    """A runbook from parsed TOML, and the problems of its shape."""
    problems: list[Problem] = []
    probe = data.get("id")
    name = probe if isinstance(probe, str) else ""
    r = _Reader(data, file, name, "", problems)
    r.unknown_keys(RUNBOOK_KEYS, "runbook")
    runbook_id = r.ident("id", required=True)
    title = r.text("title", required=True, limit=200)
    raw_steps = data.get("steps")
    steps: list[Step] = []
    if raw_steps is None:
        r.problem("steps", "missing: a runbook needs at least one [[steps]] table")
    elif not isinstance(raw_steps, list):
        r.problem("steps", "must be an array of tables: write each step as [[steps]]")
    else:
        if len(raw_steps) > MAX_STEPS:
            r.problem("steps", f"{len(raw_steps)} steps; at most {MAX_STEPS}")
        for i, raw in enumerate(raw_steps[:MAX_STEPS]):
            step = _step(raw, i, file, runbook_id, problems)
            if step is not None:
                steps.append(step)
        if not raw_steps:
            r.problem("steps", "empty: a runbook needs at least one step")
    if not runbook_id or not title or not steps:
        return None, problems
    return Runbook(id=runbook_id, title=title, steps=tuple(steps), triggers=r.strings("triggers"),
                   resolved=r.strings("resolved"), description=r.text("description"),
                   source=source or file, path=file if source != BUILTIN_SOURCE else ""), problems


def parse_text(text: str, file: str, *, source: str = "") -> tuple[Runbook | None, list[Problem]]:
    """One runbook from TOML text; a file that is not TOML is one problem saying where."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, [Problem(file, f"not valid TOML: {exc}")]
    return parse_data(data, file, source=source)


def parse_file(path: Path) -> tuple[Runbook | None, list[Problem]]:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [Problem(file, f"{size:,} bytes; a runbook file is at most {MAX_FILE_BYTES:,}")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(file, f"cannot be read: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, [Problem(file, "is not UTF-8 text")]
    return parse_text(text, file)


def builtin_texts() -> list[tuple[str, str]]:
    """(file name, text) of every built-in runbook, in BUILTIN_ORDER then by name."""
    folder = resources.files("opsconsole.runbooks").joinpath("builtin")
    found = {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir()
             if entry.name.endswith(".toml")}
    order = {f"{rid}.toml": i for i, rid in enumerate(BUILTIN_ORDER)}
    return sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def builtin_runbooks() -> list[Runbook]:
    """The runbooks shipped with the package (their shape is checked by the tests)."""
    out: list[Runbook] = []
    for name, text in builtin_texts():
        runbook, problems = parse_text(text, f"{BUILTIN_SOURCE}/{name}", source=BUILTIN_SOURCE)
        if runbook is not None and not any(p.severity == "error" for p in problems):
            out.append(runbook)
    return out


def user_runbooks_dir(configured: str = "") -> Path:
    """`[runbooks] dir`, or `<config dir>/runbooks`."""
    if configured:
        return Path(configured).expanduser()
    from opsconsole.paths import config_dir

    return config_dir() / "runbooks"


@dataclass
class RunbookCatalog:
    """The runbooks to offer (built-in, then the team's additions) and what was wrong on the way.

    `notices` are one line each for the operator ("<file>: not used (3 problems); using the
    built-in API Down / 500 Errors"); `problems` every problem found."""

    runbooks: dict[str, Runbook] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    folder: Path | None = None

    def get(self, runbook_id: str) -> Runbook | None:
        return self.runbooks.get(runbook_id)

    def ordered(self) -> list[Runbook]:
        return list(self.runbooks.values())

    def for_trigger(self, check_id: str) -> list[Runbook]:
        return [rb for rb in self.runbooks.values() if check_id in rb.triggers]


Linter = Callable[[Runbook], list[Problem]]


def _has_error(problems: Iterable[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def load_catalog(folder: Path | None, lint: Linter | None = None) -> RunbookCatalog:
    """Built-in runbooks, then every `*.toml` in `folder` (missing folder: none). Files with any
    error (shape, or `lint` when given) are left out and named in `notices`."""
    catalog = RunbookCatalog(folder=folder)
    for builtin_rb in builtin_runbooks():
        catalog.runbooks[builtin_rb.id] = builtin_rb
    if folder is None or not folder.is_dir():
        return catalog
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".toml" and p.is_file())
    except OSError as exc:
        catalog.notices.append(f"{folder}: cannot be listed ({exc.strerror or exc}); using the built-in runbooks")
        return catalog
    seen: dict[str, Path] = {}
    for path in files:
        runbook, problems = parse_file(path)
        if runbook is not None and lint is not None:
            problems = problems + lint(runbook)
        catalog.problems.extend(problems)
        if runbook is None or _has_error(problems):
            count = sum(1 for p in problems if p.severity == "error")
            rid = runbook.id if runbook is not None else _probe_id(path)
            builtin = catalog.runbooks.get(rid) if rid else None
            keep = (f"using the built-in {builtin.title}" if builtin is not None and builtin.source == BUILTIN_SOURCE
                    else "it is not offered")
            first = next(p for p in problems if p.severity == "error")
            catalog.notices.append(f"{path}: not used ({count} problem{'s' if count != 1 else ''}, first: "
                                   f"{first.message}); {keep}. `opsconsole runbook lint {path}` lists them all")
            continue
        if runbook.id in seen:
            catalog.notices.append(f"{path}: not used: {seen[runbook.id]} already defines runbook {runbook.id}")
            continue
        seen[runbook.id] = path
        catalog.runbooks[runbook.id] = runbook
    return catalog


def _probe_id(path: Path) -> str:
    """The `id` a broken file meant to define, if it can be read at all."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return path.stem
    value = data.get("id")
    return value if isinstance(value, str) else path.stem
