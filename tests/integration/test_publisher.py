"""The metrics publisher: real Redis, tasks from the real client, a real worker holding one in flight;
the AWS side (Secrets Manager, Auto Scaling, CloudWatch) on moto, which validates against the models."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.workers import WorkerProcess
from infra.servers.redis import RedisServer
from tests.support.moto_metrics import NAMESPACE, REGION, group, latest
from worker.names import METRIC_BACKLOG, METRIC_BACKLOG_PER_INSTANCE, METRIC_IN_FLIGHT, METRIC_OLDEST_AGE
from worker.publisher.handler import PoolQueues, Publisher, PublisherConfigError, load_config, metric_data
from worker.publisher.queues import QueueStats, Snapshot, inspector_for
from worker.sender import sender_app


@pytest.mark.redis
def test_publishes_backlog_per_instance_with_in_flight(aws: None, tmp_path: Path) -> None:
    group("pool-default", instances=2)
    group("pool-idle", instances=0)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    with RedisServer(appendonly=False) as server:
        arn = secrets.create_secret(Name="broker", SecretString=json.dumps({"url": server.url}))["ARN"]
        pools = [
            {"name": "default", "queues": ["pub_a", "pub_b"], "asg": "pool-default"},
            {"name": "idle", "queues": ["pub_idle"], "asg": "pool-idle"},
        ]
        config = load_config(
            {"BROKER_SECRET_ARN": arn, "METRIC_NAMESPACE": NAMESPACE, "POOLS_JSON": json.dumps(pools)},
            secrets=secrets,
        )
        assert config.broker_url == server.url
        app = sender_app(server.url)
        sent_at = time.time()
        for _ in range(4):
            app.send_task("cluster.sleep", args=[60], queue="pub_a")
        app.send_task("cluster.sleep", args=[60], queue="pub_b")
        for _ in range(3):
            app.send_task("cluster.sleep", args=[60], queue="pub_idle")

        worker = WorkerProcess(
            name="pub", queues=["pub_a"], broker_url=server.url, log_path=tmp_path / "w.log", concurrency=1
        ).start()
        inspector = inspector_for(server.url)
        try:
            deadline = time.monotonic() + 90
            while inspector.inspect(["pub_a"]).in_flight < 1:
                assert time.monotonic() < deadline, "the worker never took a task"
                time.sleep(0.3)
            publisher = Publisher(
                config,
                inspector,
                boto3.client("cloudwatch", region_name=REGION),
                boto3.client("autoscaling", region_name=REGION),
            )
            data = publisher.sample()
        finally:
            worker.kill()
            worker.wait(15)
            inspector.close()

    assert all(d["StorageResolution"] == 1 for d in data)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    # default: 3 waiting + 1 running on pub_a, 1 waiting on pub_b = 5, over 2 in-service instances.
    assert latest(cloudwatch, METRIC_BACKLOG, {"Pool": "default"}) == 5
    assert latest(cloudwatch, METRIC_BACKLOG_PER_INSTANCE, {"Pool": "default"}) == 2.5
    assert latest(cloudwatch, METRIC_IN_FLIGHT, {"Pool": "default", "Queue": "pub_a"}) == 1
    age = latest(cloudwatch, METRIC_OLDEST_AGE, {"Pool": "default"})
    assert 0 <= age <= time.time() - sent_at
    # A pool at zero instances still reports its whole backlog, so it can scale from zero.
    assert latest(cloudwatch, METRIC_BACKLOG_PER_INSTANCE, {"Pool": "idle"}) == 3


def test_run_takes_the_samples_and_stops_before_the_deadline() -> None:
    calls: list[float] = []
    now = [0.0]

    class Stub(Publisher):
        def sample(self) -> list[dict[str, Any]]:
            calls.append(now[0])
            return []

    config = load_config(
        {
            "BROKER_URL": "redis://127.0.0.1:1/0",
            "METRIC_NAMESPACE": NAMESPACE,
            "POOLS_JSON": '[{"name":"p","queues":["q"],"asg":"g"}]',
        }
    )
    stub = Stub(config, inspector=None, cloudwatch=None, autoscaling=None)  # type: ignore[arg-type]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    # The configured samples, interval_seconds apart from the start (6 x 10 s: one Lambda run a minute).
    assert stub.run(sleep=sleep, clock=lambda: now[0]) == config.samples
    assert calls == [i * config.interval_seconds for i in range(config.samples)]
    calls.clear()
    now[0] = 0.0
    # 28 s left in the invocation: samples at 0, 10 and 20, then no room for 30 (+5 s margin).
    assert stub.run(remaining_seconds=lambda: 28 - now[0], sleep=sleep, clock=lambda: now[0]) == 3


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"METRIC_NAMESPACE": "n", "POOLS_JSON": "[]"}, "BROKER_SECRET_ARN: is required"),
        (
            {"BROKER_URL": "redis://h/0", "POOLS_JSON": '[{"name":"p","queues":["q"],"asg":"g"}]'},
            "METRIC_NAMESPACE: is required",
        ),
        ({"BROKER_URL": "redis://h/0", "METRIC_NAMESPACE": "n", "POOLS_JSON": "[{"}, "POOLS_JSON"),
        ({"BROKER_URL": "redis://h/0", "METRIC_NAMESPACE": "n", "POOLS_JSON": '[{"name":"p"}]'}, "POOLS_JSON"),
        (
            {
                "BROKER_URL": "redis://h/0",
                "METRIC_NAMESPACE": "n",
                "POOLS_JSON": '[{"name":"p","queues":["q"],"asg":"g"}]',
                "SAMPLES": "x",
            },
            "SAMPLES",
        ),
    ],
)
def test_bad_environment_is_named(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(PublisherConfigError, match=fragment):
        load_config(environ)


def test_unknown_age_is_left_out_not_published_as_zero() -> None:
    # RabbitMQ without the AMQP timestamp property: the age of a non-empty queue is unknown.
    snapshot = Snapshot(1000.0, (QueueStats("q", waiting=5, in_flight=1, oldest_published_at=None),))
    pool = PoolQueues(name="p", queues=("q",), asg="g")
    data = metric_data([pool], snapshot, {"g": 2})
    names = {d["MetricName"] for d in data}
    assert METRIC_OLDEST_AGE not in names
    assert {d["MetricName"]: d["Value"] for d in data if len(d["Dimensions"]) == 1}[METRIC_BACKLOG_PER_INSTANCE] == 3.0


def test_pool_model_is_strict() -> None:
    with pytest.raises(ValueError, match="queues"):
        PoolQueues(name="p", queues=(), asg="g")
