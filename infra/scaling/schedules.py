"""Known load, met ahead of time: a pool's scheduled capacity (`pools.<name>.schedules`).

A schedule holds the pool at `capacity` instances or more for `duration_seconds` from each time its
cron expression (or rate) fires. Pure code, no Pulumi: the Pulumi program renders each schedule as two
`aws.autoscaling.Schedule` actions (MinSize = capacity at the start, MinSize = the pool's own at the
end), and the simulator and the local twin replay the same windows through the group model.

Why MinSize and not DesiredCapacity: a scheduled action that raises MinSize above the desired
capacity raises the desired capacity with it, and the scaling policies can still go above it; one
that sets DesiredCapacity alone is undone by the next scale-in
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-scheduled-scaling.html:
"If you specify a new minimum size ... Amazon EC2 Auto Scaling ... launches or terminates instances").

EC2 Auto Scaling recurrences are cron expressions only ("Recurrence: The recurring schedule for this
action. This format consists of five fields separated by white spaces: [Minute] [Hour]
[Day_of_Month] [Month_of_Year] [Day_of_Week]",
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScheduledUpdateGroupAction.html), in
UTC unless a time zone is set (we set none). A rate ("15 minutes", "2 hours") is therefore written
as the cron expression that fires at the same times, which exists only for rates that divide an hour
or a day; others are refused by name. The end action's cron is the start's shifted by the duration,
which must not move a start past midnight when the day fields restrict the day.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Final

MINUTE_SECONDS: Final = 60
DAY_MINUTES: Final = 24 * 60
WEEK_SECONDS: Final = 7 * 24 * 3600

_RATE = re.compile(r"^\s*(\d+)\s+(minute|minutes|hour|hours)\s*$")
_FIELDS: Final = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


class ScheduleError(ValueError):
    """A schedule cannot be read or rendered; the message names the expression and the problem."""


def _field_values(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"cron {name} field {text!r}: step must be a positive number")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise ScheduleError(f"cron {name} field {text!r}: only numbers, *, ranges, steps and lists")
            start, stop = int(first), int(last)
        elif base.isdigit():
            start = int(base)
            stop = high if step_text else start
        else:
            raise ScheduleError(f"cron {name} field {text!r}: only numbers, *, ranges, steps and lists")
        if not (low <= start <= stop <= high):
            raise ScheduleError(f"cron {name} field {text!r}: values must lie within {low}-{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression (minute hour day-of-month month day-of-week), UTC."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    """0 and 7 are Sunday."""

    @classmethod
    def parse(cls, text: str) -> Cron:
        fields = text.split()
        if len(fields) != 5:
            raise ScheduleError(f"cron {text!r} must have five fields: minute hour day-of-month month day-of-week")
        parsed = [_field_values(f, name, low, high) for f, (name, low, high) in zip(fields, _FIELDS, strict=True)]
        days_of_week = frozenset(0 if d == 7 else d for d in parsed[4])
        return cls(" ".join(fields), parsed[0], parsed[1], parsed[2], parsed[3], days_of_week)

    @property
    def every_day(self) -> bool:
        """True when the day fields do not restrict the day (`* * *`)."""
        return self.text.split()[2:] == ["*", "*", "*"]

    def times_of_day(self) -> list[int]:
        """Minutes after midnight at which it fires, on a day it fires."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)


def rate_to_cron(rate: str) -> str:
    """A rate ("15 minutes", "1 hour", "6 hours") as the cron expression that fires at the same times."""
    match = _RATE.match(rate)
    if match is None:
        raise ScheduleError(f"rate {rate!r} must be '<n> minutes' or '<n> hours'")
    minutes = int(match.group(1)) * (60 if match.group(2).startswith("hour") else 1)
    if minutes <= 0:
        raise ScheduleError(f"rate {rate!r} must be at least 1 minute")
    if minutes < 60 and 60 % minutes == 0:
        return f"*/{minutes} * * * *" if minutes > 1 else "* * * * *"
    if minutes % 60 == 0 and DAY_MINUTES % minutes == 0:
        hours = minutes // 60
        return f"0 */{hours} * * *" if hours > 1 else "0 * * * *"
    raise ScheduleError(
        f"rate {rate!r} has no cron equivalent (EC2 Auto Scaling recurrences are cron only): "
        "use a rate that divides an hour (1-30 minutes) or a day (1-12 hours), or a cron expression"
    )


