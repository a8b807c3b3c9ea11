"""The capacity rule: how far a pool's in-service capacity falls short of its work, from one sample.

One definition, three callers:
- the metrics publisher (`worker.publisher.handler`) calls `capacity` on every sample and publishes
  its values as the pool's high-resolution metrics (names in `worker.names`), which target tracking
  and the step alarms read one metric each;
- the simulator and the local twin call it through `infra.scaling.signals`, on the samples they
  make, so the policies they run see the numbers AWS would see.

CloudWatch therefore evaluates no metric math for scaling: whatever the number of queues, each
policy reads one metric (PutMetricAlarm takes at most 10 metrics and 10 expressions,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html).

Pure code with no imports beyond the standard library: it runs in the Lambda and in `infra`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

NEVER_SCALE_IN: Final = 1000.0
"""LoadWithOneFewer with one instance or none: far above any scale-in threshold, so the signal never
empties a pool (going to zero is a separate policy on the backlog)."""


@dataclass(frozen=True)
class PoolSignal:
    """The constants of a pool's capacity rule, from its config (the publisher gets them in POOLS_JSON)."""

    concurrency: int = 1
    """Worker processes per instance: processes in service = in-service instances x this."""

    average_task_seconds: float = 1.0
    """averageTaskSeconds: the task time used until the workers have measured one."""

    acceptable_latency_seconds: float = 60.0
    """The SLO (p95 queue wait)."""

    target_wait_seconds: float = 30.0
    """The estimated queue wait that CapacityNeeded = 1 stands for."""

    headroom_seconds: float = 120.0
    """For long tasks (measured time over the target wait), the processes kept free for the arrivals of
    this many seconds: about the time a new instance takes to help (the pool's instance warm-up)."""


@dataclass(frozen=True)
class Sample:
    """What the publisher reads for one pool at one instant."""

    waiting: int
    """Tasks in the pool's queues that no worker holds."""
    in_flight: int
    """Tasks delivered to a worker and not acked: reserved or running."""
    busy: int
    """Tasks running now (the workers' count; the in-flight count where the broker has none)."""
    task_seconds: float | None
    """Measured mean task run time over the recent window; None until a task has ended."""
    in_service: int
    """The pool group's InService instances, read in the same sample."""

    @property
    def backlog(self) -> int:
        return self.waiting + self.in_flight


@dataclass(frozen=True)
class Capacity:
    """The pool's scale signals at one sample (each published as one metric, `worker.names`)."""

    needed: float | None
    """CapacityNeeded: the factor by which in-service capacity falls short (1 = enough). None with no
    instance in service: a ratio to no capacity means nothing, and target tracking multiplies it by
    the current capacity, which is zero (a pool leaves zero through `needed_at_zero`)."""
    load_with_one_fewer: float
    """(busy + waiting) / the processes of one instance fewer, x the long-task factor: under the
    scale-in threshold, removing one instance still leaves headroom. NEVER_SCALE_IN with one or none."""
    needed_at_zero: int
    """With no instance in service and work queued: the instances the backlog needs (at least 1); else 0.
    A ChangeInCapacity step policy reads it, so scale-out from zero rests on no percentage of zero."""


def task_seconds(sample: Sample, signal: PoolSignal) -> float:
    """The measured task time once a task has ended, else the configured one."""
    return signal.average_task_seconds if sample.task_seconds is None else sample.task_seconds


def queue_wait(sample: Sample, signal: PoolSignal) -> float:
    """The work queued ahead of a new task (waiting + reserved = backlog - busy) x task time / processes.
    With none in service and work queued: the backlog's run time plus the SLO (a task waits for a boot)."""
    seconds = task_seconds(sample, signal)
    if sample.in_service > 0:
        ahead = max(sample.backlog - sample.busy, 0)
        return ahead * seconds / (signal.concurrency * sample.in_service)
    if sample.backlog == 0:
        return 0.0
    return sample.backlog * seconds / signal.concurrency + signal.acceptable_latency_seconds


def long_task_factor(sample: Sample, signal: PoolSignal) -> float:
    """1 + headroom / task time for long tasks (processes kept free for arrivals), else 1."""
    seconds = task_seconds(sample, signal)
    return 1 + signal.headroom_seconds / seconds if seconds > signal.target_wait_seconds else 1.0


def _needed(sample: Sample, signal: PoolSignal) -> float | None:
    if sample.in_service == 0:
        return None
    if task_seconds(sample, signal) > signal.target_wait_seconds:
        # Long tasks: process demand, with headroom; a queue wait would ask for one instance per
        # 10 minutes of waiting work.
        demand = (sample.busy + sample.waiting) / (signal.concurrency * sample.in_service)
        return demand * long_task_factor(sample, signal)
    # Short tasks: the instances that clear the queue within the target wait.
    return queue_wait(sample, signal) / signal.target_wait_seconds


def _needed_at_zero(sample: Sample, signal: PoolSignal) -> int:
    if sample.in_service > 0 or sample.backlog == 0:
        return 0
    seconds = task_seconds(sample, signal)
    if seconds > signal.target_wait_seconds:
        processes = float(sample.backlog)  # one process per long task
    else:
        processes = sample.backlog * seconds / signal.target_wait_seconds
    return max(1, math.ceil(processes / signal.concurrency))


def _load_with_one_fewer(sample: Sample, signal: PoolSignal) -> float:
    if sample.in_service <= 1:
        return NEVER_SCALE_IN
    processes = signal.concurrency * (sample.in_service - 1)
    return (sample.busy + sample.waiting) / processes * long_task_factor(sample, signal)


def capacity(sample: Sample, signal: PoolSignal) -> Capacity:
    """The pool's scale signals at one sample: the one definition the publisher, the simulator and the
    local twin share."""
    return Capacity(
        needed=_needed(sample, signal),
        load_with_one_fewer=_load_with_one_fewer(sample, signal),
        needed_at_zero=_needed_at_zero(sample, signal),
    )
