"""Does the local twin agree with the simulator? The same trace, policy, boot delay and speed assumptions,
one run with real processes in scaled real time, one in virtual time.

Two different questions, answered differently:

- `gate_failures`: what machine load cannot move, checked by the agreement test. Nothing lost, every
  canary back, the burst made the pool scale out, the peak stayed within the pool's bounds, the fleet
  started and drained exactly the instances the model decided, and the model's decisions follow from
  what it saw: the twin's recorded samples, replayed through a fresh model, give identical decisions.
- `Comparison`: how close the twin's counts come to the simulator's, within stated tolerances. Load
  moves these (the twin runs 10x faster than model time, so a fraction of a second of extra wall time
  per task is seconds of model time, and a burst that no longer clears in its window drops a whole
  shrink-and-regrow cycle), so `make bench` reports them side by side; no test gates on them.

What differs between twin and simulator, and why they cannot match exactly:
- the twin's queue is sampled a little after each 10 s boundary, and sees broker and worker latency;
- a worker prefetches a task it has not started, and a draining worker requeues it (the simulator models
  prefetch as none beyond the running task), so a scale-in can leave a task that waits for a new instance;
- task start-up, journal writes and process scheduling add a few tens of milliseconds of wall time to each
  task, which the speed factor multiplies into model seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from infra.local.result import TwinResult
from infra.scaling.aws_model import ModelAssumptions, PoolSample, ScalingEvent
from infra.scaling.simulator import PoolSpec, SimulationResult, ours


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
            return "none" if value is None else f"{value:.0f} s"

        failures = self.failures()
        verdict = "within tolerance" if not failures else f"{len(failures)} beyond tolerance"
        return (
            f"local vs simulator ({verdict}): scale-outs {lo.scale_outs} vs {sim.scale_outs}, "
            f"scale-ins {lo.scale_ins} vs {sim.scale_ins}, first scale-out after burst "
            f"{first(lo.first_scale_out_after_burst)} vs {first(sim.first_scale_out_after_burst)}, "
            f"peak {lo.peak_instances} vs {sim.peak_instances}, p95 wait {lo.p95_wait:.0f} s vs {sim.p95_wait:.0f} s"
        )


def replay(spec: PoolSpec, assumptions: ModelAssumptions, samples: Sequence[PoolSample]) -> list[ScalingEvent]:
    """The decisions a fresh model of the pool makes when fed `samples` the way the twin feeds them."""
    model = ours("replay").build(spec, assumptions)
    for sample in samples:
        model.observe(sample)
        model.decide(sample.at)
    return model.events


def gate_failures(result: TwinResult, spec: PoolSpec, assumptions: ModelAssumptions) -> list[str]:
    """Each way a twin run broke what load cannot move, as a sentence; empty when it held."""
    problems = [*result.problems]
    tally = result.tally
    if tally.lost or tally.sent != result.local.tasks:
        problems.append(f"tasks: sent {tally.sent} of {result.local.tasks}, lost {tally.lost}")
    if result.canaries_returned != result.canaries_sent:
        problems.append(f"canaries: {result.canaries_returned} of {result.canaries_sent} came back")
    if result.local.scale_outs == 0:
        problems.append("the model never scaled out, so the run says nothing about scaling")
    if not spec.min_size <= result.local.peak_instances <= spec.max_size:
        problems.append(f"peak {result.local.peak_instances} outside the pool's {spec.min_size}..{spec.max_size}")
    replayed = replay(spec, assumptions, result.samples)
    if replayed != list(result.decisions):
        at = next(
            (i for i, (a, b) in enumerate(zip(replayed, result.decisions, strict=False)) if a != b),
            min(len(replayed), len(result.decisions)),
        )
        problems.append(
            f"replaying the {len(result.samples)} recorded samples gave {len(replayed)} decisions, the run made "
            f"{len(result.decisions)}; first difference at decision {at + 1}"
        )
    launched = [i for event in result.decisions for i in event.launched]
    initial = [i for i in result.launched if i not in launched]
    if sorted(result.launched) != sorted(initial + launched) or len(initial) != spec.min_size:
        problems.append(f"the fleet started instances {sorted(result.launched)}; the model launched {launched}")
    terminated = [i for event in result.decisions for i in event.terminated]
    if sorted(result.drained) != sorted(terminated):
        problems.append(f"the fleet drained instances {sorted(result.drained)}; the model terminated {terminated}")
    return problems
