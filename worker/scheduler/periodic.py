"""Periodic tasks as code: what an entry declares, how it is checked, and when its runs are due.

An entry is Celery's `beat_schedule` shape (task, schedule, args, kwargs, options with the queue)
plus what this project adds: what to do with runs that fell due while no scheduler was alive
(`catch_up`), and how much work a run starts on its pool (`expect_tasks` or `capacity`) and how
long before it the pool should be scaled (`lead_seconds`). The entries themselves live in
`worker.scheduler.schedule`; the scheduler (`worker.scheduler.beat`) and the Pulumi program both check them with
`check_entries`, so a bad entry stops `make render` and the scheduler's start with the same line.

Times are UTC. Runs fall on fixed slots, the same in every scheduler process: an interval entry
runs at multiples of its interval since the epoch, a crontab entry at the minutes its fields
match. A run's task id names its entry and slot (`run_id`), so two sends of one run would carry
one id and the execution journal would count it twice: that is how the tests prove there are none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final, Literal

from celery.schedules import crontab

CatchUp = Literal["once", "skip"]
CATCH_UP: Final[tuple[CatchUp, ...]] = ("once", "skip")
# Celery's beat cannot usefully tick faster; an interval under a second is a typo for minutes.
MIN_INTERVAL_S: Final = 1.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
# A crontab's next run is searched this many days ahead (a 29 February entry needs four years).
_CRON_HORIZON_DAYS: Final = 4 * 366 + 1


class ScheduleError(ValueError):
    """A periodic entry is invalid; the message is one line that names the entry."""


@dataclass(frozen=True)
class Periodic:
    """One periodic task. `schedule` is seconds (an interval) or a five-field crontab string."""

    name: str
    task: str
    schedule: float | str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    # The queue the run is sent to; None routes it like any task (the app's routes, else the default queue).
    queue: str | None = None
    # A run that fell due while no scheduler held the lease: "once" sends one run for all of them
    # when a scheduler comes back, "skip" sends none and waits for the next slot.
    catch_up: CatchUp = "once"
    # Work one run starts on its pool: tasks (the pool's size follows from its SLO and task time)
    # or instances outright; with lead_seconds, the pool is scaled that long before each run.
    expect_tasks: int | None = None
    capacity: int | None = None
    lead_seconds: int | None = None
    # Stacks that run this entry (CELERY_CLUSTER_STACK); empty runs it on every stack.
    stacks: tuple[str, ...] = ()

    def runs_on(self, stack: str | None) -> bool:
        return not self.stacks or stack in self.stacks

    def beat_entry(self) -> dict[str, Any]:
        """The entry in Celery's `beat_schedule` shape."""
        options = {"queue": self.queue} if self.queue else {}
        return {
            "task": self.task,
            "schedule": self.schedule if isinstance(self.schedule, str) else timedelta(seconds=self.schedule),
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
            "options": options,
        }


def parse_crontab(text: str) -> crontab:
    """`minute hour day-of-month month day-of-week`, as cron and Celery's crontab read them."""
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"crontab {text!r} must have 5 fields (minute hour day-of-month month day-of-week)")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
        )
    except Exception as exc:  # celery raises ValueError or its own ParseException
        raise ValueError(f"crontab {text!r} does not parse: {exc}") from None


@dataclass(frozen=True)
class Slots:
    """When an entry's runs fall due."""

    interval: float | None
    cron: crontab | None

    @classmethod
    def of(cls, entry: Periodic) -> Slots:
        return cls.of_schedule(entry.schedule)

    @classmethod
    def of_schedule(cls, schedule: str | float) -> Slots:
        if isinstance(schedule, str):
            return cls(None, parse_crontab(schedule))
        return cls(float(schedule), None)

    def next_after(self, t: float) -> float:
        """The first slot strictly after epoch second `t`."""
        if self.interval is not None:
            return (math.floor(t / self.interval) + 1) * self.interval
        assert self.cron is not None
        return _cron_next(self.cron, t)

    def latest_at_or_before(self, t: float) -> float:
        """The last slot at or before `t` (t itself when it is a slot)."""
        if self.interval is not None:
            return math.floor(t / self.interval) * self.interval
        assert self.cron is not None
        # Cron slots are whole minutes: step back a minute at a time from t (at most a day's worth
        # of minutes is ever needed here, the scheduler asks only about recent slots).
        minute = math.floor(t / 60) * 60
        for _ in range(_CRON_HORIZON_DAYS * 1440):
            if _cron_matches(self.cron, minute):
                return float(minute)
            minute -= 60
        raise ValueError("crontab never matches")

    def shortest_gap(self) -> float:
        """Seconds between the two closest runs: the interval, or the tightest crontab gap in a year."""
        if self.interval is not None:
            return self.interval
        start = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
        t, gap = self.next_after(start), math.inf
        for _ in range(2000):
            following = self.next_after(t)
            gap = min(gap, following - t)
            if following - start > 366 * 86400:
                break
            t = following
        return gap


@cache
def shortest_gap(schedule: str | float) -> float:
    """`Slots.shortest_gap` of a schedule, computed once per schedule: a crontab's walks a year of runs,
    and every render and config check asks again for the same entries."""
    return Slots.of_schedule(schedule).shortest_gap()


def _cron_matches(cron: crontab, t: float) -> bool:
    moment = datetime.fromtimestamp(t, UTC)
    # Celery numbers days of the week from Sunday = 0; Python's weekday() from Monday = 0.
    return (
        moment.minute in cron.minute
        and moment.hour in cron.hour
        and moment.day in cron.day_of_month
        and moment.month in cron.month_of_year
        and (moment.weekday() + 1) % 7 in cron.day_of_week
    )


