"""Stamp every published task with the time it was published.

Queue latency (the age of the oldest waiting message) is read from this header by the queue
inspector, and the local cluster reports queue wait from it. A producer that already stamped
the message (a retry, a republish) keeps its original time.
"""

from __future__ import annotations

import time
from typing import Any

from celery.signals import before_task_publish

from worker.names import PUBLISHED_AT_HEADER


def _stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        headers.setdefault(PUBLISHED_AT_HEADER, time.time())


def install() -> None:
    before_task_publish.connect(_stamp, weak=False, dispatch_uid="celery-cluster-stamp")
