"""Measured task time and busy processes: a real worker records them in a real Redis broker, the real
publisher reads them and publishes them (CloudWatch and Auto Scaling on moto)."""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest
import redis

from infra.local.workers import WorkerProcess
from infra.servers.redis import RedisServer
from tests.support.moto_metrics import NAMESPACE, REGION, group, latest
from worker.names import (
    METRIC_BUSY_PROCESSES,
    METRIC_CAPACITY_NEEDED,
    METRIC_IN_FLIGHT,
    METRIC_IN_SERVICE,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_TASK_SECONDS,
)
from worker.publisher.capacity import PoolSignal, Sample, capacity
from worker.publisher.handler import PoolQueues, Publisher, PublisherConfig
from worker.publisher.queues import QueueStats, Snapshot, inspector_for
from worker.publisher.service_metrics import RedisServiceReader, pool_values
from worker.runtime.task_stats import QueueService, read_service, running_key
from worker.sender import sender_app

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

SHORT_S = 0.3
SIGNAL = PoolSignal(concurrency=2, average_task_seconds=5.0, acceptable_latency_seconds=60.0, target_wait_seconds=30.0)
SHORT_TASKS = 4


def wait_for(client: redis.Redis, queue: str, ended: int, running: int, timeout: float = 90) -> QueueService:
    deadline = time.monotonic() + timeout
    while True:
        (seen,) = read_service(client, [queue], time.time())
        if seen.ended >= ended and seen.running == running:
            return seen
        assert time.monotonic() < deadline, f"workers recorded {seen}, expected {ended} ended, {running} running"
        time.sleep(0.2)


def test_publishes_measured_task_seconds_busy_processes_and_in_service(aws: None, tmp_path: Path) -> None:
    group("pool-svc", instances=2)
    queue = "svc_a"
    with RedisServer(appendonly=False) as server:
        app = sender_app(server.url)
        client = redis.Redis.from_url(server.url)
        worker = WorkerProcess(
            name="svc", queues=[queue], broker_url=server.url, log_path=tmp_path / "w.log", concurrency=2
        ).start()
        inspector = inspector_for(server.url)
        try:
            for _ in range(SHORT_TASKS):
                app.send_task("cluster.sleep", args=[SHORT_S], queue=queue)
            wait_for(client, queue, ended=SHORT_TASKS, running=0)
            # Held by the worker until its countdown: in flight, but not running.
            app.send_task("cluster.sleep", args=[0.1], queue=queue, countdown=300)
            for _ in range(2):
                app.send_task("cluster.sleep", args=[120], queue=queue)
            wait_for(client, queue, ended=SHORT_TASKS, running=2)
            config = PublisherConfig(
                broker_url=server.url,
                namespace=NAMESPACE,
                pools=(PoolQueues(name="svc", queues=(queue,), asg="pool-svc", signal=SIGNAL),),
            )
            publisher = Publisher(
                config,
                inspector,
                boto3.client("cloudwatch", region_name=REGION),
                boto3.client("autoscaling", region_name=REGION),
                service=RedisServiceReader(server.url),
            )
            data = publisher.sample()
        finally:
            worker.kill()
            worker.wait(15)
            inspector.close()
            client.close()
            app.close()

    assert all(d["StorageResolution"] == 1 for d in data)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    pool = {"Pool": "svc"}
    # The short tasks' measured run time: at least what they slept, far from the 120 s ones still running.
    task_seconds = latest(cloudwatch, METRIC_TASK_SECONDS, pool)
    assert SHORT_S <= task_seconds < 120, task_seconds
    # Two processes run a task; the countdown task is in flight but not running.
    assert latest(cloudwatch, METRIC_BUSY_PROCESSES, pool) == 2
    assert latest(cloudwatch, METRIC_IN_FLIGHT, {**pool, "Queue": queue}) == 3
    assert latest(cloudwatch, METRIC_IN_SERVICE, pool) == 2
    # The capacity rule on those very numbers: nothing waits, 3 in flight of which 2 run, 2 in service.
    expected = capacity(Sample(waiting=0, in_flight=3, busy=2, task_seconds=task_seconds, in_service=2), SIGNAL)
    assert expected.needed is not None
    assert latest(cloudwatch, METRIC_CAPACITY_NEEDED, pool) == pytest.approx(expected.needed)
    assert latest(cloudwatch, METRIC_LOAD_WITH_ONE_FEWER, pool) == pytest.approx(expected.load_with_one_fewer)
    assert latest(cloudwatch, METRIC_NEEDED_AT_ZERO, pool) == 0


def test_a_stale_running_entry_is_dropped_and_no_task_time_is_made_up() -> None:
    with RedisServer(appendonly=False) as server:
        client = redis.Redis.from_url(server.url)
        try:
            now = time.time()
            # A task whose process died three hours ago and that was never redelivered.
            client.zadd(running_key("q"), {"lost": now - 3 * 3600, "alive": now - 5})
            (seen,) = read_service(client, ["q"], now)
        finally:
            client.close()
    assert seen == QueueService("q", ended=0, seconds=0.0, running=1)
    snapshot = Snapshot(now, (QueueStats("q", waiting=0, in_flight=1, oldest_published_at=None),))
    values = {v.name: v.value for v in pool_values(("q",), snapshot, 3, {"q": seen})}
    assert values == {METRIC_IN_SERVICE: 3.0, METRIC_BUSY_PROCESSES: 1.0}  # no PoolTaskSeconds without an end


def test_rabbitmq_busy_is_the_in_flight_count() -> None:
    snapshot = Snapshot(0.0, (QueueStats("q", waiting=4, in_flight=3, oldest_published_at=None),))
    values = {v.name: v.value for v in pool_values(("q",), snapshot, 1, None)}
    assert values == {METRIC_IN_SERVICE: 1.0, METRIC_BUSY_PROCESSES: 3.0}
