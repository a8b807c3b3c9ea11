"""The metrics the policies watch, as functions of one published sample and the group at that instant.

Ours are CloudWatch metric math over what the publisher writes at 10 s resolution; the Pulumi program
renders the same formulas (`infra.components.scaling_math`), and a unit test holds the two together.
The references' metrics are AWS's own (CPU) or the ones their tools define.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from infra.scaling.group_state import GroupView, PoolSample
from infra.scaling.policy import PoolSignal
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

# Our metric-math signals (labels of rendered expressions, not published metric names).
SIGNAL_QUEUE_WAIT: Final = "EstimatedQueueWait"
"""Seconds a task arriving now would wait: the work queued ahead of it (waiting + reserved, i.e.
backlog - busy) x the measured task time / the pool's processes. With no instance in service and work
queued, the backlog's own run time plus the acceptable latency (a task there waits for a boot at least)."""
SIGNAL_CAPACITY_NEEDED: Final = "CapacityNeeded"
"""The factor by which the in-service capacity falls short (1 = enough). Short tasks (measured time
under the target wait): queue wait / target wait, the instances that clear the queue in time. Long
tasks: process demand x (1 + headroom / task time), so processes stay free for the arrivals of the time
a new instance takes; a queue wait there would ask for one instance per 10 minutes of waiting work.
With no instance in service and work queued: the instances the backlog needs (within the target wait,
or one process per long task), plus one (proportional scaling counts an empty pool as one instance)."""
SIGNAL_PROCESS_DEMAND: Final = "ProcessDemand"
"""(busy processes + waiting tasks) / processes in service: 1.0 = every process busy and nothing waits."""
SIGNAL_LOAD_WITH_ONE_FEWER: Final = "LoadWithOneFewer"
"""(busy + waiting) / the processes of one instance fewer, x the long-task factor of CapacityNeeded: under
a threshold, removing one instance still leaves headroom. With one instance or none it is NEVER_SCALE_IN,
so this signal never empties a pool."""
SIGNAL_ACTIVITY: Final = "PoolActivity"
"""Waiting + in-flight tasks (the pool's backlog): zero over a long window means the pool is idle."""

NEVER_SCALE_IN: Final = 1000.0

# Metric names of the reference policies (the simulator's comparisons).
METRIC_CPU: Final = "CPUUtilization"
METRIC_VISIBLE: Final = "ApproximateNumberOfMessagesVisible"
METRIC_WAITING_PER_INSTANCE: Final = "WaitingPerInstance"

MetricFunction = Callable[[PoolSample, GroupView], float | None]


def task_seconds(s: PoolSample, g: GroupView) -> float:
    """FILL(task seconds, averageTaskSeconds): the measured time once a task has ended, else the configured one."""
    return g.configured_task_seconds if s.task_seconds is None else s.task_seconds


def queue_wait(s: PoolSample, g: GroupView, at_zero_seconds: float) -> float:
    backlog = s.waiting + s.in_flight
    ahead = max(backlog - s.busy, 0)
    if g.in_service > 0:
        return ahead * task_seconds(s, g) / (g.concurrency * g.in_service)
    return backlog * task_seconds(s, g) / g.concurrency + at_zero_seconds if backlog > 0 else 0.0


def process_demand(s: PoolSample, g: GroupView) -> float:
    return (s.busy + s.waiting) / (g.concurrency * max(g.in_service, 1))


def capacity_needed(s: PoolSample, g: GroupView, signal: PoolSignal) -> float:
    seconds = task_seconds(s, g)
    long_tasks = seconds > signal.target_wait_seconds
    if g.in_service > 0:
        if long_tasks:
            return process_demand(s, g) * long_task_factor(s, g, signal)
        return queue_wait(s, g, 0.0) / signal.target_wait_seconds
    backlog = s.waiting + s.in_flight
    if backlog == 0:
        return 0.0
    if long_tasks:
        return backlog / g.concurrency + 1.0
    return backlog * seconds / (g.concurrency * signal.target_wait_seconds) + 1.0


def long_task_factor(s: PoolSample, g: GroupView, signal: PoolSignal) -> float:
    """1 + headroom / task time for long tasks (processes kept free for arrivals), else 1."""
    seconds = task_seconds(s, g)
    return 1 + signal.headroom_seconds / seconds if seconds > signal.target_wait_seconds else 1.0


def load_with_one_fewer(s: PoolSample, g: GroupView, signal: PoolSignal) -> float:
    if g.in_service <= 1:
        return NEVER_SCALE_IN
    return (s.busy + s.waiting) / (g.concurrency * (g.in_service - 1)) * long_task_factor(s, g, signal)


def _backlog_per_instance(s: PoolSample, g: GroupView) -> float:
    # The publisher's PoolBacklogPerInstance: (waiting + in-flight) / max(in-service, 1).
    return (s.waiting + s.in_flight) / max(g.in_service, 1)


def _cpu(s: PoolSample, g: GroupView) -> float | None:
    # ASGAverageCPUUtilization: the group's average, from instances past warm-up only (WARM:
    # "how long after an instance reaches the InService state it waits before contributing usage
    # data to the aggregated metrics"). With none, there is no datapoint. Tasks are CPU-bound here.
    if g.ready == 0:
        return None
    return 100.0 * s.busy_processes_ready / (g.ready * g.concurrency)


def _waiting_per_instance(s: PoolSample, g: GroupView) -> float:
    # Copilot divides by its service's running task count, a one-minute metric (ASGM for ours).
    return s.waiting / max(g.group_metric_in_service, 1)


def metric_functions(signal: PoolSignal) -> Mapping[str, MetricFunction]:
    """Every metric a policy may name, with the pool's constants."""
    return {
        SIGNAL_CAPACITY_NEEDED: lambda s, g: capacity_needed(s, g, signal),
        SIGNAL_QUEUE_WAIT: lambda s, g: queue_wait(s, g, signal.acceptable_latency_seconds),
        SIGNAL_PROCESS_DEMAND: process_demand,
        SIGNAL_LOAD_WITH_ONE_FEWER: lambda s, g: load_with_one_fewer(s, g, signal),
        SIGNAL_ACTIVITY: lambda s, g: float(s.waiting + s.in_flight),
        METRIC_BACKLOG_PER_INSTANCE: _backlog_per_instance,
        METRIC_OLDEST_AGE: lambda s, g: s.oldest_age,
        METRIC_CPU: _cpu,
        METRIC_VISIBLE: lambda s, g: float(s.waiting),
        METRIC_WAITING_PER_INSTANCE: _waiting_per_instance,
    }
