"""Queue inspection cost: one `inspect()` of 1, 20 and 100 queues on loopback Redis and RabbitMQ.

Each queue holds a few tasks sent by the real client; the brokers are throwaway servers of the
bench's own. Reported: median and p95 wall time of one call over many calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from rich.table import Table

from infra.bench.table import bench_table
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from worker.publisher.queues import QueueInspector, inspector_for
from worker.sender import sender_app

SIZES = (1, 20, 100)
CALLS = 60
TASKS_PER_QUEUE = 3


def _fill(broker_url: str, queues: Sequence[str]) -> None:
    app = sender_app(broker_url)
    with app.producer_or_acquire() as producer:
        for queue in queues:
            for _ in range(TASKS_PER_QUEUE):
                app.send_task("cluster.sleep", args=[0], queue=queue, producer=producer)


def _time(inspector: QueueInspector, queues: Sequence[str]) -> tuple[float, float]:
    expected = TASKS_PER_QUEUE * len(queues)
    deadline = time.monotonic() + 60
    # Connect and warm up; RabbitMQ's statistics show new queues after collect_statistics_interval.
    while inspector.inspect(queues).waiting != expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(queues)} queues never showed {expected} waiting tasks")
        time.sleep(0.2)
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter()
        snapshot = inspector.inspect(queues)
        samples.append(time.perf_counter() - started)
        assert snapshot.waiting == expected, snapshot
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def measure() -> list[tuple[str, int, float, float]]:
    rows: list[tuple[str, int, float, float]] = []
    queues = [f"bench_q{index:03d}" for index in range(max(SIZES))]
    with RedisServer(appendonly=False) as redis_server:
        _fill(redis_server.url, queues)
        inspector = inspector_for(redis_server.url)
        try:
            rows.extend(("redis", size, *_time(inspector, queues[:size])) for size in SIZES)
        finally:
            inspector.close()
    with RabbitMQServer() as node:
        _fill(node.url, queues)
        inspector = inspector_for(node.url, node.management_url)
        try:
            rows.extend(("rabbitmq", size, *_time(inspector, queues[:size])) for size in SIZES)
        finally:
            inspector.close()
    return rows


def run() -> Table:
    out = bench_table(
        f"Queue inspection: one inspect() call, loopback ({CALLS} calls each)",
        ("broker", "queues", "median ms", "p95 ms"),
        caption="Redis: one pipelined round trip; RabbitMQ: one management API GET (with statistics) for the vhost",
    )
    for broker, size, median, p95 in measure():
        out.add_row(broker, str(size), f"{median * 1000:.2f}", f"{p95 * 1000:.2f}")
    return out
