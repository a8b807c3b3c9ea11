"""Where a Redis broker holds the messages of tasks a fault test found missing, for its failure message.

kombu's Redis transport keeps a queue as a list named after it, and a message taken but not acked in
the `unacked` hash (delivery tag -> [message, exchange, routing key]) until an ack removes it or a
sweep, under the `unacked_mutex` lock, puts it back on its queue. A missing task on its queue or held
unacked is late; one in neither was dropped.
"""

from __future__ import annotations

import json
from typing import Any

import redis

UNACKED_KEY = "unacked"
UNACKED_MUTEX_KEY = "unacked_mutex"


def _task_id(message: dict[str, Any]) -> str | None:
    task_id = (message.get("headers") or {}).get("id")
    return task_id if isinstance(task_id, str) else None


NOWHERE = "nowhere"


def redis_whereabouts(url: str, queue: str, task_ids: list[str]) -> tuple[dict[str, str], int]:
    """Where each missing task id is (on the queue / held unacked / nowhere), and the sweep lock's TTL in ms."""
    client = redis.Redis.from_url(url)
    try:
        queued = {_task_id(json.loads(raw)) for raw in client.lrange(queue, 0, -1)}
        unacked: dict[bytes, bytes] = client.hgetall(UNACKED_KEY)  # type: ignore[assignment]
        held = {_task_id(json.loads(raw)[0]) for raw in unacked.values()}
        lock_ms = int(client.pttl(UNACKED_MUTEX_KEY))
    finally:
        client.close()
    places = {
        task_id: "on the queue" if task_id in queued else "held unacked" if task_id in held else NOWHERE
        for task_id in task_ids
    }
    return places, lock_ms


def describe(places: dict[str, str], lock_ms: int) -> str:
    lines = [f"{task_id}: {place}" for task_id, place in places.items()]
    lines.append(f"{UNACKED_MUTEX_KEY} pttl {lock_ms} ms (-2: no lock)")
    return "\n".join(lines)
