"""Policy benchmark: our default policy against the reference policies on every built-in trace.

For each trace: p95 queue wait, instance-hours and their ratio to the perfect-foresight bound.
Targets (issue 5): ours meets the SLO on every trace at no more than 1.25x the bound's instance-hours,
and a burst reaches its first scale-out decision within 30 s with 10-second metrics.
Also the simulator's speed on a 24-hour trace (target: at least 10,000x real time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from infra.scaling.aws_model import BOOT_SECONDS, ModelAssumptions
from infra.scaling.policy import Slo, default_pool_scaling
from infra.scaling.simulator import (
    PoolSpec,
    SimulationResult,
    ours,
    perfect_foresight_instance_hours,
    reference_contenders,
    simulate,
)
from infra.scaling.stack import load_pool_spec
from infra.scaling.traces import BUILT_IN, TraceShape, built_in

STACK = "prod"
POOL = "default"
RATIO_TARGET = 1.25
BURST_TARGET_SECONDS = 30.0
SPEED_TARGET = 10_000.0


@dataclass(frozen=True)
class PolicyRow:
    trace: str
    policy: str
    p95_wait: float
    slo_seconds: float
    instance_hours: float
    bound_hours: float
    first_scale_out: float | None

    @property
    def ratio(self) -> float:
        return self.instance_hours / self.bound_hours

    @property
    def meets_slo(self) -> bool:
        return self.p95_wait <= self.slo_seconds


def untuned(spec: PoolSpec) -> PoolSpec:
    """Plain target tracking from the same SLO (AWS's proportional scale-in, no burst step): the
    policy before tuning, kept in the table to show what the tuning buys."""
    scaling = spec.scaling
    slo_scaling = default_pool_scaling(
        spec.name,
        _slo(spec),
        spec.min_size,
        spec.max_size,
        warmup_seconds=scaling.target_tracking.estimated_instance_warmup_seconds,
        step_scale_in=False,
        fast_scale_out=False,
    )
    return dataclasses.replace(spec, scaling=slo_scaling)


def _slo(spec: PoolSpec) -> Slo:
    return Slo(spec.acceptable_latency_seconds, spec.average_task_seconds, spec.concurrency, spec.slo_seconds)


def measure(stack: str = STACK, pool: str = POOL, traces: Sequence[str] = tuple(BUILT_IN)) -> list[PolicyRow]:
    spec = load_pool_spec(stack, pool)
    assumptions = ModelAssumptions(boot_seconds=BOOT_SECONDS[spec.image_mode])
    shape = TraceShape(spec.capacity_per_second, spec.average_task_seconds)
    rows: list[PolicyRow] = []
    for name in traces:
        trace = built_in(name, shape)
        bound = perfect_foresight_instance_hours(spec, trace)
        runs: list[SimulationResult] = [simulate(spec, trace, ours("ours"), assumptions)]
        # Robustness: the same policy if CloudWatch takes 10 s to make a datapoint available to alarms.
        delayed = dataclasses.replace(assumptions, alarm_delay_seconds=10.0)
        runs.append(simulate(spec, trace, ours("ours+10s-delay"), delayed))
        runs.append(simulate(untuned(spec), trace, ours("ours-tt-only"), assumptions))
        runs.extend(simulate(spec, trace, contender, assumptions) for contender in reference_contenders())
        for result in runs:
            rows.append(
                PolicyRow(
                    name,
                    result.policy,
                    result.p95_wait,
                    spec.slo_seconds,
                    result.instance_hours,
                    bound,
                    result.first_scale_out_after_burst,
                )
            )
    return rows


def table(rows: Sequence[PolicyRow], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    for header in ("trace", "policy", "p95 wait s", "SLO", "instance-h", "bound h", "x bound", "burst->out s"):
        out.add_column(header, justify="left" if header in ("trace", "policy") else "right")
    for row in rows:
        ours_row = row.policy.startswith("ours") and row.policy != "ours-tt-only"
        ratio = f"{row.ratio:.2f}"
        if ours_row:
            ratio = f"[green]{ratio}[/]" if row.ratio <= RATIO_TARGET else f"[red]{ratio}[/]"
        out.add_row(
            row.trace,
            f"[bold]{row.policy}[/]" if ours_row else row.policy,
            f"{row.p95_wait:.1f}",
            "[green]met[/]" if row.meets_slo else "[red]missed[/]",
            f"{row.instance_hours:.2f}",
            f"{row.bound_hours:.2f}",
            ratio,
            "-" if row.first_scale_out is None else f"{row.first_scale_out:.0f}",
        )
    return out


def run() -> Table:
    """The policy table for `make bench`."""
    rows = measure()
    ours_rows = [r for r in rows if r.policy in ("ours", "ours+10s-delay")]
    met = all(r.meets_slo and r.ratio <= RATIO_TARGET for r in ours_rows)
    # The target is about a step in traffic: the burst trace. spike-to-zero climbs over 2 minutes, so
    # its first decision comes when the climb has built a backlog; it is shown, not judged.
    bursts = [r.first_scale_out for r in ours_rows if r.trace == "burst" and r.first_scale_out is not None]
    burst_ok = bool(bursts) and max(bursts) <= BURST_TARGET_SECONDS
    title = (
        f"Scaling policies, {STACK}/{POOL} (SLO: p95 wait <= {ours_rows[0].slo_seconds:.0f} s). "
        f"Ours meets the SLO at <= {RATIO_TARGET}x bound on every trace: {'yes' if met else 'NO'}; "
        f"burst -> first scale-out <= {BURST_TARGET_SECONDS:.0f} s: {'yes' if burst_ok else 'NO'}"
    )
    return table(rows, title)


def speed() -> Table:
    """Simulated seconds per wall-clock second, our policy on the 24-hour diurnal trace."""
    spec = load_pool_spec(STACK, POOL)
    trace = built_in("diurnal", TraceShape(spec.capacity_per_second, spec.average_task_seconds))
    results = [simulate(spec, trace, ours()) for _ in range(3)]
    best = min(results, key=lambda r: r.wall_seconds)
    out = Table(title=f"Simulator speed (target >= {SPEED_TARGET:,.0f}x)", title_justify="left")
    for header in ("trace", "tasks", "simulated h", "wall s (best of 3)", "x real time"):
        out.add_column(header, justify="right")
    colour = "green" if best.speed >= SPEED_TARGET else "red"
    out.add_row(
        trace.name,
        f"{trace.count:,}",
        f"{best.simulated_seconds / 3600:.1f}",
        f"{best.wall_seconds:.2f}",
        f"[{colour}]{best.speed:,.0f}[/]",
    )
    return out