def _compact(values: list[int], every: int) -> str:
    unique = sorted(set(values))
    return "*" if len(unique) == every else ",".join(str(v) for v in unique)


def end_cron(start: Cron, duration_seconds: float) -> str:
    """The cron expression that fires `duration_seconds` after each firing of `start` (the end action)."""
    shift = math.ceil(duration_seconds / MINUTE_SECONDS)
    ends = [t + shift for t in start.times_of_day()]
    if any(e >= DAY_MINUTES for e in ends) and not start.every_day:
        raise ScheduleError(
            f"cron {start.text!r} with a duration of {duration_seconds:g} s ends after midnight on a restricted "
            "day: split it into two schedules or shorten the duration"
        )
    if shift >= DAY_MINUTES:
        raise ScheduleError(f"duration {duration_seconds:g} s must be under a day")
    ends = [e % DAY_MINUTES for e in ends]
    minutes = sorted({e % 60 for e in ends})
    hours = sorted({e // 60 for e in ends})
    if sorted(ends) != sorted(h * 60 + m for h in hours for m in minutes):
        raise ScheduleError(
            f"cron {start.text!r} shifted by {duration_seconds:g} s is not one cron expression: "
            "use start times whose minutes are the same in every hour"
        )
    day_fields = " ".join(start.text.split()[2:])
    return f"{_compact(minutes, 60)} {_compact(hours, 24)} {day_fields}"


@dataclass(frozen=True)
class Schedule:
    """One schedule as the model and the renderer use it."""

    name: str
    cron: Cron
    capacity: int
    duration_seconds: float

    @property
    def end(self) -> str:
        return end_cron(self.cron, self.duration_seconds)

    def windows(self, start_weekday: int, horizon: float) -> list[tuple[float, float]]:
        """(start, end) seconds of each firing within [0, horizon), the run starting at 00:00 UTC on
        `start_weekday` (0 = Sunday, as cron counts) of a month whose day 1 is that day, in January."""
        windows: list[tuple[float, float]] = []
        for day in range(math.ceil(horizon / 86400) + 1):
            windows.extend(w for w in _day_windows(self, day, start_weekday) if w[0] < horizon)
        return windows

    def active(self, now: float, start_weekday: int) -> bool:
        """Whether a window of this schedule holds `now` (a window is shorter than a day)."""
        day = int(now // 86400)
        return any(
            start <= now < end for d in (day - 1, day) if d >= 0 for start, end in _day_windows(self, d, start_weekday)
        )

    def _fires_on(self, weekday: int, day_of_month: int) -> bool:
        fields = self.cron.text.split()
        if 1 not in self.cron.months:
            return False
        dom_any, dow_any = fields[2] == "*", fields[4] == "*"
        dom = day_of_month in self.cron.days_of_month
        dow = weekday in self.cron.days_of_week
        if dom_any or dow_any:  # cron: with one day field restricted, that one decides
            return dom and dow
        return dom or dow  # cron: with both restricted, either matches


@functools.cache
def _day_windows(schedule: Schedule, day: int, start_weekday: int) -> tuple[tuple[float, float], ...]:
    weekday = (start_weekday + day) % 7
    if not schedule._fires_on(weekday, day % 31 + 1):
        return ()
    return tuple(
        (day * 86400 + m * 60.0, day * 86400 + m * 60.0 + schedule.duration_seconds)
        for m in schedule.cron.times_of_day()
    )


START_WEEKDAY: Final = 1
"""ASSUMPTION of the simulator and the local twin: a trace starts at 00:00 UTC on a Monday (cron weekday 1)."""


def min_size_at(schedules: tuple[Schedule, ...], base_min: int, now: float, start_weekday: int = START_WEEKDAY) -> int:
    """The group's MinSize at `now`: the pool's own, raised by every schedule whose window holds `now`."""
    size = base_min
    for schedule in schedules:
        if schedule.active(now, start_weekday):
            size = max(size, schedule.capacity)
    return size
