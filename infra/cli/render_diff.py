"""`scripts/render-diff --base origin/main`: render every stack here and on the base ref; print the
difference as Markdown (the pull-request job appends it to the job summary)."""

from __future__ import annotations

from pathlib import Path

import typer

from infra.render_diff import BaseRenderError, diff_renders, markdown, render_base, render_tree

ROOT = Path(__file__).resolve().parents[2]


def main(
    base: str = typer.Option(..., help="git ref to compare against, e.g. origin/main"),
    out: Path = typer.Option(Path("build/render"), help="where this branch's renders go"),
) -> None:
    head = render_tree(ROOT, out)
    try:
        before = render_base(base, out.parent / "render-base")
    except BaseRenderError as exc:
        typer.echo(f"render-diff: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(markdown([diff_renders(stack, before.get(stack), render) for stack, render in head.items()], base))


if __name__ == "__main__":
    typer.run(main)
