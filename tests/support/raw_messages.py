"""Messages no well-behaved producer sends, put on a cluster's queue as they are.

`publish_task_body` sends Celery's headers for a task with any body; `push_redis_envelope` puts bytes
on a Redis queue's list where kombu's envelope (a JSON object with `properties`) should be;
`publish_amqp` publishes an AMQP message with only the properties given.
"""

from __future__ import annotations

import uuid
from typing import Any

import amqp
import redis
from kombu.connection import Connection

from tests.support.cluster import Cluster
from worker.runtime.celeryconfig import queue as queue_entity
from worker.runtime.settings import load_settings


def publish_task_body(cluster: Cluster, task: str, body: bytes, content_type: str, encoding: str = "utf-8") -> str:
    """Publish a message with Celery's headers for `task` but the given body and content type; its task id."""
    task_id = str(uuid.uuid4())
    message = cluster.client.amqp.as_task_v2(task_id, task, args=("x",), kwargs={})
    destination = queue_entity(cluster.queue, load_settings(broker_url=cluster.broker.url, default_queue=cluster.queue))
    with Connection(cluster.broker.url) as connection:
        connection.Producer().publish(
            body,
            exchange=destination.exchange,
            routing_key=destination.routing_key,
            declare=[destination],
            headers=message.headers,
            content_type=content_type,
            content_encoding=encoding,
            **message.properties,
        )
    return task_id


def celery_headers(cluster: Cluster, task: str) -> dict[str, Any]:
    """The headers Celery's protocol 2 puts on a message for `task` (a fresh task id)."""
    headers: dict[str, Any] = cluster.client.amqp.as_task_v2(str(uuid.uuid4()), task, args=(), kwargs={}).headers
    return headers


def push_redis_envelope(cluster: Cluster, raw: bytes) -> None:
    """Put `raw` on the cluster's Redis queue where kombu keeps its JSON envelopes (LPUSH, as kombu does)."""
    client = redis.Redis.from_url(cluster.broker.url)
    try:
        client.lpush(cluster.queue, raw)
    finally:
        client.close()


def publish_amqp(cluster: Cluster, body: bytes, **properties: Any) -> None:
    """Publish an AMQP message to the cluster's queue with only `properties` (none at all by default)."""
    destination = queue_entity(cluster.queue, load_settings(broker_url=cluster.broker.url, default_queue=cluster.queue))
    with Connection(cluster.broker.url) as connection:
        channel = connection.channel()
        destination(channel).declare()
        channel.basic_publish(amqp.Message(body, **properties), exchange=cluster.queue, routing_key=cluster.queue)
        channel.close()
