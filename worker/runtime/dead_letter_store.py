"""The dead-letter queue as a store of letters: read them in place, delete one only when asked.

Every command on dead letters (list, show, replay, purge: worker.deadletter) reads through `letters`,
so nothing is taken off the queue before its caller says the letter is done with. A replay is then
copy, publish, delete: the letter stays in the queue until the task it holds is back on a queue, so a
process killed at any moment leaves every letter in place, or a duplicate, never a loss.

- Redis: letters are read where they are (LRANGE from the oldest end of the queue's list, which kombu
  pushes on the left and pops on the right) and deleted by value (LREM of that exact envelope, which
  names the letter by its kombu delivery tag, a uuid). No letter is ever popped, so none can vanish
  between a pop and kombu's record of it as unacknowledged (two commands, celery/kombu#305), nor wait
  hidden in the unacknowledged hash for the visibility timeout after a reader was killed, and a read
  does not reorder the queue.
- RabbitMQ: letters are taken with acks (basic.get) and a deletion is the ack; the ones not acked go
  back when the channel closes, or when the connection drops if the process dies.

`letters` yields at most the letters the queue held when it started, oldest first: a letter written
while it runs (a replayed task that failed again, say) is left for the next call, so a replay of every
letter ends, and replays each letter once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from celery_cluster_client.app import broker_use_ssl

# Letters read from Redis per LRANGE.
PAGE = 100
# What a letter may be: the command never decodes anything else (a pickle in the queue stays a pickle).
ACCEPT = ["json"]


@dataclass
class Letter:
    """One dead letter as it is in the queue; `delete` removes it (True), or says it was gone (False)."""

    record: dict[str, Any]
    _delete: Callable[[], bool] = field(repr=False)

    def delete(self) -> bool:
        return self._delete()


def dead_letter_queue(name: str) -> Queue:
    """The dead-letter queue as the worker declares and publishes to it (worker.runtime.dead_letters)."""
    return Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)


@contextmanager
def letters(broker_url: str, queue_name: str, limit: int) -> Iterator[Iterator[Letter]]:
    """The queue's letters, oldest first, at most `limit` and at most as many as it held at the start."""
    with Connection(broker_url, connect_timeout=10, ssl=broker_use_ssl(broker_url)) as connection:
        channel = connection.channel()
        try:
            bound = dead_letter_queue(queue_name)(channel)
            bound.declare()
            if connection.transport.driver_type == "redis":
                yield _redis_letters(channel, queue_name, limit)
            else:
                yield _amqp_letters(bound, limit)
        finally:
            channel.close()  # RabbitMQ: the letters not deleted go back to the queue


def _decoded(channel: Any, raw: bytes) -> dict[str, Any]:
    """A letter's record from kombu's envelope; a body that is not JSON raises ContentDisallowed."""
    message = channel.Message(loads(bytes_to_str(raw)), channel=channel)
    message.accept = {"application/json"}
    return dict(message.decode())


def _redis_letters(channel: Any, key: str, limit: int) -> Iterator[Letter]:
    """Letters read in place from the list `key`, oldest (rightmost) first; deleted by value."""
    client = channel.client
    total = min(int(client.llen(key)), limit)
    done = kept = 0  # letters yielded, and those of them still in the list
    while done < total:
        # The next unread letter is `kept` places from the right end: the letters deleted so far were all
        # to its right, and letters written meanwhile are pushed on the left end.
        page = client.lrange(key, -(kept + min(PAGE, total - done)), -(kept + 1))
        if not page:
            return  # someone else emptied the queue
        for raw in reversed(page):
            removed: list[bool] = []

            def delete(raw: bytes = raw, removed: list[bool] = removed) -> bool:
                removed.append(int(client.lrem(key, -1, raw)) > 0)
                return removed[-1]

            yield Letter(_decoded(channel, raw), delete)
            done += 1
            if not removed:
                kept += 1
            if done >= total:
                return


def _amqp_letters(bound: Any, limit: int) -> Iterator[Letter]:
    """Letters taken with acks (they stay the queue's until acked), as many as the queue held at the start."""
    _, count, _ = bound.queue_declare(passive=True)
    for _ in range(min(int(count), limit)):
        message = bound.get(no_ack=False, accept=ACCEPT)
        if message is None:
            return

        def delete(message: Any = message) -> bool:
            message.ack()
            return True

        yield Letter(dict(message.payload), delete)
