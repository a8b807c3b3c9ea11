"""The metrics the policies watch, as functions of one sample and the group at that instant.

Ours are exactly what the metrics publisher publishes for the pool: the capacity rule of
`worker.publisher.capacity` (the function the publisher itself calls) applied to the sample with the
published in-service count, plus the backlog, backlog per instance and the oldest age
(`published`). The references' metrics are AWS's own (CPU) or the ones their tools define.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from infra.scaling.group_state import GroupView, PoolSample
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_CAPACITY_NEEDED,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_OLDEST_AGE,
)
from worker.publisher.capacity import PoolSignal, Sample, capacity
from worker.publisher.queues import backlog_per_instance

# Metric names of the reference policies (the simulator's comparisons).
METRIC_CPU: Final = "CPUUtilization"
METRIC_VISIBLE: Final = "ApproximateNumberOfMessagesVisible"
METRIC_WAITING_PER_INSTANCE: Final = "WaitingPerInstance"

MetricFunction = Callable[[PoolSample, GroupView], float | None]

PUBLISHED: Final = frozenset(
    {
        METRIC_CAPACITY_NEEDED,
        METRIC_LOAD_WITH_ONE_FEWER,
        METRIC_NEEDED_AT_ZERO,
        METRIC_BACKLOG,
        METRIC_BACKLOG_PER_INSTANCE,
        METRIC_OLDEST_AGE,
    }
)
"""The publisher's per-pool metrics a policy may read (`published` gives them all)."""


def capacity_sample(s: PoolSample, g: GroupView) -> Sample:
    """The sample as the publisher hands it to the capacity rule: the in-service count it read."""
    return Sample(s.waiting, s.in_flight, s.busy, s.task_seconds, g.in_service)


def published(s: PoolSample, g: GroupView, signal: PoolSignal) -> dict[str, float | None]:
    """The pool's datapoints of one sample, by metric name; None is a metric with no datum."""
    result = capacity(capacity_sample(s, g), signal)
    return {
        METRIC_CAPACITY_NEEDED: result.needed,
        METRIC_LOAD_WITH_ONE_FEWER: result.load_with_one_fewer,
        METRIC_NEEDED_AT_ZERO: float(result.needed_at_zero),
        METRIC_BACKLOG: float(s.waiting + s.in_flight),
        METRIC_BACKLOG_PER_INSTANCE: backlog_per_instance(s.waiting + s.in_flight, g.in_service),
        METRIC_OLDEST_AGE: s.oldest_age,
    }


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


REFERENCE_METRICS: Final[Mapping[str, MetricFunction]] = {
    METRIC_CPU: _cpu,
    METRIC_VISIBLE: lambda s, g: float(s.waiting),
    METRIC_WAITING_PER_INSTANCE: _waiting_per_instance,
}
"""Metrics of the reference policies, which our publisher does not write."""
