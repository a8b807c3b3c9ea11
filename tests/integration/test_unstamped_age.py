"""A producer that does not stamp still gets a queue age: a plain Celery app (a subprocess that never
imports our client) sends tasks to a real Redis and a real RabbitMQ, and the publisher, sampling as
it does on AWS (moto stands in for CloudWatch and Auto Scaling), publishes an age for the queue that
is at most one sample interval younger than the truth (on RabbitMQ, plus its statistics interval),
never older, along with the unstamped count. `python -m worker.publisher --once` prints a sample."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest

from tests.support.brokers import Broker
from tests.support.cluster import unique
from tests.support.moto_metrics import REGION
from worker.names import METRIC_OLDEST_AGE, METRIC_QUEUES_WITHOUT_AGE, METRIC_UNSTAMPED
from worker.publisher.handler import PoolQueues, Publisher, PublisherConfig
from worker.publisher.queues import inspector_for

INTERVAL = 1.0
# RabbitMQ's management statistics (message counts, the publish counter) are emitted every
# collect_statistics_interval, 5 s by default (https://www.rabbitmq.com/docs/management#statistics-interval).
RABBITMQ_STATISTICS_INTERVAL = 5.0

PLAIN_PRODUCER = """
import sys
from celery import Celery
app = Celery(broker=sys.argv[1])
for _ in range(int(sys.argv[3])):
    app.send_task("cluster.sleep", args=[0], queue=sys.argv[2])
"""


def _send_plain(broker: Broker, queue: str, count: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_PRODUCER, broker.url, queue, str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _value(data: list[dict[str, Any]], name: str, **dimensions: str) -> float | None:
    wanted = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    found = [d["Value"] for d in data if d["MetricName"] == name and d["Dimensions"] == wanted]
    return found[0] if found else None


@pytest.mark.usefixtures("aws")
def test_a_plain_celery_producer_still_gets_a_queue_age(broker: Broker) -> None:
    queue = unique("plain")
    management = getattr(broker.server, "management_url", None) if not broker.is_redis else None
    inspector = inspector_for(broker.url, management)
    pools = (PoolQueues(name="plain", queues=(queue,), asg="none"),)
    publisher = Publisher(
        config=PublisherConfig(broker_url=broker.url, namespace="CeleryCluster/test", pools=pools),
        inspector=inspector,
        cloudwatch=boto3.client("cloudwatch", region_name=REGION),
        autoscaling=boto3.client("autoscaling", region_name=REGION),
    )
    # RabbitMQ emits queue statistics every collect_statistics_interval (5 s) and the management
    # plugin aggregates them after that: on a node starved of CPU the count arrived 5.2 s late
    # (measured with two CPU hogs beside the suite), so allow two intervals there.
    lag = 0.0 if broker.is_redis else 2 * RABBITMQ_STATISTICS_INTERVAL
    try:
        # The publisher has been watching the queue before the tasks arrive.
        previous = publisher.sample()[0]["Timestamp"].timestamp()
        before = time.time()
        _send_plain(broker, queue, 3)
        after = time.time()
        ages: list[float] = []
        times: list[float] = []
        deadline = after + 30 + lag
        while len(ages) < 3 and time.time() < deadline:
            time.sleep(INTERVAL)
            data = publisher.sample()
            taken = data[0]["Timestamp"].timestamp()
            if _value(data, "QueueWaiting", Pool="plain", Queue=queue):
                age = _value(data, METRIC_OLDEST_AGE, Pool="plain", Queue=queue)
                if age is None and not broker.is_redis and not ages:
                    # RabbitMQ's management API can list the ready messages a sample before the publish
                    # counter that dates an unstamped head (seen once, with two suites and two CPU hogs
                    # on the machine): no age until the counter arrives, then one that keeps growing. The
                    # bound below then counts from the sample before the tasks were first seen.
                    continue
                assert age is not None, "a waiting queue without a stamp got no age"
                # Redis: all three are among the oldest the publisher reads; RabbitMQ: the head only.
                assert _value(data, METRIC_UNSTAMPED, Pool="plain", Queue=queue) == (3 if broker.is_redis else 1)
                assert _value(data, METRIC_QUEUES_WITHOUT_AGE, Pool="plain") == 0
                # Never older than the truth; younger by at most one sample interval (the gap since
                # the sample before the first one that saw the tasks) plus the statistics lag.
                assert age <= taken - before
                ages.append(age)
                times.append(taken)
                if len(ages) == 1:
                    assert age >= taken - after - (taken - previous) - lag, (age, taken - after)
            previous = taken
        assert len(ages) == 3, "the tasks never showed up in the queue"
        # The same oldest message, dated once: its age grows with the clock.
        assert ages[-1] - ages[0] == pytest.approx(times[-1] - times[0], abs=0.01)
    finally:
        inspector.close()


@pytest.mark.redis
def test_publisher_once_prints_one_sample_as_json(redis_server: Any) -> None:
    from worker.sender import sender_app  # noqa: PLC0415 - stamps what it sends

    queue = unique("once")
    app = sender_app(redis_server.url)
    try:
        app.send_task("cluster.sleep", args=[0], queue=queue)
    finally:
        app.close()
    done = subprocess.run(
        [sys.executable, "-m", "worker.publisher", "--once", "--broker-url", redis_server.url, "--queues", queue],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["queues"][queue]["waiting"] == 1
    assert printed["queues"][queue]["unstamped"] == 0
    assert printed["queues"][queue]["oldest_age_seconds"] >= 0
    names = {m["MetricName"] for m in printed["metrics"]}
    assert {"QueueWaiting", "QueueInFlight", METRIC_OLDEST_AGE, "PoolBacklog", METRIC_UNSTAMPED} <= names
