"""Traffic for the simulator: arrival times and task seconds, built in or read from a CSV.

Built-in traces are sized from the pool so they mean the same thing for any pool: rates are a
fraction of the pool's full capacity (max_size x concurrency / average task seconds), and task
seconds have the pool's stated average. They are seeded, so a run is reproducible.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from infra.scaling.schedules import Cron, Schedule

FloatArray = npt.NDArray[np.float64]


class TraceError(ValueError):
    """A trace cannot be built or read; the message names the trace, file or line."""


@dataclass(frozen=True)
class Trace:
    name: str
    arrivals: FloatArray
    """Arrival times in seconds from the start, sorted."""
    task_seconds: FloatArray
    """Run time of each task, same order as `arrivals`."""
    duration: float
    """Seconds the trace covers (arrivals stop before it)."""
    burst_start: float | None = None
    """When the trace's burst begins, for the burst-to-scale-out benchmark; None when it has none."""
    description: str = ""
    min_size: int | None = None
    """The pool's minSize for this trace (the flash crowd hits an idle minSize 0 pool); None = the pool's own."""
    schedules: tuple[Schedule, ...] | None = ()
    """Scheduled capacity for the known load in this trace. Built-in traces replace the pool's schedules
    (theirs are for the stack's own periodic load, which the trace does not hold): () for none, or
    the trace's own; None keeps the pool's (a CSV of real traffic)."""

    @property
    def count(self) -> int:
        return int(self.arrivals.size)

    @property
    def work_seconds(self) -> float:
        return float(self.task_seconds.sum())


@dataclass(frozen=True)
class TraceShape:
    """What a built-in trace is scaled to."""

    capacity_per_second: float
    """Tasks per second the pool finishes at max_size."""
    average_task_seconds: float
    seed: int = 7
    max_size: int = 1
    """The pool's maxSize (the capacity a trace's own schedule asks for)."""


def _poisson_arrivals(
    rate: Callable[[FloatArray], FloatArray], duration: float, rng: np.random.Generator
) -> FloatArray:
    seconds = np.arange(0.0, math.ceil(duration))
    counts = rng.poisson(np.maximum(rate(seconds), 0.0))
    starts = np.repeat(seconds, counts)
    arrivals = starts + rng.random(starts.size)
    arrivals.sort()
    return arrivals[arrivals < duration]


TaskSeconds = Callable[[int, np.random.Generator], FloatArray]
"""Run times of n tasks, drawn after the arrivals from the same generator (so a trace is reproducible)."""


def _exponential(mean: float) -> TaskSeconds:
    return lambda n, rng: np.maximum(rng.exponential(mean, n), 0.01)


def _poisson_trace(
    shape: TraceShape,
    name: str,
    duration: float,
    rate: Callable[[FloatArray], FloatArray],
    description: str,
    *,
    tasks: TaskSeconds | None = None,
    burst_start: float | None = None,
    min_size: int | None = None,
    schedules: tuple[Schedule, ...] = (),
) -> Trace:
    """The one skeleton of every built-in trace: Poisson arrivals at `rate`, then each task's run time
    (exponential with the pool's mean unless the trace says otherwise)."""
    rng = np.random.default_rng(shape.seed)
    arrivals = _poisson_arrivals(rate, duration, rng)
    seconds = (tasks or _exponential(shape.average_task_seconds))(arrivals.size, rng)
    return Trace(
        name, arrivals, seconds, duration,
        burst_start=burst_start, description=description, min_size=min_size, schedules=schedules,
    )  # fmt: skip


def _ramped(level: float, ramp_seconds: float = 600.0) -> Callable[[FloatArray], FloatArray]:
    """`level` after a linear ramp from a quarter of it: traffic that grows into the day, rather than a
    step from nothing (which is what `burst` tests)."""

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = level * np.minimum(0.25 + 0.75 * t / ramp_seconds, 1.0)
        return result

    return rate


