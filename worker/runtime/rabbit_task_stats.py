"""Measured task run time on a RabbitMQ broker: each worker process sends summaries to a stats queue.

A Redis broker is a shared store the workers write per task (`worker.runtime.task_stats`); RabbitMQ is
not, and a publish with confirms per task would cost as much as the task message itself. So each
worker process adds its tasks' run times up in memory and a sender thread publishes what it has
as one small message, at most once per `SEND_SECONDS` (the first end after a quiet spell goes at
once): `{"at": <send time>, "queues": {"<queue>": [<count>, <seconds>], ...}}`. Every task in a
summary ended within `SEND_SECONDS` before its `at`. The metrics publisher consumes the queue
(`worker.publisher.rabbit_service`) and keeps the summaries of the last `WINDOW_MINUTES` minutes.

The task itself never waits on the broker: its start and end only touch a dict under a lock
(`make bench --only task-stats` measures both this and the worker's throughput with and without
it). A failed send is logged, its counts are kept for the next one; a metric never fails a task.

The stats queue, `STATS_QUEUE` on the default exchange, is bounded on the broker:
- a classic queue, durable (transient non-exclusive queues are deprecated from RabbitMQ 4.0,
  https://www.rabbitmq.com/docs/queues#durability) with transient messages (delivery mode 1), so a
  broker restart empties it: the summaries are soft state;
- at most `MAX_MESSAGES` ready messages and `MAX_BYTES` of bodies, the oldest dropped first
  (`x-overflow: drop-head`, https://www.rabbitmq.com/docs/maxlength), and none older than
  `MESSAGE_TTL_MS` (https://www.rabbitmq.com/docs/ttl), so with no publisher reading the queue
  holds at most the last window;
- the publisher holds at most `PREFETCH` more unacknowledged (the length limit counts ready
  messages only, https://www.rabbitmq.com/docs/maxlength#definition).
Its arguments are part of its name's contract: a declaration with other arguments fails
(PRECONDITION_FAILED), so a change of them takes a new name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any, Final

from celery import Task
from celery.signals import task_postrun, task_prerun, worker_process_shutdown, worker_shutdown
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from celery_cluster_client.app import broker_use_ssl
from worker.runtime.task_stats import WINDOW_MINUTES, queue_of

logger = logging.getLogger(__name__)

STATS_QUEUE: Final = "celery-cluster.task-stats.v1"
# Named assumption: a summary every 10 s per process is the publisher's sample period, so the
# measured time is never more than one sample behind; it bounds the messages to 60 per process
# in a 10-minute window.
SEND_SECONDS: Final = 10.0
WINDOW_SECONDS: Final = WINDOW_MINUTES * 60
# A minute past the window: a summary the publisher has not read yet when it is due is still there.
MESSAGE_TTL_MS: Final = (WINDOW_SECONDS + 60) * 1000
# Ready summaries (no publisher reading): 20,000 are a full window of 333 worker processes (60 each).
MAX_MESSAGES: Final = 20_000
# Held by the publisher: a full window of 666 processes; a larger fleet's window is cut to its newest
# summaries (the publisher says so in its log). AMQP's prefetch count is a 16-bit field.
PREFETCH: Final = 2 * MAX_MESSAGES
MAX_BYTES: Final = 16 * 1024 * 1024
# A connection attempt gives up after this, without kombu's retries (its own loop retries a period
# later), so a process that exits while the broker is unreachable waits at most this for its last send.
SEND_TIMEOUT_S: Final = 2.0


def stats_queue() -> Queue:
    return Queue(
        STATS_QUEUE,
        exchange=Exchange(""),
        routing_key=STATS_QUEUE,
        durable=True,
        queue_arguments={
            "x-queue-type": "classic",
            "x-max-length": MAX_MESSAGES,
            "x-max-length-bytes": MAX_BYTES,
            "x-overflow": "drop-head",
            "x-message-ttl": MESSAGE_TTL_MS,
        },
    )


def connection(broker_url: str, heartbeat: float = 0) -> Connection:
    return Connection(
        broker_url,
        ssl=broker_use_ssl(broker_url),
        heartbeat=heartbeat,
        connect_timeout=SEND_TIMEOUT_S,
        transport_options={"max_retries": 0},
    )


class Summaries:
    """One process's task ends not sent yet, per queue: tasks add, the sender takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, list[float]] = {}

    def add(self, queue: str, count: int, seconds: float) -> None:
        with self._lock:
            entry = self._pending.setdefault(queue, [0, 0.0])
            entry[0] += count
            entry[1] += seconds

    def take(self) -> dict[str, list[float]]:
        with self._lock:
            taken, self._pending = self._pending, {}
        return taken

    def give_back(self, taken: dict[str, list[float]]) -> None:
        for queue, (count, seconds) in taken.items():
            self.add(queue, int(count), seconds)


