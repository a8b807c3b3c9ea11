"""Cost of measured task time on RabbitMQ (`worker.runtime.rabbit_task_stats`,
`worker.publisher.rabbit_service`), against
a RabbitMQ node of our own on loopback:

- per task, in the task's process: Celery's task_prerun and task_postrun signals with the recorder
  connected (a dict and a lock; the summary goes from the sender thread, which runs meanwhile);
- one summary sent (the sender thread's publish, off the task path);
- the publisher's read with a window of 1, 100 and 333 processes' summaries held (60 each): the
  first read, which receives them all, and the next ones, which receive nothing new;
- a worker's no-op task throughput with and without the recorder: bare Celery with our two delivery
  guarantees (`infra.bench.bare_app`, the same app apart from BENCH_BARE_TASK_STATS=1), interleaved
  rounds, median.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace

from celery.signals import task_postrun, task_prerun
from kombu.connection import Connection

from infra.bench import worker_throughput
from infra.servers.rabbitmq import RabbitMQServer
from worker.publisher.rabbit_service import RabbitServiceReader
from worker.runtime import rabbit_task_stats
from worker.runtime.rabbit_task_stats import STATS_QUEUE, Sender, Summaries, stats_queue

TASKS = 3000
SENDS = 200
READS = 20
WINDOW_PROCESSES = (1, 100, 333)  # 333 x 60: the most a queue filled with no reader keeps
THROUGHPUT_TASKS = 1500
THROUGHPUT_ROUNDS = 5
THROUGHPUT_PROCESSES = 2
GUARANTEES = {"BENCH_BARE_GUARANTEES": "1"}
WITHOUT = worker_throughput.Variant("bare + late ack, prefetch 1", "bare", GUARANTEES, baseline=True)
WITH = worker_throughput.Variant("... + RabbitMQ task stats", "bare", {**GUARANTEES, "BENCH_BARE_TASK_STATS": "1"})

Row = tuple[str, str, str]


class _Task:
    """What the recorder reads of a task (Celery sends the signals with the task as the sender)."""

    request = SimpleNamespace(delivery_info={"routing_key": "bench"})


def _stats(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _us(samples: list[float]) -> tuple[str, str]:
    median, p95 = _stats(samples)
    return f"{median * 1e6:.1f} µs", f"{p95 * 1e6:.1f} µs"


def _ms(samples: list[float]) -> tuple[str, str]:
    median, p95 = _stats(samples)
    return f"{median * 1e3:.2f} ms", f"{p95 * 1e3:.2f} ms"


def _timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def per_task(url: str) -> Row:
    rabbit_task_stats.install(url, is_redis=False)
    task = _Task()
    samples = []
    for _ in range(TASKS):
        task_id = str(uuid.uuid4())
        started = time.perf_counter()
        task_prerun.send(sender=task, task_id=task_id, task=task)
        task_postrun.send(sender=task, task_id=task_id, task=task)
        samples.append(time.perf_counter() - started)
    return ("per task: prerun + postrun signals", *_us(samples))


def per_send(url: str) -> Row:
    summaries = Summaries()
    sender = Sender(url, summaries)
    samples = []
    for index in range(SENDS):
        summaries.add("bench", 1, float(index))
        samples.append(_timed(sender.send))
    return ("one summary sent (sender thread)", *_ms(samples))


def _fill(url: str, summaries: int) -> None:
    with Connection(url) as connection:
        channel = connection.default_channel
        stats_queue()(channel).declare()
        channel.queue_purge(STATS_QUEUE)
        producer = connection.Producer()
        now = time.time()
        for index in range(summaries):
            body = json.dumps({"at": now, "queues": {f"bench_q{index % 4}": [3, 1.5]}})
            producer.publish(body, routing_key=STATS_QUEUE, exchange="", content_type="application/json",
                             content_encoding="utf-8", delivery_mode=1)  # fmt: skip


def reads(url: str) -> list[Row]:
    rows = []
    queues = [f"bench_q{index}" for index in range(4)]
    for processes in WINDOW_PROCESSES:
        summaries = processes * 60
        _fill(url, summaries)
        reader = RabbitServiceReader(url)
        try:
            first = _timed(reader.read, queues, time.time())
            # At least: the per-task rows' sender thread may add its last summary.
            if reader.held < summaries:
                raise RuntimeError(f"the reader holds {reader.held} summaries, not the {summaries} sent")
            later = [_timed(reader.read, queues, time.time()) for _ in range(READS)]
        finally:
            reader.close()
        rows.append((f"read, {processes} processes' window: first", f"{first * 1e3:.1f} ms", "-"))
        rows.append((f"read, {processes} processes' window: next", *_ms(later)))
    return rows


def throughput(progress: Callable[[str], None]) -> list[Row]:
    without, with_stats = worker_throughput.run(
        ["rabbitmq"], THROUGHPUT_TASKS, THROUGHPUT_PROCESSES, THROUGHPUT_ROUNDS, progress, variants=(WITHOUT, WITH)
    )
    ratio = with_stats.rate / without.rate
    return [
        (f"no-op tasks/s, prefork x {THROUGHPUT_PROCESSES}, without", f"{without.rate:.0f}", without.spread),
        ("no-op tasks/s, with the recorder", f"{with_stats.rate:.0f}", with_stats.spread),
        ("throughput with / without", f"{ratio:.2f}", "-"),
    ]


def rows(progress: Callable[[str], None]) -> list[Row]:
    with RabbitMQServer() as server:
        measured = [per_task(server.url), per_send(server.url), *reads(server.url)]
    return measured + throughput(progress)
