"""What a deployed stack's scaling sees now, in one screen.

Per pool: instances in service, desired, min and max; tasks waiting and in flight; the oldest
waiting task's age against the SLO; the measured task time next to the configured starting value;
busy worker processes; the alarms in ALARM; the last scale activities. Reads the stack's outputs
(through the Pulumi CLI, or --outputs with a saved `pulumi stack output --json`), Auto Scaling and
CloudWatch, with the AWS credentials of your shell. Changes nothing.

With --export-trace it writes one pool's traffic over the last --since as a trace CSV
(arrival_seconds,task_seconds), rebuilt from the publisher's CloudWatch metrics
(infra/cli/trace_export.py), for `scripts/simulate --trace FILE` and `--tune`.

Examples:

\b
  scripts/status --stack prod
  scripts/status --stack prod --pool default --json
  scripts/status --stack dev --outputs dev-outputs.json
  scripts/status --stack prod --pool default \\
    --export-trace prod-default.csv --since 7d

Exit codes:

\b
  0  every pool's oldest waiting task is within its SLO
     (with --export-trace: the trace is written)
  1  a pool's oldest waiting task is older than its SLO
  2  the stack cannot be read (no outputs, an unknown pool, no credentials,
     no metrics to export)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.entry import run_script
from infra.cli.fit import output_console, print_fitted
from infra.cli.pool_status import PoolStatus, StatusError, pool_statuses
from infra.cli.trace_export import ExportError, export_trace, parse_since
from infra.config import ConfigError, load_stack_config
from infra.outputs import METRIC_NAMESPACE
from infra.scaling.traces import write_csv

# What an 80-column terminal loses first; it keeps the pool, its size and the oldest task against the SLO.
STATUS_DROP_ORDER = ("busy", "in flight", "task time", "desired (min-max)", "waiting")


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.0f}{unit}"


def _table(statuses: list[PoolStatus]) -> Table:
    table = Table(title="pools: what scaling sees now (latest datapoint of the last 10 minutes)")
    for column in (
        "pool",
        "in service",
        "desired (min-max)",
        "waiting",
        "in flight",
        "oldest / SLO",
        "task time",
        "busy",
    ):
        table.add_column(column, justify="left" if column == "pool" else "right", no_wrap=True)
    for s in statuses:
        age = f"{_number(s.oldest_age_seconds, ' s')} / {s.slo_seconds:g} s"
        task = f"{_number(s.task_seconds, ' s')} (config {s.configured_task_seconds:g} s)"
        table.add_row(
            s.pool,
            str(s.in_service),
            f"{s.desired} ({s.min_size}-{s.max_size})",
            _number(s.waiting),
            _number(s.in_flight),
            f"[red]{age}[/]" if s.over_slo else age,
            task,
            _number(s.busy_processes),
        )
    return table


def main(
    stack: str = typer.Option(..., help="the deployed stack (dev, staging, prod)"),
    pool: list[str] = typer.Option([], help="only this pool (repeatable); default: every pool"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts instead of the table"),
    outputs: Path | None = typer.Option(None, help="a saved `pulumi stack output --json` (default: ask Pulumi)"),
    export_trace: Path | None = typer.Option(None, help="write one pool's traffic as a trace CSV to this file"),
    since: str = typer.Option("7d", help="with --export-trace: how far back, e.g. 3h, 7d (at most 63d)"),
) -> None:
    err = Console(stderr=True)
    if export_trace is not None:
        raise typer.Exit(_export(err, stack, pool, outputs, export_trace, since))
    try:
        config = load_stack_config(stack)
        if outputs is not None:
            values = json.loads(outputs.read_text())
        else:
            from infra.cli.deployed_outputs import StackOutputsError, stack_outputs  # noqa: PLC0415 - needs the Pulumi CLI

            try:
                values = stack_outputs(stack)
            except StackOutputsError as exc:
                raise StatusError(str(exc)) from None
        import boto3  # noqa: PLC0415 - only this path talks to AWS
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            statuses = pool_statuses(
                config,
                values,
                boto3.client("autoscaling", region_name=config.region),
                boto3.client("cloudwatch", region_name=config.region),
                pools=pool or None,
            )
        except (BotoCoreError, ClientError) as exc:
            raise StatusError(f"AWS: {exc}") from None
    except (ConfigError, StatusError, OSError, json.JSONDecodeError) as exc:
        err.print(f"status: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None

    if as_json:
        typer.echo(json.dumps([s.as_json() for s in statuses], indent=2))
    else:
        console = output_console()
        print_fitted(console, _table(statuses), STATUS_DROP_ORDER)
        for s in statuses:
            alarms = ", ".join(s.alarms) or "none"
            console.print(f"[bold]{s.pool}[/]: alarms in ALARM: {alarms}", soft_wrap=True)
            for activity in s.activities:
                line = f"  {activity.at} {activity.status}: {activity.description}"
                console.print(line, markup=False, soft_wrap=True)
    raise typer.Exit(1 if any(s.over_slo for s in statuses) else 0)


def _export(err: Console, stack: str, pools: list[str], outputs: Path | None, path: Path, since: str) -> int:
    """Write the pool's trace (`infra.cli.trace_export`); the namespace from --outputs or the stack's config."""
    import boto3  # noqa: PLC0415 - only this path talks to AWS
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        config = load_stack_config(stack)
        pool = _one_pool(config.pools, pools)
        namespace = config.metric_namespace
        if outputs is not None:
            namespace = str(json.loads(outputs.read_text()).get(METRIC_NAMESPACE) or namespace)
        cloudwatch = boto3.client("cloudwatch", region_name=config.region)
        trace = export_trace(
            cloudwatch, namespace, pool, config.pools[pool].average_task_seconds, datetime.now(UTC), parse_since(since)
        )
        write_csv(trace, path)
    except (ConfigError, ExportError, OSError, json.JSONDecodeError) as exc:
        err.print(f"status: {exc}", markup=False, soft_wrap=True)
        return 2
    except (BotoCoreError, ClientError) as exc:
        err.print(f"status: AWS: {exc}", markup=False, soft_wrap=True)
        return 2
    Console().print(
        f"wrote {trace.count} tasks ({trace.description}) to {path}; replay: "
        f"scripts/simulate --stack {stack} --pool {pool} --trace {path}",
        markup=False,
        soft_wrap=True,
    )
    return 0


def _one_pool(configured: Mapping[str, object], named: list[str]) -> str:
    """The pool to export: the one named, else `default` (as scripts/simulate), else the stack's only one."""
    if len(named) > 1:
        raise ExportError("--export-trace writes one pool: name one --pool")
    only = next(iter(configured)) if len(configured) == 1 else "default"
    pool = named[0] if named else only
    if pool not in configured:
        raise ExportError(f"no pool named {pool!r} (pools: {', '.join(sorted(configured))})")
    return pool


if __name__ == "__main__":
    run_script(main, "status", __doc__)
