"""The local twin of a stack's pool: a Redis broker, the metrics loop, the scaling model deciding in
(scaled) real time, worker processes launched and drained as instances, and a trace replayed as
`cluster.sleep` tasks.

The controller is the simulator's: `infra.scaling.simulator.ours().build(spec, assumptions)`, a
`GroupModel` fed a `PoolSample` every 10 model seconds from real queue inspection
(`worker.publisher.queues.RedisInspector`) and the workers' records of busy processes and task time
(`infra.local.samples`, as the publisher reads them). Its decisions launch and terminate worker processes (`fleet`).
At the end the same trace runs through the simulator too, and both go into the simulator's table
and plot, next to the journal's count of every task (lost, duplicates).

This module holds the run loop; what a run is (`infra.local.plan`), the producer that replays the trace
(`infra.local.producer`) and what a run reports (`infra.local.result`) live beside it.
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
from rich.console import Console

from infra.local.accounting import JournalTracker, held_ids
from infra.local.fleet import Fleet
from infra.local.judge import LogCounts
from infra.local.plan import LOCAL_SCHEDULE, LocalPool, TwinPlan, assumptions_for
from infra.local.producer import Producer
from infra.local.result import (
    INTERRUPTED,
    NO_WORKER_STARTS,
    TwinResult,
    local_result,
    periodic_runs,
    runs_by_version,
)
from infra.local.samples import pool_sample
from infra.local.scheduler import SchedulerProcess
from infra.local.timescale import ModelClock
from infra.local.upgrade import Upgrade
from infra.local.versions import CHECKOUT, WorkerVersion
from infra.scaling.aws_model import GroupModel, PoolSample
from infra.scaling.simulator import SAMPLE_SECONDS, ours, simulate, spec_for_trace
from infra.scaling.traces import Trace
from infra.servers.redis import RedisServer
from worker.names import DEAD_LETTER_QUEUE
from worker.publisher.queues import RedisInspector
from worker.publisher.service_metrics import RedisServiceReader
from worker.sender import sender_app


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
    upgrade_status: str = ""
    """`--upgrade-to`: where the refresh is (`Upgrade.status_line`)."""
    upgrade_progress: tuple[str, ...] = ()
    """`--upgrade-to`: what the refresh did so far, a line each."""


@dataclass
class _Loop:
    """One run's moving parts and what it has recorded so far."""

    plan: TwinPlan
    queue: str
    trace: Trace
    clock: ModelClock
    model: GroupModel
    fleet: Fleet
    inspector: RedisInspector
    service: RedisServiceReader
    tracker: JournalTracker
    producer: Producer
    broker: redis.Redis
    rows: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)
    samples: list[PoolSample] = field(default_factory=list)
    drained: list[int] = field(default_factory=list)
    worst_sample_lag: float = 0.0
    peak: int = 0
    current: Snapshot = field(default_factory=lambda: Snapshot(0.0, 0, 0, 0.0, 0, 0, ()))
    drain_deadline: float | None = None
    stopped: str | None = None
    """Why the run is over: "done", a timeout, NO_WORKER_STARTS or INTERRUPTED."""
    upgrade: Upgrade | None = None
    """`--upgrade-to`: the refresh rolling the workers to another version; the run ends after its verdict."""

    def sample(self, at: float, now: float) -> None:
        """One 10 s sample, read as the publisher reads it; the model decides on it and the fleet follows."""
        snapshot = self.inspector.inspect([self.queue])
        self.worst_sample_lag = max(self.worst_sample_lag, time.monotonic() - self.clock.wall_at(at))
        stats = self.service.read([self.queue], time.time())  # the workers' records: busy, measured task time
        self.samples.append(pool_sample(at, snapshot, self.model.view(at), stats, self.plan.speed))
        age = self.samples[-1].oldest_age
        self.model.observe(self.samples[-1])
        for event in self.model.decide(at):
            for instance_id in event.launched:
                launched = next(i for i in self.model.instances if i.id == instance_id)
                self.fleet.launch(instance_id, now, launched.in_service_at)
            for instance_id in event.terminated:
                self.fleet.terminate(instance_id, now)
                self.drained.append(instance_id)
        arrivals = self.trace.arrivals
        in_window = np.count_nonzero((arrivals >= at - SAMPLE_SECONDS) & (arrivals < at))
        serving = self.fleet.count("in service")
        self.rows.append((at, in_window / SAMPLE_SECONDS, snapshot.backlog, age, serving, self.model.desired))
        self.peak = max(self.peak, self.fleet.alive())
        self.current = replace(
            self.current, now=at, waiting=snapshot.waiting, in_flight=snapshot.in_flight, oldest_age=age
        )

    def account(self, now: float, console: Console) -> bool:
        """Read the journal; True when the run is over (every task done after the trace, or the drain timed out)."""
        self.tracker.update()
        so_far = self.tracker.tally(self.producer.sent)
        waits = tuple(w * self.plan.speed for w in so_far.waits)
        self.current = replace(self.current, sent=len(self.producer.sent), completed=so_far.completed, waits=waits)
        if not self.producer.done.is_set():
            return False
        if so_far.completed >= len(self.producer.sent) and now >= self.trace.duration:
            if self.upgrade is not None and not self.upgrade.over:
                return False  # every task ran; the refresh still has to reach its verdict
            self.stopped = "done"
            return True
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.plan.drain_timeout
        elif time.monotonic() > self.drain_deadline:
            self.stopped = f"not every task completed within {self.plan.drain_timeout:.0f} s"
            console.print(f"[red]{self.stopped}[/]")
            return True
        return False

    def run(self, on_tick: Callable[[Snapshot, GroupModel, Fleet], None] | None, console: Console) -> float:
        """Until the run is over (`stopped` says why); returns the model time it ended at. Ctrl-C ends it too,
        so that what ran so far is still counted."""
        next_sample, next_journal = SAMPLE_SECONDS, 0.0
        try:
            while self.stopped is None:
                now = self.clock.now()
                # Sample before moving the fleet along: an `add_consumer` that waits for a slow worker's reply
                # must not delay the read, since the model stamps it with the boundary's time.
                if now >= next_sample:
                    self.sample(next_sample, now)
                    next_sample += SAMPLE_SECONDS
                self.fleet.tick(now)
                if self.upgrade is not None:
                    self.upgrade.tick(now, self.model, self.fleet)
                    progress = tuple(self.upgrade.progress)
                    self.current = replace(
                        self.current, upgrade_status=self.upgrade.status_line(), upgrade_progress=progress
                    )
                # While a refresh runs, a new version that cannot start is its judges' to roll back.
                if (self.upgrade is None or self.upgrade.over) and not self.fleet.can_start():
                    self.stopped = NO_WORKER_STARTS  # a worker died booting and none serves: none will
                elif time.monotonic() >= next_journal:
                    next_journal = time.monotonic() + 1.0
                    self.account(now, console)
                if on_tick is not None:
                    on_tick(self.current, self.model, self.fleet)  # also once more when stopped: the last frame
                if self.stopped is None:
                    time.sleep(0.1)
        except KeyboardInterrupt:
            self.stopped = INTERRUPTED
        return self.clock.now()


