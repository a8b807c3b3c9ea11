"""A throwaway redis-server on a free loopback port, configured like the stack's broker.

Used by `make local` and by the tests (unless REDIS_URL points at a server already running).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from infra.servers.ports import free_port, wait_for_port
from infra.servers.tls import TlsFiles

INSTALL_HINT = (
    "redis-server was not found on PATH. Install it, then run this again:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  Fedora/RHEL:   sudo dnf install redis\n"
    "  macOS:         brew install redis"
)


class ServerNotInstalledError(RuntimeError):
    """A broker binary is missing; the message says how to install it."""


@dataclass
class RedisServer:
    """redis-server as the stack runs it: noeviction (docs/architecture.md), and AOF when asked, so a
    restart keeps every message. With `tls`, `port` serves TLS only (no plain listener), as
    ElastiCache with transit encryption `required` does; with `password`, clients must AUTH."""

    appendonly: bool = True
    port: int = field(default_factory=free_port)
    tls: TlsFiles | None = None
    password: str | None = None
    # e.g. "4mb": a server that fills up (tests of a full broker); None leaves Redis's default (no limit).
    maxmemory: str | None = None
    _dir: Path | None = None
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The plain server's URL; a TLS server's comes from the stack's URL builder (the caller's)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = 20.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerNotInstalledError(INSTALL_HINT)
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="celery-cluster-redis-"))
        args = [
            binary,
            *self._listener_args(),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self._dir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",  # no acknowledged message is lost on a restart
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            str(self._dir / "redis.log"),
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        if self.maxmemory is not None:
            args += ["--maxmemory", self.maxmemory]
        # Its own session: a Ctrl-C in the terminal goes to the whole foreground group, and a redis-server
        # in it shut down at once, under make local's drain and count (a traceback, no counts, exit 1).
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        wait_for_port(self.port, timeout)
        return self

    def _listener_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port",
            "0",  # no plain listener
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(self.tls.cert),
            "--tls-key-file",
            str(self.tls.key),
            "--tls-ca-cert-file",
            str(self.tls.ca),
            "--tls-auth-clients",
            "no",  # server authentication only, as ElastiCache: clients prove themselves with AUTH
        ]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM: Redis flushes its AOF first); the data dir is kept for restart()."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
