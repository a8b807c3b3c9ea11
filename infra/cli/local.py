"""Run the cluster on this machine: a Redis broker, a pool of workers, a burst of tasks, a summary.

Exit status 0 only when every task completed and every canary came back.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from infra.local.burst import BurstPlan, run_burst, summary_table
from infra.local.redis_server import ServerNotInstalledError


def main(
    workers: int = typer.Option(2, min=1, help="worker processes in the pool (instances)"),
    concurrency: int = typer.Option(2, min=1, help="task processes per worker"),
    sleep_tasks: int = typer.Option(60, min=0, help="cluster.sleep tasks in the burst"),
    sleep_seconds: float = typer.Option(0.5, min=0, help="seconds each cluster.sleep task takes"),
    canaries: int = typer.Option(20, min=0, help="cluster.canary tasks in the burst"),
    timeout: float = typer.Option(120, min=1, help="seconds to wait for the queue to drain"),
    log_dir: Path = typer.Option(Path("build/local"), help="where worker logs go"),
) -> None:
    console = Console()
    plan = BurstPlan(workers, concurrency, sleep_tasks, sleep_seconds, canaries, timeout, log_dir)
    try:
        result = run_burst(plan, console)
    except ServerNotInstalledError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(summary_table(result))
    ok = result.tally.lost == 0 and result.canaries_returned == result.canaries_sent
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
