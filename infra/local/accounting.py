"""Count every task: what was sent against what the execution journal says ran, and, for what did not run,
whether the broker still holds it (never delivered, or running when the run ended) or it is lost."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import redis

from worker.percentiles import percentile
from worker.publisher.queues import REDIS_UNACKED_KEY, RedisInspector
from worker.runtime.journal import read_after

FINAL_STATES = frozenset({"SUCCESS", "FAILURE"})


@dataclass(frozen=True)
class Tally:
    sent: int
    completed: int  # distinct sent ids that reached a final state at least once
    lost: int  # sent ids never completed
    duplicates: int  # extra final executions of an id beyond its first
    waits: tuple[float, ...]  # seconds from publish to start, first execution of each id
    never_delivered: int = 0  # of the lost: still waiting in the queue when the run ended (no worker took them)
    unfinished: int = 0  # of the lost: held by a worker (reserved or running) when the run ended

    @property
    def missing(self) -> int:
        """Sent ids that did not complete and that the broker no longer holds: truly lost."""
        return self.lost - self.never_delivered - self.unfinished

    @property
    def p50_wait(self) -> float | None:
        return percentile(self.waits, 50)

    @property
    def p95_wait(self) -> float | None:
        return percentile(self.waits, 95)


def tally(
    sent_ids: Iterable[str],
    journal: Iterable[Mapping[str, str]],
    queued: frozenset[str] = frozenset(),
    unacked: frozenset[str] = frozenset(),
) -> Tally:
    """`lost` counts every sent id that did not complete; `queued` and `unacked` (ids the broker holds,
    `held_ids`) say which of those are still waiting or still with a worker."""
    sent = set(sent_ids)
    runs: Counter[str] = Counter()
    waits: dict[str, float] = {}
    for entry in journal:
        task_id = entry["task_id"]
        if task_id not in sent or entry.get("state") not in FINAL_STATES:
            continue
        runs[task_id] += 1
        if task_id not in waits and entry.get("published_at") and entry.get("started_at"):
            waits[task_id] = max(0.0, float(entry["started_at"]) - float(entry["published_at"]))
    completed = len(runs)
    return Tally(
        sent=len(sent),
        completed=completed,
        lost=len(sent) - completed,
        duplicates=sum(count - 1 for count in runs.values()),
        waits=tuple(waits.values()),
        never_delivered=len((sent & queued) - runs.keys()),
        unfinished=len((sent & unacked) - queued - runs.keys()),
    )


def _message_id(raw: bytes | str) -> str | None:
    try:
        message = json.loads(raw)
        if isinstance(message, list):  # kombu's unacked hash: [message, exchange, routing_key]
            message = message[0]
        return str(message["headers"]["id"])
    except (ValueError, LookupError, TypeError):
        return None


def held_ids(client: redis.Redis, queue: str) -> tuple[frozenset[str], frozenset[str]]:
    """Task ids a Redis broker holds: waiting in `queue`, and taken by a worker but not acked (any queue)."""
    waiting: list[bytes] = []
    for key in RedisInspector.sub_queues(queue):
        waiting.extend(cast(list[bytes], client.lrange(key, 0, -1)))
    return _ids(waiting), _ids(cast(list[bytes], client.hvals(REDIS_UNACKED_KEY)))


def _ids(messages: Iterable[bytes]) -> frozenset[str]:
    return frozenset(found for found in map(_message_id, messages) if found is not None)


@dataclass
class JournalTracker:
    """Reads the execution journal incrementally (exclusive XRANGE from the last id seen)."""

    client: redis.Redis
    entries: list[dict[str, str]] = field(default_factory=list)
    _last: str | None = None

    def update(self) -> None:
        fresh, self._last = read_after(self.client, self._last)
        self.entries.extend(fresh)

    def tally(
        self, sent: list[str], queued: frozenset[str] = frozenset(), unacked: frozenset[str] = frozenset()
    ) -> Tally:
        return tally(sent, self.entries, queued, unacked)
