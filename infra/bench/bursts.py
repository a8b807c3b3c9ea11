"""`make bench --only bursts` and `--only warm-sensitivity`: the burst and the flash crowd, where no
policy meets the SLO with the stacks' configs as they are.

`bursts`: on prod/default and dev/default, for `burst` and `flash-crowd`, ours and the references as
configured today, then ours at the configuration the tuner (`infra.simulation.tuning`, objective
instance-hours) finds among minSize, targetWaitShare and a warm pool: the fewest instance-hours of
those that meet the SLO. Where none meets, the boot bound (`infra.scaling.bounds`) says whether any
reacting configuration could.

`warm-sensitivity`: the warm pool's launch-to-ready is an assumption (`ModelAssumptions.warm_launch_seconds`,
30 s Stopped by default); ours at each case's tuned configuration (a warm pool of maxSize where none
meets), and the boot bound, at each value of SENSITIVITY_WARM_SECONDS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from rich.table import Table

from infra.bench.table import bench_table
from infra.config import load_stack_config
from infra.config.loading import read_stack_file
from infra.scaling.assumptions import SENSITIVITY_WARM_SECONDS, default_assumptions
from infra.scaling.bounds import BootBound, boot_bound
from infra.scaling.simulator import SimulationResult, perfect_foresight_instance_hours, reference_contenders, simulate
from infra.scaling.traces import built_in
from infra.simulation.stack import pool_spec
from infra.simulation.tuning import Knobs, Trial, Tuner, Tuning

STACKS = ("prod", "dev")
POOL = "default"
TRACES = ("burst", "flash-crowd")


@dataclass(frozen=True)
class BurstCase:
    stack: str
    trace: str
    tuning: Tuning
    references: Sequence[SimulationResult]
    bound_hours: float


@cache
def measure(stacks: Sequence[str] = STACKS, traces: Sequence[str] = TRACES) -> list[BurstCase]:
    """Each case once per process (both sections read it)."""
    cases: list[BurstCase] = []
    for stack in stacks:
        config = load_stack_config(stack)
        raw = read_stack_file(stack)["pools"][POOL]
        spec = pool_spec(config, POOL)
        assumptions = default_assumptions(spec.image_mode)
        for name in traces:
            trace = built_in(name, spec.trace_shape())
            tuning = Tuner(config, raw, POOL, trace, assumptions, objective="instance-hours").search()
            references = [simulate(spec, trace, contender, assumptions) for contender in reference_contenders()]
            cases.append(BurstCase(stack, name, tuning, references, perfect_foresight_instance_hours(spec, trace)))
    return cases


def verdict(case: BurstCase) -> str:
    best, bound = case.tuning.best, case.tuning.bound
    if best is None:
        can = "no reacting configuration can" if not bound.meets_slo else "a reaction at the first datapoint could"
        return (
            f"no configuration searched meets it ({case.tuning.trials} run; closest p95 "
            f"{case.tuning.closest.result.p95_wait:.1f} s); boot bound p95 {bound.p95_wait:.1f} s: {can}"
        )
    cheaper = [r.policy for r in case.references if r.meets_slo and r.instance_hours <= best.result.instance_hours]
    if cheaper:
        return f"NO: {', '.join(cheaper)} meet it at no more instance-hours than ours tuned"
    return (
        f"ours tuned ({best.knobs.describe()}) meets it at {best.result.instance_hours:.2f} inst-h, the fewest of "
        f"the {case.tuning.trials} configurations run"
    )


def _row(table: Table, case: BurstCase, label: str, result: SimulationResult, changes: str = "") -> None:
    table.add_row(
        f"{case.stack}/{POOL}",
        case.trace,
        label,
        f"{result.p95_wait:.1f}",
        "[green]met[/]" if result.meets_slo else "[red]missed[/]",
        f"{result.instance_hours:.2f}",
        f"{result.instance_hours / case.bound_hours:.2f}",
        f"{result.cost_usd:.3f}",
        changes,
    )


def _changes(trial: Trial) -> str:
    """The tuned knobs, and what a warm pool changed besides them."""
    text = trial.knobs.describe()
    if "instanceTypes" in trial.changes:
        text += f"; Spot off, {trial.changes['instanceTypes'][0]} only"
    return text


def _bound_row(table: Table, case: BurstCase, bound: BootBound) -> None:
    colour = "green" if bound.meets_slo else "red"
    launch = f"all of maxSize {bound.ready_after:.0f} s after the first task"
    table.add_row(
        f"{case.stack}/{POOL}", case.trace, "boot bound", f"[{colour}]{bound.p95_wait:.1f}[/]", "", "", "", "", launch
    )
    table.add_row(
        f"{case.stack}/{POOL}",
        case.trace,
        "perfect foresight",
        "",
        "",
        f"{case.bound_hours:.2f}",
        "1.00",
        "",
        "",
        end_section=True,
    )


def run() -> Table:
    cases = measure()
    out = bench_table(
        "Bursts: ours and the references as configured, ours tuned (fewest instance-hours that meet the SLO), "
        "the boot bound",
        ("pool", "trace", "policy", "p95 wait s", "SLO", "inst-h", "x bound", "$", "config"),
        left=("pool", "trace", "policy", "config"),
    )
    for case in cases:
        _row(out, case, "ours (today)", case.tuning.today.result, case.tuning.today.knobs.describe())
        for reference in case.references:
            _row(out, case, reference.policy, reference)
        if case.tuning.best is not None and case.tuning.best.changes:
            _row(out, case, "[bold]ours (tuned)[/]", case.tuning.best.result, _changes(case.tuning.best))
        _bound_row(out, case, case.tuning.bound)
    out.caption = "\n".join(f"{c.stack}/{POOL} {c.trace}: {verdict(c)}" for c in cases)
    out.caption_justify = "left"
    return out


def warm_sensitivity() -> Table:
    """Ours at the tuned configuration (or, where none meets, with a Stopped warm pool of maxSize), and
    the boot bound, by a warm instance's launch-to-ready."""
    headers = ("pool", "trace", "row", *(f"warm {s:.0f} s" for s in SENSITIVITY_WARM_SECONDS))
    out = bench_table(
        "Sensitivity to a warm instance's launch-to-ready (assumed 30 s Stopped): p95 wait s of ours at the "
        "configuration tuned under 30 s (or a warm pool of maxSize where none meets), and the boot bound",
        headers,
        left=("pool", "trace", "row"),
    )
    for case in measure():
        config = load_stack_config(case.stack)
        raw = read_stack_file(case.stack)["pools"][POOL]
        spec = pool_spec(config, POOL)
        trace = built_in(case.trace, spec.trace_shape())
        today = case.tuning.today.knobs
        best = case.tuning.best
        knobs = (
            best.knobs
            if best is not None
            else Knobs(today.min_size, today.target_wait_share, spec.max_size, today.trace_min_size)
        )
        ours_cells, bound_cells = [], []
        for seconds in SENSITIVITY_WARM_SECONDS:
            assumptions = dataclasses.replace(default_assumptions(spec.image_mode), warm_launch_seconds=seconds)
            result = Tuner(config, raw, POOL, trace, assumptions).run(knobs).result
            ours_cells.append(f"[{'green' if result.meets_slo else 'red'}]{result.p95_wait:.1f}[/]")
            bound = boot_bound(spec, trace, min(seconds, assumptions.boot_seconds), assumptions.alarm_delay_seconds)
            bound_cells.append(f"[{'green' if bound.meets_slo else 'red'}]{bound.p95_wait:.1f}[/]")
        label = f"ours ({knobs.describe()})"
        out.add_row(f"{case.stack}/{POOL}", case.trace, label, *ours_cells)
        out.add_row(f"{case.stack}/{POOL}", case.trace, "boot bound", *bound_cells, end_section=True)
    return out
