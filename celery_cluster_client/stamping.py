"""Stamp every published task with the time it was published.

Queue latency (the age of the oldest waiting message) is read from this header by the metrics
publisher's queue inspector. A message that already carries a stamp (a retry, a republish) keeps
its original time.

The same time also goes in the AMQP `timestamp` property (whole seconds, as AMQP defines it):
RabbitMQ's management API reports it as the queue's `head_message_timestamp`, which is how the
inspector reads queue latency on RabbitMQ without consuming a message. On Redis it is simply
carried in the message's properties.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import before_task_publish

from celery_cluster_client.contract import PUBLISHED_AT_HEADER


def stamp(headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any) -> None:
    """`before_task_publish` receiver: set `published_at` (kept if present) and the AMQP timestamp."""
    if headers is None:
        return
    published_at = headers.setdefault(PUBLISHED_AT_HEADER, time.time())
    if properties is not None and isinstance(published_at, int | float):
        # py-amqp serialises the timestamp property from an int only.
        properties.setdefault("timestamp", int(published_at))


def install() -> None:
    """Stamp every task this process publishes, from any Celery app (idempotent)."""
    before_task_publish.connect(stamp, weak=False, dispatch_uid="celery-cluster-stamp")
