"""The scheduler's alarms: no scheduler holds the lease, and a periodic entry running late.

Pure functions of the config and the entries: each returns `(suffix, args)` for the component.
The lease holder publishes `SchedulerHeartbeat` every third of a lease period and
`PeriodicEntryLateness` per entry with it (worker.scheduler), at one-second storage resolution,
so an alarm may use a 10, 20 or 30 s period or a multiple of 60 s
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarm-evaluation,
"high-resolution alarms").
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pulumi_aws as aws

from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.periodic import Periodic, Slots

AlarmArgs = aws.cloudwatch.MetricAlarmArgs
HIGH_RESOLUTION_PERIODS = (10, 20, 30)
ENTRY_DIMENSION = "Entry"
MINUTE = 60


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
            AlarmArgs(
                alarm_description=f"No periodic task scheduler has held the lease for {period} s (two lease periods "
                "or more): periodic tasks are not being sent; check the scheduler instance and its log",
                namespace=namespace,
                metric_name=METRIC_SCHEDULER_HEARTBEAT,
                statistic="SampleCount",
                period=period,
                comparison_operator="LessThanThreshold",
                threshold=1,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                # Missing data is exactly the failure this alarm exists for.
                treat_missing_data="breaching",
            ),
        )
    ]
    for entry in entries:
        gap = Slots.of(entry).shortest_gap()
        alarms.append(
            (
                f"periodic-{entry.name}-late",
                AlarmArgs(
                    alarm_description=f"Periodic entry {entry.name} ({entry.task}): its run is late by more than its "
                    f"interval ({gap:g} s); the scheduler is alive but cannot send (broker? lease store?)",
                    namespace=namespace,
                    metric_name=METRIC_ENTRY_LATENESS,
                    dimensions={ENTRY_DIMENSION: entry.name},
                    statistic="Maximum",
                    period=MINUTE,
                    comparison_operator="GreaterThanThreshold",
                    threshold=gap,
                    evaluation_periods=1,
                    datapoints_to_alarm=1,
                    # No data means no holder, which the no-holder alarm reports once for all entries.
                    treat_missing_data="notBreaching",
                ),
            )
        )
    return alarms
