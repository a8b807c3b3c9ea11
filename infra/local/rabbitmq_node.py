"""A throwaway RabbitMQ node with the management plugin, on free loopback ports.

The shared RabbitMQ on 5672 may run without the management plugin, and the queue inspector reads
the management API, so its tests and `make bench` start their own node. The worker-faults branch's
`infra/local/rabbitmq_server.py` (RabbitMQServer) does the same job; when both are on main, this
module can go and its users take that one (same `url` / `management_url` / context manager shape).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from infra.local.ports import free_port


@dataclass
class RabbitMQNode:
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    _dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"scaling-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    def start(self, timeout: float = 90.0) -> RabbitMQNode:
        binary = shutil.which("rabbitmq-server") or "/usr/sbin/rabbitmq-server"
        self._dir = Path(tempfile.mkdtemp(prefix="celery-cluster-rabbit-"))
        (self._dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            # Queue counts in the API refresh at this interval (default 5 s, as on Amazon MQ).
            "collect_statistics_interval = 1000\n"
        )
        (self._dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self._dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_MNESIA_DIR": str(self._dir / "mnesia" / self.name),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(self._dir / "feature_flags"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(self._dir / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(self._dir / "rabbit.pid"),
            "ERL_CRASH_DUMP": str(self._dir / "erl_crash.dump"),
        }
        for sub in ("mnesia", "log", "plugins-expand"):
            (self._dir / sub).mkdir()
        if os.geteuid() == 0:
            # Run as root, rabbitmq-server drops to the `rabbitmq` user: hand it the node's directory.
            for path in [self._dir, *self._dir.iterdir()]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self._process_rc: int | None = None
        log = (self._dir / "server.out").open("wb")
        self._process = subprocess.Popen([binary], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the API answers a little after the AMQP port opens
            if self._process.poll() is not None:
                output = (self._dir / "server.out").read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"rabbitmq-server exited with {self._process_rc}:\n{output}")
            try:
                if httpx.get(
                    f"http://127.0.0.1:{self.management_port}/api/overview", auth=("guest", "guest")
                ).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise TimeoutError(f"RabbitMQ management API did not answer on {self.management_port}")

    def close(self) -> None:
        if self._process is not None:
            self._process_rc = self._process.poll()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    _process_rc: int | None = None

    def __enter__(self) -> RabbitMQNode:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
