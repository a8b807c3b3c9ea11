"""The producer client: routes applied, queues declared as the workers declare them, the producer
secret read through Secrets Manager (moto), and one-line errors for a bad source."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from celery_cluster_client import BrokerConnectionError, ClientConfigError, client_app, client_config
from celery_cluster_client.stamping import stamp
from infra.components.producer_access import producer_secret_document
from worker.runtime.celeryconfig import build_config
from worker.runtime.settings import load_settings

URL = "amqp://guest:guest@localhost:5672//"


def test_routes_pick_the_queue_and_unrouted_tasks_go_to_default() -> None:
    app = client_app(URL, routes={"invoices.*": "billing"}, environ={})
    router = app.amqp.router
    assert router.route({}, "invoices.send")["queue"].name == "billing"
    assert router.route({}, "cluster.ping")["queue"].name == "default"


def _declared(queue: Any) -> tuple[str, str, str, str, bool, bool, dict[str, Any]]:
    """What RabbitMQ compares when a queue is declared again: a difference is PRECONDITION_FAILED, 406
    (https://www.rabbitmq.com/docs/queues#property-equivalence)."""
    exchange = queue.exchange
    arguments = dict(queue.queue_arguments or {})
    return (queue.name, exchange.name, exchange.type, queue.routing_key, queue.durable, exchange.durable, arguments)


@pytest.mark.parametrize(
    ("broker_url", "queue_type", "arguments"),
    [
        (URL, "classic", {}),
        # A quorum queue is the x-queue-type argument (https://www.rabbitmq.com/docs/quorum-queues).
        (URL, "quorum", {"x-queue-type": "quorum"}),
        # Redis has no queue types: the argument is not sent there.
        ("redis://localhost:6379/0", "quorum", {}),
    ],
)
def test_queues_are_declared_as_the_contract_says_by_producer_and_worker(
    broker_url: str, queue_type: str, arguments: dict[str, str]
) -> None:
    """The contract, stated here rather than read from the one function both sides call: each queue durable,
    bound to a durable direct exchange of its own name by its name, with the queue type's argument. Producer
    and worker must both declare exactly that, or the second declare on RabbitMQ fails."""
    routes = {"invoices.*": "billing"}
    expected = [(name, name, "direct", name, True, True, arguments) for name in ("billing", "default")]
    ours = client_config(broker_url, routes, queue_type)["task_queues"]
    settings = load_settings(broker_url=broker_url, task_routes=json.dumps(routes), queue_type=queue_type)
    workers = build_config(settings)["task_queues"]
    assert sorted(_declared(q) for q in ours) == expected
    assert sorted(_declared(q) for q in workers if q.name in {"billing", "default"}) == expected


def test_a_stamp_is_kept_and_the_amqp_timestamp_follows_it() -> None:
    headers: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    stamp(headers=headers, properties=properties)
    assert isinstance(headers["published_at"], float)
    assert properties["timestamp"] == int(headers["published_at"])
    again = {"published_at": 1700000000.5}
    stamp(headers=again, properties={})
    assert again["published_at"] == 1700000000.5


@pytest.fixture
def secrets() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_the_producer_secret_gives_url_routes_and_queue_type(secrets: Any) -> None:
    document = producer_secret_document("amqps://celery:pw@b-1.mq.example:5671//", "quorum", {"reports.*": "reports"})
    arn = secrets.create_secret(Name="producers", SecretString=document)["ARN"]
    app = client_app(secret_id=arn, secrets_client=secrets, environ={})
    assert app.conf.broker_url == "amqps://celery:pw@b-1.mq.example:5671//"
    assert app.amqp.router.route({}, "reports.daily")["queue"].name == "reports"
    assert all(q.queue_arguments == {"x-queue-type": "quorum"} for q in app.conf.task_queues)
    # The same through the environment variable a producer's deployment sets.
    from_env = client_app(secrets_client=secrets, environ={"CELERY_CLUSTER_PRODUCER_SECRET": arn})
    assert from_env.conf.broker_url == app.conf.broker_url


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"broker_url": "http://h"}, "broker_url: must start with one of redis://"),
        ({"broker_url": URL, "routes": '{"a b": "q"}'}, "route 'a b'"),
        ({"broker_url": URL, "routes": "{nope"}, "routes: is not valid JSON"),
        ({"broker_url": URL, "queue_type": "stream"}, "queue type must be one of classic, quorum"),
        ({}, "no broker: pass broker_url= or secret_id="),
        ({"secret_id": "missing"}, "producer secret missing:"),
    ],
)
def test_a_bad_source_is_one_line(secrets: Any, kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ClientConfigError) as raised:
        client_app(**kwargs, secrets_client=secrets, environ={})
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)
    assert "guest:guest" not in str(raised.value)


def test_a_bad_route_table_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ClientConfigError) as raised:
        client_app(environ={"CELERY_BROKER_URL": URL, "CELERY_TASK_ROUTES": "{nope"})
    assert str(raised.value).startswith("CELERY_TASK_ROUTES: is not valid JSON ("), raised.value


@pytest.mark.parametrize("keep_result", [True, False])
def test_a_broker_that_is_not_there_is_one_line_naming_its_host_and_the_variable(keep_result: bool) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    app = client_app(environ={"CELERY_BROKER_URL": f"redis://:secret@127.0.0.1:{port}/0"})
    with pytest.raises(BrokerConnectionError) as raised:
        # With a result kept, Celery would first retry its result store 20 times (about 20 s) and raise a bare
        # RuntimeError ("Retry limit exceeded"); either way the producer gets this one line.
        app.send_task("cluster.ping", ignore_result=not keep_result)
    message = str(raised.value)
    assert message.startswith(f"cannot use the broker at 127.0.0.1:{port} (CELERY_BROKER_URL) to send cluster.ping: ")
    assert "\n" not in message
    assert "secret" not in message
    assert raised.value.__cause__ is None  # no chained traceback
    assert raised.value.__suppress_context__
