"""The production broker path: TLS with credentials on both brokers, as every deployed stack runs it.

Redis serves TLS only and wants AUTH (ElastiCache with transit encryption `required`); RabbitMQ
has an AMQPS listener only and its management API on HTTPS (Amazon MQ). The URLs are the ones
the stack's secrets hold, made by `infra.components.broker.redis_url` / `amqp_url` from
credentials of the stack's password rules (tests/support/tls_brokers.py), and the CA reaches
every client through the system store (SSL_CERT_FILE), as Amazon's does on an instance.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.rabbitmq_server import RabbitMQServer
from infra.local.workers import REPO_ROOT
from tests.integration import test_worker_faults as faults
from tests.support.brokers import Broker
from tests.support.fixtures import ClusterFactory
from worker.names import METRIC_IN_FLIGHT, METRIC_OLDEST_AGE, METRIC_WAITING
from worker.publisher import Publisher, load_config
from worker.queues import inspector_for, management_url_for

REGION = "eu-west-1"
NAMESPACE = "CeleryCluster/tls"
# The one task that holds the worker while the test looks at the broker; the observation needs a
# few statistics refreshes of RabbitMQ (1 s on the test node) and a control round trip.
HOLD_SECONDS = 8.0


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _publisher_environment(broker: Broker, pools: list[dict[str, Any]]) -> dict[str, str]:
    """The publisher's environment on AWS: its secret holds the bare broker URL (what `Broker`
    writes to `publisher-url`). Amazon MQ serves the management API on 443, which a test cannot
    bind, so only the port is given (the URL is still `management_url_for`'s)."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name=f"publisher-{uuid.uuid4().hex[:8]}", SecretString=broker.url)["ARN"]
    environ = {"BROKER_SECRET_ARN": arn, "METRIC_NAMESPACE": NAMESPACE, "POOLS_JSON": json.dumps(pools)}
    if isinstance(broker.server, RabbitMQServer):
        environ["RABBITMQ_MANAGEMENT_URL"] = management_url_for(broker.url, port=broker.server.management_port)
    return environ


def _group(name: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    boto3.client("autoscaling", region_name=REGION).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
    )


def _by_name(data: list[dict[str, Any]], queue: str) -> dict[str, float]:
    return {d["MetricName"]: d["Value"] for d in data if {"Name": "Queue", "Value": queue} in d["Dimensions"]}


@pytest.mark.slow
def test_worker_acks_late_returns_results_and_the_publisher_reads_the_queue(
    tls_broker: Broker, cluster_factory: ClusterFactory, aws: None
) -> None:
    cluster = cluster_factory(tls_broker)
    worker = cluster.start_worker(concurrency=1)

    pong = cluster.client.send_task("cluster.ping", queue=cluster.queue).get(timeout=30)
    assert pong["hostname"] == socket.gethostname()
    tokens = [uuid.uuid4().hex for _ in range(3)]
    results = [cluster.client.send_task("cluster.canary", args=[t], queue=cluster.queue) for t in tokens]
    assert [r.get(timeout=30) for r in results] == tokens

    _group("tls-pool")
    pools = [{"name": "tls", "queues": [cluster.queue], "asg": "tls-pool"}]
    config = load_config(_publisher_environment(tls_broker, pools), secrets=boto3.client("secretsmanager"))
    assert config.broker_url == tls_broker.url
    sent_at = time.time()
    (held,) = cluster.send("cluster.sleep", [HOLD_SECONDS])
    waiting = cluster.send("cluster.sleep", [0.1], count=2)

    # Late ack: the running task's message is still unacknowledged on the broker.
    destination = [f"{worker.name}@{socket.gethostname()}"]
    deadline = time.monotonic() + HOLD_SECONDS
    running: list[dict[str, Any]] = []
    while not running:
        assert time.monotonic() < deadline, f"the held task never showed as running\n{cluster.log_tail()}"
        replies = cluster.client.control.inspect(destination=destination, timeout=1.0).active() or {}
        running = [task for tasks in replies.values() for task in tasks if task["id"] == held]
    assert running[0]["acknowledged"] is False, running

    inspector = inspector_for(config.broker_url, config.management_url)
    try:
        snapshot = inspector.inspect([cluster.queue])
        while (snapshot.waiting, snapshot.in_flight) != (2, 1):
            assert time.monotonic() < deadline, f"publisher saw {snapshot}, not 2 waiting and 1 in flight"
            time.sleep(0.3)
            snapshot = inspector.inspect([cluster.queue])
        publisher = Publisher(config, inspector, boto3.client("cloudwatch"), boto3.client("autoscaling"))
        data = _by_name(publisher.sample(), cluster.queue)
    finally:
        inspector.close()
    assert data[METRIC_WAITING] == 2
    assert data[METRIC_IN_FLIGHT] == 1
    assert 0 <= data[METRIC_OLDEST_AGE] <= time.time() - sent_at + 1  # whole seconds on RabbitMQ

    done = cluster.wait_all([held, *waiting], timeout=HOLD_SECONDS + 30)
    assert done.lost == 0, cluster.log_tail()


def test_smoke_passes_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(tls_broker)
    cluster.start_worker(concurrency=2)
    done = subprocess.run(
        [
            str(REPO_ROOT / "scripts" / "smoke"),
            "--broker-url",
            tls_broker.url,
            "--pool",
            f"tls={cluster.queue}",
            "--count",
            "5",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"tls\s*│\s*5\s*│\s*5\s*│.*│\s*ok\s*│", done.stdout), done.stdout


@pytest.mark.slow
def test_sigkill_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    faults.test_sigkill_with_tasks_in_flight_loses_nothing(tls_broker, cluster_factory)


@pytest.mark.slow
def test_sigterm_drain_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    faults.test_sigterm_drains_in_flight_tasks_within_the_window(tls_broker, cluster_factory)


@pytest.mark.slow
def test_broker_restart_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    faults.test_broker_restart_under_load_loses_nothing(tls_broker, cluster_factory)
