"""Our scaling signals as CloudWatch metric math over the publisher's metrics: the formulas of
`infra.scaling.signals`, as the policies and alarms render them. Pure code: plain dataclasses that
`infra.components.pool_scaling` turns into Args, and that tests read.

Every input is a metric our publisher writes at high resolution (StorageResolution 1) every 10 s,
so periods of 10 and 30 s are valid: PutMetricAlarm, Period: "If you specify 10 or 30 for a metric
that does not have sub-minute resolution, the alarm still attempts to gather data at the period
rate that you specify. In this case, it does not receive data for the attempts that do not
correspond to a one-minute data resolution, and the alarm might often lapse into INSUFFICIENT_DATA"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html).
That is why the in-service count is the publisher's PoolInServiceInstances, not AWS/AutoScaling
GroupInServiceInstances (one-minute data).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.components.metrics import DIMENSION_POOL, DIMENSION_QUEUE, queue_ids
from infra.scaling.policy import PoolSignal
from infra.scaling.signals import (
    NEVER_SCALE_IN,
    SIGNAL_ACTIVITY,
    SIGNAL_CAPACITY_NEEDED,
    SIGNAL_LOAD_WITH_ONE_FEWER,
    SIGNAL_PROCESS_DEMAND,
    SIGNAL_QUEUE_WAIT,
)
from worker.names import (
    METRIC_BUSY_PROCESSES,
    METRIC_IN_FLIGHT,
    METRIC_IN_SERVICE,
    METRIC_TASK_SECONDS,
    METRIC_WAITING,
)

MATH_SIGNALS = (
    SIGNAL_CAPACITY_NEEDED,
    SIGNAL_QUEUE_WAIT,
    SIGNAL_PROCESS_DEMAND,
    SIGNAL_LOAD_WITH_ONE_FEWER,
    SIGNAL_ACTIVITY,
)
"""Signals that are metric math (the others are published metrics, read directly)."""


@dataclass(frozen=True)
class Stat:
    """One published metric read at a period with a statistic."""

    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    period: int


@dataclass(frozen=True)
class Query:
    """One metric-math query: a metric read (`stat`) or an expression over other ids."""

    id: str
    stat: Stat | None = None
    expression: str | None = None
    label: str | None = None
    return_data: bool = False


def _number(value: float) -> str:
    return f"{value:.6g}"


def signal_queries(
    signal_name: str, namespace: str, pool: str, queues: tuple[str, ...], signal: PoolSignal, stat: str, period: int
) -> list[Query]:
    """The queries that compute `signal_name` for a pool; the last one returns the data.

    Queue counts use `stat` (Maximum for the idle check, so one task seen in a period counts); the
    task time and the counts of busy processes and in-service instances use Average.
    """
    if signal_name not in MATH_SIGNALS:
        raise ValueError(f"{signal_name} is not one of our metric-math signals: {', '.join(MATH_SIGNALS)}")

    def read(metric_id: str, metric: str, statistic: str, queue: str | None = None) -> Query:
        dims = ((DIMENSION_POOL, pool),) + (((DIMENSION_QUEUE, queue),) if queue is not None else ())
        return Query(metric_id, stat=Stat(namespace, metric, dims, statistic, period))

    waiting = queue_ids("w", queues)
    in_flight = queue_ids("f", queues)
    queries = [read(i, METRIC_WAITING, stat, q) for i, q in waiting]
    queries += [read(i, METRIC_IN_FLIGHT, stat, q) for i, q in in_flight]
    waiting_sum = " + ".join(i for i, _ in waiting)
    in_flight_sum = "(" + " + ".join(i for i, _ in in_flight) + ")"
    backlog = " + ".join([*(i for i, _ in waiting), *(i for i, _ in in_flight)])
    queries.append(Query("waiting", expression=waiting_sum))
    queries.append(Query("backlog", expression=backlog))
    if signal_name == SIGNAL_ACTIVITY:
        return [*queries[:-1], Query("activity", expression=backlog, label=signal_name, return_data=True)]

    c = signal.concurrency
    queries += [
        read("busyraw", METRIC_BUSY_PROCESSES, "Average"),
        read("insraw", METRIC_IN_SERVICE, "Average"),
        # Without a busy count (none published yet), the in-flight tasks are taken as running.
        Query("busyfill", expression="FILL(busyraw, -1)"),
        Query("busy", expression=f"IF(busyfill < 0, {in_flight_sum}, busyfill)"),
        # The in-service count is published every sample; a missed one repeats the last.
        Query("ins", expression="FILL(insraw, REPEAT)"),
    ]
    demand = f"(busy + waiting) / ({c} * IF(ins > 0, ins, 1))"
    if signal_name == SIGNAL_PROCESS_DEMAND:
        return [*queries, Query("demand", expression=demand, label=signal_name, return_data=True)]

    tw = _number(signal.target_wait_seconds)
    headroom = _number(signal.headroom_seconds)
    queries += [
        read("tsraw", METRIC_TASK_SECONDS, "Average"),
        # The measured task time; averageTaskSeconds only until a task has ended.
        Query("ts", expression=f"FILL(tsraw, {_number(signal.average_task_seconds)})"),
        Query("ahead", expression="IF(backlog - busy > 0, backlog - busy, 0)"),
        # Long tasks keep processes free for the arrivals of `headroom` seconds.
        Query("longfactor", expression=f"IF(ts > {tw}, 1 + {headroom} / ts, 1)"),
    ]
    if signal_name == SIGNAL_LOAD_WITH_ONE_FEWER:
        expression = f"IF(ins > 1, (busy + waiting) / ({c} * (ins - 1)) * longfactor, {_number(NEVER_SCALE_IN)})"
        return [*queries, Query("loadonefewer", expression=expression, label=signal_name, return_data=True)]
    wait = f"IF(ins > 0, ahead * ts / ({c} * ins), IF(backlog > 0, backlog * ts / {c} + "
    wait += f"{_number(signal.acceptable_latency_seconds)}, 0))"
    if signal_name == SIGNAL_QUEUE_WAIT:
        return [*queries, Query("wait", expression=wait, label=signal_name, return_data=True)]
    zero = f"IF(backlog > 0, IF(ts > {tw}, backlog / {c}, backlog * ts / ({c} * {tw})) + 1, 0)"
    queries += [
        Query("waitshare", expression=f"IF(ins > 0, ahead * ts / ({c} * ins), 0) / {tw}"),
        Query("demand", expression=demand),
        Query("longneed", expression="demand * longfactor"),
        Query("zero", expression=zero),
    ]
    needed = f"IF(ins > 0, IF(ts > {tw}, longneed, waitshare), zero)"
    return [*queries, Query("needed", expression=needed, label=signal_name, return_data=True)]
