"""A trace of one pool's traffic, rebuilt from what its metrics publisher wrote to CloudWatch
(`scripts/status --export-trace FILE --since 7d`), so a team tunes and simulates on its own traffic.

The publisher records no arrival count: it records, every 10 s, the pool's backlog (PoolBacklog:
waiting + reserved + running), its busy processes (PoolBusyProcesses) and the mean run time of the
tasks that ended in its window (PoolTaskSeconds). By flow conservation over each period of P seconds:

    arrivals = backlog at the end - backlog at the start + tasks finished,

and tasks finished = busy processes x P / task time (each busy process finishes one task per task
time). The backlog at a period's boundary is the sample taken there for 10 s periods (the publisher
samples once per period, at its start), else the mean of the averages of the two periods around it.
The arrivals of a period are spread evenly over it (seeded jitter within each arrival's slot), their
task times drawn exponential with the period's measured mean (the metrics hold a mean, not a
distribution; the built-in traces make the same choice), or the configured averageTaskSeconds
until a task has been measured. Fractions of a task carry over to the next period.

The tasks finished are an estimate: with varying task times the real count in a period differs from
busy x P / task time by about its square root (a period of 360 finished tasks by about 19), and the
error of one period is made up by the next (the backlog at each boundary is measured). A count of
the tasks that ended in each sample, published by the publisher, would make it exact.

What CloudWatch keeps decides the period: high-resolution datapoints (10 s) for 3 hours, one-minute
ones for 15 days, five-minute ones for 63 days
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html#metrics-retention).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np

from infra.components.metrics import DIMENSION_POOL
from infra.scaling.traces import Trace
from worker.names import METRIC_BACKLOG, METRIC_BUSY_PROCESSES, METRIC_TASK_SECONDS

SAMPLE_SECONDS: Final = 10
"""The publisher's sample period (one datum per metric and pool every 10 s)."""
HIGH_RESOLUTION_HOURS: Final = 3
MINUTE_DAYS: Final = 15
FIVE_MINUTE_DAYS: Final = 63
_SINCE = re.compile(r"^(\d+)([mhd])$")
_UNITS: Final = {"m": 60, "h": 3600, "d": 86400}


class ExportError(ValueError):
    """The trace cannot be exported as asked; the message says why."""


def parse_since(text: str) -> timedelta:
    """`30m`, `12h`, `7d`: how far back to read (at most FIVE_MINUTE_DAYS, what CloudWatch keeps)."""
    match = _SINCE.match(text.strip())
    if match is None:
        raise ExportError(f"--since {text!r}: give minutes, hours or days, e.g. 30m, 12h, 7d")
    since = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not timedelta(0) < since <= timedelta(days=FIVE_MINUTE_DAYS):
        raise ExportError(
            f"--since {text!r}: must be more than 0 and at most {FIVE_MINUTE_DAYS}d (CloudWatch keeps no more)"
        )
    return since


def period_for(since: timedelta) -> int:
    """The shortest period CloudWatch still holds for data that old."""
    if since <= timedelta(hours=HIGH_RESOLUTION_HOURS):
        return SAMPLE_SECONDS
    return 60 if since <= timedelta(days=MINUTE_DAYS) else 300


def _series(
    cloudwatch: Any, namespace: str, pool: str, start: datetime, end: datetime, period: int
) -> Mapping[str, dict[int, float]]:
    """Average of each metric per period, by the period's index from `start`."""
    metrics = {"backlog": METRIC_BACKLOG, "busy": METRIC_BUSY_PROCESSES, "task": METRIC_TASK_SECONDS}
    queries = [
        {
            "Id": key,
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": name,
                    "Dimensions": [{"Name": DIMENSION_POOL, "Value": pool}],
                },
                "Period": period,
                "Stat": "Average",
            },
            "ReturnData": True,
        }
        for key, name in metrics.items()
    ]
    series: dict[str, dict[int, float]] = {key: {} for key in metrics}
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    )
    for page in pages:
        for result in page["MetricDataResults"]:
            for at, value in zip(result["Timestamps"], result["Values"], strict=True):
                series[result["Id"]][int((at - start).total_seconds() // period)] = float(value)
    return series


def arrivals_per_period(
    backlog: Sequence[float | None], busy: Sequence[float | None], task: Sequence[float], period: float
) -> list[float]:
    """Arrivals in each period by flow conservation (see the module docstring); a period without a
    backlog datum around it, or the last one, counts none (it is not known). At the publisher's own
    period each datum is one sample, taken at the period's start: the boundary itself."""
    counts: list[float] = []
    instant = period <= SAMPLE_SECONDS
    for k in range(len(backlog)):
        following = backlog[k + 1] if k + 1 < len(backlog) else None
        if instant:
            before, after = backlog[k], following
        else:
            before, after = _mean(backlog[k - 1] if k else backlog[k], backlog[k]), _mean(backlog[k], following)
        if before is None or after is None:
            counts.append(0.0)
            continue
        finished = (busy[k] or 0.0) * period / task[k]
        counts.append(max(after - before + finished, 0.0))
    return counts


def _mean(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a + b) / 2


def export_trace(
    cloudwatch: Any,
    namespace: str,
    pool: str,
    configured_task_seconds: float,
    end: datetime,
    since: timedelta,
    seed: int = 7,
) -> Trace:
    """The pool's trace over [end - since, end), rebuilt from its CloudWatch metrics."""
    period = period_for(since)
    # Periods aligned to the clock, as CloudWatch aggregates them (and asks StartTime to be).
    start = datetime.fromtimestamp((end - since).timestamp() // period * period, tz=end.tzinfo)
    series = _series(cloudwatch, namespace, pool, start, end, period)
    if not series["backlog"]:
        raise ExportError(
            f"no {METRIC_BACKLOG} datapoints for pool {pool!r} in {namespace} since {start:%Y-%m-%d %H:%M} UTC "
            "(is the publisher running, and the namespace the stack's?)"
        )
    slots = range(math.ceil((end - start).total_seconds() / period))
    measured: list[float] = []
    last = configured_task_seconds
    for slot in slots:
        last = series["task"].get(slot, last)
        measured.append(last)
    counts = arrivals_per_period(
        [series["backlog"].get(k) for k in slots], [series["busy"].get(k) for k in slots], measured, period
    )
    rng = np.random.default_rng(seed)
    arrivals: list[float] = []
    seconds: list[float] = []
    carried = 0.0
    for k, count in enumerate(counts):
        carried += count
        whole = int(carried)
        carried -= whole
        if whole:
            width = period / whole
            arrivals.extend(k * period + width * (i + rng.random()) for i in range(whole))
            seconds.extend(np.maximum(rng.exponential(measured[k], whole), 0.01).tolist())
    if not arrivals:
        raise ExportError(f"pool {pool!r} had no traffic since {start:%Y-%m-%d %H:%M} UTC: nothing to export")
    return Trace(
        f"{pool}-export",
        np.asarray(arrivals, dtype=np.float64),
        np.asarray(seconds, dtype=np.float64),
        float(len(slots) * period),
        description=f"{len(arrivals)} tasks of pool {pool} from CloudWatch, {start:%Y-%m-%d %H:%M} UTC on, "
        f"{period} s periods",
        schedules=None,
    )