def run_twin(
    plan: TwinPlan,
    pool: LocalPool,
    trace: Trace,
    console: Console,
    on_tick: Callable[[Snapshot, GroupModel, Fleet], None] | None = None,
    versions: tuple[WorkerVersion, WorkerVersion | None] = (CHECKOUT, None),
) -> TwinResult:
    """Run the twin until the trace is over and every task ran (and an upgrade to `versions[1]` has its verdict),
    the wait for the last tasks ends, no worker can start, or Ctrl-C; `TwinResult.stopped` says which."""
    spec = pool.spec
    assumptions = assumptions_for(plan, spec)
    clock = ModelClock(plan.speed)
    # The simulator's controller, on the pool as the trace runs it (its minSize and scheduled capacity).
    model = ours("local twin").build(spec_for_trace(spec, trace), assumptions)
    run_id = uuid.uuid4().hex[:6]
    started_wall = time.monotonic()
    with ExitStack() as stack:
        loop = _start(stack, plan, pool, trace, clock, model, run_id, versions)
        end = loop.run(on_tick, console)
        loop.producer.stop.set()
        loop.producer.join(10)
        # Before the drain requeues what runs: what the broker still holds was never delivered or is unfinished.
        queued, unacked = held_ids(loop.broker, loop.queue)
        dead_letters = loop.broker.llen(DEAD_LETTER_QUEUE)
        loop.fleet.stop_all(40.0)
        loop.fleet.tick(end)
        loop.tracker.update()
        final = loop.tracker.tally(loop.producer.sent, queued, unacked)
        problems = list(loop.fleet.problems)
        if loop.producer.error is not None:
            problems.append(f"producer stopped: {loop.producer.error}")
    fleet, producer = loop.fleet, loop.producer
    local = replace(
        local_result(spec, trace, model, fleet, loop.rows, final, plan.speed, end, loop.peak),
        wall_seconds=time.monotonic() - started_wall,
    )
    return TwinResult(
        local,
        simulate(spec, trace, ours("simulator"), assumptions),
        final,
        plan.speed,
        time.monotonic() - started_wall,
        sum(1 for i in fleet.instances.values() if i.late_seconds >= 5),
        tuple(problems),
        producer.max_lag,
        producer.canaries_sent,
        producer.canaries_returned,
        tuple(loop.samples),
        tuple(model.events),
        tuple(fleet.instances),
        tuple(loop.drained),
        loop.worst_sample_lag,
        periodic_runs(loop.tracker.entries) if plan.scheduler else None,
        None if loop.stopped == "done" else loop.stopped,
        tuple(fleet.failures),
        None if loop.upgrade is None else loop.upgrade.verdict(),
        dead_letters,
        runs_by_version(loop.tracker.entries, frozenset(producer.sent)),
    )