def _window(start: float, end: float, inside: float, outside: float) -> Callable[[FloatArray], FloatArray]:
    """`inside` from `start` to `end`, `outside` before and after: a burst."""

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = np.where((t >= start) & (t < end), inside, outside)
        return result

    return rate


def steady(shape: TraceShape) -> Trace:
    return _poisson_trace(
        shape, "steady", 2 * 3600.0, _ramped(0.4 * shape.capacity_per_second),
        "2 h of Poisson arrivals at 40% of the pool's full capacity (after a 10 min ramp)",
    )  # fmt: skip


def diurnal(shape: TraceShape) -> Trace:
    duration = 24 * 3600.0
    peak = 0.7 * shape.capacity_per_second

    def rate(t: FloatArray) -> FloatArray:
        # Trough at midnight (5% of peak), peak at noon; an extra lunchtime shoulder.
        day = 0.525 - 0.475 * np.cos(2 * np.pi * t / duration)
        shoulder = 0.15 * np.exp(-(((t - 13.5 * 3600) / 1800) ** 2))
        result: FloatArray = peak * np.minimum(day + shoulder, 1.0)
        return result

    return _poisson_trace(
        shape, "diurnal", duration, rate, "24 h day: 5% of peak at night, peak (70% of full capacity) at noon"
    )


def burst(shape: TraceShape) -> Trace:
    start, end = 20 * 60.0, 35 * 60.0
    rate = _window(start, end, 0.75 * shape.capacity_per_second, 0.1 * shape.capacity_per_second)
    return _poisson_trace(
        shape, "burst", 90 * 60.0, rate,
        "10% of full capacity, then 15 min at 75% from minute 20, then 10% again", burst_start=start,
    )  # fmt: skip


def spike_to_zero(shape: TraceShape) -> Trace:
    start, ramp, stop = 5 * 60.0, 2 * 60.0, 17 * 60.0
    high = 0.6 * shape.capacity_per_second

    def rate(t: FloatArray) -> FloatArray:
        # Idle, a 2-minute climb to 60% of full capacity, 10 minutes there, then nothing at all:
        # the pool must grow fast, then give every instance above its minimum back.
        climb = np.clip((t - start) / ramp, 0.0, 1.0)
        result: FloatArray = np.where(t < stop, high * climb, 0.0)
        return result

    return _poisson_trace(
        shape, "spike-to-zero", 60 * 60.0, rate,
        "idle 5 min, a 2 min climb to 60% of full capacity, 10 min there, then zero for 43 min", burst_start=start,
    )  # fmt: skip


def heavy_tailed(shape: TraceShape) -> Trace:
    # Pareto task times with alpha 1.5 and the pool's mean: most tasks are short, a few are 50x the mean.
    alpha = 1.5
    scale = shape.average_task_seconds * (alpha - 1) / alpha

    def pareto(n: int, rng: np.random.Generator) -> FloatArray:
        return np.minimum(scale * (1 + rng.pareto(alpha, n)), 100 * shape.average_task_seconds)

    return _poisson_trace(
        shape, "heavy-tailed", 2 * 3600.0, _ramped(0.4 * shape.capacity_per_second),
        "2 h at 40% of full capacity; Pareto(1.5) task times with the pool's mean, capped at 100x", tasks=pareto,
    )  # fmt: skip


def misestimated(shape: TraceShape) -> Trace:
    """The burst, with every task 3x longer than the pool's config says (rates sized to the real time)."""
    start, end = 20 * 60.0, 35 * 60.0
    real = shape.capacity_per_second / 3
    return _poisson_trace(
        shape, "misestimated-3x", 90 * 60.0, _window(start, end, 0.6 * real, 0.1 * real),
        "tasks 3x the configured time; 10% of the real capacity, 15 min at 60% from minute 20",
        tasks=_exponential(3 * shape.average_task_seconds), burst_start=start,
    )  # fmt: skip


