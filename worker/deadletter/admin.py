"""Operating the dead-letter queue: list, show one, replay after the fix, purge.

`python -m worker.deadletter` is the command (see `main`); these are its operations, each on a
broker URL and the dead-letter queue's name. A dead letter is found by its `dead_letter_id` or by the
`task_id` of its task (what the worker's log line names first: `dead-lettered <task_id> as
<dead_letter_id>`). One task can have several dead letters (it failed again after a replay); a replay by
task id sends the task once and leaves the others, which their own ids can still replay.

Nothing is lost, whenever the command stops: a replay is copy, publish, delete. It reads the letter in
place, publishes its task again (the publish returns once the broker has it: Redis's reply, RabbitMQ's
publisher confirm), and only then deletes the letter (worker.runtime.dead_letter_store). A process
killed between the publish and the delete leaves the letter too: a duplicate, never a loss. Reading
removes nothing, and a replay of every letter replays the letters the queue held when it started, each
once: one that a worker writes back meanwhile (the task failed again) waits for the next replay.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from worker.runtime.dead_letter_store import letters

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


def show(broker_url: str, queue_name: str, wanted: str) -> list[dict[str, Any]]:
    """The dead letters with this dead-letter id or task id, in full, oldest first; they stay in the queue."""
    with letters(broker_url, queue_name, SCAN_LIMIT) as found:
        return [letter.record for letter in found if wanted in ids_of(letter.record)]


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
    with letters(broker_url, queue_name, SCAN_LIMIT) as found:
        for letter in found:
            record = letter.record
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
                letter.delete()  # only once the task is back on a queue
            entry = Replayed(letter_id(record), record.get("task"), queue, how, task_id or None)
            done.append(entry)
            on_replay(entry)
            if task_id:
                sent_tasks.add(task_id)
    return done


def purge(broker_url: str, queue_name: str, dry_run: bool = False) -> int:
    """Remove every dead letter (or, with `dry_run`, count them); returns how many."""
    count = 0
    with letters(broker_url, queue_name, SCAN_LIMIT) as found:
        for letter in found:
            if not dry_run:
                letter.delete()
            count += 1
    return count


class ReplayError(ValueError):
    """A dead letter cannot be replayed as asked; the message says why."""
