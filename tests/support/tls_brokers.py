"""TLS brokers with credentials, as the stack runs them: a Redis that serves TLS only and wants
AUTH (ElastiCache, transit encryption `required`), and a RabbitMQ node with an AMQPS listener and
the management API on HTTPS (Amazon MQ). One throwaway CA signs both server certificates.

Their URLs come from the functions that write the stack's secrets (`infra.components.broker`),
with credentials made by the stack's password rules. Clients find the CA the way an instance
finds Amazon's: in the system store, which OpenSSL reads from SSL_CERT_FILE (`tls_broker` sets
it for the test and every process the test starts; the stack's assumption
`infra.components.broker.BROKER_CA_IN_SYSTEM_STORE`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from infra.components.broker import MQ_PASSWORD, MQ_USER, REDIS_AUTH_TOKEN, amqp_url, redis_url
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from infra.servers.tls import TlsFiles
from tests.support.brokers import Broker, BrokerKind
from tests.support.credentials import sample_password
from tests.support.fixtures import BOTH_BROKERS
from tests.support.tls import make_tls_files

TLS_HOST = "localhost"  # a name, as the stack's endpoints are, and the one the certificate names


def tls_url(server: RedisServer | RabbitMQServer, password: str | None = None, host: str = TLS_HOST) -> str:
    """The URL the stack's secret would hold for this server (another password or host if given)."""
    if isinstance(server, RedisServer):
        assert server.password is not None
        return redis_url(password or server.password, host, server.port)
    # Amazon MQ lists an instance's AMQPS endpoint as amqps://host:port.
    return amqp_url(server.user, password or server.password, f"amqps://{host}:{server.port}")


MISNAMED_HOST = "broker.invalid"
"""The only name on the misnamed servers' certificates (RFC 2606: never resolves)."""


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), tls_ca)


@pytest.fixture(scope="session")
def misnamed_tls_files(tmp_path_factory: pytest.TempPathFactory, tls_ca: trustme.CA) -> TlsFiles:
    """A certificate from the trusted CA for another name: what a client must refuse all the same."""
    return make_tls_files(tmp_path_factory.mktemp("tls-misnamed"), tls_ca, names=[MISNAMED_HOST])


@pytest.fixture(scope="session")
def tls_redis_server(tls_files: TlsFiles) -> Iterator[RedisServer]:
    with RedisServer(tls=tls_files, password=sample_password(REDIS_AUTH_TOKEN)) as server:
        yield server


@pytest.fixture(scope="session")
def tls_rabbitmq_server(tls_files: TlsFiles) -> Iterator[RabbitMQServer]:
    with RabbitMQServer(tls=tls_files, user=MQ_USER, password=sample_password(MQ_PASSWORD)) as server:
        yield server


@pytest.fixture(scope="session")
def misnamed_redis_server(misnamed_tls_files: TlsFiles) -> Iterator[RedisServer]:
    with RedisServer(appendonly=False, tls=misnamed_tls_files, password=sample_password(REDIS_AUTH_TOKEN)) as server:
        yield server


@pytest.fixture(scope="session")
def misnamed_rabbitmq_server(misnamed_tls_files: TlsFiles) -> Iterator[RabbitMQServer]:
    with RabbitMQServer(tls=misnamed_tls_files, user=MQ_USER, password=sample_password(MQ_PASSWORD)) as server:
        yield server


@pytest.fixture(params=BOTH_BROKERS)
def tls_broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tls_files: TlsFiles) -> Broker:
    """A TLS broker of ours (the test may restart it), its CA in the system store for this test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    kind: BrokerKind = request.param
    server: RedisServer | RabbitMQServer = request.getfixturevalue(f"tls_{kind}_server")
    return Broker(kind, tls_url(server), server)
