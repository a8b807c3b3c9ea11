"""Brokers for the integration tests: a server of our own on a free port, or one named by
REDIS_URL / AMQP_URL when set (then tests that restart the broker still start their own)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer

BrokerKind = Literal["redis", "rabbitmq"]


@dataclass
class Broker:
    kind: BrokerKind
    url: str
    # None when the server is someone else's (REDIS_URL / AMQP_URL): it must not be restarted.
    server: RedisServer | RabbitMQServer | None = None

    @property
    def is_redis(self) -> bool:
        return self.kind == "redis"

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server, leave it down for `down_for` seconds, start it on the same data."""
        if self.server is None:
            raise RuntimeError(f"{self.kind} broker {self.url} is not ours to restart")
        self.server.stop()
        time.sleep(down_for)
        self.server.start()
