"""Send N `cluster.canary` tasks to each pool's queues and fail unless all N come back.

Against a deployed stack it reads the stack's outputs and its broker secret; against any broker it
takes --broker-url and --pool.

Examples:

\b
  scripts/smoke --broker-url redis://127.0.0.1:6379/0 --pool default=default
  scripts/smoke --stack dev --count 50

Exit codes:

\b
  0  every canary came back
  1  not every canary came back within --timeout
  2  the stack's outputs or secret could not be read, or the broker refused the connection
"""

from __future__ import annotations

import os

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.cli.entry import script_app
from infra.cli.errors import report as report_error
from infra.smoke import PoolSmoke, broker_problem, run_smoke
from worker.client import client_app

app = script_app("smoke", __doc__)


def _parse_pools(values: list[str]) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    for value in values:
        name, sep, queues = value.partition("=")
        if not sep or not name or not queues:
            raise typer.BadParameter(f"--pool {value!r}: expected NAME=QUEUE[,QUEUE...]")
        pools[name] = [q for q in queues.split(",") if q]
    return pools


def _table(report: dict[str, PoolSmoke]) -> Table:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    table = Table(title="smoke test")
    for column in ("pool", "sent", "returned", "p50 round trip", "p95 round trip", "result"):
        table.add_column(column)
    for entry in report.values():
        verdict = "[green]ok[/]" if entry.ok else "[red]FAILED[/]"
        table.add_row(entry.pool, str(entry.sent), str(entry.returned), ms(entry.p50), ms(entry.p95), verdict)
    return table


@app.command(help=__doc__)
def main(
    stack: str | None = typer.Option(None, help="stack whose broker and pools to test (reads its outputs)"),
    broker_url: str | None = typer.Option(
        None, envvar="CELERY_BROKER_URL", help="test this broker directly (e.g. the local cluster's)"
    ),
    pool: list[str] = typer.Option([], help="NAME=QUEUE[,QUEUE] (repeatable); default: the stack's pools"),
    count: int = typer.Option(20, min=1, help="canaries per pool"),
    timeout: float = typer.Option(120.0, min=1, help="seconds to wait for every canary"),
) -> None:
    console = Console()
    pools = _parse_pools(pool)
    queue_type = os.environ.get("CELERY_QUEUE_TYPE", "classic")
    if stack is not None and (broker_url is None or not pools):
        from infra.stack_outputs import StackOutputsError, smoke_target  # noqa: PLC0415 - needs the Pulumi CLI

        try:
            settings, target_pools = smoke_target(stack)
        except StackOutputsError as exc:
            report_error("smoke", exc)
            raise typer.Exit(2) from None
        broker_url = broker_url or settings["CELERY_BROKER_URL"]
        queue_type = settings.get("CELERY_QUEUE_TYPE", queue_type)
        pools = pools or target_pools
    if broker_url is None or not pools:
        raise typer.BadParameter("give --stack, or --broker-url with at least one --pool NAME=QUEUES")
    # The same queue type as the workers, or RabbitMQ refuses the queue declaration.
    celery_app = client_app(broker_url, result_backend=os.environ.get("CELERY_RESULT_BACKEND"), queue_type=queue_type)
    problem = broker_problem(celery_app)
    if problem is not None:
        report_error("smoke", ValueError(problem))
        raise typer.Exit(2)
    total = count * len(pools)
    console.print(f"sending {count} cluster.canary tasks to each of {len(pools)} pool(s)")
    if console.is_terminal:
        columns = (TextColumn("canaries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("canaries", total=total)
            report = run_smoke(celery_app, pools, count, timeout, lambda done, _: progress.update(bar, completed=done))
    else:
        report = run_smoke(celery_app, pools, count, timeout)
    console.print(_table(report))
    if not all(entry.ok for entry in report.values()):
        console.print(f"[red]smoke test failed: not every canary came back within {timeout:.0f} s[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app(prog_name="scripts/smoke")
