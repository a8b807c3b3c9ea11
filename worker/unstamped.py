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

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from worker.names import METRIC_QUEUES_WITHOUT_AGE, METRIC_UNSTAMPED

if TYPE_CHECKING:  # queues.py imports this module for its trackers
    from worker.queues import Snapshot

# Oldest messages per Redis list read at every sample (their stamps, and the unstamped count).
UNSTAMPED_WINDOW: Final = 100
# Recorded samples per list or queue at most (12 h at 10 s); beyond it the newest record is moved
# forward instead of a new one added, so a message arriving then is dated from a later sample (younger).
MAX_SIGHTINGS: Final = 4320


class ListSightings:
    """Redis: per list, (first time it was the newest, message) for messages that may still wait."""

    def __init__(self, max_sightings: int = MAX_SIGHTINGS) -> None:
        self._seen: dict[str, list[tuple[float, bytes]]] = {}
        self._max = max_sightings

    def observe(self, key: str, at: float, length: int, newest: bytes | None, oldest_stamp: float | None) -> None:
        """Record the list's newest message at this sample."""
        if length == 0 or newest is None:
            self._seen.pop(key, None)
            return
        seen = self._seen.setdefault(key, [])
        if oldest_stamp is not None:
            # A message that was newest before the (stamped) oldest was published is gone.
            seen[:] = [(t, m) for t, m in seen if t >= oldest_stamp]
        if not seen or seen[-1][1] != newest:
            if len(seen) >= self._max:
                seen.pop()
            seen.append((at, newest))

    def first_seen(self, key: str, oldest: bytes, present: Callable[[bytes], bool]) -> float | None:
        """When the oldest message was first seen (see the module docstring); None if never."""
        seen = self._seen.get(key, [])
        while seen:
            at, message = seen[0]
            if message == oldest or present(message):
                return at
            seen.pop(0)
        return None

    def tracked(self, key: str) -> int:
        return len(self._seen.get(key, []))


class CounterSightings:
    """RabbitMQ: per queue, (sample time, cumulative messages published to it) when it changed."""

    def __init__(self, max_sightings: int = MAX_SIGHTINGS) -> None:
        self._seen: dict[str, list[tuple[float, int]]] = {}
        self._max = max_sightings

    def first_seen(self, queue: str, at: float, published: int | None, ready: int) -> float | None:
        """Record this sample; return when the head message was first seen (None if unknown)."""
        if ready == 0 or published is None:
            self._seen.pop(queue, None)
            return None
        seen = self._seen.setdefault(queue, [])
        if seen and published < seen[-1][1]:  # the counter restarted (broker restart): start over
            seen.clear()
        if not seen or seen[-1][1] != published:
            if len(seen) >= self._max:
                seen.pop()
            seen.append((at, published))
        before_head = published - ready  # messages published before the head
        while len(seen) > 1 and seen[0][1] <= before_head:
            seen.pop(0)
        return seen[0][0]


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
