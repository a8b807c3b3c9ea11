"""Rotating a broker password under running processes (tests/integration/test_credential_rotation.py).

- `SecretFile`: the workers' secret as a file (WORKER_SECRET_FILE, `worker.instance.secret_watch`), the
  stand-in for Secrets Manager that processes of their own can read.
- `Supervisor`: what systemd does for celery-worker.service and celery-scheduler.service: a process
  that exits is started again (after `restart_sec`) with the broker URL the secret holds then, as the
  unit's ExecStartPre fetch-env reads it; each start is a `Generation` the test can inspect.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.instance.secret_watch import BROKER_URL_VARIABLE, SECRET_CHANGED_EXIT_CODE


class SecretFile:
    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.write(url)

    def write(self, url: str) -> None:
        """Atomically, as PutSecretValue makes a new version current: a reader sees old or new, never half."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({BROKER_URL_VARIABLE: url, "CELERY_QUEUE_TYPE": "classic"}))
        os.replace(temporary, self.path)

    def url(self) -> str:
        return str(json.loads(self.path.read_text())[BROKER_URL_VARIABLE])


@dataclass
class Generation:
    """One start of a supervised process: its broker URL and what became of it."""

    process: Any  # infra.local's WorkerProcess or SchedulerProcess
    url: str
    started_at: float
    exit_code: int | None = None
    exited_at: float | None = None


@dataclass
class Supervisor:
    """Restarts `start(url)` whenever its process exits, with the secret's URL at that moment."""

    name: str
    secret: SecretFile
    start: Callable[[str], Any]
    restart_sec: float = 0.5
    generations: list[Generation] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def run(self) -> Supervisor:
        self._launch()
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{self.name}", daemon=True)
        self._thread.start()
        return self

    @property
    def current(self) -> Generation:
        return self.generations[-1]

    def _launch(self) -> None:
        url = self.secret.url()
        self.generations.append(Generation(self.start(url), url, time.monotonic()))

    def _watch(self) -> None:
        while not self._stopping.is_set():
            generation = self.current
            if not generation.process.running():
                generation.exit_code = generation.process.process.poll()
                generation.exited_at = time.monotonic()
                if self._stopping.is_set():
                    return
                # Restart=on-failure: every status but 0 and the unit's RestartPreventExitStatus=64.
                if generation.exit_code in (0, 64):
                    return
                time.sleep(self.restart_sec)
                if not self._stopping.is_set():
                    self._launch()
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop restarting (the test then stops the processes itself)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    def restarted_for_secret(self) -> list[Generation]:
        """The starts that ended with the secret-changed status (75)."""
        return [g for g in self.generations if g.exit_code == SECRET_CHANGED_EXIT_CODE]

    def on(self, url: str) -> Generation | None:
        """The running generation if it runs with `url`."""
        generation = self.current
        return generation if generation.url == url and generation.process.running() else None

    def old_gone_at(self, url: str) -> float | None:
        """When the last generation with `url` exited (None while one still runs)."""
        times = [g.exited_at for g in self.generations if g.url == url]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)


def own_ports() -> set[int]:
    """Local TCP ports of this (the test's) process: its own clients stand in for producer applications,
    whose pooled connections a closed Celery app may keep open; the check is about the processes."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