def _cron_next(cron: crontab, t: float) -> float:
    start = datetime.fromtimestamp(math.floor(t / 60) * 60, UTC) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for offset in range(_CRON_HORIZON_DAYS):
        date = day + timedelta(days=offset)
        if not (
            date.day in cron.day_of_month
            and date.month in cron.month_of_year
            and (date.weekday() + 1) % 7 in cron.day_of_week
        ):
            continue
        for hour in sorted(cron.hour):
            for minute in sorted(cron.minute):
                moment = date.replace(hour=hour, minute=minute)
                if moment >= start:
                    return moment.timestamp()
    raise ValueError("crontab never matches")


def run_id(entry: str, slot: float) -> str:
    """The task id of an entry's run at `slot`: the same in every scheduler, so a double send shows."""
    return f"periodic:{entry}@{slot:.3f}"


def resolve_queue(entry: Periodic, routes: Mapping[str, str], default_queue: str) -> str:
    """The queue a run lands on: the entry's own, else the first matching route, else the default."""
    if entry.queue:
        return entry.queue
    for pattern, queue in routes.items():
        if re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), entry.task):
            return queue
    return default_queue


def check_entries(
    entries: Iterable[Periodic],
    *,
    tasks: Iterable[str] | None = None,
    consumed_queues: Iterable[str] | None = None,
    routes: Mapping[str, str] | None = None,
    default_queue: str = "default",
) -> list[Periodic]:
    """Every problem as a ScheduleError naming the entry (the first one found); the entries when all pass.

    `tasks`: the registered task names (None skips the check); `consumed_queues`: the queues some
    pool consumes (None skips it: the scheduler on a laptop does not know the stack's pools).
    """
    known = None if tasks is None else set(tasks)
    consumed = None if consumed_queues is None else set(consumed_queues)
    seen: set[str] = set()
    checked = list(entries)
    for entry in checked:
        where = f"periodic entry {entry.name!r}"
        if not _NAME.match(entry.name):
            raise ScheduleError(f"{where}: name must be lowercase letters, digits and '-' (at most 50)")
        if entry.name in seen:
            raise ScheduleError(f"{where}: declared twice (entry names must be unique)")
        seen.add(entry.name)
        if known is not None and entry.task not in known:
            raise ScheduleError(f"{where}: task {entry.task!r} is not registered by worker.app")
        if isinstance(entry.schedule, str):
            try:
                parse_crontab(entry.schedule)
            except ValueError as exc:
                raise ScheduleError(f"{where}: {exc}") from None
        elif isinstance(entry.schedule, bool) or not isinstance(entry.schedule, int | float):
            raise ScheduleError(f"{where}: schedule must be seconds or a crontab string, got {entry.schedule!r}")
        elif not entry.schedule >= MIN_INTERVAL_S:
            raise ScheduleError(f"{where}: interval {entry.schedule} s is under {MIN_INTERVAL_S:g} s")
        if entry.catch_up not in CATCH_UP:
            raise ScheduleError(f"{where}: catch_up must be one of {', '.join(CATCH_UP)}, got {entry.catch_up!r}")
        _check_capacity(entry, where)
        if consumed is not None:
            queue = resolve_queue(entry, routes or {}, default_queue)
            if queue not in consumed:
                raise ScheduleError(
                    f"{where}: its runs go to queue {queue!r}, which no pool consumes "
                    f"(pools consume: {', '.join(sorted(consumed)) or 'none'})"
                )
    return checked


def _check_capacity(entry: Periodic, where: str) -> None:
    if entry.expect_tasks is not None and entry.capacity is not None:
        raise ScheduleError(f"{where}: set expect_tasks or capacity, not both")
    for key in ("expect_tasks", "capacity"):
        value = getattr(entry, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ScheduleError(f"{where}: {key} must be a whole number >= 1, got {value!r}")
    sized = entry.expect_tasks is not None or entry.capacity is not None
    if entry.lead_seconds is None:
        if sized:
            raise ScheduleError(f"{where}: expect_tasks/capacity needs lead_seconds (how early to scale the pool)")
        return
    if not sized:
        raise ScheduleError(f"{where}: lead_seconds needs expect_tasks or capacity (what to scale the pool to)")
    if isinstance(entry.lead_seconds, bool) or not isinstance(entry.lead_seconds, int) or entry.lead_seconds < 0:
        raise ScheduleError(f"{where}: lead_seconds must be a whole number >= 0, got {entry.lead_seconds!r}")
    if isinstance(entry.schedule, str | int | float):
        try:
            gap = shortest_gap(entry.schedule)
        except ValueError:
            return  # the schedule's own error is reported above
        if entry.lead_seconds >= gap:
            raise ScheduleError(
                f"{where}: lead_seconds {entry.lead_seconds} is not shorter than the gap between runs ({gap:g} s)"
            )


def main() -> None:
    """`python -m worker.scheduler.periodic`: the task names worker.app registers, as JSON (the render's check)."""
    import json  # noqa: PLC0415 - only this entry point needs them
    import sys  # noqa: PLC0415

    from worker.app import app  # noqa: PLC0415 - reads the environment; never at import of this module

    app.loader.import_default_modules()
    json.dump(sorted(name for name in app.tasks if not name.startswith("celery.")), sys.stdout)


if __name__ == "__main__":
    main()
