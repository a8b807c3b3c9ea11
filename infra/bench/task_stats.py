"""Cost of recording task run time (`worker.runtime.task_stats`): per task, the start (one ZADD) and the end
(one pipelined ZREM + HINCRBY + HINCRBYFLOAT + EXPIRE), against a loopback Redis with no persistence
(as ElastiCache runs without AOF) and with AOF and fsync always (as the tests run the broker: every
write waits for the disk); and the publisher's read of the records for 1, 20 and 100 queues.

Reported: median and p95 wall time over many calls, in microseconds (milliseconds for the read).
The RabbitMQ rows (`infra.bench.rabbit_task_stats`) measure its recorder, its reader, and a worker's
throughput with and without the recorder.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import redis
from rich.console import Console
from rich.table import Table

from infra.bench import rabbit_task_stats
from infra.bench.table import bench_table
from infra.servers.redis import RedisServer
from worker.runtime.task_stats import Recorder, read_service

TASKS = 3000
READS = 60
QUEUE_COUNTS = (1, 20, 100)


def _stats(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def _timed(action: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    action(*args)
    return time.perf_counter() - started


def measure(appendonly: bool) -> tuple[list[tuple[str, float, float]], list[tuple[int, float, float]]]:
    with RedisServer(appendonly=appendonly) as server:
        client = redis.Redis.from_url(server.url)
        try:
            recorder = Recorder(client)
            starts, ends, totals = [], [], []
            for _ in range(TASKS):
                task_id = str(uuid.uuid4())
                start = _timed(recorder.started, task_id, "bench", time.time())
                end = _timed(recorder.ended, task_id, "bench", time.time())
                starts.append(start)
                ends.append(end)
                totals.append(start + end)
            per_task = [
                ("start (ZADD)", *_stats(starts)),
                ("end (one pipeline)", *_stats(ends)),
                ("per task", *_stats(totals)),
            ]
            queues = [f"bench_q{index:03d}" for index in range(max(QUEUE_COUNTS))]
            for queue in queues:
                recorder.started("t", queue, time.time())
                recorder.ended("t", queue, time.time())
            reads = [
                (
                    count,
                    *_stats([_timed(read_service, client, queues[:count], time.time()) for _ in range(READS)]),
                )
                for count in QUEUE_COUNTS
            ]
        finally:
            client.close()
    return per_task, reads


def run() -> Table:
    plain_tasks, plain_reads = measure(appendonly=False)
    aof_tasks, aof_reads = measure(appendonly=True)
    console = Console(stderr=True)  # progress on stderr: the bench CLI holds a status line on stdout
    rabbit = rabbit_task_stats.rows(lambda line: console.print(line, highlight=False))
    out = bench_table(
        f"Task time recording on loopback brokers: {TASKS} tasks, {READS} reads",
        ("broker", "what", "median", "p95 or range"),
        caption="per task: what a worker process adds to each task; read: the publisher's, once per sample",
        left=("broker", "what"),
    )
    redis_runs = (("Redis", plain_tasks, plain_reads), ("Redis, AOF fsync always", aof_tasks, aof_reads))
    for broker, tasks, found in redis_runs:
        for what, median, p95 in tasks:
            out.add_row(broker, what, *(f"{value * 1e6:.0f} µs" for value in (median, p95)))
        for count, median, p95 in found:
            out.add_row(broker, f"read, {count} queues", *(f"{value * 1e3:.2f} ms" for value in (median, p95)))
    for what, median_text, spread in rabbit:
        out.add_row("RabbitMQ", what, median_text, spread)
    return out
