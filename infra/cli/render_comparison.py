"""Compare two renders of a stack (base branch vs this branch) as a Markdown job summary.

`scripts/render-diff --base origin/main` renders every stack on both sides (the base in a temporary
git worktree, so the working tree is never touched) and prints what a reviewer needs: resources
added, removed, and changed with the input paths that changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class StackDiff:
    stack: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)
    outputs_changed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs_changed)


def _paths(before: Any, after: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            yield from _paths(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _paths(b, a, f"{prefix}[{index}]")
    elif before != after:
        yield prefix or "(root)"


def diff_renders(stack: str, base: Mapping[str, Any] | None, head: Mapping[str, Any]) -> StackDiff:
    def index(render: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
        return {f"{r['type']} {r['name']}": r.get("inputs") or {} for r in (render or {}).get("resources", [])}

    before, after = index(base), index(head)
    result = StackDiff(stack)
    result.added = sorted(set(after) - set(before))
    result.removed = sorted(set(before) - set(after))
    for key in sorted(set(before) & set(after)):
        paths = list(_paths(before[key], after[key]))
        if paths:
            result.changed[key] = paths
    result.outputs_changed = list(_paths((base or {}).get("outputs", {}), head.get("outputs", {})))
    return result


def markdown(diffs: list[StackDiff], base_ref: str) -> str:
    lines = [f"## Render diff against `{base_ref}`", ""]
    for d in diffs:
        if d.empty:
            lines.append(f"- **{d.stack}**: no change")
            continue
        lines.append(f"### {d.stack}: +{len(d.added)} -{len(d.removed)} ~{len(d.changed)}")
        lines += [f"- added `{r}`" for r in d.added]
        lines += [f"- removed `{r}`" for r in d.removed]
        for resource, paths in d.changed.items():
            shown = ", ".join(f"`{p}`" for p in paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
            lines.append(f"- changed `{resource}`: {shown}")
        if d.outputs_changed:
            lines.append("- outputs changed: " + ", ".join(f"`{p}`" for p in d.outputs_changed))
        lines.append("")
    return "\n".join(lines)


def render_tree(tree: Path, out: Path) -> dict[str, dict[str, Any]]:
    """Render every stack of the source tree at `tree` into `out`, with this venv's interpreter."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "infra.cli.render", "--out", str(out)], cwd=tree, check=True)
    return {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))}


class BaseRenderError(RuntimeError):
    """The base ref has the program but did not render; the message names the ref."""


def render_base(base_ref: str, out: Path) -> dict[str, dict[str, Any]]:
    """Every stack rendered at `base_ref`; empty when the base predates the program (all "added").
    A base that has the program but fails to render raises BaseRenderError: read as "everything
    added", a broken base would hide every change the branch makes."""
    with tempfile.TemporaryDirectory(prefix="render-base-") as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), base_ref], cwd=ROOT, check=True, capture_output=True
        )
        try:
            if not (worktree / "infra" / "cli" / "render.py").is_file():
                return {}
            return render_tree(worktree, out)
        except subprocess.CalledProcessError as exc:
            raise BaseRenderError(f"the base ref {base_ref!r} did not render (exit {exc.returncode})") from None
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False, capture_output=True
            )
