"""For every pool whose scaling inputs differ from a base ref, simulate it on each trace.

Runs `scripts/simulate --compare-ref BASE` per changed pool and trace and prints a Markdown summary
(the pull-request job appends it to the job summary; plots go to --out).

Examples:

\b
  scripts/simulate-changed --base origin/main
  scripts/simulate-changed --base main --trace burst --trace steady

Exit codes:

\b
  0  every simulation ran (a missed SLO is reported, not a failure)
  2  a simulation could not run (bad config or trace)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer

from infra.cli.entry import run_script
from infra.config import ROOT, load_stack_config, stack_names
from infra.simulation.report import CompareError, spec_from_git
from infra.simulation.stack import load_pool_spec


def changed_pools(base: str) -> list[tuple[str, str, str]]:
    """(stack, pool, why) for each pool that is new or whose simulated spec changed since `base`."""
    changed: list[tuple[str, str, str]] = []
    for stack in stack_names():
        for pool in load_stack_config(stack).pools:
            head = load_pool_spec(stack, pool)
            try:
                before = spec_from_git(base, stack, pool, ROOT)
            except CompareError:
                changed.append((stack, pool, "new"))
                continue
            if before != head:
                changed.append((stack, pool, "changed"))
    return changed


def main(
    base: str = typer.Option(..., help="git ref to compare against, e.g. origin/main"),
    trace: list[str] = typer.Option(["burst", "diurnal"], help="traces to run (repeatable)"),
    out: Path = typer.Option(ROOT / "build" / "simulate", help="directory for the plots"),
) -> None:
    pools = changed_pools(base)
    typer.echo(f"## Scaling policy changes against `{base}`\n")
    if not pools:
        typer.echo("No pool's scaling policy changed.")
        return
    failed = False
    for stack, pool, why in pools:
        for name in trace:
            argv = [
                sys.executable,
                "-m",
                "infra.cli.simulate",
                "--stack",
                stack,
                "--pool",
                pool,
                "--trace",
                name,
                "--no-references",
                "--out",
                str(out / f"{stack}-{pool}-{name}.png"),
            ]
            if why == "changed":
                argv += ["--compare-ref", base]
            result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
            failed |= result.returncode == 2
            verdict = {0: "meets the SLO", 1: "MISSES the SLO"}.get(result.returncode, "error")
            typer.echo(f"### {stack}/{pool} ({why}) on `{name}`: {verdict}\n")
            typer.echo("```\n" + (result.stdout + result.stderr).strip() + "\n```\n")
    if failed:
        raise typer.Exit(2)


if __name__ == "__main__":
    run_script(main, "simulate-changed", __doc__)
