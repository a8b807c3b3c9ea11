"""Stamp every published task with the time it was published and the version of its sender.

Queue latency (the age of the oldest waiting message) is read from this header by the metrics
publisher's queue inspector. A message that already carries a stamp (a retry, a republish) keeps
its original time.

The same time also goes in the AMQP `timestamp` property (whole seconds, as AMQP defines it):
RabbitMQ's management API reports it as the queue's `head_message_timestamp`, which is how the
inspector reads queue latency on RabbitMQ without consuming a message. On Redis it is simply
carried in the message's properties.

The sender's version (`sender_version`) goes beside it: a dead letter for an unknown task name
then tells whether a newer producer or an older one sent it (docs/worker.md, "Versions").
"""

from __future__ import annotations

import os
import time
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from celery.signals import before_task_publish

from celery_cluster_client.contract import (
    ENV_SENDER_VERSION,
    ENV_WORKER_CODE_VERSION,
    PUBLISHED_AT_HEADER,
    SENDER_VERSION_HEADER,
)


@cache
def sender_version() -> str:
    """This process's version as a sender: its own label, a worker's code version, or the package's."""
    for name in (ENV_SENDER_VERSION, ENV_WORKER_CODE_VERSION):
        if os.environ.get(name):
            return os.environ[name]
    try:
        return version("celery-cluster-worker")
    except PackageNotFoundError:
        return "unknown"


def stamp(headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any) -> None:
    """`before_task_publish` receiver: set `published_at` (kept if present) and the AMQP timestamp."""
    if headers is None:
        return
    published_at = headers.setdefault(PUBLISHED_AT_HEADER, time.time())
    headers.setdefault(SENDER_VERSION_HEADER, sender_version())
    if properties is not None and isinstance(published_at, int | float):
        # py-amqp serialises the timestamp property from an int only.
        properties.setdefault("timestamp", int(published_at))


def install() -> None:
    """Stamp every task this process publishes, from any Celery app (idempotent)."""
    before_task_publish.connect(stamp, weak=False, dispatch_uid="celery-cluster-stamp")
