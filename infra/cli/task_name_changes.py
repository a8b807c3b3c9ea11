"""Task names a change removes or renames, and what still sends them (the pull-request check).

A task name is the contract between whoever sends a task and the workers that run it. A name that
leaves the workers while something still sends it (a route in a stack, a periodic entry, producers
that saw it in the queues' recent traffic) strands those messages: the new workers dead-letter them
as `unknown_task`. The check compares the names declared under `worker/` at a base ref with the working
tree, statically (no code of either revision runs), and flags every removed name that is still
routed, scheduled or seen, unless the change keeps it as an alias or retires it with a reason.

The two ways through (docs/worker.md, "Renaming a task"):
- an alias: the old name stays registered for a release, running the new code,
  `send = app.task(name="invoices.send")(send_v2.run)`;
- retirement: `worker/tasks/retired.py` maps the old name to why dropping it is safe.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SCANNED: Final = "worker"
RETIRED_FILE: Final = "worker/tasks/retired.py"
RETIRED_NAME: Final = "RETIRED"


@dataclass(frozen=True)
class Declared:
    name: str
    path: str
    function: str | None
    """The decorated function (None for an alias registered by a call, `app.task(name=...)(f)`)."""


def _task_name(call: ast.Call) -> str | None:
    """`name="..."` of `app.task(...)`, `shared_task(...)` or `task(...)`."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if called not in ("task", "shared_task"):
        return None
    for keyword in call.keywords:
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            return keyword.value.value
    return None


def declared_in(path: str, text: str) -> list[Declared]:
    """Every task name one module declares, with the function it names."""
    tree = ast.parse(text, filename=path)
    found: list[Declared] = []
    decorators: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and (name := _task_name(decorator)) is not None:
                    found.append(Declared(name, path, node.name))
                    decorators.add(id(decorator))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and id(node) not in decorators and (name := _task_name(node)) is not None:
            found.append(Declared(name, path, None))
    return found


def retired_in(text: str) -> dict[str, str]:
    """`RETIRED = {"old.name": "why it is safe", ...}` of worker/tasks/retired.py."""
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == RETIRED_NAME for t in targets) and node.value is not None:
                value = ast.literal_eval(node.value)
                return {str(k): str(v) for k, v in dict(value).items()}
    return {}


def sources_at(ref: str, root: Path) -> dict[str, str]:
    """The Python files under worker/ at git `ref`."""
    listed = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", ref, "--", SCANNED],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=root, capture_output=True, text=True, check=True
        ).stdout

    return {path: show(path) for path in listed if path.endswith(".py")}


def sources_here(root: Path) -> dict[str, str]:
    """The Python files under worker/ in the working tree."""
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted((root / SCANNED).rglob("*.py"))}


def declared(sources: Mapping[str, str]) -> dict[str, Declared]:
    return {d.name: d for path, text in sorted(sources.items()) for d in declared_in(path, text)}


@dataclass(frozen=True)
class Finding:
    name: str
    renamed_to: str | None
    routed: tuple[str, ...] = ()
    """`stack: pattern` of each route that still sends the name to a queue."""
    scheduled: tuple[str, ...] = ()
    """Periodic entries that still send it."""
    seen: bool = False
    """In the queues' recent traffic (--seen)."""
    retired: str | None = None

    @property
    def stranded(self) -> bool:
        """Something still sends it and nothing says that is fine."""
        return self.retired is None and bool(self.routed or self.scheduled or self.seen)

    def line(self) -> str:
        what = f"`{self.name}`" + (f" (renamed to `{self.renamed_to}`)" if self.renamed_to else " (removed)")
        uses = [f"routed by {', '.join(self.routed)}"] if self.routed else []
        uses += [f"scheduled by {', '.join(self.scheduled)}"] if self.scheduled else []
        uses += ["seen in recent traffic"] if self.seen else []
        if self.retired is not None:
            return f"- {what}: retired ({self.retired})"
        return f"- {what}: " + ("; ".join(uses) if uses else "nothing here sends it any more")


@dataclass(frozen=True)
class Senders:
    """What may still send a task name, from the working tree (and the operator's traffic export)."""

    routes: Mapping[str, Mapping[str, str]]
    """{stack: {task name or glob: queue}}."""
    schedule: Mapping[str, str]
    """{periodic entry name: task name}."""
    seen: frozenset[str] = field(default_factory=frozenset)


def _routes_for(name: str, routes: Mapping[str, Mapping[str, str]], remaining: Iterable[str]) -> tuple[str, ...]:
    """Routes that exist for `name`: its own key, or a glob that matches it and no task that remains."""
    kept = list(remaining)
    found = []
    for stack, table in sorted(routes.items()):
        for pattern in table:
            exact = pattern == name
            stale_glob = fnmatch.fnmatchcase(name, pattern) and not any(fnmatch.fnmatchcase(k, pattern) for k in kept)
            if exact or stale_glob:
                found.append(f"{stack}: {pattern}")
    return tuple(found)


def check(base: Mapping[str, str], head: Mapping[str, str], senders: Senders) -> list[Finding]:
    """One finding per task name declared at `base` and gone at `head`."""
    before, after = declared(base), declared(head)
    retired = retired_in(head.get(RETIRED_FILE, ""))
    by_function: dict[tuple[str, str | None], str] = {
        (d.path, d.function): d.name for d in after.values() if d.function is not None
    }
    findings = []
    for name in sorted(set(before) - set(after)):
        old = before[name]
        findings.append(
            Finding(
                name,
                renamed_to=by_function.get((old.path, old.function)),
                routed=_routes_for(name, senders.routes, after),
                scheduled=tuple(sorted(entry for entry, task in senders.schedule.items() if task == name)),
                seen=name in senders.seen,
                retired=retired.get(name),
            )
        )
    return findings