def _start(
    stack: ExitStack,
    plan: TwinPlan,
    pool: LocalPool,
    trace: Trace,
    clock: ModelClock,
    model: GroupModel,
    run_id: str,
    versions: tuple[WorkerVersion, WorkerVersion | None],
) -> _Loop:
    """The broker, the fleet at minSize (in service from model time 0), the readers and the producer, running."""
    queue = pool.queue
    server = stack.enter_context(RedisServer())
    journal_url = server.url.removesuffix("/0") + "/1"
    control = sender_app(server.url)
    stack.callback(control.close)
    environment = {
        "CELERY_JOURNAL_URL": journal_url,
        "CELERY_SOFT_SHUTDOWN_TIMEOUT": f"{max(clock.wall(pool.soft_shutdown_seconds), 1.0):.1f}",
        "CELERY_LOG_LEVEL": "INFO",
    }
    old, new = versions
    fleet = Fleet(control, server.url, [queue], pool.spec.concurrency, plan.log_dir, environment, run_id, old)
    stack.callback(fleet.stop_all, 40.0)
    inspector = RedisInspector(server.url)
    stack.callback(inspector.close)
    service = RedisServiceReader(server.url)
    stack.callback(service.close)
    tracker = JournalTracker(redis.Redis.from_url(journal_url))
    stack.callback(tracker.client.close)
    broker = redis.Redis.from_url(server.url)
    stack.callback(broker.close)
    if plan.scheduler:
        _start_schedulers(stack, server.url, journal_url, queue, plan.log_dir, run_id)
    for instance in model.live():
        fleet.launch(instance.id, 0.0, 0.0)
    _wait_in_service(fleet, timeout=90.0)
    producer = Producer(server.url, queue, trace, clock, threading.Event())
    producer.canary_timeout = plan.drain_timeout
    stack.callback(producer.stop.set)
    clock.start()
    producer.start()
    loop = _Loop(plan, queue, trace, clock, model, fleet, inspector, service, tracker, producer, broker)
    loop.peak = model.desired
    if new is not None:
        counts = LogCounts(clock.at_epoch)
        loop.upgrade = Upgrade(plan.pool, old, new, pool.refresh, pool.judges, counts)
    return loop


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


def _wait_in_service(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(i.state == "booting" for i in fleet.instances.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool's first workers did not start within {timeout:.0f} s; see {fleet.log_dir}")
        fleet.tick(0.0)
        time.sleep(0.2)
