"""A throwaway RabbitMQ node on free loopback ports, with the management API on.

Used by the tests that restart the broker and by `make bench`. It is its own Erlang node
(`cc-<port>@localhost`) with its own data directory, so it never touches the machine's
RabbitMQ service. Durable queues and persistent messages survive `restart()`, as on the stack's
Amazon MQ broker.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from infra.servers.ports import free_port, wait_for_port
from infra.servers.redis import ServerNotInstalledError
from infra.servers.tls import TlsFiles

INSTALL_HINT = (
    "rabbitmq-server was not found. Install it, then run this again:\n"
    "  Debian/Ubuntu: sudo apt-get install rabbitmq-server\n"
    "  Fedora/RHEL:   sudo dnf install rabbitmq-server\n"
    "  macOS:         brew install rabbitmq\n"
    "or set RABBITMQ_SERVER_BIN to the rabbitmq-server script of an installed release."
)

# Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to the `rabbitmq` user and drops
# our environment; the release's own script starts a node as the calling user.
_CANDIDATES = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/local/sbin/rabbitmq-server",
    "/opt/homebrew/sbin/rabbitmq-server",
)


def find_binary() -> str:
    override = os.environ.get("RABBITMQ_SERVER_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise ServerNotInstalledError(f"RABBITMQ_SERVER_BIN={override} is not an executable file.\n{INSTALL_HINT}")
        return override
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise ServerNotInstalledError(INSTALL_HINT)
    return found


@dataclass
class RabbitMQServer:
    """One RabbitMQ node: AMQP on `port`, management API on `management_port`, user guest/guest.

    With `tls`, as Amazon MQ: `port` is an AMQPS listener only (no plain one), the management API
    serves HTTPS, and the one user is `user` with `password` (an administrator, as Amazon MQ's
    first user; the management API wants that tag)."""

    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    tls: TlsFiles | None = None
    user: str = "guest"
    password: str = "guest"  # noqa: S105 - RabbitMQ's own default user
    _dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The plain node's URL; a TLS node's comes from the stack's URL builder (the caller's)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.management_port}"

    @property
    def nodename(self) -> str:
        return f"cc-{self.port}@localhost"

    @property
    def pid(self) -> int | None:
        """The start script's pid, which is also the process group of the Erlang VM under it."""
        return None if self._process is None else self._process.pid

    @property
    def log_dir(self) -> Path | None:
        return None if self._dir is None else self._dir / "log"

    def _prepare(self) -> Path:
        if self._dir is not None:
            return self._dir
        self._dir = Path(tempfile.mkdtemp(prefix="celery-cluster-rabbitmq-"))
        (self._dir / "rabbitmq.conf").write_text(
            self._listeners()
            # Queue statistics (counts, head_message_timestamp) refresh every second, not every 5 s,
            # so the queue inspector's readings in tests and benchmarks are current.
            + "collect_statistics_interval = 1000\n"
            # The machine may be short of disk in CI; a test node must not block publishers on it.
            "disk_free_limit.absolute = 50MB\n"
        )
        (self._dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
        # The Erlang cookie lives in $HOME; a private HOME keeps the node apart from the system one.
        cookie = self._dir / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        return self._dir

    def _listeners(self) -> str:
        if self.tls is None:
            return (
                f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
                f"management.tcp.ip = 127.0.0.1\n"
                f"management.tcp.port = {self.management_port}\n"
            )
        # https://www.rabbitmq.com/docs/ssl and https://www.rabbitmq.com/docs/management#single-listener-https
        files = {"cacertfile": self.tls.ca, "certfile": self.tls.cert, "keyfile": self.tls.key}
        lines = [
            "listeners.tcp = none",
            f"listeners.ssl.default = 127.0.0.1:{self.port}",
            *(f"ssl_options.{key} = {path}" for key, path in files.items()),
            # Server authentication only: clients prove themselves with the password.
            "ssl_options.verify = verify_none",
            "ssl_options.fail_if_no_peer_cert = false",
            "management.ssl.ip = 127.0.0.1",
            f"management.ssl.port = {self.management_port}",
            *(f"management.ssl.{key} = {path}" for key, path in files.items()),
            f"default_user = {self.user}",
            f"default_pass = {self.password}",
        ]
        return "".join(f"{line}\n" for line in lines)

    def start(self, timeout: float = 60.0) -> RabbitMQServer:
        binary = find_binary()
        home = self._prepare()
        env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            # A node started by hand must not pick up the system's rabbitmq-env.conf overrides.
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        }
        if self.tls is None:
            # The plain listener; a TLS node has none (these would open one beside the config's).
            env |= {"RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port)}
        with (home / "stdout.log").open("ab") as output:
            self._process = subprocess.Popen(
                [binary],
                env=env,
                cwd=home,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the node's whole tree can be stopped by its group
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self._process is not None
        wait_for_port(self.port, timeout)
        # The AMQP listener opens before the management plugin; callers use both.
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"rabbitmq-server exited with {self._process.returncode}; see {self._dir}/stdout.log"
                )
            try:
                response = httpx.get(
                    f"{self._management_base}/api/overview", auth=(self.user, self.password), verify=self._verify()
                )
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ management API not up after {timeout:.0f} s; see {self._dir}/stdout.log")
            time.sleep(0.1)

    def _verify(self) -> ssl.SSLContext | bool:
        """The readiness probe trusts the node's CA but not its name: a test may give the node a
        certificate for another name, to see clients refuse it."""
        if self.tls is None:
            return True
        context = ssl.create_default_context(cafile=self.tls.ca)
        context.check_hostname = False
        return context

    @property
    def _management_base(self) -> str:
        if self.tls is None:
            return f"http://127.0.0.1:{self.management_port}"
        return f"https://localhost:{self.management_port}"

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the node cleanly (SIGTERM); the data directory is kept for restart()."""
        process = self._process
        self._process = None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the node's process group: a crash, and a fast teardown when the data is not kept."""
        process = self._process
        self._process = None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def close(self) -> None:
        self.kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RabbitMQServer:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
