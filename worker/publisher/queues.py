"""Queue inspection: per queue, how many tasks wait, how many are in flight, how old the oldest is.

Shared by the metrics publisher (`worker.publisher.handler`, on AWS) and the local cluster. A pool's scale
signal needs in-flight work as well as the waiting list: with late acks and prefetch 1 a busy pool
can have an empty list while every process runs a task, and a list length alone would scale it in.

Redis (kombu's transport, checked against kombu 5.7 `kombu/transport/redis.py`):
- a queue is a list; `_put` LPUSHes and consumers BRPOP, so the oldest message is at the tail
  (LINDEX -1);
- priorities live in sub-lists named `queue + "\\x06\\x16" + step` for steps 3, 6, 9 (step 0 is the
  bare queue name), `Channel.sep` and `PRIORITY_STEPS`;
- a delivered, not yet acked message (reserved by a worker, or running with late acks) sits in
  the hash `unacked`, keyed by delivery tag, as JSON `[message, exchange, routing_key]`. Our queues
  are bound with routing key = queue name (`worker.runtime.celeryconfig.queue`), so the routing key names
  the queue.
Every queue of a pool is read in one pipelined round trip. kombu's `global_keyprefix` transport option
is not supported (worker.runtime.celeryconfig does not set it).

RabbitMQ (management HTTP API, `GET /api/queues/<vhost>?columns=...`, one request for all queues):
`messages_ready` is waiting, `messages_unacknowledged` is in flight. The oldest-message age comes
from `head_message_timestamp`: the AMQP `timestamp` property of the message at the head, which
`worker.runtime.stamping` sets from the same publish time (whole seconds). The API reports it only from
its statistics, so these counts lag by up to `collect_statistics_interval` (5 s by default; the
statistics-free listing is fresher but has no timestamp). A head with no timestamp (an unstamped
producer; RabbitMQ reports none for quorum queues) is dated from first sight by the queue's publish
counter (`worker.publisher.unstamped`); without statistics its age is None and no latency datum is published.

On Redis, a list's oldest message without `published_at` is dated from first sight too
(`worker.publisher.unstamped`: the newest message of every list is recorded at each sample).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx
import redis

from worker.names import PUBLISHED_AT_HEADER
from worker.publisher.sightings import UNSTAMPED_WINDOW, CounterSightings, ListSightings

# kombu.transport.redis.Channel.sep / PRIORITY_STEPS / unacked_key (kombu 5.7); restated here
# rather than imported from a private module, and pinned by the tests against the real transport.
REDIS_PRIORITY_SEP: Final = "\x06\x16"
REDIS_PRIORITY_STEPS: Final = (0, 3, 6, 9)
REDIS_UNACKED_KEY: Final = "unacked"


class InspectionError(RuntimeError):
    """The broker could not be inspected; the message names the broker and the reason."""


@dataclass(frozen=True)
class QueueStats:
    """One queue at one instant."""

    queue: str
    waiting: int
    """Messages in the queue that no consumer holds."""
    in_flight: int
    """Messages delivered to a worker and not yet acked: prefetched (reserved) or running."""
    oldest_published_at: float | None
    """`published_at` of the oldest waiting message (epoch seconds), None when none waits or it is unknown;
    for a message without a stamp, when the inspector first saw it (worker.publisher.unstamped)."""
    unstamped: int = 0
    """Waiting messages without a stamp among those the inspector read (worker.publisher.unstamped)."""

    @property
    def backlog(self) -> int:
        return self.waiting + self.in_flight

    def oldest_age(self, now: float) -> float | None:
        """Queue latency: seconds the oldest waiting message has waited (0 when the queue is empty)."""
        if self.waiting == 0:
            return 0.0
        if self.oldest_published_at is None:
            return None
        return max(0.0, now - self.oldest_published_at)


@dataclass(frozen=True)
class Snapshot:
    """Several queues read together, at `taken_at` (epoch seconds)."""

    taken_at: float
    queues: tuple[QueueStats, ...]

    def select(self, names: Iterable[str]) -> Snapshot:
        wanted = set(names)
        return Snapshot(self.taken_at, tuple(q for q in self.queues if q.queue in wanted))

    @property
    def waiting(self) -> int:
        return sum(q.waiting for q in self.queues)

    @property
    def in_flight(self) -> int:
        return sum(q.in_flight for q in self.queues)

    @property
    def backlog(self) -> int:
        return self.waiting + self.in_flight

    @property
    def oldest_age(self) -> float | None:
        """The worst queue latency over these queues; None if a non-empty queue's age is unknown."""
        ages = [q.oldest_age(self.taken_at) for q in self.queues]
        if any(age is None for age in ages):
            return None
        return max((age for age in ages if age is not None), default=0.0)


def backlog_per_instance(backlog: int, in_service: int) -> float:
    """docs/architecture.md's scale signal: (waiting + in-flight) / max(in-service instances, 1)."""
    return backlog / max(in_service, 1)


class QueueInspector(Protocol):
    def inspect(self, queues: Sequence[str]) -> Snapshot: ...

    def close(self) -> None: ...


def _published_at(raw: bytes | str | None) -> float | None:
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        value = payload.get("headers", {}).get(PUBLISHED_AT_HEADER)
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


