"""A throwaway RabbitMQ node with the management plugin, on free loopback ports.

The shared RabbitMQ on 5672 may run without the management plugin, and the queue inspector reads
the management API, so its tests and `make bench` start their own node. The worker-faults branch's
`infra/local/rabbitmq_server.py` (RabbitMQServer) does the same job; when both are on main, this
module can go and its users take that one (same `url` / `management_url` / context manager shape).

The node runs from the release's own start script, as the calling user, in its own session, so
`close()` stops the whole tree (Debian's /usr/sbin wrapper switches to the `rabbitmq` user, and
stopping the wrapper would leave the Erlang VM running).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from infra.local.ports import free_port
from infra.local.redis_server import ServerNotInstalledError

_RELEASE_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server")


def _binary() -> str:
    for candidate in _RELEASE_SCRIPTS:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise ServerNotInstalledError(
            "rabbitmq-server was not found; install it (Debian: apt-get install rabbitmq-server)"
        )
    return found


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
        binary = _binary()
        self._dir = Path(tempfile.mkdtemp(prefix="celery-cluster-rabbit-"))
        (self._dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.port = {self.management_port}\n"
            "management.tcp.ip = 127.0.0.1\n"
            # Queue statistics (counts, head_message_timestamp) refresh every second instead of 5 s.
            "collect_statistics_interval = 1000\n"
            # A busy build machine may be short of disk; a test node must not block publishers on it.
            "disk_free_limit.absolute = 50MB\n"
        )
        (self._dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self._dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self._dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_PID_FILE": str(self._dir / "rabbit.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(self._dir / "rabbitmq-env.conf"),
            "ERL_CRASH_DUMP": str(self._dir / "erl_crash.dump"),
        }
        with (self._dir / "server.out").open("wb") as log:
            self._process = subprocess.Popen(
                [binary],
                env=env,
                cwd=self._dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # close() stops the node's whole process group
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the management API answers a little after AMQP
            if self._process.poll() is not None:
                output = (self._dir / "server.out").read_text(errors="replace")[-2000:]
                code = self._process.returncode
                self.close()
                raise RuntimeError(f"rabbitmq-server exited with {code}:\n{output}")
            try:
                overview = f"http://127.0.0.1:{self.management_port}/api/overview"
                if httpx.get(overview, auth=("guest", "guest")).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise TimeoutError(f"RabbitMQ management API did not answer on {self.management_port} within {timeout:.0f} s")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(wait)
                except subprocess.TimeoutExpired:
                    continue
                # The start script exits with the VM; make sure nothing of the group is left.
                if not _group_alive(process.pid):
                    break
                time.sleep(0.5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RabbitMQNode:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
