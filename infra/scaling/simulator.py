"""The simulator: a trace through a pool of worker instances scaled by `GroupModel`, in virtual time.

Time advances in fixed steps of the publisher's sample interval (10 s). Within a step, tasks start
exactly, FIFO: each task starts at max(its arrival, the earliest time a worker process is free), on a
heap of (free time, instance) per process; among free processes the one idle longest takes it (Redis
serves the client blocked longest first). A launched instance adds `concurrency` processes, free when
it is InService. An instance chosen for scale-in takes no new task; it drains: it is billed and runs
its tasks until they finish or the drain window ends, when a task still running is interrupted
(counted, with the work lost) and requeued at the head of the queue.

The publisher's sample holds waiting, in-flight (running, on any instance), oldest age, busy processes
and the measured task time: the mean run time of the tasks that finished in the last
TASK_SECONDS_WINDOW, as the workers record it (none until a task has ended), never the configured one.

Not modelled: prefetch beyond one task per process, broker latency, task failures and retries,
instance launch failures, Spot interruptions. A warm pool is `infra.scaling.warm_pool`.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from infra.scaling.assumptions import default_assumptions
from infra.scaling.aws_model import GroupModel, ModelAssumptions, PoolSample, ScalingEvent
from infra.scaling.bounds import perfect_foresight_instance_hours
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.references import Contender, ours, reference_contenders
from infra.scaling.slo import meets_slo
from infra.scaling.traces import FloatArray, Trace
from infra.scaling.warm_pool import WarmCharges
from worker.percentiles import percentiles as wait_percentiles
from worker.runtime.task_stats import WINDOW_MINUTES

__all__ = [
    "SAMPLE_SECONDS",
    "Contender",
    "PoolSpec",
    "SimulationResult",
    "Timeline",
    "ours",
    "perfect_foresight_instance_hours",
    "reference_contenders",
    "simulate",
    "spec_for_trace",
    "summarise_run",
]

SAMPLE_SECONDS: Final = 10.0
# After the trace ends, keep going until every task has started, for at most this long.
DRAIN_LIMIT_SECONDS: Final = 4 * 3600.0
TASK_SECONDS_WINDOW: Final = WINDOW_MINUTES * 60.0
"""The publisher's measured task time is the mean over the tasks that ended in this window."""


@dataclass(frozen=True)
class Timeline:
    """One row per sample step, for the plot."""

    t: FloatArray
    arrivals_per_second: FloatArray
    backlog: FloatArray
    oldest_age: FloatArray
    in_service: FloatArray
    desired: FloatArray


@dataclass(frozen=True)
class SimulationResult:
    policy: str
    trace: str
    tasks: int
    p50_wait: float
    p95_wait: float
    p99_wait: float
    max_wait: float
    max_backlog: int
    minutes_over_slo: float
    scale_outs: int
    scale_ins: int
    instance_hours: float
    cost_usd: float
    peak_instances: int
    first_scale_out_after_burst: float | None
    """Seconds from the trace's burst start to the first scale-out decision; None without a burst or decision."""
    simulated_seconds: float
    wall_seconds: float
    events: tuple[ScalingEvent, ...]
    timeline: Timeline = field(repr=False)
    slo_seconds: float = 0.0
    """The SLO (acceptable latency): met when p95 wait is at or under it."""
    interrupted_tasks: int = 0
    """Tasks killed when a drain window ended (and requeued)."""
    work_lost_seconds: float = 0.0
    """Run time those tasks had done before they were killed."""

    @property
    def meets_slo(self) -> bool:
        return meets_slo(self.p95_wait, self.slo_seconds)

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf


def spec_for_trace(spec: PoolSpec, trace: Trace) -> PoolSpec:
    """The pool as a trace runs it: with the trace's minSize and its own scheduled capacity, if it says."""
    if trace.min_size is not None:
        spec = spec.with_min_size(trace.min_size)
    if trace.schedules is not None:
        spec = replace(spec, scaling=replace(spec.scaling, schedules=trace.schedules))
    return spec


