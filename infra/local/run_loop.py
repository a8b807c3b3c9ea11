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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import redis
from rich.console import Console

from infra.local.accounting import JournalTracker
from infra.local.fleet import Fleet
from infra.local.plan import LOCAL_SCHEDULE, LocalPool, TwinPlan, assumptions_for
from infra.local.producer import Producer
from infra.local.result import TwinResult, local_result, periodic_runs
from infra.local.samples import pool_sample
from infra.local.scheduler import SchedulerProcess
from infra.local.timescale import ModelClock
from infra.scaling.aws_model import GroupModel, PoolSample
from infra.scaling.simulator import SAMPLE_SECONDS, ours, simulate, spec_for_trace
from infra.scaling.traces import Trace
from infra.servers.redis import RedisServer
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
        control = sender_app(server.url)
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
        local_result(spec, trace, model, fleet, rows, final, plan.speed, end, peak),
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
        periodic_runs(tracker.entries) if plan.scheduler else None,
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


def _wait_in_service(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(i.state == "booting" for i in fleet.instances.values()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool's first workers did not start within {timeout:.0f} s; see {fleet.log_dir}")
        fleet.tick(0.0)
        time.sleep(0.2)