class RedisInspector:
    """Reads kombu's Redis layout; one pipelined round trip per `inspect` (and an LPOS per list whose
    oldest message has no stamp, to date it from first sight: worker.publisher.unstamped)."""

    def __init__(self, url: str, client: redis.Redis | None = None) -> None:
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=5)
        self._url = url
        self._sightings = ListSightings()

    @staticmethod
    def sub_queues(queue: str) -> list[str]:
        return [queue if step == 0 else f"{queue}{REDIS_PRIORITY_SEP}{step}" for step in REDIS_PRIORITY_STEPS]

    def inspect(self, queues: Sequence[str]) -> Snapshot:
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            for key in self.sub_queues(queue):
                pipe.llen(key)
                pipe.lrange(key, -UNSTAMPED_WINDOW, -1)  # the oldest messages, oldest last
                pipe.lindex(key, 0)  # the newest
        pipe.hvals(REDIS_UNACKED_KEY)
        try:
            replies: list[Any] = pipe.execute()
        except redis.RedisError as exc:
            raise InspectionError(f"redis broker {_safe(self._url)}: {exc}") from exc
        taken_at = time.time()
        in_flight = _unacked_by_queue(replies.pop())
        stats = []
        per_key = 3
        per_queue = per_key * len(REDIS_PRIORITY_STEPS)
        for index, queue in enumerate(queues):
            chunk = replies[index * per_queue : (index + 1) * per_queue]
            oldest: list[float | None] = []
            unstamped = 0
            for step, key in enumerate(self.sub_queues(queue)):
                length, window, newest = chunk[step * per_key : (step + 1) * per_key]
                if not length:
                    self._sightings.observe(key, taken_at, 0, None, None)
                    continue
                stamps = [_published_at(message) for message in window]
                unstamped += sum(1 for stamp in stamps if stamp is None)
                tail, tail_stamp = (window[-1], stamps[-1]) if window else (None, None)
                self._sightings.observe(key, taken_at, int(length), newest, tail_stamp)
                if tail_stamp is None and tail is not None:
                    tail_stamp = self._sightings.first_seen(key, tail, self._present(key))
                oldest.append(tail_stamp)
            known = [s for s in oldest if s is not None]
            first = min(known) if known and len(known) == len(oldest) else None
            stats.append(
                QueueStats(queue, sum(int(n) for n in chunk[0::per_key]), in_flight.get(queue, 0), first, unstamped)
            )
        return Snapshot(taken_at, tuple(stats))

    def _present(self, key: str) -> Callable[[bytes], bool]:
        def present(message: bytes) -> bool:
            # From the oldest end: recorded messages that still wait are near it.
            return self._client.lpos(key, message, rank=-1) is not None  # type: ignore[arg-type]  # bytes work

        return present

    def close(self) -> None:
        self._client.close()


def _unacked_by_queue(values: list[bytes]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        try:
            _message, _exchange, routing_key = json.loads(value)
        except (ValueError, TypeError):
            continue
        counts[routing_key] = counts.get(routing_key, 0) + 1
    return counts


class RabbitMQInspector:
    """Reads the RabbitMQ management API: one GET for every queue of the virtual host."""

    COLUMNS: Final = "name,messages_ready,messages_unacknowledged,head_message_timestamp,message_stats.publish"
    """Only what the inspector reads: the listing stays small with hundreds of queues. The publish
    counter dates a head without a timestamp from first sight (worker.publisher.unstamped)."""

    def __init__(self, management_url: str, vhost: str = "/", client: httpx.Client | None = None) -> None:
        parts = urlsplit(management_url)
        self._base = f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 15672)}"
        auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self._client = client if client is not None else httpx.Client(auth=auth, timeout=5.0)
        self._vhost = vhost
        self._sightings = CounterSightings()

    def inspect(self, queues: Sequence[str]) -> Snapshot:
        url = f"{self._base}/api/queues/{quote(self._vhost, safe='')}"
        try:
            # With statistics: head_message_timestamp is only there (see the module docstring).
            response = self._client.get(url, params={"columns": self.COLUMNS})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise InspectionError(f"rabbitmq management API at {self._base}: {exc}") from exc
        taken_at = time.time()
        rows = {row["name"]: row for row in response.json()}
        stats = []
        for queue in queues:
            row = rows.get(queue, {})  # a queue no one has declared yet holds nothing
            head = row.get("head_message_timestamp")
            ready = int(row.get("messages_ready") or 0)
            published = (row.get("message_stats") or {}).get("publish")
            first = self._sightings.first_seen(
                queue, taken_at, published if isinstance(published, int) else None, ready
            )
            stamped = isinstance(head, int | float)
            stats.append(
                QueueStats(
                    queue,
                    ready,
                    int(row.get("messages_unacknowledged") or 0),
                    float(head) if stamped else first,
                    1 if ready and not stamped else 0,
                )
            )
        return Snapshot(taken_at, tuple(stats))

    def close(self) -> None:
        self._client.close()


def management_url_for(broker_url: str, port: int | None = None) -> str:
    """Management API URL on the broker's host with its credentials: HTTPS on 443 for amqps (Amazon
    MQ), HTTP on 15672 for amqp (RabbitMQ's default), unless `port` says otherwise."""
    parts = urlsplit(broker_url)
    scheme = "https" if parts.scheme == "amqps" else "http"
    port = port if port is not None else 443 if parts.scheme == "amqps" else 15672
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}@"
    return f"{scheme}://{credentials}{parts.hostname}:{port}"


def vhost_of(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def inspector_for(broker_url: str, management_url: str | None = None) -> QueueInspector:
    scheme = urlsplit(broker_url).scheme
    if scheme in ("redis", "rediss"):
        return RedisInspector(broker_url)
    if scheme in ("amqp", "amqps"):
        return RabbitMQInspector(management_url or management_url_for(broker_url), vhost_of(broker_url))
    raise InspectionError(f"broker URL scheme {scheme!r} is not redis, rediss, amqp or amqps")


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"