class _Pool:
    """The worker processes of the group's instances, the queue, and what finished."""

    def __init__(self, trace: Trace, model: GroupModel, concurrency: int, drain_seconds: float) -> None:
        self.arrivals: list[float] = trace.arrivals.tolist()
        self.service: list[float] = trace.task_seconds.tolist()
        self.n = len(self.arrivals)
        self.waits = np.zeros(self.n, dtype=np.float64)
        self.started = np.zeros(self.n, dtype=bool)
        self.run_start = [-1.0] * self.n
        self.model = model
        self.concurrency = concurrency
        self.drain_seconds = drain_seconds
        self.by_id = {i.id: i for i in model.instances}
        # Instances present at the start are in service: their processes are free now.
        self.free: list[tuple[float, int]] = [(0.0, i.id) for i in model.live() for _ in range(concurrency)]
        heapq.heapify(self.free)
        self.draining: set[int] = set()
        self.running: dict[int, list[tuple[float, int, float]]] = {i.id: [] for i in model.live()}
        """Per instance, its tasks (end, task, start); finished ones are pruned when read."""
        self.head = 0
        self.requeued: deque[tuple[float, int]] = deque()
        """(ready time, task) of interrupted tasks: they go back to the head of the queue."""
        self.interruptions: list[tuple[float, int, float]] = []
        """Heap of (when, task, run start) of tasks a drain window will kill."""
        self.ends: list[tuple[float, int, float]] = []
        """Heap of (end, task, run start) of running tasks, for the measured task time."""
        self.recent: deque[tuple[float, float]] = deque()
        self.recent_sum = 0.0
        self.interrupted = 0
        self.work_lost = 0.0
        self.billed_from: dict[int, float] = {i.id: 0.0 for i in model.live()}
        self.billed_until: dict[int, float] = {}

    def start_tasks(self, t_end: float) -> None:
        """Start every task that can start before t_end, requeued ones first, then FIFO."""
        free, heappop, heapreplace = self.free, heapq.heappop, heapq.heapreplace
        arrivals, service, draining = self.arrivals, self.service, self.draining
        protect_after = self.model.assumptions.protection_after_seconds
        while free:
            slot, instance = free[0]
            if instance in draining:
                heappop(free)
                continue
            if self.requeued:
                ready, task = self.requeued[0]
            elif self.head < self.n:
                task = self.head
                ready = arrivals[task]
            else:
                return
            start = ready if ready > slot else slot
            if start >= t_end:
                return
            if self.requeued:
                self.requeued.popleft()
            else:
                self.head += 1
            end = start + service[task]
            heapreplace(free, (end, instance))
            self.running[instance].append((end, task, start))
            if end - start >= protect_after:
                # The drain agent protects the instance once this task has run the threshold.
                self.by_id[instance].protecting_tasks.append((start + protect_after, end))
            self.waits[task] = start - arrivals[task]
            self.started[task] = True
            self.run_start[task] = start
            heapq.heappush(self.ends, (end, task, start))

    def requeue_interrupted(self, t_end: float) -> None:
        while self.interruptions and self.interruptions[0][0] < t_end:
            at, task, start = heapq.heappop(self.interruptions)
            self.interrupted += 1
            self.work_lost += at - start
            self.run_start[task] = -1.0
            self.started[task] = False
            self.requeued.append((at, task))

    def task_seconds(self, now: float) -> float | None:
        """Mean run time of the tasks that ended in the last TASK_SECONDS_WINDOW (what the workers record)."""
        while self.ends and self.ends[0][0] <= now:
            end, task, start = heapq.heappop(self.ends)
            if self.run_start[task] == start:  # not interrupted
                self.recent.append((end, end - start))
                self.recent_sum += end - start
        while self.recent and self.recent[0][0] <= now - TASK_SECONDS_WINDOW:
            self.recent_sum -= self.recent.popleft()[1]
        return self.recent_sum / len(self.recent) if self.recent else None

    def busy(self, now: float) -> tuple[int, int]:
        """(tasks running now on any instance, those on instances past warm-up: CPU sees only those)."""
        total = ready = 0
        for instance, tasks in self.running.items():
            live = [entry for entry in tasks if entry[0] > now]
            self.running[instance] = live
            total += len(live)
            record = self.by_id[instance]
            if live and record.terminated_at is None and not record.warming(now) and record.in_service_at <= now:
                ready += len(live)
        return total, ready

    def launch(self, instance_id: int, at: float) -> None:
        instance = next(i for i in reversed(self.model.instances) if i.id == instance_id)
        self.by_id[instance_id] = instance
        self.billed_from[instance_id] = at
        self.running[instance_id] = []
        for _ in range(self.concurrency):
            heapq.heappush(self.free, (instance.in_service_at, instance_id))

    def drain(self, instance_id: int, at: float) -> None:
        """Terminating:Wait: no new tasks; billed until its tasks end or the drain window does."""
        self.draining.add(instance_id)
        deadline = at + self.drain_seconds
        drained_at = at
        for end, task, start in self.running.get(instance_id, []):
            if end <= at:
                continue
            if end > deadline:
                heapq.heappush(self.interruptions, (deadline, task, start))
                drained_at = deadline
            else:
                drained_at = max(drained_at, end)
        self.billed_until[instance_id] = drained_at


