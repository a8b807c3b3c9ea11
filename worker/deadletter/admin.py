"""Operating the dead-letter queue: list, show one, replay after the fix, purge.

`python -m worker.deadletter` is the command (see `main`); these are its operations, each on a
broker URL and the dead-letter queue's name. A dead letter is found by its `dead_letter_id` or by the
`task_id` of its task (what the worker's log line names first: `dead-lettered <task_id> as
<dead_letter_id>`). One task can have several dead letters (it failed again after a replay); a replay by
task id sends the task once and leaves the others, which their own ids can still replay.

Nothing is lost on failure: a replay publishes the task again *before* it acks the dead letter, so a
crash between the two leaves a duplicate dead letter, never a lost task. Letters that are only looked
at are taken without an ack and handed back when the channel closes (RabbitMQ requeues them; kombu's
Redis transport restores them), so reading never removes anything.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message

from celery_cluster_client.app import broker_use_ssl
from worker.runtime.dead_letters import dead_letter_queue

# Checked on each letter; a queue this long is read in one pass at most.
SCAN_LIMIT = 100_000


@dataclass(frozen=True)
class Replayed:
    dead_letter_id: str
    task: str | None
    queue: str
    how: str
    """"task" (sent again by name with its arguments), "message" (the original bytes), or LEFT: not sent,
    since another dead letter of the same task was replayed just before (asked for by task id)."""
    task_id: str | None = None


LEFT = "left"


def letter_id(record: dict[str, Any]) -> str:
    return str(record.get("dead_letter_id") or record.get("task_id") or "")


def ids_of(record: dict[str, Any]) -> set[str]:
    """Every id that finds this letter: its own and its task's."""
    return {str(value) for value in (record.get("dead_letter_id"), record.get("task_id")) if value}


@contextmanager
def _letters(broker_url: str, queue_name: str) -> Iterator[Iterator[tuple[dict[str, Any], Message]]]:
    """Every dead letter as (record, message), taken without an ack; unacked ones go back on exit."""
    with Connection(broker_url, connect_timeout=10, ssl=broker_use_ssl(broker_url)) as connection:
        channel = connection.channel()
        try:
            bound = dead_letter_queue(queue_name)(channel)
            bound.declare()

            def scan() -> Iterator[tuple[dict[str, Any], Message]]:
                for _ in range(SCAN_LIMIT):
                    message = bound.get(no_ack=False, accept=["json"])
                    if message is None:
                        return
                    yield dict(message.payload), message

            yield scan()
        finally:
            channel.close()


def show(broker_url: str, queue_name: str, wanted: str) -> list[dict[str, Any]]:
    """The dead letters with this dead-letter id or task id, in full, oldest first; they stay in the queue."""
    with _letters(broker_url, queue_name) as letters:
        return [record for record, _ in letters if wanted in ids_of(record)]


def _republish(app: Celery, record: dict[str, Any], queue: str) -> str:
    """Send a dead letter's work to `queue` again; returns how."""
    if record.get("body_b64") is not None:
        # A message the consumer refused (unknown task, undecodable...): the original bytes and headers,
        # for the case where a deploy taught the workers that task.
        destination = Queue(queue, Exchange(queue, type="direct", durable=True), routing_key=queue, durable=True)
        with app.producer_or_acquire() as producer:
            producer.publish(
                base64.b64decode(record["body_b64"]),
                exchange=destination.exchange,
                routing_key=destination.routing_key,
                declare=[destination],
                headers=dict(record.get("headers") or {}),
                content_type=record.get("content_type") or "application/json",
                content_encoding=record.get("content_encoding") or "utf-8",
                retry=True,
            )
        return "message"
    # A task that failed: send it again by name, same id and arguments, retries counted afresh. The
    # worker app's publish signal stamps `published_at`, so queue latency counts from the replay.
    app.send_task(
        record["task"],
        args=record.get("args") or [],
        kwargs=record.get("kwargs") or {},
        queue=queue,
        task_id=record.get("task_id"),
    )
    return "task"


def replay(
    app: Celery,
    broker_url: str,
    queue_name: str,
    wanted: set[str] | None,
    to_queue: str | None = None,
    dry_run: bool = False,
    on_replay: Callable[[Replayed], None] = lambda _: None,
) -> list[Replayed]:
    """Replay the dead letters whose dead-letter id or task id is in `wanted` (all when None) to their source
    queue or `to_queue`. A task asked for by its id is sent once: its other letters are LEFT."""
    done: list[Replayed] = []
    sent_tasks: set[str] = set()
    with _letters(broker_url, queue_name) as letters:
        for record, message in letters:
            if wanted is not None and not ids_of(record) & wanted:
                continue
            task_id = str(record.get("task_id") or "")
            if wanted is not None and task_id in sent_tasks and letter_id(record) not in wanted:
                entry = Replayed(letter_id(record), record.get("task"), "", LEFT, task_id)
                done.append(entry)
                on_replay(entry)
                continue
            queue = to_queue or record.get("source_queue")
            if not queue:
                raise ReplayError(f"dead letter {letter_id(record)} has no source queue: give --to QUEUE")
            if record.get("body_b64") is None and not record.get("task"):
                raise ReplayError(f"dead letter {letter_id(record)} names no task and holds no message to replay")
            how = "message" if record.get("body_b64") is not None else "task"
            if not dry_run:
                how = _republish(app, record, queue)
                message.ack()  # only after the task is back on a queue
            entry = Replayed(letter_id(record), record.get("task"), queue, how, task_id or None)
            done.append(entry)
            on_replay(entry)
            if task_id:
                sent_tasks.add(task_id)
    return done


def purge(broker_url: str, queue_name: str, dry_run: bool = False) -> int:
    """Remove every dead letter (or, with `dry_run`, count them); returns how many."""
    count = 0
    with _letters(broker_url, queue_name) as letters:
        for _, message in letters:
            if not dry_run:
                message.ack()
            count += 1
    return count


class ReplayError(ValueError):
    """A dead letter cannot be replayed as asked; the message says why."""
