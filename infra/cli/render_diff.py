"""Render every stack here and on a base ref; print the difference as Markdown.

The pull-request job appends the output to the job summary. The base is rendered in a temporary
git worktree, so your working tree is never touched.

Examples:

\b
  scripts/render-diff --base origin/main
  scripts/render-diff --base HEAD~1 --out /tmp/render

Exit codes:

\b
  0  the diff was printed (also when nothing changed)
  1  a render failed
"""

from __future__ import annotations

from pathlib import Path

import typer

from infra.cli.entry import run_script
from infra.cli.render_comparison import BaseRenderError, diff_renders, markdown, render_base, render_tree

ROOT = Path(__file__).resolve().parents[2]


def main(
    base: str = typer.Option(..., help="git ref to compare against, e.g. origin/main"),
    out: Path = typer.Option(ROOT / "build" / "render", help="where this branch's renders go"),
) -> None:
    head = render_tree(ROOT, out)
    try:
        before = render_base(base, out.parent / "render-base")
    except BaseRenderError as exc:
        typer.echo(f"render-diff: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(markdown([diff_renders(stack, before.get(stack), render) for stack, render in head.items()], base))


if __name__ == "__main__":
    run_script(main, "render-diff", __doc__)