def bimodal(shape: TraceShape) -> Trace:
    """Many short tasks and a few 20x long ones, with the pool's mean overall."""
    long_share, factor = 0.05, 20.0
    short = shape.average_task_seconds / (1 - long_share + long_share * factor)

    def two_modes(n: int, rng: np.random.Generator) -> FloatArray:
        is_long = rng.random(n) < long_share
        result: FloatArray = np.where(is_long, factor * short, short) * rng.uniform(0.8, 1.2, n)
        return result

    return _poisson_trace(
        shape, "bimodal", 2 * 3600.0, _ramped(0.4 * shape.capacity_per_second),
        "2 h at 40% of full capacity; 95% short tasks, 5% 20x as long (the pool's mean overall)", tasks=two_modes,
    )  # fmt: skip


FAN_OUT_EVERY: Final = 15 * 60.0
FAN_OUT_OFFSET: Final = 5 * 60.0
FAN_OUT_LEAD: Final = 120.0


def periodic_fan_out(shape: TraceShape) -> Trace:
    """Thousands of tasks every 15 minutes (a scheduler's fan-out, at :05, :20, :35, :50) over a light
    background, with the scheduled capacity that known load gets (`pools.<name>.schedules`): the pool at
    maxSize from 2 minutes before each fan-out for 4 minutes."""
    spread = 60.0
    background = 0.05 * shape.capacity_per_second
    # Each fan-out is 1.5 minutes of the pool's full capacity, arriving within one minute.
    fan_out = 0.6 * shape.capacity_per_second * 150.0 / spread

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = background + np.where(((t - FAN_OUT_OFFSET) % FAN_OUT_EVERY) < spread, fan_out, 0.0)
        return result

    starts = sorted({int((FAN_OUT_OFFSET - FAN_OUT_LEAD) // 60 + k * FAN_OUT_EVERY // 60) % 60 for k in range(4)})
    schedule = Schedule("fan-out", Cron.parse(f"{','.join(map(str, starts))} * * * *"), shape.max_size, 4 * 60.0)
    return _poisson_trace(
        shape, "periodic-fan-out", 2 * 3600.0, rate,
        "every 15 min, 90 s of full capacity's work arriving within 1 min; 5% background; "
        "scheduled capacity: maxSize from 2 min before each fan-out, for 4 min",
        burst_start=FAN_OUT_OFFSET, schedules=(schedule,),
    )  # fmt: skip


def ramp_cliff(shape: TraceShape) -> Trace:
    """A long ramp to 80% of full capacity, then nothing at all."""
    ramp_end = 90 * 60.0

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = np.where(t < ramp_end, shape.capacity_per_second * (0.05 + 0.75 * t / ramp_end), 0.0)
        return result

    return _poisson_trace(
        shape, "ramp-cliff", 2 * 3600.0, rate, "90 min ramp from 5% to 80% of full capacity, then zero for 30 min"
    )


LONG_TASK_SECONDS: Final = 600.0


def long_tasks(shape: TraceShape) -> Trace:
    """10-minute tasks whatever the pool's config says, with arrivals that swing between 15% and 75% of
    the processes every 40 minutes."""
    processes = shape.capacity_per_second * shape.average_task_seconds
    mean_rate = processes / LONG_TASK_SECONDS

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = mean_rate * (0.45 + 0.3 * np.sin(2 * np.pi * t / 2400.0))
        return result

    def ten_minutes(n: int, rng: np.random.Generator) -> FloatArray:
        return LONG_TASK_SECONDS * rng.uniform(0.9, 1.1, n)

    return _poisson_trace(
        shape, "long-tasks", 4 * 3600.0, rate,
        "10 min tasks (+-10%); arrivals swing between 15% and 75% of the pool's processes every 40 min",
        tasks=ten_minutes,
    )  # fmt: skip


def flash_crowd(shape: TraceShape) -> Trace:
    """An idle minSize 0 pool: nothing for 20 minutes, a flash crowd, then a trickle that must not send it
    back to zero, then nothing."""
    start, crowd_end, trickle_end = 20 * 60.0, 25 * 60.0, 60 * 60.0
    crowd = 0.7 * shape.capacity_per_second
    trickle = 1 / 30.0

    def rate(t: FloatArray) -> FloatArray:
        result: FloatArray = np.select(
            [t < start, t < crowd_end, t < trickle_end],
            [np.zeros_like(t), np.full_like(t, crowd), np.full_like(t, trickle)],
            0.0,
        )
        return result

    return _poisson_trace(
        shape, "flash-crowd", 90 * 60.0, rate,
        "minSize 0 pool idle 20 min; 5 min at 70% of full capacity; a task every 30 s for 35 min",
        burst_start=start, min_size=0,
    )  # fmt: skip


BUILT_IN: Final[dict[str, Callable[[TraceShape], Trace]]] = {
    "steady": steady,
    "diurnal": diurnal,
    "burst": burst,
    "spike-to-zero": spike_to_zero,
    "heavy-tailed": heavy_tailed,
    "misestimated-3x": misestimated,
    "bimodal": bimodal,
    "periodic-fan-out": periodic_fan_out,
    "ramp-cliff": ramp_cliff,
    "long-tasks": long_tasks,
    "flash-crowd": flash_crowd,
}


def built_in(name: str, shape: TraceShape) -> Trace:
    try:
        factory = BUILT_IN[name]
    except KeyError:
        raise TraceError(f"unknown trace {name!r}; built-in traces: {', '.join(BUILT_IN)} (or a CSV path)") from None
    return factory(shape)


def load_trace(name: str, shape: TraceShape) -> Trace:
    """A trace named on a command line: a CSV file (a path that exists, or ends in .csv), else a built-in one."""
    path = Path(name)
    return read_csv(path) if path.suffix == ".csv" or path.is_file() else built_in(name, shape)


CSV_COLUMNS: Final = ("arrival_seconds", "task_seconds")


def read_csv(path: Path) -> Trace:
    """A CSV with a header `arrival_seconds,task_seconds`: one task a row, seconds from the start."""
    if not path.is_file():
        raise TraceError(f"trace file {path} does not exist")
    arrivals: list[float] = []
    tasks: list[float] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(f"{path}: header must name {', '.join(CSV_COLUMNS)} (missing {', '.join(missing)})")
        for line, row in enumerate(reader, start=2):
            try:
                arrival, seconds = float(row["arrival_seconds"]), float(row["task_seconds"])
            except (TypeError, ValueError):
                raise TraceError(f"{path}:{line}: arrival_seconds and task_seconds must be numbers") from None
            if not (math.isfinite(arrival) and arrival >= 0):
                raise TraceError(f"{path}:{line}: arrival_seconds must be >= 0, got {row['arrival_seconds']!r}")
            if not (math.isfinite(seconds) and seconds > 0):
                raise TraceError(f"{path}:{line}: task_seconds must be > 0, got {row['task_seconds']!r}")
            arrivals.append(arrival)
            tasks.append(seconds)
    if not arrivals:
        raise TraceError(f"{path}: no tasks")
    order = np.argsort(np.asarray(arrivals), kind="stable")
    arrival_array = np.asarray(arrivals, dtype=np.float64)[order]
    task_array = np.asarray(tasks, dtype=np.float64)[order]
    duration = float(math.ceil(arrival_array[-1] + 1))
    return Trace(
        path.stem,
        arrival_array,
        task_array,
        duration,
        description=f"{arrival_array.size} tasks from {path}",
        schedules=None,  # real traffic: the pool's own schedules apply
    )


def write_csv(trace: Trace, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for arrival, seconds in zip(trace.arrivals.tolist(), trace.task_seconds.tolist(), strict=True):
            writer.writerow((f"{arrival:.6f}", f"{seconds:.6g}"))
