"""Replay traffic through a pool's scaling policy in virtual time; print the outcome and write a plot.

Runs our policy (from the stack config), the reference policies (CPU target tracking, CDK
QueueProcessingService steps, Copilot backlog per task) and the perfect-foresight bound on the same
trace, prints one table and writes a PNG. Paths are relative to the directory you run it from.

With --tune it searches the pool's knobs (minSize, targetWaitShare, a warm pool) for the cheapest
configuration that meets the SLO on the trace, prints the lines to set in Pulumi.<stack>.yaml with
instance-hours and monthly cost against today's, and simulates the changed stack file once more.

Examples:

\b
  scripts/simulate --stack prod --pool default --trace burst
  scripts/simulate --stack prod --trace diurnal --compare-ref main
  scripts/simulate --stack prod --trace my-traffic.csv \\
      --compare-config other/Pulumi.prod.yaml
  scripts/simulate --stack dev --trace burst --out burst.png
  scripts/simulate --stack prod --trace long-tasks --json
  scripts/simulate --stack prod --pool default --trace burst --tune
  scripts/simulate --stack prod --trace my-traffic.csv --tune \\
      --objective instance-hours

Exit codes:

\b
  0  our policy meets the SLO on this trace (p95 queue wait <=
     acceptableLatencySeconds); with --tune: a configuration meets it, and
     the changed stack file confirms it
  1  it misses the SLO; with --tune: no configuration searched meets it
  2  bad input (stack, pool, trace or compare target), named in the message
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from infra.cli import simulate_tune
from infra.cli.entry import run_script
from infra.cli.errors import report
from infra.cli.fit import output_console, print_fitted
from infra.config import ROOT, ConfigError
from infra.scaling.assumptions import ModelAssumptions, default_assumptions
from infra.scaling.plot import write_plot
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.simulator import SimulationResult, ours, reference_contenders
from infra.scaling.traces import BUILT_IN, Trace, TraceError, load_trace
from infra.simulation.report import (
    NARROW_DROP_ORDER,
    CompareError,
    Entry,
    bound_for,
    results_rows,
    results_table,
    run_entries,
    spec_from_file,
    spec_from_git,
)
from infra.simulation.stack import PoolNotFoundError, load_pool_spec
from infra.simulation.tuning import Objective


def main(
    stack: str = typer.Option(..., help="stack whose Pulumi.<stack>.yaml holds the pool"),
    pool: str = typer.Option("default", help="pool name in the stack config"),
    trace: str = typer.Option("burst", help=f"built-in trace ({', '.join(BUILT_IN)}) or a CSV path"),
    compare_config: Path | None = typer.Option(None, help="another Pulumi.<stack>.yaml to run side by side"),
    compare_ref: str | None = typer.Option(None, help="a git ref whose Pulumi.<stack>.yaml to run side by side"),
    references: bool = typer.Option(True, help="also run the reference policies"),
    seed: int = typer.Option(7, help="seed of the built-in traces"),
    boot_seconds: float | None = typer.Option(None, min=0, help="override launch-to-consuming seconds"),
    warm_launch_seconds: float | None = typer.Option(
        None, min=0, help="override launch-to-consuming seconds of a warm-pool instance"
    ),
    out: Path | None = typer.Option(None, help="PNG path (default build/simulate/<stack>-<pool>-<trace>.png)"),
    as_json: bool = typer.Option(False, "--json", help="print the table as JSON on stdout (and nothing else)"),
    tune: bool = typer.Option(
        False, "--tune", help="search the pool's knobs for the cheapest config that meets the SLO"
    ),
    objective: str = typer.Option("cost", help="with --tune, what cheapest means: cost or instance-hours"),
) -> None:
    console = output_console()  # a terminal's width; a pipe: COLUMNS, else wide enough for every column
    if as_json:  # everything but the JSON goes to stderr
        console = Console(stderr=True, quiet=True)
    if tune:
        if compare_config is not None or compare_ref is not None or objective not in ("cost", "instance-hours"):
            report("simulate", ValueError("--tune takes no --compare-*, and --objective is cost or instance-hours"))
            raise typer.Exit(2)
        chosen: Objective = "cost" if objective == "cost" else "instance-hours"
        raise typer.Exit(
            simulate_tune.tune(console, stack, pool, trace, seed, (boot_seconds, warm_launch_seconds), chosen, as_json)
        )
    try:
        spec = load_pool_spec(stack, pool)
        entries = _entries(spec, stack, pool, compare_config, compare_ref, references)
        traffic = load_trace(trace, spec.trace_shape(seed))
    except (ConfigError, PoolNotFoundError, CompareError, TraceError) as exc:
        report("simulate", exc)
        raise typer.Exit(2) from None
    assumptions = default_assumptions(spec.image_mode, boot_seconds, warm_launch_seconds)
    _announce(console, f"{stack}/{pool}", spec, assumptions, traffic)
    results = _run_with_progress(console, entries, traffic, assumptions)
    bound = bound_for(spec, traffic)
    if as_json:
        document = _json_document(stack, pool, traffic, spec, assumptions, bound, results)
        typer.echo(json.dumps(document, indent=2))
    title = f"{stack}/{pool} on {traffic.name}"
    _print_results(console, results, bound, title, spec)
    target = out or ROOT / "build" / "simulate" / f"{stack}-{pool}-{traffic.name}.png"
    # Ours and the compared configs are drawn bold; they come first in `entries`.
    highlighted = 1 + (compare_config is not None) + (compare_ref is not None)
    write_plot(results, target, f"{title}: arrivals, backlog, latency, instances", spec.slo_seconds, highlighted)
    console.print(f"plot: {target}")
    raise typer.Exit(0 if results[0].meets_slo else 1)


def _json_document(
    stack: str,
    pool: str,
    traffic: Trace,
    spec: PoolSpec,
    assumptions: ModelAssumptions,
    bound: float,
    results: list[SimulationResult],
) -> dict[str, object]:
    return {
        "stack": stack,
        "pool": pool,
        "trace": traffic.name,
        "slo_seconds": spec.slo_seconds,
        "alarm_threshold_seconds": spec.alarm_threshold_seconds,
        "launch_to_ready_seconds": assumptions.boot_seconds,
        "cloudwatch_delay_seconds": assumptions.alarm_delay_seconds,
        "bound_instance_hours": round(bound, 2),
        "rows": results_rows(results, bound, spec.slo_seconds),
    }


def _print_results(console: Console, results: list[SimulationResult], bound: float, title: str, spec: PoolSpec) -> None:
    print_fitted(console, results_table(results, bound, title, spec.slo_seconds), NARROW_DROP_ORDER)
    ours_result = results[0]
    if ours_result.first_scale_out_after_burst is not None:
        console.print(
            f"burst start -> first scale-out decision (ours): {ours_result.first_scale_out_after_burst:.0f} s"
        )
    speed = sum(r.simulated_seconds for r in results) / sum(r.wall_seconds for r in results)
    console.print(f"simulated {ours_result.simulated_seconds / 3600:.1f} h per policy at {speed:,.0f}x real time")


def _entries(
    spec: PoolSpec, stack: str, pool: str, compare_config: Path | None, compare_ref: str | None, references: bool
) -> list[Entry]:
    """Ours first, then ours on the compared configs (drawn bold too), then the references."""
    entries = [Entry(spec, ours("ours"))]
    if compare_config is not None:
        entries.append(Entry(spec_from_file(compare_config, stack, pool), ours(f"ours@{compare_config.name}")))
    if compare_ref is not None:
        entries.append(Entry(spec_from_git(compare_ref, stack, pool, ROOT), ours(f"ours@{compare_ref}")))
    if references:
        entries.extend(Entry(spec, contender) for contender in reference_contenders())
    return entries


def _announce(console: Console, name: str, spec: PoolSpec, assumptions: ModelAssumptions, traffic: Trace) -> None:
    console.print(
        f"[bold]{name}[/]: {spec.concurrency} processes x {spec.min_size}..{spec.max_size} instances, "
        f"SLO p95 wait <= {spec.slo_seconds:.0f} s (alarm threshold {spec.alarm_threshold_seconds:.0f} s); "
        f"task time starts at {spec.average_task_seconds:g} s, then measured; "
        f"image {spec.image_mode} (launch-to-ready {assumptions.boot_seconds:.0f} s, "
        f"CloudWatch delay {assumptions.alarm_delay_seconds:.0f} s: assumed)"
    )
    console.print(f"[bold]trace {traffic.name}[/]: {traffic.description}; {traffic.count} tasks")


def _run_with_progress(
    console: Console, entries: list[Entry], traffic: Trace, assumptions: ModelAssumptions
) -> list[SimulationResult]:
    columns = (
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        bars = {e.contender.name: progress.add_task(e.contender.name, total=1.0) for e in entries}
        return run_entries(
            entries, traffic, assumptions, on_progress=lambda name, done: progress.update(bars[name], completed=done)
        )


if __name__ == "__main__":
    run_script(main, "simulate", __doc__)
