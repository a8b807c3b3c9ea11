"""Measured task time on RabbitMQ: real worker processes send their summaries to the stats queue of a
RabbitMQ node of our own, the real publisher reads them and publishes PoolTaskSeconds (CloudWatch and
Auto Scaling on moto).

Bounds come from what the test controls, not from how fast this machine is: a task that sleeps S
seconds ran at least S (the worker times it on the monotonic clock around the sleep), and no task
ran longer than the time from its send to the reader seeing its end (the same clock: the worker
sends a summary only after the end). Counts are exact.
"""

from __future__ import annotations

import time

import boto3
import pytest
from kombu.connection import Connection
from kombu.entity import Queue

from infra.servers.rabbitmq import RabbitMQServer
from tests.support.brokers import Broker
from tests.support.fixtures import ClusterFactory
from tests.support.moto_metrics import NAMESPACE, REGION, group, latest
from worker.names import METRIC_BUSY_PROCESSES, METRIC_TASK_SECONDS
from worker.publisher.handler import PoolQueues, Publisher, PublisherConfig
from worker.publisher.queues import QueueStats, Snapshot, inspector_for
from worker.publisher.rabbit_service import RabbitServiceReader
from worker.publisher.service_metrics import pool_values
from worker.runtime.rabbit_task_stats import MAX_MESSAGES, SEND_SECONDS, STATS_QUEUE, WINDOW_SECONDS, stats_queue
from worker.runtime.task_stats import QueueService

pytestmark = [pytest.mark.rabbitmq, pytest.mark.timeout(240)]

SHORT_S = 0.3
SHORT_TASKS = 4
LONG_S = 2.0
LONG_TASKS = 2


@pytest.fixture
def node(rabbitmq_server: RabbitMQServer) -> Broker:
    """Our own node (no other run's publisher reads its stats queue), emptied of earlier tests' summaries."""
    with Connection(rabbitmq_server.url) as connection:
        stats_queue()(connection.default_channel).declare()
        connection.default_channel.queue_purge(STATS_QUEUE)
    return Broker("rabbitmq", rabbitmq_server.url, rabbitmq_server)


