"""The metrics publisher as AWS Lambda runs it: `worker.publisher.handler.handler(event, context)`, configured by its
environment (the broker URL from Secrets Manager), here on a real RabbitMQ node read through its management
API; Secrets Manager, Auto Scaling and CloudWatch on moto."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from infra.servers.rabbitmq import RabbitMQServer
from tests.support.moto_metrics import NAMESPACE, REGION, group, latest, moto_account
from worker.names import METRIC_BACKLOG, METRIC_BACKLOG_PER_INSTANCE
from worker.publisher import handler as publisher
from worker.publisher.queues import inspector_for
from worker.sender import sender_app

pytestmark = pytest.mark.rabbitmq


@dataclass
class LambdaContext:
    """The one method of Lambda's context object the handler uses."""

    remaining_ms: int

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(publisher, "_cached", None)  # a cold Lambda container
    with moto_account(monkeypatch, REGION):
        yield


def test_handler_publishes_a_rabbitmq_pool_and_stops_before_the_invocation_ends(
    aws: None, rabbitmq_server: RabbitMQServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"pub-{uuid.uuid4().hex[:8]}"
    group("pool-rabbit", instances=2)
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
        Name="broker", SecretString=json.dumps({"url": rabbitmq_server.url})
    )["ARN"]
    pools = [{"name": "rabbit", "queues": [queue], "asg": "pool-rabbit"}]
    for name, value in {
        "BROKER_SECRET_ARN": arn,
        "RABBITMQ_MANAGEMENT_URL": rabbitmq_server.management_url,
        "METRIC_NAMESPACE": NAMESPACE,
        "POOLS_JSON": json.dumps(pools),
        "SAMPLES": "3",
        "SAMPLE_INTERVAL_SECONDS": "1",
    }.items():
        monkeypatch.setenv(name, value)

    app = sender_app(rabbitmq_server.url)
    try:
        for _ in range(6):
            app.send_task("cluster.sleep", args=[60], queue=queue)
    finally:
        app.close()
    # The management API counts a message once its statistics interval has passed: wait to see all six.
    inspector = inspector_for(rabbitmq_server.url, rabbitmq_server.management_url)
    deadline = time.monotonic() + 60
    try:
        while inspector.inspect([queue]).waiting != 6:
            assert time.monotonic() < deadline, "RabbitMQ never reported the six messages"
            time.sleep(0.5)
    finally:
        inspector.close()

    # A whole minute left: every sample is taken.
    assert publisher.handler({}, LambdaContext(remaining_ms=60_000)) == {"samples": 3}
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    assert latest(cloudwatch, METRIC_BACKLOG, {"Pool": "rabbit"}) == 6
    assert latest(cloudwatch, METRIC_BACKLOG_PER_INSTANCE, {"Pool": "rabbit"}) == 3
    # The warm container reuses its publisher; with 3 s left it takes the first sample and stops
    # rather than sleep past the end of the invocation (each later sample needs its wait + 5 s).
    cached = publisher._cached
    assert publisher.handler({}, LambdaContext(remaining_ms=3_000)) == {"samples": 1}
    assert publisher._cached is cached
    # A rotated password: the secret is read at each invocation, and a new URL opens new connections.
    rotated = rabbitmq_server.url.replace("127.0.0.1", "localhost")
    assert rotated != rabbitmq_server.url
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=arn, SecretString=json.dumps({"url": rotated})
    )
    assert publisher.handler({}, LambdaContext(remaining_ms=3_000)) == {"samples": 1}
    assert publisher._cached is not cached
    assert publisher._cached is not None
    assert publisher._cached.config.broker_url == rotated
