"""The local twin of a stack's pool: a Redis broker, the metrics loop, the scaling model deciding in
(scaled) real time, worker processes launched and drained as instances, and a trace replayed as
`cluster.sleep` tasks.

The controller is the simulator's: `infra.scaling.simulator.ours().build(spec, assumptions)`, a
`GroupModel` fed a `PoolSample` every 10 model seconds from real queue inspection
(`worker.queues.RedisInspector`) and the workers' records of busy processes and task time
(`infra.local.samples`, as the publisher reads them). Its decisions launch and terminate worker processes (`fleet`).
At the end the same trace runs through the simulator too, and both go into the simulator's table
and plot, next to the journal's count of every task (lost, duplicates).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import redis
from celery.exceptions import TimeoutError as ResultTimeoutError
from celery.result import AsyncResult
from rich.console import Console

from infra.config import ROOT, load_stack_config
from infra.local.accounting import Tally, tally
from infra.local.fleet import Fleet
from infra.local.redis_server import RedisServer
from infra.local.samples import pool_sample
from infra.local.scheduler import SchedulerProcess
from infra.local.timescale import DEFAULT_WINDOWS, ModelClock, window
from infra.scaling.aws_model import BOOT_SECONDS, GroupModel, ModelAssumptions, PoolSample, ScalingEvent
from infra.scaling.simulator import (
    SAMPLE_SECONDS,
    PoolSpec,
    SimulationResult,
    ours,
    simulate,
    spec_for_trace,
    summarise_run,
)
from infra.scaling.stack import pool_spec
from infra.scaling.traces import Trace, built_in, read_csv
from worker import journal
from worker.client import client_app
from worker.queues import RedisInspector
from worker.service_metrics import RedisServiceReader

# Local capacity on a small machine (2 cores): task processes per instance and in all. `cluster.sleep`
# tasks hold a process but hardly any CPU, so the limit is the worker processes' memory and start-up.
LOCAL_CONCURRENCY = 2
LOCAL_MAX_PROCESSES = 16
# What `make local --scheduler` runs: a periodic canary every 10 wall seconds, so a short run shows it.
LOCAL_SCHEDULE = "worker.schedule:LOCAL_ENTRIES"
PERIODIC_PREFIX = "periodic:"


@dataclass(frozen=True)
class TwinPlan:
    stack: str = "dev"
    pool: str = "default"
    trace: str = "burst"
    speed: float = 10.0
    window: tuple[float, float] | None = None
    """Minutes of the trace to replay; None = the trace's DEFAULT_WINDOWS entry (whole CSV traces)."""
    seed: int = 7
    boot_seconds: float | None = None
    """Launch to consuming, model seconds; None = the stack's image mode (BOOT_SECONDS)."""
    concurrency: int = LOCAL_CONCURRENCY
    max_processes: int = LOCAL_MAX_PROCESSES
    drain_timeout: float = 120.0
    """Wall seconds to wait, after the last arrival, for every task to complete."""
    log_dir: Path = Path("build/local")
    scheduler: bool = False
    """Also run two periodic task schedulers beside the pool (LOCAL_SCHEDULE, one lease between them)."""


@dataclass(frozen=True)
class LocalPool:
    """The stack's pool as it runs here, and how it was mapped."""

    spec: PoolSpec
    mapping: str
    queue: str
    """Where the trace's tasks go: the pool's first queue (a trace has no queue column)."""
    soft_shutdown_seconds: float
    """The stack's CELERY_SOFT_SHUTDOWN_TIMEOUT (model seconds): a draining worker's window."""