class Sender:
    """Publishes the process's summaries from a thread of its own, at most once per `period`."""

    def __init__(self, broker_url: str, summaries: Summaries, period: float = SEND_SECONDS) -> None:
        self._url, self._summaries, self._period = broker_url, summaries, period
        self._wake = threading.Event()
        self._send_lock = threading.Lock()
        self._pid: int | None = None
        self._last = float("-inf")
        self._connection: Connection | None = None

    def notify(self) -> None:
        """A task ended: send soon. The thread starts in the process that runs tasks (after the fork)."""
        if self._pid != os.getpid():
            # Nothing of the parent's sending state is usable here (a lock held at the fork stays held).
            self._pid, self._connection, self._last = os.getpid(), None, float("-inf")
            self._wake, self._send_lock = threading.Event(), threading.Lock()
            threading.Thread(target=self._loop, name="task-stats-sender", daemon=True).start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            wait = self._last + self._period - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.send()

    def send(self, attempts: int = 2) -> None:
        """Publish what is pending (nothing when nothing is); on failure keep it for the next send."""
        with self._send_lock:
            taken = self._summaries.take()
            if not taken:
                return
            self._last = time.monotonic()
            body = json.dumps({"at": time.time(), "queues": taken})
            # Two by default: a connection dropped while idle (a load balancer's idle timeout) fails once.
            for attempt in range(1, attempts + 1):
                try:
                    self._publish(body)
                    return
                except Exception as exc:  # any failure: keep the counts, never fail a task
                    self._drop_connection()
                    if attempt == attempts:
                        logger.warning("task stats: could not send a summary to %s: %s", STATS_QUEUE, exc)
            self._summaries.give_back(taken)
            self._wake.set()  # try again after a period

    def _publish(self, body: str) -> None:
        if self._connection is None:
            self._connection = connection(self._url)
        producer = self._connection.Producer()
        producer.publish(
            body,
            routing_key=STATS_QUEUE,
            exchange="",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=1,
            declare=[stats_queue()],
            retry=False,
        )

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # it is broken already
                self._connection.release()
            self._connection = None


_summaries = Summaries()
_sender: Sender | None = None
_started: dict[str, float] = {}


def _on_prerun(task_id: str = "", **_: Any) -> None:
    _started[task_id] = time.monotonic()


def _on_postrun(task_id: str = "", task: Task | None = None, **_: Any) -> None:
    began = _started.pop(task_id, None)
    queue = queue_of(task)
    if _sender is None or began is None or queue is None:
        return
    _summaries.add(queue, 1, max(0.0, time.monotonic() - began))
    _sender.notify()


def _on_shutdown(**_: Any) -> None:
    # The last tasks of a process that exits (a drain, a scale-in) are sent before it goes.
    if _sender is not None:
        _sender.send(attempts=1)


def install(broker_url: str, is_redis: bool) -> None:
    """Record on a RabbitMQ broker; Redis brokers record per task instead (`worker.runtime.task_stats`)."""
    global _sender  # noqa: PLW0603 - one sender per process
    if is_redis:
        return
    _sender = Sender(broker_url, _summaries)
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="celery-cluster-rabbit-stats-pre")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="celery-cluster-rabbit-stats-post")
    worker_process_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="celery-cluster-rabbit-stats-exit")
    worker_shutdown.connect(_on_shutdown, weak=False, dispatch_uid="celery-cluster-rabbit-stats-stop")
