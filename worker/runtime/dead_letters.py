"""Dead letters: failed tasks and undecodable messages land in one queue, with the reason.

Application-level on purpose, so it behaves the same on Redis (which has no native dead
lettering) and on RabbitMQ. Two paths feed it:
- a task that ends in failure (its retries exhausted, or an error it does not retry), from the
  `task_failure` signal, which fires in the worker process before the late ack;
- a message the consumer cannot turn into a task (undecodable body, refused content type such as
  pickle, unknown task name, malformed headers), from `DeadLetteringConsumer`, which Celery would
  otherwise ack and forget.
In both cases the dead letter is published before the original is acked or rejected, so a crash
between the two duplicates a dead letter rather than losing it; the source queue keeps flowing.
"""

from __future__ import annotations

import base64
import socket
import time
import traceback as tb
import uuid
from typing import Any

import structlog
from celery import Celery, Task
from celery.signals import task_failure
from celery.worker.consumer import Consumer
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.exceptions import ContentDisallowed
from kombu.message import Message

from celery_cluster_client.app import broker_use_ssl
from celery_cluster_client.contract import SENDER_VERSION_HEADER
from worker.names import DEAD_LETTER_REASON_HEADER, EVENT_DEAD_LETTERED

# One `task.dead_lettered` line per letter: the pool's metric filters count them per code version
# (dead-letter growth) and per reason (unknown task names: version skew), infra.components.canary.
log = structlog.get_logger("worker.dead_letters")

REASON_DECODE_ERROR = "decode_error"
REASON_UNKNOWN_TASK = "unknown_task"
REASON_INVALID_TASK = "invalid_task"
# A content type outside accept_content (pickle, yaml...): refused before it is decoded.
REASON_CONTENT_DISALLOWED = "content_disallowed"
REASON_UNKNOWN_MESSAGE = "unknown_message"
REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_TASK_FAILED = "task_failed"

_MAX_TRACEBACK = 4000

_state: dict[str, Any] = {}


def dead_letter_queue(name: str) -> Queue:
    return Queue(name, Exchange(name, type="direct", durable=True), routing_key=name, durable=True)


def publish(app: Celery, record: dict[str, Any], queue: Queue | None = None) -> None:
    """Publish one dead letter (a JSON object) to `queue`, by default the configured dead-letter queue."""
    dlq: Queue = queue if queue is not None else _state["queue"]
    # `dead_letter_id` names this letter for `python -m worker.deadletter show/replay` (a poison message
    # may carry no task id, and one task id can be dead-lettered again after a replay).
    record = {
        "dead_letter_id": uuid.uuid4().hex,
        "dead_lettered_at": time.time(),
        "hostname": socket.gethostname(),
        **record,
    }
    with app.producer_or_acquire() as producer:
        producer.publish(
            record,
            exchange=dlq.exchange,
            routing_key=dlq.routing_key,
            declare=[dlq],
            serializer="json",
            headers={DEAD_LETTER_REASON_HEADER: record["reason"]},
            retry=True,
            retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
        )
    # One structured line: `event` for the metric filters that count letters per version and reason,
    # and both ids in `message`, so that `python -m worker.deadletter show` finds it by either one.
    log.warning(
        EVENT_DEAD_LETTERED,
        message="dead-lettered {} as {} ({}, {})".format(
            record.get("task_id") or "a message with no task id",
            record["dead_letter_id"],
            record["reason"],
            record.get("task") or "no task name",
        ),
        reason=record["reason"],
        task=record.get("task"),
        task_id=record.get("task_id"),
        source_queue=record.get("source_queue"),
        sender_version=record.get("sender_version"),
        dead_letter_id=record["dead_letter_id"],
    )


def _message_record(message: Message, reason: str, exc: BaseException | None) -> dict[str, Any]:
    headers = dict(message.headers or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return {
        "reason": reason,
        "error": repr(exc) if exc is not None else None,
        "task": headers.get("task"),
        "task_id": headers.get("id"),
        # Who sent it, beside the reason: an unknown task name from a newer producer is version skew
        # (deploy workers first), from an older one a removed task that still has senders.
        "sender_version": headers.get(SENDER_VERSION_HEADER),
        "source_queue": (message.delivery_info or {}).get("routing_key"),
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "headers": {k: v for k, v in headers.items() if isinstance(v, str | int | float | bool | None)},
        # Base64 keeps any payload (pickle, garbage) intact and JSON-safe for inspection or replay.
        "body_b64": base64.b64encode(body).decode(),
    }


class DeadLetteringConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer, with every "cannot run this message" path routed to the dead-letter queue."""

    def _dead_letter(self, message: Message, reason: str, exc: BaseException | None) -> None:
        publish(self.app, _message_record(message, reason, exc))

    def on_decode_error(self, message: Message, exc: BaseException) -> None:
        self._dead_letter(message, REASON_DECODE_ERROR, exc)
        super().on_decode_error(message, exc)

    def on_unknown_task(self, body: Any, message: Message, exc: BaseException) -> None:
        self._dead_letter(message, REASON_UNKNOWN_TASK, exc)
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Message, exc: BaseException) -> None:
        reason = REASON_CONTENT_DISALLOWED if isinstance(exc, ContentDisallowed) else REASON_INVALID_TASK
        self._dead_letter(message, reason, exc)
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        self._dead_letter(message, REASON_UNKNOWN_MESSAGE, None)
        super().on_unknown_message(body, message)


def _on_task_failure(
    sender: Task | None = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if sender is None:
        return
    request = sender.request
    retries = request.retries or 0
    exhausted = sender.max_retries is not None and retries >= sender.max_retries and retries > 0
    trace = str(einfo) if einfo is not None else "".join(tb.format_exception(exception)) if exception else ""
    publish(
        sender.app,
        {
            "reason": REASON_RETRIES_EXHAUSTED if exhausted else REASON_TASK_FAILED,
            "error": repr(exception),
            "task": sender.name,
            "task_id": task_id,
            "sender_version": (request.headers or {}).get(SENDER_VERSION_HEADER)
            or getattr(request, SENDER_VERSION_HEADER, None),
            "retries": retries,
            "source_queue": (request.delivery_info or {}).get("routing_key"),
            "args": list(args or []),
            "kwargs": dict(kwargs or {}),
            "traceback": trace[-_MAX_TRACEBACK:],
        },
    )


def install(queue_name: str) -> None:
    _state["queue"] = dead_letter_queue(queue_name)
    task_failure.connect(_on_task_failure, weak=False, dispatch_uid="celery-cluster-dead-letter")


def read(broker_url: str, queue_name: str, *, limit: int = 100, remove: bool = False) -> list[dict[str, Any]]:
    """Up to `limit` dead letters, oldest first. With `remove=False` they stay in the queue
    (taken without an ack, then handed back when the channel closes), so reading is safe."""
    records: list[dict[str, Any]] = []
    with Connection(broker_url, connect_timeout=10, ssl=broker_use_ssl(broker_url)) as connection:
        channel = connection.channel()
        try:
            bound = dead_letter_queue(queue_name)(channel)
            bound.declare()
            while len(records) < limit:
                message = bound.get(no_ack=False, accept=["json"])
                if message is None:
                    break
                records.append(dict(message.payload))
                if remove:
                    message.ack()
        finally:
            channel.close()  # unacked messages go back to the queue (RabbitMQ requeues, Redis restores)
    return records
