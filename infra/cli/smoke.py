"""Send a ping to each queue and N `cluster.canary` tasks to each pool; fail unless all come back.

With --stack the test runs inside the stack's VPC: this starts the stack's smoke function
asynchronously, which reaches the broker in the private subnets, waits for pools at zero to scale
out, and reports per pool (in-service instances before and after); its report comes back through
the stack's smoke results queue, polled every 20 s, so no connection stays open while it runs.
--direct runs it from this machine instead (a host inside the VPC). Against any broker it takes
--broker-url and --pool.

Examples:

\b
  scripts/smoke --broker-url redis://127.0.0.1:6379/0 --pool default=default
  scripts/smoke --stack dev --count 50 --timeout 600

Exit codes:

\b
  0  every ping and canary came back
  1  not every ping and canary came back within --timeout
  2  the stack's outputs, secret or smoke function could not be used (no
     report within the deadline, naming the run), or the broker refused
     the connection
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.cli.entry import script_app
from infra.cli.errors import report as report_error
from infra.cli.fit import output_console, print_fitted
from worker.sender import sender_app
from worker.smoke.handler import broker_problem, run_smoke

app = script_app("smoke", __doc__)


def _parse_pools(values: list[str]) -> dict[str, list[str]]:
    pools: dict[str, list[str]] = {}
    for value in values:
        name, sep, queues = value.partition("=")
        if not sep or not name or not queues:
            raise typer.BadParameter(f"--pool {value!r}: expected NAME=QUEUE[,QUEUE...]")
        pools[name] = [q for q in queues.split(",") if q]
    return pools


def _table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per pool, from the report rows (`worker.smoke.handler.PoolSmoke.as_dict`, here or from the function)."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    table = Table(title="smoke test")
    columns = ("pool", "sent", "returned", "pings", "p50 round trip", "p95 round trip", "in service", "result")
    for column in columns:
        table.add_column(column)
    for row in rows:
        verdict = "[green]ok[/]" if row["ok"] else "[red]FAILED[/]"
        pings = f"{len(row['answered_by'])}/{row['pings_sent']}" if row["pings_sent"] else "-"
        in_service = f"{count(row['in_service_before'])} -> {count(row['in_service_after'])}"
        table.add_row(
            row["pool"],
            str(row["sent"]),
            str(row["returned"]),
            pings,
            ms(row["p50_seconds"]),
            ms(row["p95_seconds"]),
            in_service,
            verdict,
        )
    return table


def _in_vpc(console: Console, stack: str, count: int, timeout: float) -> dict[str, Any]:
    """Start the stack's smoke function (inside the VPC) and wait for its report, holding no connection open
    while it runs (infra.cli.remote_smoke)."""
    import boto3  # noqa: PLC0415 - only this path talks to AWS

    from infra.cli.deployed_outputs import StackOutputsError, stack_outputs  # noqa: PLC0415 - needs the Pulumi CLI
    from infra.cli.remote_smoke import (  # noqa: PLC0415
        RemoteSmokeError,
        lambda_config,
        new_run_id,
        result_deadline,
        sqs_config,
        start_smoke,
        wait_for_report,
    )
    from infra.outputs import SMOKE_FUNCTION_NAME, SMOKE_RESULTS_QUEUE_URL  # noqa: PLC0415

    try:
        outputs = stack_outputs(stack)
        for output in (SMOKE_FUNCTION_NAME, SMOKE_RESULTS_QUEUE_URL):
            if output not in outputs:
                raise StackOutputsError(f"stack {stack} has no output {output}; deploy it with this version first")
        function, queue = str(outputs[SMOKE_FUNCTION_NAME]), str(outputs[SMOKE_RESULTS_QUEUE_URL])
        run_id, deadline = new_run_id(), result_deadline(timeout)
        start_smoke(boto3.client("lambda", config=lambda_config()), function, run_id, count, timeout)
        console.print(
            f"started {function} (inside the VPC), run {run_id}: the test waits up to {timeout:.0f} s; "
            f"collecting its report from {queue}, up to {deadline:.0f} s"
        )
        return wait_for_report(
            boto3.client("sqs", config=sqs_config()), function, queue, run_id, deadline, on_wait=_progress(console)
        )
    except (StackOutputsError, RemoteSmokeError) as exc:
        report_error("smoke", exc)
        raise typer.Exit(2) from None


PROGRESS_EVERY_SECONDS = 60.0


def _progress(console: Console) -> Callable[[float, float], None]:
    """A line a minute while the smoke function runs: CI logs show the deploy is alive, and how long it may take."""
    shown = [0.0]

    def show(elapsed: float, deadline: float) -> None:
        if elapsed - shown[0] >= PROGRESS_EVERY_SECONDS:
            shown[0] = elapsed
            console.print(f"  waiting for the smoke function's report: {elapsed:.0f} s of up to {deadline:.0f} s")

    return show


@app.command(help=__doc__)
def main(
    stack: str | None = typer.Option(None, help="stack whose broker and pools to test (runs in its VPC)"),
    direct: bool = typer.Option(
        False, "--direct", help="with --stack: connect to the broker from this machine (a host in the VPC)"
    ),
    broker_url: str | None = typer.Option(
        None, envvar="CELERY_BROKER_URL", help="test this broker directly (e.g. the local cluster's)"
    ),
    pool: list[str] = typer.Option([], help="NAME=QUEUE[,QUEUE] (repeatable); default: the stack's pools"),
    count: int = typer.Option(20, min=1, help="canaries per pool"),
    timeout: float = typer.Option(120.0, min=1, max=880, help="seconds to wait for every ping and canary"),
) -> None:
    console = output_console()
    pools = _parse_pools(pool)
    if stack is not None and not direct and broker_url is None and not pools:
        report = _in_vpc(console, stack, count, timeout)
        if report.get("error"):
            report_error("smoke", ValueError(report["error"]))
            raise typer.Exit(2)
        _verdict(console, report["pools"], timeout)
        return
    queue_type = os.environ.get("CELERY_QUEUE_TYPE", "classic")
    if stack is not None and (broker_url is None or not pools):
        from infra.cli.deployed_outputs import StackOutputsError, smoke_target  # noqa: PLC0415 - needs the Pulumi CLI

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
    celery_app = sender_app(broker_url, result_backend=os.environ.get("CELERY_RESULT_BACKEND"), queue_type=queue_type)
    problem = broker_problem(celery_app)
    if problem is not None:
        report_error("smoke", ValueError(problem))
        raise typer.Exit(2)
    total = count * len(pools) + sum(len(queues) for queues in pools.values())
    console.print(
        f"sending a cluster.ping to each queue and {count} cluster.canary tasks to each of {len(pools)} pool(s)"
    )
    if console.is_terminal:
        columns = (TextColumn("tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("tasks", total=total)
            report = run_smoke(celery_app, pools, count, timeout, lambda done, _: progress.update(bar, completed=done))
    else:
        report = run_smoke(celery_app, pools, count, timeout)
    _verdict(console, [entry.as_dict() for entry in report.values()], timeout)


# What an 80-column terminal loses first; it keeps what came back, the tail and the verdict.
SMOKE_DROP_ORDER = ("p50 round trip", "in service", "sent", "pings")


def _verdict(console: Console, rows: Sequence[Mapping[str, Any]], timeout: float) -> None:
    print_fitted(console, _table(rows), SMOKE_DROP_ORDER)
    if not rows or not all(row["ok"] for row in rows):
        console.print(f"[red]smoke test failed: not every ping and canary came back within {timeout:.0f} s[/]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app(prog_name="scripts/smoke")
