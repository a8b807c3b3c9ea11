"""What no policy can beat on a trace: the fewest instance-hours (perfect foresight) and the shortest
p95 wait of any policy that reacts to what it sees (the boot bound).

The two bound different things. Perfect foresight knows the future and pays nothing to start an
instance: no policy uses fewer instance-hours without holding work. The boot bound is for the other
side: however it is tuned, a policy that reacts (no schedule that knows the load is coming) sees
nothing before the first task arrives, decides no sooner than the end of the first high-resolution
datapoint after it plus CloudWatch's delay, and its instances consume tasks no sooner than the
fastest launch-to-ready there is. When the p95 wait of even that pool, all of maxSize at once, is
over the SLO, no configuration of that pool that reacts can meet it.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from infra.scaling.pool_spec import PoolSpec
from infra.scaling.slo import meets_slo
from infra.scaling.traces import Trace
from worker.percentiles import percentile

DATAPOINT_SECONDS = 10.0
"""The publisher's high-resolution period: the shortest alarm period over our metrics (HR)."""


def perfect_foresight_instance_hours(spec: PoolSpec, trace: Trace, bucket_seconds: float = 60.0) -> float:
    """The perfect-foresight lower bound on instance-hours: each minute, exactly the (fractional)
    instances that the minute's arriving work needs, started and stopped instantly and for free,
    never fewer than min_size. A policy can only beat it by holding work for longer than a minute."""
    buckets = math.ceil(trace.duration / bucket_seconds)
    index = np.minimum((trace.arrivals // bucket_seconds).astype(np.int64), buckets - 1)
    work = np.bincount(index, weights=trace.task_seconds, minlength=buckets)
    min_size = spec.min_size if trace.min_size is None else trace.min_size
    instances = np.maximum(work / (spec.concurrency * bucket_seconds), min_size)
    return float(instances.sum() * bucket_seconds / 3600)


@dataclass(frozen=True)
class BootBound:
    """The shortest p95 wait any reacting policy reaches on a trace, and what it assumed."""

    p95_wait: float
    slo_seconds: float
    standing: int
    """Instances in service before the first task: the trace's minSize (or the pool's)."""
    ready_after: float
    """Seconds from the first task to all of maxSize consuming: the decision, then launch-to-ready."""
    launch_seconds: float

    @property
    def meets_slo(self) -> bool:
        return meets_slo(self.p95_wait, self.slo_seconds)

    def describe(self) -> str:
        verdict = "met" if self.meets_slo else "missed"
        return (
            f"boot bound: p95 {self.p95_wait:.1f} s ({verdict}; SLO {self.slo_seconds:g} s) with {self.standing} "
            f"instance(s) standing and all of maxSize consuming {self.ready_after:.0f} s after the first task "
            f"(decision {self.ready_after - self.launch_seconds:.0f} s + launch-to-ready {self.launch_seconds:.0f} s)"
        )


def fifo_waits(arrivals: list[float], service: list[float], free_at: list[float]) -> list[float]:
    """Each task's wait in one FIFO queue served by processes that are free from `free_at` on (one
    entry per process; a process free at infinity is none). The earliest free process takes the next task."""
    free = list(free_at)
    heapq.heapify(free)
    waits: list[float] = []
    for arrival, seconds in zip(arrivals, service, strict=True):
        slot = free[0]
        start = arrival if arrival > slot else slot
        heapq.heapreplace(free, start + seconds)
        waits.append(start - arrival)
    return waits


def boot_bound(spec: PoolSpec, trace: Trace, launch_seconds: float, alarm_delay_seconds: float) -> BootBound:
    """The p95 wait of the fastest reacting pool: `standing` instances (the trace's minSize, else the
    pool's) until the first task's datapoint closes and CloudWatch evaluates it, then every instance
    up to maxSize at once, each consuming `launch_seconds` later. Any pool that reacts has no more
    processes at any instant, and FIFO with more processes sooner starts no task later."""
    standing = spec.min_size if trace.min_size is None else trace.min_size
    arrivals = trace.arrivals.tolist()
    if not arrivals:
        return BootBound(0.0, spec.slo_seconds, standing, 0.0, launch_seconds)
    first = arrivals[0]
    decided = (math.floor(first / DATAPOINT_SECONDS) + 1) * DATAPOINT_SECONDS + alarm_delay_seconds
    ready = decided + launch_seconds
    processes = [0.0] * (standing * spec.concurrency)
    processes += [ready] * ((spec.max_size - standing) * spec.concurrency)
    waits = fifo_waits(arrivals, trace.task_seconds.tolist(), processes)
    p95 = percentile(waits, 95) or 0.0
    return BootBound(p95, spec.slo_seconds, standing, ready - first, launch_seconds)