def read_until(reader: RabbitServiceReader, queues: list[str], ended: dict[str, int], timeout: float = 90) -> float:
    """Until the reader has seen exactly `ended` tasks per queue; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {s.queue: s.ended for s in reader.read(queues, time.time())}
        if seen == ended:
            return time.monotonic()
        assert all(seen[q] <= ended[q] for q in queues), f"more ends than tasks: {seen}, sent {ended}"
        assert time.monotonic() < deadline, f"the reader saw {seen}, expected {ended}"
        time.sleep(0.2)


def test_publishes_what_the_tasks_took_per_pool(aws: None, node: Broker, cluster_factory: ClusterFactory) -> None:
    group("pool-short", instances=1)
    group("pool-long", instances=1)
    short, long = cluster_factory(node), cluster_factory(node)
    short.start_worker(concurrency=2)
    long.start_worker(concurrency=2)
    reader = RabbitServiceReader(node.url)
    queues = [short.queue, long.queue]
    try:
        sent_at = time.monotonic()
        short_ids = short.send("cluster.sleep", [SHORT_S], count=SHORT_TASKS)
        long_ids = long.send("cluster.sleep", [LONG_S], count=LONG_TASKS)
        seen_at = read_until(reader, queues, {short.queue: SHORT_TASKS, long.queue: LONG_TASKS})
        assert short.tally(short_ids).completed == SHORT_TASKS
        assert long.tally(long_ids).completed == LONG_TASKS
        config = PublisherConfig(
            broker_url=node.url,
            namespace=NAMESPACE,
            pools=(
                PoolQueues(name="short", queues=(short.queue,), asg="pool-short"),
                PoolQueues(name="long", queues=(long.queue,), asg="pool-long"),
            ),
            management_url=node.server.management_url if isinstance(node.server, RabbitMQServer) else None,
        )
        inspector = inspector_for(node.url, config.management_url)
        try:
            publisher = Publisher(
                config,
                inspector,
                boto3.client("cloudwatch", region_name=REGION),
                boto3.client("autoscaling", region_name=REGION),
                service=reader,
            )
            data = publisher.sample()
        finally:
            inspector.close()
    finally:
        reader.close()

    envelope = seen_at - sent_at
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    published = {d["Dimensions"][0]["Value"]: d["Value"] for d in data if d["MetricName"] == METRIC_TASK_SECONDS}
    assert set(published) == {"short", "long"}
    # Each pool's mean is of its own tasks only: at least their sleep, at most the send-to-seen envelope.
    assert SHORT_S <= published["short"] <= envelope, (published, envelope)
    assert LONG_S <= published["long"] <= envelope, (published, envelope)
    assert latest(cloudwatch, METRIC_TASK_SECONDS, {"Pool": "short"}) == published["short"]
    # Busy processes on RabbitMQ are the in-flight count, and nothing is in flight now.
    assert latest(cloudwatch, METRIC_BUSY_PROCESSES, {"Pool": "short"}) == 0


def test_the_window_survives_a_new_reader_and_ends_with_no_value(node: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(node)
    cluster.start_worker(concurrency=1)
    first = RabbitServiceReader(node.url)
    try:
        cluster.send("cluster.sleep", [SHORT_S], count=2)
        read_until(first, [cluster.queue], {cluster.queue: 2})
    finally:
        first.close()  # hands what it held back to the broker
    second = RabbitServiceReader(node.url)
    try:
        read_until(second, [cluster.queue], {cluster.queue: 2})
        # Past the window (and the send period that may date a summary late), nothing is left and
        # no task time is published: the aged-out summaries are acked, so the queue is empty too.
        later = time.time() + WINDOW_SECONDS + SEND_SECONDS + 1
        (seen,) = second.read([cluster.queue], later)
        assert seen == QueueService(cluster.queue, ended=0, seconds=0.0, running=None)
        assert second.held == 0
        snapshot = Snapshot(later, (QueueStats(cluster.queue, waiting=0, in_flight=0, oldest_published_at=None),))
        names = {v.name for v in pool_values((cluster.queue,), snapshot, 1, {cluster.queue: seen})}
        assert METRIC_TASK_SECONDS not in names
    finally:
        second.close()
    assert _ready(node.url) == 0


def _ready(url: str) -> int:
    with Connection(url) as connection:
        _, count, _ = connection.default_channel.queue_declare(STATS_QUEUE, passive=True)
    return int(count)


def test_the_stats_queue_keeps_at_most_its_length_limit(node: Broker) -> None:
    extra = 500
    with Connection(node.url) as connection:
        producer = connection.Producer()
        queue: Queue = stats_queue()
        for index in range(MAX_MESSAGES + extra):
            producer.publish(
                {"at": time.time(), "queues": {"bound": [1, float(index)]}},
                routing_key=STATS_QUEUE,
                exchange="",
                delivery_mode=1,
                declare=[queue] if index == 0 else [],
                serializer="json",
            )
    deadline = time.monotonic() + 60
    while (count := _ready(node.url)) < MAX_MESSAGES:
        assert time.monotonic() < deadline, f"{count} ready after publishing {MAX_MESSAGES + extra}"
        time.sleep(0.2)
    assert count == MAX_MESSAGES
    # The oldest went first: a reader sees the newest MAX_MESSAGES summaries.
    reader = RabbitServiceReader(node.url)
    try:
        (seen,) = reader.read(["bound"], time.time())
        assert seen.ended == MAX_MESSAGES
        first_kept = extra
        assert seen.seconds == sum(range(first_kept, MAX_MESSAGES + extra))
    finally:
        reader.close()


def test_a_draining_worker_sends_what_it_has_before_it_exits(node: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(node)
    worker = cluster.start_worker(concurrency=1)
    sent = cluster.send("cluster.sleep", [SHORT_S], count=3)
    # One process: the first end is sent at once, the next ones wait for the send period, unless the
    # process exits first (a scale-in's drain), when it sends them on its way out.
    assert cluster.wait_all(sent, timeout=60).completed == 3
    worker.terminate()
    assert worker.wait(60) == 0, cluster.log_tail(worker)
    reader = RabbitServiceReader(node.url)
    try:
        read_until(reader, [cluster.queue], {cluster.queue: 3})
        (seen,) = reader.read([cluster.queue], time.time())
    finally:
        reader.close()
    assert seen.seconds >= 3 * SHORT_S