def local_pool(plan: TwinPlan, root: Path = ROOT) -> LocalPool:
    """The pool with its concurrency and max size cut to fit this machine. The policy is rebuilt from the
    same SLO for the smaller instance (target backlog per instance follows the concurrency), and the
    built-in traces are sized to the local pool's capacity, so the run means what it means on AWS."""
    config = load_stack_config(plan.stack, root)
    original = pool_spec(config, plan.pool)  # PoolNotFoundError names the stack's pools
    pool = config.pools[plan.pool]
    concurrency = min(pool.concurrency, plan.concurrency)
    max_size = max(1, min(pool.max_size, plan.max_processes // concurrency))
    min_size = min(pool.min_size, max_size)
    fitted = pool.model_copy(
        update={"concurrency": concurrency, "max_size": max_size, "min_size": min_size, "desired_size": None}
    )
    spec = pool_spec(config.model_copy(update={"pools": {**config.pools, plan.pool: fitted}}), plan.pool)
    same = (concurrency, min_size, max_size) == (pool.concurrency, pool.min_size, pool.max_size)
    mapping = f"{plan.stack}/{plan.pool}: {pool.concurrency} processes x {pool.min_size}..{pool.max_size} instances" + (
        " (as configured)"
        if same
        else f", run here as {concurrency} x {min_size}..{max_size} (processes per instance in the scaling math "
        f"{original.scaling.signal.concurrency} -> {spec.scaling.signal.concurrency})"
    )
    return LocalPool(spec, mapping, pool.queues[0], config.soft_shutdown_seconds)


def local_trace(plan: TwinPlan, spec: PoolSpec) -> Trace:
    path = Path(plan.trace)
    if path.suffix == ".csv" or path.is_file():
        trace = read_csv(path)
        return trace if plan.window is None else window(trace, *plan.window)
    trace = built_in(plan.trace, spec.trace_shape(plan.seed))
    chosen = plan.window or DEFAULT_WINDOWS.get(plan.trace)
    return trace if chosen is None else window(trace, *chosen)


def assumptions_for(plan: TwinPlan, spec: PoolSpec) -> ModelAssumptions:
    boot = BOOT_SECONDS[spec.image_mode] if plan.boot_seconds is None else plan.boot_seconds
    return ModelAssumptions(boot_seconds=boot)


CANARY_EVERY_MODEL_SECONDS = 60.0


class Producer(threading.Thread):
    """Replays the trace's arrivals on the wall clock: one `cluster.sleep(task / speed)` per arrival,
    and one `cluster.canary(token)` a model minute, whose token must come back (the smoke test's check)."""

    def __init__(self, broker_url: str, queue: str, trace: Trace, clock: ModelClock, stop: threading.Event) -> None:
        super().__init__(name="producer", daemon=True)
        self.broker_url, self.queue, self.trace, self.clock, self.stop = broker_url, queue, trace, clock, stop
        self.sent: list[str] = []
        self.max_lag = 0.0
        """Worst wall seconds a task was sent after its arrival time."""
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.canaries_sent = 0
        self.canaries_returned = 0
        self.canary_timeout = 120.0

    def run(self) -> None:
        app = client_app(self.broker_url)
        canaries: list[tuple[str, AsyncResult]] = []
        next_canary = 0.0
        try:
            for arrival, seconds in zip(self.trace.arrivals.tolist(), self.trace.task_seconds.tolist(), strict=True):
                delay = self.clock.wall_at(arrival) - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    break
                if self.stop.is_set():
                    break
                self.max_lag = max(self.max_lag, -delay)
                if arrival >= next_canary:
                    token = uuid.uuid4().hex
                    canaries.append((token, app.send_task("cluster.canary", args=[token], queue=self.queue)))
                    next_canary = arrival + CANARY_EVERY_MODEL_SECONDS
                task_wall = round(self.clock.wall(seconds), 4)
                self.sent.append(app.send_task("cluster.sleep", args=[task_wall], queue=self.queue).id)
            self.canaries_sent = len(canaries)
            deadline = time.monotonic() + self.canary_timeout
            for token, result in canaries:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stop.is_set():
                    break
                try:
                    if result.get(timeout=remaining, propagate=False) == token:
                        self.canaries_returned += 1
                except ResultTimeoutError:
                    break
        except BaseException as exc:  # reported by the main loop; the run ends with what was sent
            self.error = exc
        finally:
            app.close()
            self.done.set()


@dataclass
class JournalTracker:
    """Reads the execution journal incrementally (exclusive XRANGE from the last id seen)."""

    client: redis.Redis
    entries: list[dict[str, str]] = field(default_factory=list)
    _last: str | None = None

    def update(self) -> None:
        fresh, self._last = journal.read_after(self.client, self._last)
        self.entries.extend(fresh)

    def tally(self, sent: list[str]) -> Tally:
        return tally(sent, self.entries)


@dataclass(frozen=True)
class TwinResult:
    local: SimulationResult
    simulated: SimulationResult
    tally: Tally
    speed: float
    wall_seconds: float
    late_boots: int
    problems: tuple[str, ...]
    producer_lag: float
    canaries_sent: int = 0
    canaries_returned: int = 0
    samples: tuple[PoolSample, ...] = ()
    """Every sample the model was fed, in order (replaying them through a fresh model must give `decisions`)."""
    decisions: tuple[ScalingEvent, ...] = ()
    """Every scaling event the model made."""
    launched: tuple[int, ...] = ()
    """Model instance ids the fleet started a worker process for (min size at the start, then each launch)."""
    drained: tuple[int, ...] = ()
    """Model instance ids whose worker process the fleet drained (SIGTERM) on a scale-in."""
    worst_sample_lag: float = 0.0
    """Most wall seconds a sample was read after its 10 s boundary (the queue as it was that much later)."""
    periodic: tuple[int, int] | None = None
    """With the schedulers (`--scheduler`): periodic runs journalled, and how many of them ran twice."""

    @property
    def ok(self) -> bool:
        return (
            self.tally.lost == 0
            and self.tally.sent == self.local.tasks
            and self.canaries_returned == self.canaries_sent
            and (self.periodic is None or self.periodic[1] == 0)
        )


@dataclass(frozen=True)
class Snapshot:
    """What the loop hands the view each time round."""

    now: float
    waiting: int
    in_flight: int
    oldest_age: float
    sent: int
    completed: int
    waits: tuple[float, ...]
    """Model seconds."""


def run_twin(
    plan: TwinPlan,
    pool: LocalPool,
    trace: Trace,
    console: Console,
    on_tick: Callable[[Snapshot, GroupModel, Fleet], None] | None = None,
) -> TwinResult:
    spec = pool.spec
    assumptions = assumptions_for(plan, spec)
    clock = ModelClock(plan.speed)
    # The simulator's controller, on the pool as the trace runs it (its minSize and scheduled capacity).
    model = ours("local twin").build(spec_for_trace(spec, trace), assumptions)
    queue = pool.queue
    run_id = uuid.uuid4().hex[:6]
    started_wall = time.monotonic()
    with ExitStack() as stack:
        server = stack.enter_context(RedisServer())
        journal_url = server.url.removesuffix("/0") + "/1"
        control = client_app(server.url)
        stack.callback(control.close)
        fleet = Fleet(
            control,
            server.url,
            [queue],
            spec.concurrency,
            plan.log_dir,
            {
                "CELERY_JOURNAL_URL": journal_url,
                "CELERY_SOFT_SHUTDOWN_TIMEOUT": f"{max(clock.wall(pool.soft_shutdown_seconds), 1.0):.1f}",
                "CELERY_LOG_LEVEL": "INFO",
            },
            run_id,
        )
        stack.callback(fleet.stop_all, 40.0)
        inspector = RedisInspector(server.url)
        stack.callback(inspector.close)
        service = RedisServiceReader(server.url)
        stack.callback(service.close)
        tracker = JournalTracker(redis.Redis.from_url(journal_url))
        stack.callback(tracker.client.close)

        if plan.scheduler:
            _start_schedulers(stack, server.url, journal_url, queue, plan.log_dir, run_id)

        # Instances present at the start (min size) are in service from model time 0.
        for instance in model.live():
            fleet.launch(instance.id, 0.0, 0.0)
        _wait_in_service(fleet, timeout=90.0)

        stop = threading.Event()
        producer = Producer(server.url, queue, trace, clock, stop)
        producer.canary_timeout = plan.drain_timeout
        stack.callback(stop.set)
        clock.start()
        producer.start()

        rows: list[tuple[float, float, float, float, float, float]] = []
        samples: list[PoolSample] = []
        drained: list[int] = []
        worst_sample_lag = 0.0
        peak = model.desired
        next_sample = SAMPLE_SECONDS
        next_journal = 0.0
        drain_deadline: float | None = None
        current = Snapshot(0.0, 0, 0, 0.0, 0, 0, ())
        while True:
            now = clock.now()
            # Sample before moving the fleet along: an `add_consumer` that waits for a slow worker's reply
            # must not delay the read, since the model stamps it with the boundary's time.
            if now >= next_sample:
                at = next_sample
                snapshot = inspector.inspect([queue])
                worst_sample_lag = max(worst_sample_lag, time.monotonic() - clock.wall_at(at))
                stats = service.read([queue], time.time())  # the workers' records: busy, measured task time
                samples.append(pool_sample(at, snapshot, model.view(at), stats, plan.speed))
                age = samples[-1].oldest_age
                model.observe(samples[-1])
                for event in model.decide(at):
                    for instance_id in event.launched:
                        launched = next(i for i in model.instances if i.id == instance_id)
                        fleet.launch(instance_id, now, launched.in_service_at)
                    for instance_id in event.terminated:
                        fleet.terminate(instance_id, now)
                        drained.append(instance_id)
                in_window = np.count_nonzero((trace.arrivals >= at - SAMPLE_SECONDS) & (trace.arrivals < at))
                serving = fleet.count("in service")
                rows.append((at, in_window / SAMPLE_SECONDS, snapshot.backlog, age, serving, model.desired))
                peak = max(peak, fleet.alive())
                next_sample += SAMPLE_SECONDS
                current = replace(
                    current, now=at, waiting=snapshot.waiting, in_flight=snapshot.in_flight, oldest_age=age
                )
            fleet.tick(now)
            if time.monotonic() >= next_journal:
                tracker.update()
                so_far = tracker.tally(producer.sent)
                waits = tuple(w * plan.speed for w in so_far.waits)
                current = replace(current, sent=len(producer.sent), completed=so_far.completed, waits=waits)
                next_journal = time.monotonic() + 1.0
                if producer.done.is_set():
                    if so_far.completed >= len(producer.sent) and now >= trace.duration:
                        break
                    if drain_deadline is None:
                        drain_deadline = time.monotonic() + plan.drain_timeout
                    elif time.monotonic() > drain_deadline:
                        console.print(f"[red]not every task completed within {plan.drain_timeout:.0f} s[/]")
                        break
            if on_tick is not None:
                on_tick(current, model, fleet)
            time.sleep(0.1)

        end = clock.now()
        stop.set()
        producer.join(10)
        fleet.stop_all(40.0)
        fleet.tick(end)
        tracker.update()
        final = tracker.tally(producer.sent)
        problems = list(fleet.problems)
        if producer.error is not None:
            problems.append(f"producer stopped: {producer.error}")

    local = replace(
        _local_result(spec, trace, model, fleet, rows, final, plan.speed, end, peak),
        wall_seconds=time.monotonic() - started_wall,
    )
    simulated = simulate(spec, trace, ours("simulator"), assumptions)
    late = sum(1 for i in fleet.instances.values() if i.late_seconds >= 5)
    return TwinResult(
        local,
        simulated,
        final,
        plan.speed,
        time.monotonic() - started_wall,
        late,
        tuple(problems),
        producer.max_lag,
        producer.canaries_sent,
        producer.canaries_returned,
        tuple(samples),
        tuple(model.events),
        tuple(fleet.instances),
        tuple(drained),
        worst_sample_lag,
        _periodic_runs(tracker.entries) if plan.scheduler else None,
    )


def _start_schedulers(stack: ExitStack, broker_url: str, journal_url: str, queue: str, log_dir: Path, run: str) -> None:
    """Two schedulers exactly as the scheduler instance starts them, sharing one lease in the twin's Redis."""
    for index in (1, 2):
        scheduler = SchedulerProcess(
            name=f"scheduler-{index}",
            broker_url=broker_url,
            log_path=log_dir / f"scheduler-{run}-{index}.log",
            env={
                "CELERY_DEFAULT_QUEUE": queue,
                "CELERY_JOURNAL_URL": journal_url,
                "CELERY_LOG_FORMAT": "console",
                "SCHEDULER_SCHEDULE": LOCAL_SCHEDULE,
                "SCHEDULER_LEASE_SECONDS": "5",
                "SCHEDULER_KEY_PREFIX": f"local-{run}:scheduler",
            },
        ).start()
        stack.callback(scheduler.stop)


def _periodic_runs(entries: list[dict[str, str]]) -> tuple[int, int]:
    """Periodic runs in the journal (task ids from worker.periodic.run_id), and how many ran twice."""
    ids = [e["task_id"] for e in entries if e["task_id"].startswith(PERIODIC_PREFIX)]
    return len(set(ids)), len(ids) - len(set(ids))


def _wait_in_service(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(i.state == "booting" for i in fleet.instances.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool's first workers did not start within {timeout:.0f} s; see {fleet.log_dir}")
        fleet.tick(0.0)
        time.sleep(0.2)


def _local_result(
    spec: PoolSpec,
    trace: Trace,
    model: GroupModel,
    fleet: Fleet,
    rows: list[tuple[float, float, float, float, float, float]],
    final: Tally,
    speed: float,
    end: float,
    peak: int,
) -> SimulationResult:
    hours = sum(
        ((i.exited_at if i.exited_at is not None else end) - max(i.launched_at, 0.0)) / 3600
        for i in fleet.instances.values()
    )
    return summarise_run(
        policy="local twin",
        spec=spec,
        trace=trace,
        model=model,
        waits=np.asarray(final.waits, dtype=np.float64) * speed,
        rows=rows,
        instance_hours=hours,
        peak=peak,
        simulated_seconds=end,
        wall_seconds=0.0,
    )
