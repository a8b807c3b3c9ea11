"""Where each task of a set of dead letters is, read straight off the broker (not through the code under
test): in the dead-letter queue, back in its source queue, or, on Redis, hidden in kombu's hash of
unacknowledged messages (restored only after the visibility timeout, by a worker's sweep). A task in
none of them is lost. Used by tests/integration/test_deadletter_replay_kills.py."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from tests.support.cluster import Cluster
from worker.runtime import dead_letters as deadletter

# kombu's Redis transport: the hash of messages taken but not acked (Channel.unacked_key's default).
KOMBU_UNACKED_HASH = "unacked"


@dataclass(frozen=True)
class Census:
    letters: Counter[str]
    """Dead letters per task id."""
    queued: Counter[str]
    """Task messages per task id in the source queue."""
    hidden: Counter[str]
    """Redis only: per task id, dead letters held in kombu's unacked hash (not in any queue)."""

    def lost(self, task_ids: list[str]) -> list[str]:
        """Tasks in no queue: with no letter and no message (a hidden letter is not in the queue either)."""
        return [i for i in task_ids if not self.letters[i] and not self.queued[i]]

    def copies(self, task_ids: list[str]) -> int:
        """Letters and messages beyond one per task: the duplicates a kill between publish and delete leaves."""
        return sum(max(0, self.letters[i] + self.queued[i] - 1) for i in task_ids)


def add_letters(cluster: Cluster, task: str, args: list[Any], count: int) -> list[str]:
    """`count` dead letters of `task` from the cluster's queue, written as the worker writes them; their task ids."""
    queue = deadletter.dead_letter_queue(cluster.dead_letter_queue)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for task_id in ids:
        record = {"reason": "task_failed", "task": task, "task_id": task_id, "args": args, "kwargs": {}}
        deadletter.publish(cluster.client, {**record, "source_queue": cluster.queue}, queue)
    return ids


def _redis_bodies(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def _body(envelope: dict[str, Any]) -> Any:
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    return json.loads(body)


def _redis_census(cluster: Cluster) -> Census:
    client = redis.Redis.from_url(cluster.broker.url)
    try:
        letters = Counter(_body(e).get("task_id") for e in _redis_bodies(client, cluster.dead_letter_queue))
        queued = Counter(e["headers"]["id"] for e in _redis_bodies(client, cluster.queue))
        hidden: Counter[str] = Counter()
        for raw in client.hvals(KOMBU_UNACKED_HASH):
            envelope, _, routing_key = json.loads(raw)
            if routing_key == cluster.dead_letter_queue:
                hidden[_body(envelope).get("task_id")] += 1
        return Census(letters, queued, hidden)
    finally:
        client.close()


def _amqp_peek(connection: Connection, name: str) -> list[Any]:
    """Every message of a queue, taken without an ack and handed back when the channel closes."""
    channel = connection.channel()
    try:
        bound = Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)(channel)
        taken = []
        while (message := bound.get(no_ack=False, accept=["json"])) is not None:
            taken.append(message)
        return taken
    finally:
        channel.close()


def _amqp_census(cluster: Cluster) -> Census:
    with Connection(cluster.broker.url) as connection:
        letters = Counter(m.payload.get("task_id") for m in _amqp_peek(connection, cluster.dead_letter_queue))
        queued = Counter(m.headers["id"] for m in _amqp_peek(connection, cluster.queue))
    return Census(letters, queued, Counter())


def census(cluster: Cluster, task_ids: list[str], settle: float = 30.0) -> Census:
    """Where each task is. RabbitMQ hands a killed process's unacked letters back once it has seen the
    connection close, which it does on its own time: until every task is found, or `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        found = _redis_census(cluster) if cluster.broker.is_redis else _amqp_census(cluster)
        if cluster.broker.is_redis or not found.lost(task_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
