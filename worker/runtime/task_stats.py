"""Measured task run time and running tasks per queue, recorded by the workers in the Redis broker.

The scaling policy needs the pool's real service time, not the `averageTaskSeconds` someone typed
into the config, and the number of processes actually busy (in-flight counts also hold prefetched
and countdown messages). Each worker process records both in the broker it already talks to; the
metrics publisher (`worker.publisher.service_metrics`) reads them in one pipelined round trip per sample.

Keys (Redis; every queue of the cluster shares the broker's database):
- `celery-cluster:task-seconds:<queue>:<minute>`: a hash `{count, sum}` of the tasks of `queue`
  that ended in that minute (epoch minute), expiring after `BUCKET_TTL_S`. The publisher adds up
  the last `WINDOW_MINUTES` buckets: the mean over a recent window, with no per-task list to trim.
- `celery-cluster:running:<queue>`: a sorted set of the ids of running tasks, scored by start time.
  A task's start adds it (task_prerun) and its end removes it (task_postrun). A process killed
  mid-task leaves its id behind until the task is redelivered and ends elsewhere (late acks: same
  id) or the entry is older than `STALE_RUNNING_S`, when the publisher drops it.

Cost per task: one ZADD round trip at start, one pipelined ZREM + HINCRBY + HINCRBYFLOAT + EXPIRE at
the end (`make bench --only task-stats` measures it). A failed write is logged and the task goes
on: a metric never fails a task.

RabbitMQ brokers are no shared store: there each process sends summaries to a stats queue instead
(`worker.runtime.rabbit_task_stats`); see docs/scaling.md ("Measured task time").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import redis
from celery import Task
from celery.signals import task_postrun, task_prerun

logger = logging.getLogger(__name__)

KEY_PREFIX: Final = "celery-cluster"
BUCKET_SECONDS: Final = 60
# Named assumption: a 10-minute window is recent enough to follow a change of workload within a
# few samples, and long enough to hold some ends of 10-minute tasks.
WINDOW_MINUTES: Final = 10
BUCKET_TTL_S: Final = (WINDOW_MINUTES + 5) * BUCKET_SECONDS
# Named assumption: no task runs longer than 2 h (CELERY_TASK_TIME_LIMIT defaults to 1800 s); an
# entry older than this is a task whose process died and that was never redelivered.
STALE_RUNNING_S: Final = 7200.0


def bucket_key(queue: str, minute: int) -> str:
    return f"{KEY_PREFIX}:task-seconds:{queue}:{minute}"


def running_key(queue: str) -> str:
    return f"{KEY_PREFIX}:running:{queue}"


def minute_of(epoch_seconds: float) -> int:
    return int(epoch_seconds // BUCKET_SECONDS)


def queue_of(task: Task | None) -> str | None:
    """The queue the task came from: our queues are bound with routing key = queue name."""
    if task is None:
        return None
    info = task.request.delivery_info or {}
    queue = info.get("routing_key")
    return queue if isinstance(queue, str) and queue else None


class Recorder:
    """Writes one process's task starts and ends to the broker's Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._started: dict[str, float] = {}

    def started(self, task_id: str, queue: str, now: float) -> None:
        self._started[task_id] = now
        try:
            self._client.zadd(running_key(queue), {task_id: now})
        except redis.RedisError as exc:
            logger.warning("task stats: could not record the start of %s: %s", task_id, exc)

    def ended(self, task_id: str, queue: str, now: float) -> None:
        began = self._started.pop(task_id, None)
        pipe = self._client.pipeline(transaction=False)
        pipe.zrem(running_key(queue), task_id)
        if began is not None:
            key = bucket_key(queue, minute_of(now))
            pipe.hincrby(key, "count", 1)
            pipe.hincrbyfloat(key, "sum", max(0.0, now - began))
            pipe.expire(key, BUCKET_TTL_S)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            logger.warning("task stats: could not record the end of %s: %s", task_id, exc)


_recorder: Recorder | None = None


def _on_prerun(task_id: str = "", task: Task | None = None, **_: Any) -> None:
    queue = queue_of(task)
    if _recorder is not None and queue is not None:
        _recorder.started(task_id, queue, time.time())


def _on_postrun(task_id: str = "", task: Task | None = None, **_: Any) -> None:
    queue = queue_of(task)
    if _recorder is not None and queue is not None:
        _recorder.ended(task_id, queue, time.time())


def install(broker_url: str, is_redis: bool) -> None:
    """Record on a Redis broker; RabbitMQ brokers record with `worker.runtime.rabbit_task_stats`."""
    global _recorder  # noqa: PLW0603 - one recorder per process; redis-py reconnects after fork
    if not is_redis:
        return
    # A short timeout: a slow broker delays a task's end by at most this, then the write is dropped.
    _recorder = Recorder(redis.Redis.from_url(broker_url, socket_timeout=1, socket_connect_timeout=1))
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="celery-cluster-task-stats-pre")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="celery-cluster-task-stats-post")


@dataclass(frozen=True)
class QueueService:
    """What the workers recorded for one queue, read at `taken_at`."""

    queue: str
    ended: int
    """Tasks that ended in the window."""
    seconds: float
    """Their total run time."""
    running: int | None
    """Tasks running now (not prefetched, not waiting for a countdown); None where the broker keeps no
    running set (RabbitMQ: `worker.publisher.rabbit_service`)."""


def read_service(client: redis.Redis, queues: Sequence[str], now: float) -> list[QueueService]:
    """Every queue's window and running count, in one pipelined round trip."""
    current = minute_of(now)
    minutes = range(current - WINDOW_MINUTES + 1, current + 1)
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        pipe.zremrangebyscore(running_key(queue), "-inf", now - STALE_RUNNING_S)
        pipe.zcard(running_key(queue))
        for minute in minutes:
            pipe.hmget(bucket_key(queue, minute), "count", "sum")
    replies: list[Any] = pipe.execute()
    per_queue = 2 + len(minutes)
    found = []
    for index, queue in enumerate(queues):
        chunk = replies[index * per_queue : (index + 1) * per_queue]
        buckets = chunk[2:]
        ended = sum(int(count or 0) for count, _ in buckets)
        seconds = sum(float(total or 0.0) for _, total in buckets)
        found.append(QueueService(queue, ended, seconds, int(chunk[1])))
    return found
