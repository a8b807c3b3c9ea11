"""Queue inspection against real brokers: tasks sent by the real client, a real worker holding some.

Each broker is a server of the test's own on free ports (the Redis `unacked` hash is per database,
so the shared Redis would mix in other helpers' workers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from infra.local.workers import WorkerProcess
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from worker.publisher.queues import REDIS_PRIORITY_SEP, InspectionError, QueueInspector, Snapshot, inspector_for
from worker.sender import sender_app

QUEUE_A = "scaling_a"
QUEUE_B = "scaling_b"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False) as server:
        yield server


def _wait_for(inspector: QueueInspector, condition: str, check: object, timeout: float = 60) -> Snapshot:
    deadline = time.monotonic() + timeout
    while True:
        snapshot = inspector.inspect([QUEUE_A, QUEUE_B])
        if check(snapshot):  # type: ignore[operator]
            return snapshot
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}; last snapshot {snapshot}")
        time.sleep(0.3)


def _scenario(broker_url: str, inspector: QueueInspector, tmp_path: Path, resolution: float) -> None:
    """`resolution`: seconds the broker's publish time is truncated to (RabbitMQ's AMQP timestamp: 1)."""
    app = sender_app(broker_url)
    sent_from = time.time()
    for _ in range(6):
        app.send_task("cluster.sleep", args=[60], queue=QUEUE_A)
    app.send_task("cluster.sleep", args=[60], queue=QUEUE_B, priority=9)
    sent_until = time.time()

    # RabbitMQ's management API can list a message as ready a moment before it reports the head's
    # timestamp (the inspector then dates it from first sight, as for an unstamped message): seen once,
    # 3.2 s late, on a machine with two CPU hogs. The stamps are checked once the broker reports them.
    stamped = "7 waiting, every head stamped"
    before = _wait_for(inspector, stamped, lambda s: s.waiting == 7 and not any(q.unstamped for q in s.queues))
    a, b = before.queues
    assert (a.queue, a.waiting, a.in_flight) == (QUEUE_A, 6, 0)
    assert (b.queue, b.waiting, b.in_flight) == (QUEUE_B, 1, 0)
    earliest = sent_from - resolution
    assert a.oldest_published_at is not None
    assert b.oldest_published_at is not None
    assert earliest <= a.oldest_published_at <= b.oldest_published_at <= sent_until
    age = before.oldest_age
    assert age is not None
    assert 0 <= age <= time.time() - earliest

    worker = WorkerProcess(
        name="inspect",
        queues=[QUEUE_A],
        broker_url=broker_url,
        log_path=tmp_path / "worker.log",
        concurrency=2,
        env={"CELERY_SOFT_SHUTDOWN_TIMEOUT": "0"},
    ).start()
    try:
        busy = _wait_for(
            inspector,
            "2 in flight on the worker, every head stamped",
            lambda s: s.queues[0].in_flight == 2 and not any(q.unstamped for q in s.queues),
            timeout=90,
        )
        a, b = busy.queues
        # A busy pool with tasks still queued: in-flight counts, so the backlog is unchanged.
        assert (a.waiting, a.in_flight, a.backlog) == (4, 2, 6)
        assert (b.waiting, b.in_flight) == (1, 0)
        assert a.oldest_published_at is not None
        assert earliest <= a.oldest_published_at <= sent_until
    finally:
        worker.kill()
        worker.wait(15)


@pytest.mark.redis
def test_redis_waiting_in_flight_and_age(redis_server: RedisServer, tmp_path: Path) -> None:
    inspector = inspector_for(redis_server.url)
    try:
        _scenario(redis_server.url, inspector, tmp_path, resolution=0.0)
        # The priority message really sat in kombu's priority sub-list, so that path was covered.
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        keys = set(client.keys(f"{QUEUE_B}*"))
        assert f"{QUEUE_B}{REDIS_PRIORITY_SEP}9" in keys, keys
    finally:
        inspector.close()


@pytest.mark.rabbitmq
def test_rabbitmq_waiting_in_flight_and_age(rabbitmq_server: RabbitMQServer, tmp_path: Path) -> None:
    inspector = inspector_for(rabbitmq_server.url, rabbitmq_server.management_url)
    try:
        _scenario(rabbitmq_server.url, inspector, tmp_path, resolution=1.0)
    finally:
        inspector.close()


def test_unreachable_broker_is_named() -> None:
    inspector = inspector_for("redis://127.0.0.1:1/0")
    with pytest.raises(InspectionError, match=r"redis broker redis://127\.0\.0\.1:1"):
        inspector.inspect([QUEUE_A])
