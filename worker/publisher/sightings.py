"""When a message without a `published_at` stamp arrived, estimated from what earlier samples saw.

The method and its limits are in `worker.publisher.unstamped`; the inspectors (`worker.publisher.queues`)
keep one tracker per list (Redis) or queue (RabbitMQ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

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
