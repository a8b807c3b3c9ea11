"""Render the Pulumi program offline (mocked cloud, real config) to build/render/<stack>.json.

Runs the real program with the Pulumi SDK's mocks: no Pulumi CLI, no cloud account. The JSON lists
every resource with the inputs the engine would receive, and the stack outputs.

Examples:

\b
  scripts/render                      # every Pulumi.<stack>.yaml
  scripts/render --stack prod
  scripts/render --stack dev --out /tmp/renders

Exit codes:

\b
  0  written
  1  the program failed
  2  invalid config: one line per bad key on stderr, naming it; nothing
     is written
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.entry import run_script
from infra.cli.errors import report
from infra.cli.fit import print_fitted
from infra.cli.offline_render import RENDER_DIR, render_stack, write_render
from infra.config import ROOT, ConfigError, stack_names


def main(
    stack: list[str] = typer.Option(
        None, "--stack", help="stack to render (repeatable); default: every Pulumi.<stack>.yaml"
    ),
    out: Path = typer.Option(RENDER_DIR, help="directory for <stack>.json"),
    root: Path = typer.Option(ROOT, help="directory holding the Pulumi.<stack>.yaml files (e.g. a proposed copy)"),
) -> None:
    console = Console(stderr=True)
    stacks = stack or stack_names(root)
    for name in stacks:
        if console.is_terminal:  # progress for a person; a pipe gets only the result or the errors
            console.print(f"rendering {name} ...", markup=False, highlight=False)
        try:
            render = render_stack(name, root)
        except ConfigError as exc:
            report("render", exc)
            raise typer.Exit(2) from None
        path = write_render(render, out)
        counts = Counter(r.type for r in render.resources)
        table = Table(title=f"{name}: {len(render.resources)} resources -> {path}")
        table.add_column("type")
        table.add_column("count", justify="right")
        for kind, count in sorted(counts.items()):
            table.add_row(kind, str(count))
        print_fitted(console, table)


if __name__ == "__main__":
    run_script(main, "render", __doc__)
