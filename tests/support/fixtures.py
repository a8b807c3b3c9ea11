"""Fixtures for tests against real brokers and real worker processes (see tests/support/cluster.py).

Servers are started once per session on free ports: Redis as the stack runs it (AOF, noeviction),
RabbitMQ as its own node with the management API. REDIS_URL / AMQP_URL, when set, replace the
broker of the tests that do not restart it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from tests.support.brokers import Broker, BrokerKind
from tests.support.cluster import Cluster

BOTH_BROKERS = [
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("rabbitmq", marks=pytest.mark.rabbitmq, id="rabbitmq"),
]

ClusterFactory = Callable[..., Cluster]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    with RabbitMQServer() as server:
        yield server


@pytest.fixture(scope="session")
def journal_url() -> Iterator[str]:
    """The execution journal: a Redis that no test restarts, so a broker restart cannot erase the count."""
    with RedisServer(appendonly=False) as server:
        yield server.url


def _own_broker(request: pytest.FixtureRequest, kind: BrokerKind) -> Broker:
    server: RedisServer | RabbitMQServer = request.getfixturevalue(f"{kind}_server")
    return Broker(kind, server.url, server)


@pytest.fixture(params=BOTH_BROKERS)
def broker(request: pytest.FixtureRequest) -> Broker:
    """Redis, then RabbitMQ: each test that takes it runs on both."""
    kind: BrokerKind = request.param
    external = os.environ.get("REDIS_URL" if kind == "redis" else "AMQP_URL")
    return Broker(kind, external) if external else _own_broker(request, kind)


@pytest.fixture(params=BOTH_BROKERS)
def own_broker(request: pytest.FixtureRequest) -> Broker:
    """Like `broker`, but always a server of ours: the test may restart it."""
    return _own_broker(request, request.param)


@pytest.fixture
def cluster_factory(journal_url: str, tmp_path: Path) -> Iterator[ClusterFactory]:
    clusters: list[Cluster] = []

    def make(broker: Broker, **settings: str) -> Cluster:
        made = Cluster(broker, journal_url, tmp_path / f"logs-{len(clusters)}", settings=settings)
        clusters.append(made)
        return made

    yield make
    for made in clusters:
        made.close()


@pytest.fixture
def cluster(broker: Broker, cluster_factory: ClusterFactory) -> Cluster:
    return cluster_factory(broker)
