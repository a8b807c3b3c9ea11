"""Twin against simulator: the agreement test's run (dev/default, minutes 18-40 of the burst trace, x10),
its counts side by side with the simulator's and the tolerances of `infra.local.agreement.TOLERANCE`.

The agreement test gates only on what load cannot move (`gate_failures`); how close the counts come
depends on how busy the machine is, so they are measured here, where the load is stated, not asserted.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra.bench.table import bench_table
from infra.local.agreement import TOLERANCE, Comparison, gate_failures
from infra.local.plan import TwinPlan, assumptions_for, local_pool, local_trace
from infra.local.run_loop import run_twin

PLAN = TwinPlan(stack="dev", pool="default", trace="burst", window=(18.0, 40.0), speed=10.0)


def run() -> Table:
    with tempfile.TemporaryDirectory(prefix="bench-twin-") as tmp:
        plan = replace(PLAN, log_dir=Path(tmp) / "logs")
        pool = local_pool(plan)
        trace = local_trace(plan, pool.spec)
        with (Path(tmp) / "view.txt").open("w") as view:
            result = run_twin(plan, pool, trace, Console(file=view, width=150))
    lo, sim = result.local, result.simulated
    comparison = Comparison(lo, sim)
    gate = gate_failures(result, pool.spec, assumptions_for(plan, pool.spec))
    title = (
        f"Local twin vs simulator, {plan.stack}/{plan.pool} on {plan.trace} minutes 18-40 at x{plan.speed:.0f} "
        f"({result.wall_seconds:.0f} s wall; worst sample lag {result.worst_sample_lag:.2f} s wall). "
        f"Gate: {'held' if not gate else '; '.join(gate)}"
    )
    out = bench_table(
        title,
        ("measure", "twin", "simulator", "tolerance", "within"),
    )
    failing = {f.split(":")[0] for f in comparison.failures()}

    def row(name: str, key: str, twin: str, simulated: str, tolerance: str) -> None:
        out.add_row(name, twin, simulated, tolerance, "NO" if key in failing else "yes")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} s"

    row("scale-outs", "scale-outs", str(lo.scale_outs), str(sim.scale_outs), f"± {TOLERANCE.scale_events}")
    row("scale-ins", "scale-ins", str(lo.scale_ins), str(sim.scale_ins), f"± {TOLERANCE.scale_events}")
    row(
        "first scale-out after the burst",
        "first scale-out after the burst",
        seconds(lo.first_scale_out_after_burst),
        seconds(sim.first_scale_out_after_burst),
        f"± {TOLERANCE.first_scale_out_seconds:.0f} s",
    )
    row(
        "peak instances",
        "peak instances",
        str(lo.peak_instances),
        str(sim.peak_instances),
        f"± {TOLERANCE.peak_instances}",
    )
    row(
        "p95 wait (model s)",
        "p95 wait",
        f"{lo.p95_wait:.1f}",
        f"{sim.p95_wait:.1f}",
        f"± max({TOLERANCE.p95_wait_seconds:.0f} s, {TOLERANCE.p95_wait_ratio:.0%})",
    )
    return out
