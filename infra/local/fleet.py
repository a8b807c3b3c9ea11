"""Worker processes as instances: launched, booted, in service, drained, as the scaling model decides.

One model instance = one `image/bin/start-worker` process with the local pool's concurrency. A launched
instance's process starts at once but consumes only a private standby queue; when the model's boot
delay has passed (launch + boot seconds, in model time) and the process has logged that it is ready,
the fleet tells it to consume the pool's queues (Celery's `add_consumer` control command). So the time
from launch to the first task is the modelled boot delay, not however long Python took to start on a
busy machine; a process that is not ready by then starts late, and the view says so.

A terminated instance drains: SIGTERM, which `start-worker` maps to Celery's soft shutdown (stop
consuming, finish or requeue the running tasks), and it is billed until its process exits.

A process that exits on its own (a task module that fails to import, a bad setting) is `failed`, and the
fleet keeps what its log says (`failures`): the run loop stops a run in which no instance can start.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from celery import Celery

from infra.local.versions import WorkerVersion
from infra.local.workers import WorkerProcess, log_excerpt

State = Literal["booting", "in service", "draining", "gone", "failed"]
READY_MARK = b" ready."  # celery.apps.worker logs "<hostname> ready." once its consumer runs


@dataclass
class LocalInstance:
    id: int
    worker: WorkerProcess
    launched_at: float
    """Model seconds."""
    in_service_at: float
    """Model seconds: when the model counts it in service (launch + boot)."""
    version: str = ""
    """The code it runs (WORKER_CODE_VERSION, `infra.local.versions`)."""
    state: State = "booting"
    consuming_at: float | None = None
    terminated_at: float | None = None
    exited_at: float | None = None
    ready: bool = False

    @property
    def destination(self) -> str:
        return f"{self.worker.name}@{socket.gethostname()}"

    @property
    def late_seconds(self) -> float:
        """Model seconds between the modelled boot and the first consumed task (the process was slow)."""
        if self.consuming_at is None:
            return 0.0
        return max(0.0, self.consuming_at - self.in_service_at)


@dataclass(frozen=True)
class Failure:
    """An instance whose worker process exited without being told to."""

    instance: int
    phase: str
    """"booting" or "in service"."""
    exit_code: int | None
    log_path: Path
    excerpt: tuple[str, ...]
    """The lines of its log that say why (`workers.log_excerpt`)."""
    version: str = ""
    at: float = 0.0
    """Model seconds."""

    def lines(self) -> list[str]:
        code = "" if self.exit_code is None else f" (exit code {self.exit_code})"
        head = f"instance #{self.instance}'s worker exited while {self.phase}{code}"
        return [head, f"  its log: {self.log_path}", *(f"  {line}" for line in self.excerpt)]


class Fleet:
    """The local pool's instances; `tick(now)` moves each along its life."""

    def __init__(
        self,
        control: Celery,
        broker_url: str,
        queues: list[str],
        concurrency: int,
        log_dir: Path,
        env: dict[str, str],
        run_id: str,
        version: WorkerVersion,
    ) -> None:
        self.control = control
        self.broker_url = broker_url
        self.queues = queues
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.env = env
        self.run_id = run_id
        self.launch_version = version
        """The code a launched instance runs: the group's launch template (an upgrade moves it)."""
        self.instances: dict[int, LocalInstance] = {}
        self.problems: list[str] = []
        self.failures: list[Failure] = []

    def launch(self, instance_id: int, now: float, in_service_at: float) -> LocalInstance:
        name = f"i-{instance_id:03d}-{self.run_id}"
        version = self.launch_version
        worker = WorkerProcess(
            name=name,
            queues=[f"standby-{name}"],
            broker_url=self.broker_url,
            log_path=self.log_dir / f"{name}.log",
            concurrency=self.concurrency,
            env={**self.env, **version.process_env()},
            cwd=version.root,
        ).start()
        instance = LocalInstance(instance_id, worker, now, in_service_at, version.label)
        self.instances[instance_id] = instance
        return instance

    def terminate(self, instance_id: int, now: float) -> None:
        instance = self.instances.get(instance_id)
        if instance is None or instance.state in ("draining", "gone", "failed"):
            return
        instance.terminated_at = now
        instance.state = "draining"
        instance.worker.terminate()

    def tick(self, now: float) -> None:
        for instance in self.instances.values():
            if instance.state == "booting":
                self._boot(instance, now)
            elif instance.state == "in service" and not instance.worker.running():
                self._failed(instance, now)
            elif instance.state == "draining" and not instance.worker.running():
                instance.state = "gone"
                instance.exited_at = now
                instance.worker.wait(1)

    def _failed(self, instance: LocalInstance, now: float) -> None:
        failure = Failure(
            instance.id,
            instance.state,
            instance.worker.wait(1),
            instance.worker.log_path,
            tuple(log_excerpt(instance.worker.log_path)),
            instance.version,
            now,
        )
        self.failures.append(failure)
        self.problems.append(f"{failure.lines()[0]}; see {failure.log_path}")
        instance.state = "failed"
        instance.exited_at = now

    def can_start(self) -> bool:
        """False once an instance of the code it launches failed to boot and none serves: no instance can
        start with this code."""
        launching = self.launch_version.label
        failed = any(f.phase == "booting" and f.version == launching for f in self.failures)
        booted_none = failed and self.count("in service") == 0
        return not booted_none

    def _boot(self, instance: LocalInstance, now: float) -> None:
        if not instance.worker.running():
            self._failed(instance, now)
            return
        if not instance.ready:
            path = instance.worker.log_path
            instance.ready = path.exists() and READY_MARK in path.read_bytes()
        if instance.ready and now >= instance.in_service_at:
            replies = []
            for queue in self.queues:
                replies = self.control.control.add_consumer(
                    queue, destination=[instance.destination], reply=True, timeout=2.0
                )
            if replies:  # no reply: the command is retried on the next tick (add_consumer is idempotent)
                instance.state = "in service"
                instance.consuming_at = now

    def count(self, state: State) -> int:
        return sum(1 for i in self.instances.values() if i.state == state)

    def alive(self) -> int:
        """Instances the model counts: launched and not terminated (booting or in service)."""
        return sum(1 for i in self.instances.values() if i.state in ("booting", "in service"))

    def stop_all(self, timeout: float) -> None:
        """Drain every worker that is still up (soft shutdown), then wait for each."""
        running = [i for i in self.instances.values() if i.worker.running()]
        for instance in running:
            instance.state = "draining"
            instance.worker.terminate()
        for instance in running:
            instance.worker.stop(timeout)
