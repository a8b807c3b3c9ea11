"""A missing broker binary fails with the command that installs it, not a bare FileNotFoundError."""

from __future__ import annotations

import pytest

from infra.servers import rabbitmq as rabbitmq_server
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer, ServerNotInstalledError


def test_missing_redis_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServerNotInstalledError, match="apt-get install redis-server"):
        RedisServer().start()


def test_missing_rabbitmq_server_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RABBITMQ_SERVER_BIN", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(rabbitmq_server, "_CANDIDATES", ())
    with pytest.raises(ServerNotInstalledError, match="apt-get install rabbitmq-server"):
        RabbitMQServer().start()


def test_a_wrong_rabbitmq_server_bin_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_SERVER_BIN", "/nonexistent/rabbitmq-server")
    with pytest.raises(ServerNotInstalledError, match="RABBITMQ_SERVER_BIN=/nonexistent/rabbitmq-server"):
        RabbitMQServer().start()
