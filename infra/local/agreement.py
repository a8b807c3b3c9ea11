"""Does the local twin agree with the simulator? The same trace, policy, boot delay and speed assumptions,
one run with real processes in scaled real time, one in virtual time; compared within stated tolerances.

The tolerances come from measured runs on a 2-core machine with other test suites running (docs/local.md
lists them). What differs between the two, and why they cannot match exactly:
- the twin's queue is sampled a little after each 10 s boundary, and sees broker and worker latency;
- a worker prefetches a task it has not started, and a draining worker requeues it (the simulator models
  prefetch as none beyond the running task), so a scale-in can leave a task that waits for a new instance;
- task start-up, journal writes and process scheduling add a few tens of milliseconds of wall time to each
  task, which the speed factor multiplies into model seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from infra.scaling.simulator import SimulationResult


@dataclass(frozen=True)
class Tolerance:
    scale_events: int
    """Most difference in the number of scale-outs, and separately of scale-ins."""
    first_scale_out_seconds: float
    """Most difference, in model seconds, between the first scale-out after the burst starts."""
    peak_instances: int
    """Most difference in the peak number of instances."""
    p95_wait_seconds: float
    """Most difference in p95 queue wait (model seconds) ..."""
    p95_wait_ratio: float
    """... or this fraction of the simulator's p95, whichever is larger."""


# Chosen from measured runs (docs/local.md, "Agreement"): the widest spread seen, plus a margin.
TOLERANCE: Final = Tolerance(
    scale_events=2, first_scale_out_seconds=20.0, peak_instances=1, p95_wait_seconds=20.0, p95_wait_ratio=0.2
)


@dataclass(frozen=True)
class Comparison:
    local: SimulationResult
    simulated: SimulationResult
    tolerance: Tolerance = TOLERANCE

    def failures(self) -> list[str]:
        """Each way the two differ by more than the tolerance, as a sentence; empty when they agree."""
        lo, sim, tol = self.local, self.simulated, self.tolerance
        problems = []
        if abs(lo.scale_outs - sim.scale_outs) > tol.scale_events:
            problems.append(
                f"scale-outs: local {lo.scale_outs}, simulator {sim.scale_outs} (tolerance {tol.scale_events})"
            )
        if abs(lo.scale_ins - sim.scale_ins) > tol.scale_events:
            problems.append(
                f"scale-ins: local {lo.scale_ins}, simulator {sim.scale_ins} (tolerance {tol.scale_events})"
            )
        a, b = lo.first_scale_out_after_burst, sim.first_scale_out_after_burst
        if (a is None) != (b is None) or (a is not None and b is not None and abs(a - b) > tol.first_scale_out_seconds):
            problems.append(
                f"first scale-out after the burst: local {a} s, simulator {b} s "
                f"(tolerance {tol.first_scale_out_seconds:.0f} s)"
            )
        if abs(lo.peak_instances - sim.peak_instances) > tol.peak_instances:
            problems.append(
                f"peak instances: local {lo.peak_instances}, simulator {sim.peak_instances} "
                f"(tolerance {tol.peak_instances})"
            )
        allowed = max(tol.p95_wait_seconds, tol.p95_wait_ratio * sim.p95_wait)
        if abs(lo.p95_wait - sim.p95_wait) > allowed:
            problems.append(
                f"p95 wait: local {lo.p95_wait:.1f} s, simulator {sim.p95_wait:.1f} s (tolerance {allowed:.1f} s)"
            )
        return problems

    def summary(self) -> str:
        lo, sim = self.local, self.simulated

        def first(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f} s"

        failures = self.failures()
        verdict = "within tolerance" if not failures else f"{len(failures)} beyond tolerance"
        return (
            f"local vs simulator ({verdict}): scale-outs {lo.scale_outs} vs {sim.scale_outs}, "
            f"scale-ins {lo.scale_ins} vs {sim.scale_ins}, first scale-out after burst "
            f"{first(lo.first_scale_out_after_burst)} vs {first(sim.first_scale_out_after_burst)}, "
            f"peak {lo.peak_instances} vs {sim.peak_instances}, p95 wait {lo.p95_wait:.0f} s vs {sim.p95_wait:.0f} s"
        )
