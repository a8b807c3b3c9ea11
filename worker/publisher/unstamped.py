"""Messages without a `published_at` stamp: their age from first sight, and what the publisher reports.

A producer that does not use `celery_cluster_client` (plain Celery, another language) sends
messages without `published_at` (and without the AMQP timestamp). Their queue still needs an age,
or the latency alarm and the step-scaling safety net go blind for it. The inspector estimates when
each such message arrived from what it saw at earlier samples:

- Redis (kombu LPUSHes, consumers BRPOP: index 0 is the newest, -1 the oldest): at every sample the
  newest message of each list is recorded with the time it was first the newest. For the oldest
  message T, the first recorded message still in the list (or T itself) was first seen at t_j, and
  the one recorded before it is gone, so it was older than T: T arrived after the sample before t_j
  and by t_j. Its age is taken from t_j: at most one sample interval younger than the truth.
  Presence is checked with LPOS (Redis 6.0.6 or later); recorded messages that are gone are dropped.
- RabbitMQ (management API): the queue's cumulative `message_stats.publish` counter is recorded at
  every sample. The head is message number publish - ready + 1 (FIFO); it arrived by the first
  sample whose counter had reached that number, and after the one before: again within one sample
  interval. This also gives quorum queues an age (RabbitMQ reports no head timestamp for them).

Limits, by design: a message already waiting when the publisher (a Lambda container) started is
dated from that first sample; a requeued message (worker lost) keeps the later estimate of its
position. Both make an age younger, never older, and the alarm on queues without an age (below)
still covers a queue whose age cannot be estimated at all (RabbitMQ without statistics).

The publisher reports per queue QueueUnstampedWaiting: unstamped messages among those it reads
(the oldest UNSTAMPED_WINDOW of each Redis list; the head on RabbitMQ, 0 or 1), and per pool
PoolQueuesWithoutAge: the pool's queues with waiting messages and no age at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from worker.names import METRIC_QUEUES_WITHOUT_AGE, METRIC_UNSTAMPED
from worker.publisher.queues import Snapshot


class _Pool(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def queues(self) -> tuple[str, ...]: ...


def unstamped_data(pools: Sequence[_Pool], snapshot: Snapshot) -> list[dict[str, Any]]:
    """Per queue the unstamped count, per pool how many of its waiting queues have no age."""
    at = datetime.fromtimestamp(snapshot.taken_at, tz=UTC)
    by_name = {q.queue: q for q in snapshot.queues}
    data: list[dict[str, Any]] = []
    for pool in pools:
        without_age = 0
        for name in pool.queues:
            stats = by_name.get(name)
            if stats is None:
                continue
            data.append(_datum(METRIC_UNSTAMPED, stats.unstamped, at, Pool=pool.name, Queue=name))
            if stats.waiting > 0 and stats.oldest_age(snapshot.taken_at) is None:
                without_age += 1
        data.append(_datum(METRIC_QUEUES_WITHOUT_AGE, without_age, at, Pool=pool.name))
    return data


def _datum(name: str, value: float, at: datetime, **dimensions: str) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": val} for key, val in dimensions.items()],
        "Timestamp": at,
        "Value": float(value),
        "Unit": "Count",
        "StorageResolution": 1,
    }
