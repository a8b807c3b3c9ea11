"""Queues of one test on a Redis of the session (the fixtures' own server on a free port, or REDIS_URL
when set): every name carries a prefix of its own, and the keys are deleted afterwards, so tests never
see each other's messages. For in-process tests of code that publishes and consumes (dead letters),
which mutation testing can see, unlike a worker subprocess."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message

from infra.servers.redis import RedisServer


@dataclass(frozen=True)
class RedisQueues:
    url: str
    prefix: str

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def depth(self, queue: str) -> int:
        """Messages waiting in `queue` (kombu's Redis transport keeps a queue as a list of that name)."""
        return int(redis.Redis.from_url(self.url).llen(queue))

    def publish(self, queue: str, body: Any, **properties: Any) -> None:
        destination = Queue(queue, Exchange(queue, type="direct", durable=True), routing_key=queue, durable=True)
        with Connection(self.url) as connection:
            connection.Producer().publish(
                body, exchange=destination.exchange, routing_key=queue, declare=[destination], **properties
            )

    def take(self, queue: str) -> list[Message]:
        """Every message in `queue`, removed (acked), oldest first."""
        taken: list[Message] = []
        with Connection(self.url) as connection:
            bound = Queue(queue, Exchange(queue, type="direct", durable=True), routing_key=queue)(connection)
            while (message := bound.get(no_ack=True, accept=["json", "application/data"])) is not None:
                taken.append(message)
        return taken


@pytest.fixture(scope="session")
def queues_redis_url(request: pytest.FixtureRequest) -> str:
    """REDIS_URL when set (as for the `broker` fixture), else the session's own server."""
    external = os.environ.get("REDIS_URL")
    if external:
        return external
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def redis_queues(queues_redis_url: str) -> Iterator[RedisQueues]:
    queues = RedisQueues(queues_redis_url, f"test-{uuid.uuid4().hex[:12]}")
    yield queues
    client = redis.Redis.from_url(queues.url)
    for key in client.scan_iter(match=f"*{queues.prefix}*", count=1000):
        client.delete(key)
