"""CloudWatch metric alarms as the model runs them: M of N period datapoints, and when an alarm in
ALARM invokes its Auto Scaling action (on entering the state, then once a minute while it stays)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.scaling.assumptions import ACTION_REPEAT_SECONDS


@dataclass(frozen=True)
class AlarmState:
    """One alarm as a live view shows it (the local cluster's terminal view)."""

    name: str
    in_alarm: bool
    last_value: float | None
    """The statistic of the last closed period; None when that period had no sample."""
    acts: bool = True
    """False for an alarm whose state changes nothing (target tracking's low alarm when scale-in is off)."""


@dataclass
class MetricAlarm:
    """A CloudWatch metric alarm: M of the last N period datapoints breach -> ALARM.

    Datapoints are the period's statistic over the samples published in it; a period with no
    sample is missing and counts as not breaching (TreatMissingData notBreaching, as rendered).
    """

    period: float
    evaluation_periods: int
    datapoints_to_alarm: int
    breaches: Callable[[float], bool]
    statistic: str
    values: deque[float | None] = field(default_factory=deque)
    buckets: dict[float, list[float]] = field(default_factory=dict)
    """Samples by the end of the period they fall in; a period is (end - period, end]."""
    period_end: float | None = None
    in_alarm: bool = False
    last_action: float = -math.inf
    """When this alarm last invoked its action."""

    def add(self, value: float | None, at: float) -> None:
        if value is not None:
            end = math.ceil(at / self.period) * self.period
            self.buckets.setdefault(end, []).append(value)

    def close_period(self) -> float | None:
        assert self.period_end is not None
        samples = self.buckets.pop(self.period_end, [])
        for stale in [end for end in self.buckets if end < self.period_end]:
            del self.buckets[stale]  # a period that closed before this alarm existed
        if not samples:
            value: float | None = None
        elif self.statistic == "Maximum":
            value = max(samples)
        elif self.statistic == "Minimum":
            value = min(samples)
        elif self.statistic == "Sum":
            value = sum(samples)
        else:
            value = sum(samples) / len(samples)
        self.values.append(value)
        while len(self.values) > self.evaluation_periods:
            self.values.popleft()
        breaching = sum(1 for v in self.values if v is not None and self.breaches(v))
        was = self.in_alarm
        self.in_alarm = breaching >= self.datapoints_to_alarm
        if self.in_alarm and not was:
            self.last_action = -math.inf  # a new ALARM state invokes the action at once
        return value

    def action_due(self, now: float) -> bool:
        """CWA: the action runs when the alarm enters ALARM, then once each minute while it stays there,
        "regardless of the configured time period" (so a 10 s alarm does not act every 10 s)."""
        return self.in_alarm and now - self.last_action >= ACTION_REPEAT_SECONDS

    def acted(self, now: float) -> None:
        self.last_action = now

    def state(self, name: str) -> AlarmState:
        return AlarmState(name, self.in_alarm, self.values[-1] if self.values else None)
