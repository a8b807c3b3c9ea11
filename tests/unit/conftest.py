"""The unit tests start no process and reach no broker (`make test-unit`: pure code, in this process).
A test that needs either belongs in tests/integration, where the fixtures start brokers of their own."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

# The brokers' well-known ports (Redis; AMQP and its management API): a unit test that reaches one
# depends on a server it did not start. The integration fixtures start theirs on free ports.
BROKER_PORTS = frozenset({6379, 5672, 15672})

# The one child allowed: a render asks a child Python for the tasks worker.app registers, once per process
# (infra/config/periodic_capacity.py `registered_task_names`: importing the app in the test process would
# read the worker's settings and install its logging). It is part of what a render does, not the test's.
TASK_LIST = [sys.executable, "-m", "worker.scheduler.periodic"]


@pytest.fixture(autouse=True)
def _no_subprocess_and_no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def no_child(popen: subprocess.Popen[Any], argv: Any, *args: Any, **kwargs: Any) -> None:
        if list(argv) != TASK_LIST:
            raise AssertionError(f"a unit test started a subprocess {argv!r}: move it to tests/integration")
        execute_child(popen, argv, *args, **kwargs)

    connect = socket.socket.connect

    def no_broker(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in BROKER_PORTS:
            raise AssertionError(f"a unit test connected to a broker port {address}: move it to tests/integration")
        connect(sock, address)

    # Every subprocess (run, Popen, check_output) goes through Popen._execute_child.
    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_child)
    monkeypatch.setattr(socket.socket, "connect", no_broker)
