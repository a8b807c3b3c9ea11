"""No-op task throughput: this package's worker against a bare Celery app, side by side.

For each broker (a Redis and a RabbitMQ server of our own on free ports), each variant gets a
fresh queue pre-filled with N no-op tasks; then one worker with the same process count starts
and the clock runs from its first take to the queue being empty. Publishing is not timed.
Variants of our worker change one environment variable at a time, so each row says what that
setting buys.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis
from celery import Celery
from kombu.connection import Connection
from rich.console import Console
from rich.table import Table

from infra.bench.cpu import group_cpu_seconds, process_cpu_seconds
from infra.local.workers import WorkerProcess
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from worker.sender import sender_app

BrokerKind = Literal["redis", "rabbitmq"]
CELERY = str(Path(sys.executable).parent / "celery")
TASK = "bench.noop"


@dataclass(frozen=True)
class Variant:
    name: str
    app: Literal["ours", "bare"]
    env: dict[str, str] = field(default_factory=dict)
    pool: str = "prefork"
    note: str = ""
    task: str = TASK
    concurrency: int | None = None  # None: the run's process count
    baseline: bool = False  # "vs" column: rows with the same task are divided by this one


BARE = Variant("bare Celery, defaults", "bare", note="prefetch 4, early ack", baseline=True)
IO_TASK = "bench.io"
VARIANTS: tuple[Variant, ...] = (
    BARE,
    Variant("bare + late ack, prefetch 1", "bare", {"BENCH_BARE_GUARANTEES": "1"}, note="our two guarantees only"),
    Variant("ours, defaults", "ours", note="late ack, prefetch 1, INFO JSON logs"),
    Variant("ours, CELERY_TASK_EVENTS=true", "ours", {"CELERY_TASK_EVENTS": "true"}, note="for Flower"),
    Variant("ours, CELERY_PREFETCH_MULTIPLIER=4", "ours", {"CELERY_PREFETCH_MULTIPLIER": "4"}, note="opt-in"),
    Variant("ours, WORKER_POOL=threads", "ours", pool="threads"),
    Variant(
        "ours, short-task tuning",
        "ours",
        {"CELERY_PREFETCH_MULTIPLIER": "4", "CELERY_LOG_LEVEL": "WARNING"},
        note="prefetch 4, WARNING logs",
    ),
    # I/O-bound work (10 ms waits): the pool and its size matter, not the per-task overhead.
    Variant("ours, I/O task", "ours", task=IO_TASK, baseline=True, note="10 ms wait per task"),
    Variant(
        "ours, I/O task, WORKER_POOL=threads",
        "ours",
        pool="threads",
        task=IO_TASK,
        concurrency=16,
        note="WORKER_CONCURRENCY=16, one process",
    ),
)


@dataclass(frozen=True)
class Measurement:
    broker: BrokerKind
    variant: Variant
    tasks: int
    seconds: float
    processes: int
    worker_cpu: float  # CPU seconds of the worker's processes between first take and empty queue
    broker_cpu: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    @property
    def cpu_ms_per_task(self) -> float:
        return 1000 * (self.worker_cpu + self.broker_cpu) / self.tasks


@dataclass(frozen=True)
class Result:
    """Several rounds of one variant on one broker; the median is reported."""

    rounds: tuple[Measurement, ...]

    @property
    def broker(self) -> BrokerKind:
        return self.rounds[0].broker

    @property
    def variant(self) -> Variant:
        return self.rounds[0].variant

    @property
    def rate(self) -> float:
        return statistics.median(m.rate for m in self.rounds)

    @property
    def cpu_ms_per_task(self) -> float:
        return statistics.median(m.cpu_ms_per_task for m in self.rounds)

    @property
    def spread(self) -> str:
        rates = [m.rate for m in self.rounds]
        return f"{min(rates):.0f}-{max(rates):.0f}"


class Backlog:
    """Ready messages in a queue, read straight from the broker."""

    def __init__(self, kind: BrokerKind, url: str) -> None:
        self.kind = kind
        self._redis = redis.Redis.from_url(url) if kind == "redis" else None
        self._amqp = Connection(url) if kind == "rabbitmq" else None

    def __call__(self, queue: str) -> int:
        if self._redis is not None:
            return int(self._redis.llen(queue))
        assert self._amqp is not None
        _, count, _ = self._amqp.default_channel.queue_declare(queue, passive=True)
        return int(count)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        if self._amqp is not None:
            self._amqp.close()


def _producer(variant: Variant, url: str, queue: str) -> Celery:
    if variant.app == "ours":
        return sender_app(url, default_queue=queue)
    return Celery("bench-bare-producer", broker=url, set_as_current=False)


def fill(variant: Variant, url: str, queue: str, tasks: int) -> None:
    app = _producer(variant, url, queue)
    try:
        with app.producer_or_acquire() as producer:
            for _ in range(tasks):
                app.send_task(variant.task, queue=queue, producer=producer)
    finally:
        app.close()


@contextmanager
def started_worker(
    variant: Variant, url: str, queue: str, processes: int, log_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{queue}.log"
    if variant.app == "ours":
        worker = WorkerProcess(
            name=queue,
            queues=[queue],
            broker_url=url,
            log_path=log_path,
            concurrency=processes,
            env={
                "CELERY_IMPORTS": "infra.bench.tasks",
                "CELERY_DEFAULT_QUEUE": queue,
                "WORKER_POOL": variant.pool,
                **variant.env,
            },
        ).start()
        assert worker.process is not None
        process = worker.process
    else:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [CELERY, "-A", "infra.bench.bare_app", "worker", "-Q", queue, "-c", str(processes), "-P", variant.pool,
                 "--loglevel", "INFO", "--without-mingle", "--without-gossip", "-n", f"{queue}@%h"],
                env={**os.environ, "BENCH_BROKER_URL": url, **variant.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
    try:
        yield process
    finally:
        # The queue is drained; nothing is in flight, so a hard stop loses nothing and saves time.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _wait(condition: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes]) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.005)
    return time.monotonic()


@dataclass(frozen=True)
class Broker:
    kind: BrokerKind
    url: str
    cpu: Callable[[], float]  # CPU seconds the broker's processes used so far


def measure(broker: Broker, variant: Variant, tasks: int, processes: int, log_dir: Path) -> Measurement:
    processes = variant.concurrency or processes
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    backlog = Backlog(broker.kind, broker.url)
    try:
        fill(variant, broker.url, queue, tasks)
        if (found := backlog(queue)) != tasks:
            raise RuntimeError(f"{queue}: {found} messages after publishing {tasks}")
        with started_worker(variant, broker.url, queue, processes, log_dir) as process:
            first = _wait(lambda: backlog(queue) < tasks, 90, "the first take", process)
            cpu_at_first = group_cpu_seconds(process.pid), broker.cpu()
            empty = _wait(lambda: backlog(queue) == 0, 300, "an empty queue", process)
            worker_cpu = group_cpu_seconds(process.pid) - cpu_at_first[0]
            broker_cpu = broker.cpu() - cpu_at_first[1]
    finally:
        backlog.close()
    return Measurement(broker.kind, variant, tasks, empty - first, processes, worker_cpu, broker_cpu)


@contextmanager
def broker_server(kind: BrokerKind) -> Iterator[Broker]:
    if kind == "redis":
        # AOF off: the broker's disk is the same for both apps and is not what this compares.
        with RedisServer(appendonly=False) as redis_server:
            pid = redis_server.pid
            assert pid is not None
            yield Broker(kind, redis_server.url, lambda: process_cpu_seconds(pid))
    else:
        with RabbitMQServer() as rabbitmq_server:
            group = rabbitmq_server.pid
            assert group is not None
            yield Broker(kind, rabbitmq_server.url, lambda: group_cpu_seconds(group))


def run(
    brokers: list[BrokerKind],
    tasks: int,
    processes: int,
    rounds: int,
    progress: Callable[[str], None],
    log_dir: Path = Path("build/bench"),
    variants: tuple[Variant, ...] = VARIANTS,
) -> list[Result]:
    """Rounds are interleaved (every variant once, then again), so a burst of load from
    elsewhere on the machine hits all variants alike instead of one."""
    results: list[Result] = []
    for kind in brokers:
        measured: list[list[Measurement]] = [[] for _ in variants]
        progress(f"worker: starting {kind}")
        with broker_server(kind) as server:
            for round_number in range(1, rounds + 1):
                for variant, found in zip(variants, measured, strict=True):
                    found.append(measure(server, variant, tasks, processes, log_dir))
                    progress(
                        f"worker: {kind} round {round_number}/{rounds}: {variant.name} {found[-1].rate:.0f} tasks/s"
                    )
        results += [Result(tuple(m)) for m in measured]
    return results


def section() -> Table:
    """The `worker` section of `make bench`. BENCH_WORKER_BROKERS (redis,rabbitmq),
    BENCH_WORKER_TASKS (600), BENCH_WORKER_ROUNDS (3) and BENCH_WORKER_PROCESSES (2) change it."""
    brokers: list[BrokerKind] = []
    for name in os.environ.get("BENCH_WORKER_BROKERS", "redis,rabbitmq").split(","):
        if name not in ("redis", "rabbitmq"):
            raise ValueError(f"BENCH_WORKER_BROKERS: unknown broker {name!r}; use redis and/or rabbitmq")
        brokers.append("redis" if name == "redis" else "rabbitmq")
    tasks = int(os.environ.get("BENCH_WORKER_TASKS", "600"))
    rounds = int(os.environ.get("BENCH_WORKER_ROUNDS", "3"))
    processes = int(os.environ.get("BENCH_WORKER_PROCESSES", "2"))
    # Progress goes to stderr: the bench CLI holds a status line on stdout while a section runs.
    console = Console(stderr=True)
    return table(run(brokers, tasks, processes, rounds, lambda line: console.print(line, highlight=False)))


def table(results: list[Result]) -> Table:
    rounds = len(results[0].rounds) if results else 0
    out = Table(title=f"Worker throughput: no-op tasks, one worker, median of {rounds} rounds")
    # "vs base": no-op rows against bare Celery, I/O rows against our prefork worker.
    numeric = ("tasks/s", "vs base", "range", "CPU ms/task")
    for column in ("broker", "worker", "pool x procs", *numeric, "notes"):
        out.add_column(column, justify="right" if column in numeric else "left")
    base = {(r.broker, r.variant.task): r.rate for r in results if r.variant.baseline}
    for r in results:
        baseline = base.get((r.broker, r.variant.task))
        ratio = f"{r.rate / baseline:.2f}" if baseline else "-"
        pool = f"{r.variant.pool} x {r.rounds[0].processes}"
        cpu = f"{r.cpu_ms_per_task:.2f}"
        out.add_row(r.broker, r.variant.name, pool, f"{r.rate:.0f}", ratio, r.spread, cpu, r.variant.note)
    return out
