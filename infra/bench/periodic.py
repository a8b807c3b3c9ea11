"""`make bench --only periodic-fan-out`: a periodic fan-out with and without the scheduled capacity
that its periodic entry derives, side by side, through the simulator.

The trace is the built-in `periodic-fan-out` on prod/default (every 15 minutes, at :05, :20, :35 and
:50, about 90 s of the pool's full capacity arriving within one minute). The entry is the one an
application would declare for it: `worker.scheduler.periodic.Periodic` on those minutes with `expect_tasks` = the
tasks of one fan-out in the trace and prod's `fan-out` entry's lead time; its schedule comes from
`infra.config.periodic_capacity`, exactly as `pools.<name>.schedules` gets it at render time.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from rich.table import Table

from infra.bench.table import bench_table
from infra.config import load_stack_config
from infra.config.periodic_capacity import SCHEDULE_PREFIX, capacity_for, shift_back
from infra.config.pool import ScheduleConfig
from infra.scaling.assumptions import default_assumptions
from infra.scaling.schedules import Cron
from infra.scaling.simulator import SimulationResult, ours, perfect_foresight_instance_hours, simulate
from infra.scaling.traces import FAN_OUT_EVERY, FAN_OUT_OFFSET, built_in
from infra.simulation.stack import pool_spec
from worker.scheduler.periodic import Periodic
from worker.scheduler.schedule import ENTRIES

STACK = "prod"
POOL = "default"
TRACE = "periodic-fan-out"


def fan_out_entry(tasks: int) -> Periodic:
    """The entry that sends the trace's fan-out, with prod's fan-out lead time."""
    (prod_entry,) = [e for e in ENTRIES if e.name == "fan-out"]
    minutes = sorted(int((FAN_OUT_OFFSET + k * FAN_OUT_EVERY) // 60) % 60 for k in range(4))
    return Periodic(
        name="fan-out",
        task=prod_entry.task,
        schedule=f"{','.join(map(str, minutes))} * * * *",
        expect_tasks=tasks,
        lead_seconds=prod_entry.lead_seconds,
    )


def run() -> Table:
    config = load_stack_config(STACK)
    spec = pool_spec(config, POOL)
    assumptions = default_assumptions(spec.image_mode)
    trace = built_in(TRACE, spec.trace_shape())
    first = (trace.arrivals >= FAN_OUT_OFFSET) & (trace.arrivals < FAN_OUT_OFFSET + 60.0)
    entry = fan_out_entry(int(np.count_nonzero(first)))
    instances, hold = capacity_for(entry, config.pools[POOL])
    assert entry.lead_seconds is not None
    assert isinstance(entry.schedule, str)
    derived = ScheduleConfig(
        name=f"{SCHEDULE_PREFIX}{entry.name}",
        cron=shift_back(Cron.parse(entry.schedule), entry.lead_seconds),
        capacity=instances,
        duration_seconds=hold,
    ).schedule
    bound = perfect_foresight_instance_hours(spec, trace)
    rows: list[tuple[str, SimulationResult]] = [
        ("no schedule", simulate(spec, replace(trace, schedules=()), ours("ours"), assumptions)),
        (
            f"from the entry: {instances} instances {entry.lead_seconds // 60 if entry.lead_seconds else 0} min "
            f"ahead, {hold // 60} min",
            simulate(spec, replace(trace, schedules=(derived,)), ours("ours"), assumptions),
        ),
    ]
    out = bench_table(
        f"Periodic fan-out, {STACK}/{POOL} on {TRACE}: {entry.expect_tasks} tasks at {entry.schedule} "
        f"(SLO p95 <= {spec.acceptable_latency_seconds:.0f} s), without and with the entry's scheduled capacity",
        ("scheduled capacity", "p95 wait s", "p99 wait s", "SLO", "inst-h", "x bound"),
        left=("scheduled capacity",),
    )
    for label, result in rows:
        out.add_row(
            label,
            f"{result.p95_wait:.1f}",
            f"{result.p99_wait:.1f}",
            "[green]met[/]" if result.meets_slo else "[red]missed[/]",
            f"{result.instance_hours:.2f}",
            f"{result.instance_hours / bound:.2f}" if bound > 0 else "-",
        )
    out.add_row("bound (perfect foresight)", "", "", "", f"{bound:.2f}", "1.00")
    return out
