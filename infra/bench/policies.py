"""Policy benchmark: our default policy against every reference policy and the perfect-foresight bound
on every built-in trace, under the model's default assumptions; a sensitivity table for the two
assumptions that matter most; and the simulator's speed.

The SLO is acceptableLatencySeconds: a policy meets it when p95 queue wait is at or under it.
Target (issue "Scaling that holds its SLO on traffic nobody tuned it for"): on every trace, ours meets
the SLO wherever any reference meets it, at fewer instance-hours than each reference that meets it,
with 0 interrupted tasks; where none meets it, the table says so and shows the bound, and no reference
waits no longer at p95 for no more instance-hours. The rule is `infra.scaling.slo.promise_breaches`, which
tests/unit/test_slo_promise.py holds in CI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from infra.bench.table import bench_table
from infra.scaling.assumptions import (
    SENSITIVITY_BOOT_SECONDS,
    SENSITIVITY_DELAY_SECONDS,
    ModelAssumptions,
    default_assumptions,
)
from infra.scaling.references import cpu_target_tracking
from infra.scaling.simulator import (
    PoolSpec,
    SimulationResult,
    ours,
    perfect_foresight_instance_hours,
    reference_contenders,
    simulate,
)
from infra.scaling.slo import meets_slo, promise_breaches
from infra.scaling.traces import BUILT_IN, built_in
from infra.simulation.stack import load_pool_spec

STACK = "prod"
POOL = "default"
SPEED_TARGET = 10_000.0
SENSITIVITY_TRACES = ("burst", "long-tasks")


@dataclass(frozen=True)
class PolicyRow:
    trace: str
    policy: str
    p95_wait: float
    slo_seconds: float
    instance_hours: float
    bound_hours: float
    interrupted_tasks: int
    work_lost_seconds: float
    first_scale_out: float | None

    @property
    def ratio(self) -> float:
        return self.instance_hours / self.bound_hours if self.bound_hours > 0 else float("inf")

    @property
    def meets_slo(self) -> bool:
        return meets_slo(self.p95_wait, self.slo_seconds)


def row(result: SimulationResult, bound: float) -> PolicyRow:
    return PolicyRow(
        result.trace,
        result.policy,
        result.p95_wait,
        result.slo_seconds,
        result.instance_hours,
        bound,
        result.interrupted_tasks,
        result.work_lost_seconds,
        result.first_scale_out_after_burst,
    )


def verdict(rows: Sequence[PolicyRow]) -> str:
    """For one trace: does ours keep the promise against the references (`promise_breaches`)?"""
    mine = next(r for r in rows if r.policy == "ours")
    references = [r for r in rows if r.policy != "ours"]
    breaches = promise_breaches(mine, references)
    if breaches:
        return "NO: " + "; ".join(breaches)
    if not any(r.meets_slo for r in references):
        if mine.meets_slo:
            return "yes: only ours meets the SLO"
        return (
            f"no policy meets the SLO (bound {mine.bound_hours:.2f} inst-h); "
            "no reference waits no longer for no more inst-h"
        )
    return "yes: ours meets it at fewer instance-hours than every reference that does"


def measure(
    stack: str = STACK,
    pool: str = POOL,
    traces: Sequence[str] = tuple(BUILT_IN),
    assumptions: ModelAssumptions | None = None,
) -> list[PolicyRow]:
    spec = load_pool_spec(stack, pool)
    if assumptions is None:
        assumptions = default_assumptions(spec.image_mode)
    shape = spec.trace_shape()
    rows: list[PolicyRow] = []
    for name in traces:
        trace = built_in(name, shape)
        bound = perfect_foresight_instance_hours(spec, trace)
        for contender in [ours("ours"), *reference_contenders()]:
            rows.append(row(simulate(spec, trace, contender, assumptions), bound))
    return rows


def table(rows: Sequence[PolicyRow], title: str) -> Table:
    headers = (
        "trace",
        "policy",
        "p95 wait s",
        "SLO",
        "inst-h",
        "x bound",
        "interrupted",
        "work lost s",
        "burst->out s",
    )
    out = bench_table(title, headers, left=("trace", "policy"))
    by_trace: dict[str, list[PolicyRow]] = {}
    for r in rows:
        by_trace.setdefault(r.trace, []).append(r)
    for trace, group in by_trace.items():
        for r in group:
            mine = r.policy == "ours"
            out.add_row(
                trace,
                f"[bold]{r.policy}[/]" if mine else r.policy,
                f"{r.p95_wait:.1f}",
                "[green]met[/]" if r.meets_slo else "[red]missed[/]",
                f"{r.instance_hours:.2f}",
                f"{r.ratio:.2f}",
                str(r.interrupted_tasks),
                f"{r.work_lost_seconds:.0f}",
                "-" if r.first_scale_out is None else f"{r.first_scale_out:.0f}",
            )
        bound = group[0].bound_hours
        out.add_row(trace, "bound", "", "", f"{bound:.2f}", "1.00", "", "", "", end_section=True)
    lines = []
    for trace, group in by_trace.items():
        ok = verdict(group)
        colour = "green" if ok.startswith("yes") else ("yellow" if ok.startswith("no policy") else "red")
        lines.append(f"{trace}: [{colour}]{ok}[/]")
    out.caption = "\n".join(lines)
    out.caption_justify = "left"
    return out


def title(rows: Sequence[PolicyRow], spec: PoolSpec, assumptions: ModelAssumptions) -> str:
    by_trace: dict[str, list[PolicyRow]] = {}
    for r in rows:
        by_trace.setdefault(r.trace, []).append(r)
    verdicts = [verdict(group) for group in by_trace.values()]
    holds = all(v.startswith(("yes", "no policy")) for v in verdicts)
    return (
        f"Scaling policies, {STACK}/{POOL} (SLO: p95 wait <= {spec.acceptable_latency_seconds:.0f} s; "
        f"launch-to-ready {assumptions.boot_seconds:.0f} s, CloudWatch delay {assumptions.alarm_delay_seconds:.0f} s). "
        f"Ours meets the SLO wherever a reference does, at fewer instance-hours, 0 interrupted: "
        f"{'yes' if holds else 'NO'}"
    )


def run() -> Table:
    """The policy table for `make bench`."""
    spec = load_pool_spec(STACK, POOL)
    assumptions = default_assumptions(spec.image_mode)
    rows = measure(assumptions=assumptions)
    return table(rows, title(rows, spec, assumptions))


def sensitivity() -> Table:
    """Ours under each launch-to-ready and CloudWatch delay the model could be wrong about, on the burst
    (a step in traffic) and on long tasks (where headroom, not speed, holds the SLO)."""
    spec = load_pool_spec(STACK, POOL)
    shape = spec.trace_shape()
    out = Table(
        title=f"Sensitivity of ours ({STACK}/{POOL}, SLO {spec.acceptable_latency_seconds:.0f} s): "
        "p95 wait s / x bound, by launch-to-ready and CloudWatch delay",
        title_justify="left",
    )
    out.add_column("trace")
    out.add_column("launch-to-ready s", justify="right")
    for delay in SENSITIVITY_DELAY_SECONDS:
        out.add_column(f"delay {delay:.0f} s", justify="right")
    for name in SENSITIVITY_TRACES:
        trace = built_in(name, shape)
        bound = perfect_foresight_instance_hours(spec, trace)
        for boot in SENSITIVITY_BOOT_SECONDS:
            cells = []
            for delay in SENSITIVITY_DELAY_SECONDS:
                assumptions = dataclasses.replace(ModelAssumptions(), boot_seconds=boot, alarm_delay_seconds=delay)
                result = simulate(spec, trace, ours(), assumptions)
                colour = "green" if result.meets_slo else "red"
                cells.append(f"[{colour}]{result.p95_wait:.1f}[/] / {result.instance_hours / bound:.2f}")
            out.add_row(name, f"{boot:.0f}", *cells, end_section=boot == SENSITIVITY_BOOT_SECONDS[-1])
    return out


PROTECTION_TRACES = ("steady", "long-tasks")


def protection() -> Table:
    """Instance-hours under the drain agent's scale-in protection (a task protects its instance once
    it has run DRAIN_PROTECT_AFTER_SECONDS), with a threshold of 0 (every task protects: the rule
    before), and with no protection at all."""
    spec = load_pool_spec(STACK, POOL)
    shape = spec.trace_shape()
    after = ModelAssumptions().protection_after_seconds
    columns: tuple[tuple[str, ModelAssumptions], ...] = (
        (f"agent, after {after:.0f} s", ModelAssumptions()),
        ("agent, after 0 s (before)", dataclasses.replace(ModelAssumptions(), protection_after_seconds=0.0)),
        ("none", dataclasses.replace(ModelAssumptions(), protection="none")),
    )
    out = bench_table(
        f"Scale-in protection ({STACK}/{POOL}): p95 wait s / x bound / interrupted",
        ("trace", "policy", *(name for name, _ in columns)),
        left=("trace", "policy"),
    )
    for name in PROTECTION_TRACES:
        trace = built_in(name, shape)
        bound = perfect_foresight_instance_hours(spec, trace)
        for contender in (ours(), cpu_target_tracking()):
            cells = []
            for _, assumptions in columns:
                result = simulate(spec, trace, contender, assumptions)
                cells.append(
                    f"{result.p95_wait:.1f} / {result.instance_hours / bound:.2f} / {result.interrupted_tasks}"
                )
            out.add_row(name, contender.name, *cells)
    return out


def speed() -> Table:
    """Simulated seconds per wall-clock second, our policy on the 24-hour diurnal trace."""
    spec = load_pool_spec(STACK, POOL)
    trace = built_in("diurnal", spec.trace_shape())
    results = [simulate(spec, trace, ours()) for _ in range(3)]
    best = min(results, key=lambda r: r.wall_seconds)
    out = bench_table(
        f"Simulator speed (target >= {SPEED_TARGET:,.0f}x)",
        ("trace", "tasks", "simulated h", "wall s (best of 3)", "x real time"),
    )
    colour = "green" if best.speed >= SPEED_TARGET else "red"
    out.add_row(
        trace.name,
        f"{trace.count:,}",
        f"{best.simulated_seconds / 3600:.1f}",
        f"{best.wall_seconds:.2f}",
        f"[{colour}]{best.speed:,.0f}[/]",
    )
    return out
