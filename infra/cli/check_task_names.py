"""List task names this change removes or renames that something still sends; fail on them.

Compares the task names declared under worker/ at --base with the working tree. A removed name is
flagged when a stack still routes it (taskRoutes), a periodic entry still sends it, or it is in
--seen (task names from the queues' recent traffic, one a line: e.g. a CloudWatch Logs Insights
query over the pools' log groups, `filter event = "task.finished" | stats count() by task`). It
passes when the old name stays registered as an alias, or worker/tasks/retired.py says why it is
safe (docs/worker.md, "Renaming a task").

Examples:

\b
  scripts/check-task-names --base origin/main
  scripts/check-task-names --base origin/main \\
    --seen build/recent-task-names.txt

Exit codes:

\b
  0  no removed name is still sent (removed names nothing sends are listed)
  1  a removed or renamed name is still routed, scheduled or seen
  2  the base ref or the --seen file cannot be read
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

from infra.cli.entry import run_script
from infra.cli.task_name_changes import Senders, check, sources_at, sources_here
from infra.config import ROOT, load_stack_config, stack_names
from worker.scheduler.schedule import ENTRIES


def current_senders(root: Path, seen: Path | None) -> Senders:
    """The working tree's routes and periodic entries, and the names in --seen."""
    names = frozenset(line.strip() for line in seen.read_text().splitlines() if line.strip()) if seen else frozenset()
    return Senders(
        routes={stack: load_stack_config(stack, root).task_routes for stack in stack_names(root)},
        schedule={entry.name: entry.task for entry in ENTRIES},
        seen=names,
    )


def main(
    base: str = typer.Option(..., help="git ref to compare against, e.g. origin/main"),
    seen: Path | None = typer.Option(None, help="file of task names seen in recent traffic, one a line"),
) -> None:
    try:
        base_sources = sources_at(base, ROOT)
        senders = current_senders(ROOT, seen)
    except (subprocess.CalledProcessError, OSError) as exc:
        typer.echo(f"check-task-names: {exc}", err=True)
        raise typer.Exit(2) from None
    findings = check(base_sources, sources_here(ROOT), senders)
    typer.echo(f"## Task names removed or renamed against `{base}`\n")
    if not findings:
        typer.echo("None: every task name of the base is still declared.")
        return
    for finding in findings:
        typer.echo(finding.line())
    stranded = [f.name for f in findings if f.stranded]
    if stranded:
        typer.echo(
            f"\n{len(stranded)} name(s) would strand messages: keep each old name registered as an alias for a "
            "release, or list it in worker/tasks/retired.py with why it is safe (docs/worker.md, 'Renaming a task')."
        )
        raise typer.Exit(1)


if __name__ == "__main__":
    run_script(main, "check-task-names", __doc__)
