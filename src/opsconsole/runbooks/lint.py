"""What `opsconsole runbook lint` checks, and what the console checks before using a team's file.

Every problem names the file, the runbook, the step and the key:

* ids: unknown check id, unknown action id, unknown link, unknown tab; duplicate step ids;
* kinds: a check step without checks, an action step without an action, keys that do not belong
  to the step's kind (an action on a manual step...), `ack` without a `warning`;
* parameters: names and values checked against the action's declared parameters;
* safety: a destructive action without a `warning`;
* the graph: `on_fail`/`next` pointing at no step, a step no path reaches, a cycle with no check
  step in it (it would go round forever), no way to finish.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from opsconsole.runbooks.loader import Problem, parse_file
from opsconsole.runbooks.model import END, Runbook, Step
from opsconsole.runbooks.vocabulary import Vocabulary


def _close(word: str, known: Iterable[str], limit: int = 6) -> str:
    known = sorted(known)
    prefix = word.split(".")[0] + "."
    near = [k for k in known if k.startswith(prefix)] or known
    shown = ", ".join(near[:limit]) + (", ..." if len(near) > limit else "")
    return f"known: {shown}" if shown else "none known"


class _Lint:
    def __init__(self, runbook: Runbook, vocab: Vocabulary, file: str) -> None:
        self.rb = runbook
        self.vocab = vocab
        self.file = file
        self.problems: list[Problem] = []

    def add(self, step: Step | None, key: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.file, message, self.rb.id, step.id if step else "", key, severity))

    def run(self) -> list[Problem]:
        rb = self.rb
        for key, ids in (("triggers", rb.triggers), ("resolved", rb.resolved)):
            for cid in ids:
                if not self.vocab.known_check(cid):
                    self.add(None, key, f"unknown check id {cid!r} ({_close(cid, self.vocab.checks)})")
        seen: set[str] = set()
        for step in rb.steps:
            if step.id in seen:
                self.add(step, "id", f"step id {step.id!r} is used twice; step ids must be unique in a runbook")
            seen.add(step.id)
            self.step(step)
        self.graph()
        return self.problems

    def step(self, step: Step) -> None:
        if step.kind == "check" and not step.checks:
            self.add(step, "checks", "a check step needs checks = [...] (the checks that must be ok)")
        for cid in step.checks:
            if not self.vocab.known_check(cid):
                self.add(step, "checks", f"unknown check id {cid!r} ({_close(cid, self.vocab.checks)})")
        if step.kind != "action":
            for key, value in (("action", step.action), ("params", step.params), ("params_from", step.params_from)):
                if value:
                    self.add(step, key, f"only action steps take {key} (this is a {step.kind} step)")
        if step.kind != "check" and step.wait_s:
            self.add(step, "wait_s", "only check steps are re-checked; wait_s is ignored here", "warning")
        if step.ack and not step.warning:
            self.add(step, "ack", "ack needs a warning: the operator types the ack text to acknowledge it")
        if step.link and step.link not in self.vocab.links:
            self.add(step, "link", f"unknown link {step.link!r} (known: {', '.join(sorted(self.vocab.links))})")
        if step.kind == "action":
            self.action_step(step)
        if step.kind == "manual" and not step.link and not step.text:
            self.add(step, "link", "a manual step should say where to go: a link or a text", "warning")

    def action_step(self, step: Step) -> None:
        if not step.action:
            self.add(step, "action", "an action step needs action = \"<action id>\" (see `opsconsole action list`)")
            return
        ref = self.vocab.action(step.action)
        if ref is None:
            self.add(step, "action", f"unknown action id {step.action!r} "
                                     f"({_close(step.action, self.vocab.actions)})")
            return
        if ref.destructive and not step.warning:
            self.add(step, "warning", f"{step.action} is destructive: the step needs a warning that says what "
                                      "cannot be undone (and ideally an ack)")
        if not step.link:
            self.add(step, "link", f"{step.action}: give a link where to do it by hand, for a console where it is "
                                   "not configured", "warning")
        for name, source in step.params_from.items():
            check_id = source.split(":", 1)[0]
            if not self.vocab.known_check(check_id):
                self.add(step, "params_from", f"{name}: unknown check id {check_id!r}")
        if ref.params is None:
            return
        names = {p.name for p in ref.params}
        for name in list(step.params) + list(step.params_from):
            if name not in names:
                self.add(step, "params", f"{step.action} has no parameter {name!r} "
                                         f"(it takes: {', '.join(sorted(names)) or 'none'})")
        from opsconsole.actions.params import ParamError, coerce_params

        # Values are checked; missing required ones are asked for (or filled from a check) when run.
        lenient = [replace(p, required=False) for p in ref.params]
        checked = coerce_params(lenient, {k: v for k, v in step.params.items() if k in names})
        if isinstance(checked, ParamError):
            for problem in checked.problems:
                self.add(step, "params", problem)

    def graph(self) -> None:
        rb = self.rb
        ids = {s.id for s in rb.steps}
        for step in rb.steps:
            for key, target in (("on_fail", step.on_fail), ("next", step.next)):
                if target and target != END and target not in ids:
                    self.add(step, key, f"{key} = {target!r}: there is no such step "
                                        f"(steps: {', '.join(s.id for s in rb.steps)}; or \"{END}\")")
        if not rb.steps:
            return
        edges = {s.id: [t for t in rb.edges(s) if t in ids or t == END] for s in rb.steps}
        reached: set[str] = set()
        todo = [rb.steps[0].id]
        while todo:
            node = todo.pop()
            if node in reached or node == END:
                if node == END:
                    reached.add(END)
                continue
            reached.add(node)
            todo.extend(edges.get(node, []))
        for step in rb.steps:
            if step.id not in reached:
                self.add(step, "id", "unreachable: no path from the first step leads here (point a next or "
                                     "on_fail at it, or remove it)")
        if END not in reached:
            self.add(None, "steps", "the run can never finish: every path loops back (the last step needs "
                                    f"next = \"{END}\" or to be the last in the file)")
        kinds = {s.id: s.kind for s in rb.steps}
        for component in _cycles(edges):
            if not any(kinds[n] == "check" for n in component):
                order = [s.id for s in rb.steps if s.id in component]
                loop = " -> ".join([*order, order[0]])
                first = rb.step(order[0])
                self.add(first, "on_fail" if first.on_fail in component else "next",
                         f"cycle {loop} has no check step in it: the run would go round without ever "
                         "measuring whether it worked")


def _cycles(edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [t for t in edges.get(node, []) if t in edges]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges.get(node, []):
                    out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def lint_runbook(runbook: Runbook, vocab: Vocabulary, *, file: str = "") -> list[Problem]:
    """The problems of meaning in one parsed runbook (see the module docstring)."""
    return _Lint(runbook, vocab, file or runbook.path or runbook.source).run()


def lint_file(path: str, vocab: Vocabulary) -> list[Problem]:
    """Every problem of one file: its shape, then its meaning."""
    from pathlib import Path

    runbook, problems = parse_file(Path(path))
    if runbook is None:
        return problems
    return problems + lint_runbook(runbook, vocab, file=path)
