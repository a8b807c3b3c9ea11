"""`scripts/simulate --tune`: search one pool's knobs for the cheapest configuration that meets its SLO on
a trace (`infra.simulation.tuning`), print it as the lines to put in Pulumi.<stack>.yaml with its
instance-hours and monthly cost against today's, then check it: the changed stack file is written to
a temporary directory, read back through the stack config's own validation, and simulated once more.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from infra.cli.errors import report
from infra.config import ROOT, ConfigError, load_stack_config
from infra.config.files import load_yaml
from infra.config.loading import read_stack_file
from infra.config.messages import PROJECT
from infra.scaling.assumptions import default_assumptions
from infra.scaling.simulator import SimulationResult, ours, simulate
from infra.scaling.traces import Trace, TraceError, load_trace
from infra.simulation.report import bound_for, results_rows, results_table, spec_from_file
from infra.simulation.stack import PoolNotFoundError, pool_spec
from infra.simulation.tuning import Objective, Trial, Tuner, Tuning, merge

POOLS_KEY = f"{PROJECT}:pools"


def changes_yaml(pool: str, changes: dict[str, Any]) -> str:
    """The lines to set in Pulumi.<stack>.yaml, under their full path."""
    document = {"config": {POOLS_KEY: {pool: changes}}}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip()


def changed_stack_file(stack: str, pool: str, changes: dict[str, Any], root: Path, into: Path) -> Path:
    """Pulumi.<stack>.yaml with `changes` applied to the pool, written into `into` (comments are not kept)."""
    document = load_yaml(root / f"Pulumi.{stack}.yaml")
    pools = document["config"][POOLS_KEY]
    pools[pool] = merge(pools[pool], changes)
    path = into / f"Pulumi.{stack}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _search(console: Console, tuner: Tuner) -> Tuning:
    """The search, with a progress bar on a terminal (a line every 10 runs elsewhere)."""
    total = tuner.plan_size()
    columns = (
        TextColumn("tuning"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        bar = progress.add_task("", total=total)
        done = [0]

        def seen(trial: Trial) -> None:
            done[0] += 1
            verdict = "met" if trial.meets_slo else "missed"
            line = f"{trial.knobs.describe()}: p95 {trial.result.p95_wait:.1f} s {verdict}"
            progress.update(bar, advance=1, description=line)
            if not console.is_terminal and done[0] % 10 == 0:
                console.print(f"tuning: {done[0]} runs (at most {total}); last {line}", markup=False)

        tuner.on_trial = seen
        return tuner.search()


def _labelled(trial: Trial, label: str) -> SimulationResult:
    return replace(trial.result, policy=label)


def _money(trial: Trial) -> str:
    return (
        f"{trial.result.instance_hours:.2f} instance-h, ${trial.result.cost_usd:.2f} on this trace "
        f"(${trial.monthly_usd:,.0f}/month at this traffic, ${trial.spec.hourly_usd:.4f}/instance-h)"
    )


def _confirm(stack: str, pool: str, trial: Trial, trace: Trace, tuner: Tuner) -> SimulationResult:
    """The tuned stack file, validated as a whole and simulated once more."""
    with tempfile.TemporaryDirectory(prefix="simulate-tune-") as tmp:
        path = changed_stack_file(stack, pool, dict(trial.changes), ROOT, Path(tmp))
        spec = spec_from_file(path, stack, pool)
    return simulate(spec, trace, ours("ours (tuned, confirmed)"), tuner.assumptions)


def _document(
    stack: str, pool: str, tuning: Tuning, trace: Trace, confirmed: SimulationResult | None
) -> dict[str, Any]:
    today, best = tuning.today, tuning.best
    results = [_labelled(today, "ours (today)")] + ([confirmed] if confirmed is not None else [])
    bound = bound_for(today.spec, trace)

    def summary(trial: Trial | None) -> dict[str, Any] | None:
        if trial is None:
            return None
        return {
            "knobs": trial.knobs.describe(),
            "changes": trial.changes,
            "p95_wait_seconds": round(trial.result.p95_wait, 1),
            "instance_hours": round(trial.result.instance_hours, 2),
            "cost_usd": round(trial.result.cost_usd, 4),
            "monthly_usd": round(trial.monthly_usd, 2),
        }

    return {
        "stack": stack,
        "pool": pool,
        "trace": trace.name,
        "slo_seconds": today.spec.slo_seconds,
        "objective": tuning.objective,
        "searched": list(tuning.searched),
        "runs": tuning.trials,
        "today": summary(today),
        "tuned": summary(best),
        "closest": summary(tuning.closest),
        "yaml": changes_yaml(pool, dict(best.changes)) if best is not None and best.changes else None,
        "boot_bound": {"p95_wait_seconds": round(tuning.bound.p95_wait, 1), "text": tuning.bound.describe()},
        "rows": results_rows(results, bound, today.spec.slo_seconds),
    }


def tune(
    console: Console,
    stack: str,
    pool: str,
    trace_name: str,
    seed: int,
    boot_seconds: float | None,
    objective: Objective,
    as_json: bool,
) -> int:
    """Run the search and report it; returns the exit code (0 a configuration meets, confirmed; 1 none)."""
    try:
        config = load_stack_config(stack)
        spec = pool_spec(config, pool)
        raw = read_stack_file(stack)["pools"][pool]
        trace = load_trace(trace_name, spec.trace_shape(seed))
    except (ConfigError, PoolNotFoundError, TraceError) as exc:
        report("simulate", exc)
        raise typer.Exit(2) from None
    assumptions = default_assumptions(spec.image_mode, boot_seconds)
    tuner = Tuner(config, raw, pool, trace, assumptions, objective=objective)
    console.print(
        f"[bold]tuning {stack}/{pool} on {trace.name}[/] ({trace.count} tasks; SLO p95 wait <= {spec.slo_seconds:g} s; "
        f"cheapest by {objective}; launch-to-ready {assumptions.boot_seconds:.0f} s, "
        f"CloudWatch delay {assumptions.alarm_delay_seconds:.0f} s: assumed). Searching:"
    )
    for line in tuner.searched():
        console.print(f"  {line}", markup=False)
    tuning = _search(console, tuner)
    best = tuning.best
    confirmed = _confirm(stack, pool, best, trace, tuner) if best is not None and best.changes else None
    if as_json:
        typer.echo(json.dumps(_document(stack, pool, tuning, trace, confirmed), indent=2))
    return _report(console, stack, pool, tuning, trace, confirmed)


def _report(
    console: Console, stack: str, pool: str, tuning: Tuning, trace: Trace, confirmed: SimulationResult | None
) -> int:
    today, best = tuning.today, tuning.best
    slo = today.spec.slo_seconds
    console.print(f"{tuning.trials} configurations run.")
    console.print(f"today: {today.knobs.describe()}: p95 {today.result.p95_wait:.1f} s; {_money(today)}")
    if best is None:
        closest = tuning.closest
        console.print(
            f"[red]No configuration searched meets the {slo:g} s SLO[/]; the closest: {closest.knobs.describe()}, "
            f"p95 {closest.result.p95_wait:.1f} s; {_money(closest)}"
        )
        console.print(tuning.bound.describe(), markup=False)
        if not tuning.bound.meets_slo:
            console.print(
                "No configuration that reacts to this traffic meets it: only capacity scheduled ahead of it can."
            )
        return 1
    if not best.changes:
        console.print(f"[green]Today's configuration is the cheapest that meets the SLO[/] by {tuning.objective}.")
        return 0
    results = [_labelled(today, "ours (today)"), _labelled(best, "ours (tuned)")]
    if confirmed is not None:
        results.append(confirmed)
    console.print(results_table(results, bound_for(today.spec, trace), f"{stack}/{pool} on {trace.name}", slo))
    console.print(f"tuned: {best.knobs.describe()}: p95 {best.result.p95_wait:.1f} s; {_money(best)}")
    console.print(f"Set in Pulumi.{stack}.yaml (the keys of pools.{pool} that change):")
    console.print(changes_yaml(pool, dict(best.changes)), markup=False, highlight=False)
    if confirmed is None or not confirmed.meets_slo or abs(confirmed.p95_wait - best.result.p95_wait) > 1e-6:
        console.print("[red]The stack file with these lines does not give the same run[/]")
        return 1
    console.print(
        f"[green]Confirmed[/]: Pulumi.{stack}.yaml with these lines validates, and the simulator gives p95 "
        f"{confirmed.p95_wait:.1f} s <= {slo:g} s at {confirmed.instance_hours:.2f} instance-h "
        f"(today {today.result.instance_hours:.2f}), ${best.monthly_usd:,.0f}/month at this traffic "
        f"(today ${today.monthly_usd:,.0f})."
    )
    return 0
