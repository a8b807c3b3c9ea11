"""A small cluster per test: worker subprocesses started by `image/bin/start-worker` on one
broker, a producer, and the execution journal that counts every task.

Each cluster has its own queue and dead-letter queue (random names), so tests can share a broker.
The journal lives on a Redis server that no test restarts.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from amqp.exceptions import ChannelError
from celery import Celery

from infra.local.accounting import Tally, tally
from infra.local.workers import WorkerProcess
from tests.support.brokers import Broker
from worker.runtime import dead_letters as deadletter
from worker.runtime import journal
from worker.sender import sender_app

# How long a closing cluster's workers get to drain before they are killed.
CLOSE_GRACE_SECONDS = 10.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Cluster:
    broker: Broker
    journal_url: str
    log_dir: Path
    # Extra CELERY_* variables for every worker of this cluster.
    settings: dict[str, str] = field(default_factory=dict)
    queue: str = field(default_factory=lambda: unique("q"))
    dead_letter_queue: str = field(default_factory=lambda: unique("dlq"))
    workers: list[WorkerProcess] = field(default_factory=list)
    _client: Celery | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "CELERY_JOURNAL_URL": self.journal_url,
            "CELERY_DEFAULT_QUEUE": self.queue,
            "CELERY_DEAD_LETTER_QUEUE": self.dead_letter_queue,
            "CELERY_LOG_LEVEL": "INFO",
            **self.settings,
        }

    @property
    def client(self) -> Celery:
        if self._client is None:
            self._client = sender_app(
                self.broker.url, default_queue=self.queue, dead_letter_queue=self.dead_letter_queue
            )
        return self._client

    def start_worker(
        self, *, concurrency: int = 2, env: dict[str, str] | None = None, wait: bool = True
    ) -> WorkerProcess:
        name = f"w{len(self.workers) + 1}-{self.queue}"
        worker = WorkerProcess(
            name=name,
            queues=[self.queue],
            broker_url=self.broker.url,
            log_path=self.log_dir / f"{name}.log",
            concurrency=concurrency,
            env={**self.env, **(env or {})},
        ).start()
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout: float = 60.0) -> None:
        """Until the worker answers a control ping: it is connected and consuming."""
        destination = [f"{worker.name}@{socket.gethostname()}"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.running():
                raise AssertionError(f"worker {worker.name} exited at start:\n{self.log_tail(worker)}")
            if self.client.control.ping(destination=destination, timeout=0.5):
                return
        raise AssertionError(f"worker {worker.name} not ready after {timeout:.0f} s:\n{self.log_tail(worker)}")

    def send(self, task: str, args: list[Any], count: int = 1) -> list[str]:
        return [self.client.send_task(task, args=args, queue=self.queue).id for _ in range(count)]

    def journal(self) -> list[dict[str, str]]:
        client = redis.Redis.from_url(self.journal_url)
        try:
            return journal.read(client)
        finally:
            client.close()

    def tally(self, sent: list[str]) -> Tally:
        return tally(sent, self.journal())

    def missing(self, sent: list[str]) -> list[str]:
        """Sent ids with no final state in the journal (for failure messages)."""
        done = {e["task_id"] for e in self.journal() if e.get("state") in ("SUCCESS", "FAILURE")}
        return [task_id for task_id in sent if task_id not in done]

    def wait_until(self, sent: list[str], done: Callable[[Tally], bool], timeout: float) -> Tally:
        deadline = time.monotonic() + timeout
        current = self.tally(sent)
        while not done(current) and time.monotonic() < deadline:
            time.sleep(0.2)
            current = self.tally(sent)
        return current

    def wait_all(self, sent: list[str], timeout: float) -> Tally:
        """Until every sent task completed (or the timeout): the returned tally says which."""
        return self.wait_until(sent, lambda t: t.completed == t.sent, timeout)

    def dead_letters(self, *, remove: bool = True) -> list[dict[str, Any]]:
        return deadletter.read(self.broker.url, self.dead_letter_queue, limit=1000, remove=remove)

    def wait_dead_letters(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Take dead letters off the queue until `count` arrived (or the timeout), then until the
        cluster is quiet (`wait_quiet`): a duplicate dead letter, which could only come from a
        message still queued, held or running, would be among those returned."""
        letters: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(letters) < count and time.monotonic() < deadline:
            letters += self.dead_letters()
            time.sleep(0.2)
        self.wait_quiet(timeout)
        return letters + self.dead_letters()

    def inspect(self, method: str) -> list[dict[str, Any]]:
        """Every worker's answer to a control inspect (`active`, `reserved`, `scheduled`), flattened."""
        # Addressed to this cluster's running workers, so the call returns as soon as each has replied
        # (a broadcast to no one in particular waits out its whole timeout).
        destination = [f"{w.name}@{socket.gethostname()}" for w in self.workers if w.running()]
        if not destination:
            return []
        replies = getattr(self.client.control.inspect(destination=destination, timeout=2.0), method)() or {}
        return [item for items in replies.values() for item in items]

    def wait_inspect(
        self, method: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float
    ) -> list[dict[str, Any]]:
        """Until the workers' `method` answer satisfies `done` (observed state, not a sleep)."""
        deadline = time.monotonic() + timeout
        while True:
            items = self.inspect(method)
            if done(items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"inspect {method} never matched in {timeout:.0f} s: {items}\n{self.log_tail()}")

    def wait_quiet(self, timeout: float) -> None:
        """Until nothing of this cluster's queue is waiting on the broker, held by a worker (reserved,
        scheduled for an ETA) or running: after that no task can run, retry or dead-letter again."""
        deadline = time.monotonic() + timeout
        while any(self.inspect(m) for m in ("active", "reserved", "scheduled")) or self.waiting():
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster was not quiet after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.2)

    def waiting(self) -> int:
        """Messages waiting on the broker in this cluster's queue (a queue Redis holds no key for is empty)."""
        with self.client.connection_for_read() as connection:
            try:
                _, count, _ = connection.default_channel.queue_declare(self.queue, passive=True)
            except ChannelError:
                return 0
        return int(count)

    def log_tail(self, worker: WorkerProcess | None = None, lines: int = 30) -> str:
        chosen = [worker] if worker is not None else self.workers
        parts = []
        for w in chosen:
            text = w.log_path.read_text(errors="replace").splitlines() if w.log_path.exists() else []
            parts.append(f"--- {w.log_path} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def close(self) -> None:
        # Drain every worker at once (an idle one exits in about a second, and saves its coverage data);
        # kill what is still running after the grace period.
        for worker in self.workers:
            worker.terminate()
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        for worker in self.workers:
            if worker.process is None:
                continue
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(10)
        if self._client is not None:
            self._client.close()
