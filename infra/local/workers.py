"""Worker processes started exactly as a pool instance starts them: `image/bin/start-worker`
with the pool's queues and concurrency in the environment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from celery import Celery

REPO_ROOT = Path(__file__).resolve().parents[2]
START_WORKER = REPO_ROOT / "image" / "bin" / "start-worker"
EXCERPT_LINES = 5
_TRACEBACK = "Traceback (most recent call last):"
# Frames of these are Celery's and Python's machinery around the import, not the line to fix: installed
# packages, the standard library, and the virtualenv's own scripts (its bin/celery).
_LIBRARY_FRAME = re.compile(r'^\s*File "[^"]*(/site-packages/|/lib/python\d[^/]*/|<frozen |/bin/)')


def log_excerpt(path: Path, lines: int = EXCERPT_LINES) -> list[str]:
    """The lines of a worker's log that say why it exited: from a traceback, the innermost frame of your
    code (file, line, source) and the exception; otherwise the first lines (a bad setting is one line)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return [f"(no log: {exc.strerror})"]
    if _TRACEBACK not in text:
        return [line for line in text.splitlines() if line.strip()][:lines] or ["(the log is empty)"]
    tail = text.rsplit(_TRACEBACK, 1)[1].splitlines()
    frames = [i for i, line in enumerate(tail) if line.lstrip().startswith('File "')]
    own = [i for i in frames if not _LIBRARY_FRAME.match(tail[i])]
    end = next((i for i, line in enumerate(tail) if line and not line[0].isspace()), len(tail))
    error = [line for line in tail[end:] if line.strip()][:2]
    where = tail[own[-1] : own[-1] + 2] if own else []
    return [line.strip() for line in [*where, *error]][:lines]


@dataclass
class WorkerProcess:
    name: str
    queues: list[str]
    broker_url: str
    log_path: Path
    concurrency: int = 2
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    """Where it starts (another version of the worker package: its directory, `infra.local.versions`)."""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        environment = {
            **os.environ,
            # The venv's bin first, as the image's systemd unit puts its own venv first.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "CELERY_BROKER_URL": self.broker_url,
            "WORKER_QUEUES": ",".join(self.queues),
            "WORKER_CONCURRENCY": str(self.concurrency),
            "WORKER_NAME": self.name,
            **self.env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(START_WORKER)],
            env=environment,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we drain the workers
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def terminate(self) -> None:
        """Scale-in: SIGTERM, which the start script maps to Celery's soft shutdown."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """Instance loss: SIGKILL the whole process group (main process and pool children)."""
        if self.running():
            os.killpg(self.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is not None and self._log is not None:
                self._log.close()

    def stop(self, timeout: float) -> int | None:
        """Drain and wait; kill what is still running after `timeout`."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait(10)


def wait_for_workers(app: Celery, count: int, timeout: float) -> None:
    """Block until `count` workers answer a control ping (connected and consuming)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise TimeoutError(f"{count} workers did not answer a ping within {timeout:.0f} s; see their logs")
