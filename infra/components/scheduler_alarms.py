"""The scheduler's alarms: no scheduler holds the lease, and a periodic entry running late.

Pure functions of the config and the entries: each returns `(suffix, args)` for the component.
The lease holder publishes `SchedulerHeartbeat` every third of a lease period and
`PeriodicEntryLateness` per entry with it (worker.scheduler.beat), at one-second storage resolution,
so an alarm may use a 10, 20 or 30 s period or a multiple of 60 s
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation,
"high-resolution alarms").
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from infra.components.alarm_args import MINUTE, AlarmArgs, Metric, alarm
from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.scheduler.periodic import Periodic, shortest_gap

HIGH_RESOLUTION_PERIODS = (10, 20, 30)
ENTRY_DIMENSION = "Entry"


def alarm_period(seconds: float) -> int:
    """The shortest period CloudWatch accepts that is at least `seconds`."""
    for period in HIGH_RESOLUTION_PERIODS:
        if seconds <= period:
            return period
    return math.ceil(seconds / MINUTE) * MINUTE


def scheduler_alarms(namespace: str, lease_seconds: int, entries: Iterable[Periodic]) -> list[tuple[str, AlarmArgs]]:
    period = alarm_period(2 * lease_seconds)
    alarms = [
        (
            "no-holder",
            alarm(
                f"No periodic task scheduler has held the lease for {period} s (two lease periods "
                "or more): periodic tasks are not being sent; check the scheduler instance and its log",
                Metric(namespace, METRIC_SCHEDULER_HEARTBEAT, "SampleCount", period=period),
                "LessThanThreshold",
                1,
                periods=1,
                # Missing data is exactly the failure this alarm exists for.
                missing="breaching",
            ),
        )
    ]
    for entry in entries:
        gap = shortest_gap(entry.schedule)
        alarms.append(
            (
                f"periodic-{entry.name}-late",
                alarm(
                    f"Periodic entry {entry.name} ({entry.task}): its run is late by more than its "
                    f"interval ({gap:g} s); the scheduler is alive but cannot send (broker? lease store?)",
                    Metric(namespace, METRIC_ENTRY_LATENESS, "Maximum", {ENTRY_DIMENSION: entry.name}),
                    "GreaterThanThreshold",
                    gap,
                    periods=1,
                    # No data means no holder, which the no-holder alarm reports once for all entries.
                    missing="notBreaching",
                ),
            )
        )
    return alarms
