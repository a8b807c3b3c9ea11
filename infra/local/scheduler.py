"""Scheduler processes started exactly as the scheduler instance starts them: `image/bin/start-scheduler`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from infra.local.workers import REPO_ROOT

START_SCHEDULER = REPO_ROOT / "image" / "bin" / "start-scheduler"


@dataclass
class SchedulerProcess:
    name: str
    broker_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> SchedulerProcess:
        environment = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            # The schedule may name a module outside the package (tests do).
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p),
            "CELERY_BROKER_URL": self.broker_url,
            **self.env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(START_SCHEDULER)],
            env=environment,
            cwd=self.log_path.parent,  # where beat may leave files, never the repository
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "scheduler not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Instance loss: no clean stop, the lease lapses on its own."""
        if self.running():
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """A clean stop (SIGTERM): the scheduler releases its lease."""
        if self.process is None:
            return None
        if self.running():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(10)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return f"--- {self.log_path} (last {lines} lines)\n" + "\n".join(text[-lines:])