def simulate(
    spec: PoolSpec,
    trace: Trace,
    contender: Contender,
    assumptions: ModelAssumptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run one policy over one trace. `progress`, if given, is called with the fraction done."""
    started_wall = time.perf_counter()
    spec = spec_for_trace(spec, trace)
    if assumptions is None:
        assumptions = default_assumptions(spec.image_mode)
    model = contender.build(spec, assumptions)
    pool = _Pool(trace, model, spec.concurrency, spec.drain_seconds)
    arrivals, n = pool.arrivals, pool.n

    arrived = 0
    step = SAMPLE_SECONDS
    end_limit = trace.duration + DRAIN_LIMIT_SECONDS
    rows: list[tuple[float, float, float, float, float, float]] = []
    t = 0.0
    peak = model.desired
    next_progress = 0.0

    def work_left() -> bool:
        return pool.head < n or bool(pool.requeued) or bool(pool.interruptions)

    while t < trace.duration or (work_left() and t < end_limit):
        t_end = t + step
        pool.requeue_interrupted(t_end)
        pool.start_tasks(t_end)
        step_arrivals = arrived
        while arrived < n and arrivals[arrived] < t_end:
            arrived += 1
        step_arrivals = arrived - step_arrivals

        # What the publisher sees at t_end.
        waiting = arrived - pool.head + len(pool.requeued)
        in_flight, busy_ready = pool.busy(t_end)
        oldest = 0.0
        if pool.requeued:
            oldest = t_end - arrivals[pool.requeued[0][1]]
        elif arrived > pool.head:
            oldest = t_end - arrivals[pool.head]
        group = model.view(t_end)
        sample = PoolSample(
            t_end,
            waiting,
            in_flight,
            oldest,
            busy_ready,
            busy_processes=in_flight,
            task_seconds=pool.task_seconds(t_end),
        )
        model.observe(sample)
        for event in model.decide(t_end):
            for instance_id in event.launched:
                pool.launch(instance_id, t_end)
            for instance_id in event.terminated:
                pool.drain(instance_id, t_end)

        backlog = waiting + in_flight
        peak = max(peak, len(model.live()))
        rows.append((t_end, step_arrivals / step, backlog, oldest, group.in_service, model.desired))
        t = t_end
        if progress is not None and t >= next_progress:
            progress(min(t / trace.duration, 1.0))
            next_progress = t + 3600

    sim_end = t
    instance_hours = 0.0
    for instance in model.instances:
        start = pool.billed_from.get(instance.id, instance.launched_at)
        # A drained instance is billed until its drain ends, even past the end of the run.
        stop = pool.billed_until.get(instance.id, sim_end)
        instance_hours += max(0.0, stop - max(start, 0.0)) / 3600
    warm = model.warm_pool.charges(sim_end) if model.warm_pool is not None else WarmCharges()
    waits = pool.waits[pool.started]
    never = np.flatnonzero(~pool.started)
    if never.size:  # tasks that never started within the drain limit: their waits are at least this long
        waits = np.concatenate([waits, sim_end - np.asarray(arrivals)[never]])
    result = summarise_run(
        policy=contender.name,
        spec=spec,
        trace=trace,
        model=model,
        waits=waits,
        rows=rows,
        instance_hours=instance_hours + warm.instance_hours,
        peak=peak,
        simulated_seconds=sim_end,
        wall_seconds=time.perf_counter() - started_wall,
    )
    return replace(
        result,
        interrupted_tasks=pool.interrupted,
        work_lost_seconds=pool.work_lost,
        cost_usd=result.cost_usd + warm.storage_usd,  # stopped warm instances: their volumes only
    )


def summarise_run(
    *,
    policy: str,
    spec: PoolSpec,
    trace: Trace,
    model: GroupModel,
    waits: np.ndarray,
    rows: list[tuple[float, float, float, float, float, float]],
    instance_hours: float,
    peak: int,
    simulated_seconds: float,
    wall_seconds: float,
) -> SimulationResult:
    """One run's result from its task waits and its 10 s samples (time, arrivals/s, backlog, oldest
    age, in service, desired): shared by the simulator and the local twin so both report alike."""
    percentiles = wait_percentiles(waits.tolist(), (50, 95, 99)) or [0.0, 0.0, 0.0]
    columns = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    outs = [e for e in model.events if e.direction == "out"]
    first_after_burst = None
    if trace.burst_start is not None:
        after = [e.at for e in outs if e.at >= trace.burst_start]
        first_after_burst = after[0] - trace.burst_start if after else None
    return SimulationResult(
        policy=policy,
        trace=trace.name,
        tasks=trace.count,
        p50_wait=float(percentiles[0]),
        p95_wait=float(percentiles[1]),
        p99_wait=float(percentiles[2]),
        max_wait=float(waits.max()) if waits.size else 0.0,
        max_backlog=int(columns[:, 2].max()) if rows else 0,
        minutes_over_slo=int(np.count_nonzero(columns[:, 3] > spec.slo_seconds)) * SAMPLE_SECONDS / 60,
        scale_outs=len(outs),
        scale_ins=len(model.events) - len(outs),
        instance_hours=instance_hours,
        cost_usd=instance_hours * spec.hourly_usd,
        peak_instances=peak,
        first_scale_out_after_burst=first_after_burst,
        simulated_seconds=simulated_seconds,
        wall_seconds=wall_seconds,
        events=tuple(model.events),
        timeline=Timeline(*(columns[:, i].copy() for i in range(6))),
        slo_seconds=spec.slo_seconds,
    )
