"""Dead letters: failed tasks and undecodable messages land in one queue, with the reason.

Application-level on purpose, so it behaves the same on Redis (which has no native dead
lettering) and on RabbitMQ. Two paths feed it:
- a task that ends in failure (its retries exhausted, or an error it does not retry), from the
  `task_failure` signal, which fires in the worker process before the late ack;
- a message the consumer cannot turn into a task (undecodable body, refused content type such as
  pickle, unknown task name, malformed headers, a body of the wrong shape for its task, an envelope
  the transport could not read), from `DeadLetteringConsumer`, which Celery would otherwise ack and
  forget, or crash on: an error Celery does not expect while it builds the request (a JSON body that
  is not `[args, kwargs, embed]` raised "too many values to unpack") ended the worker, and on Redis the
  message came back to the head of its queue after each restart, so nothing behind it ran.
In both cases the dead letter is published before the original is acked, so a crash between the two
duplicates a dead letter rather than losing it; the source queue keeps flowing. Each refused message
is one log line (the dead letter's); Celery's own error line for the same message is not written.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
import traceback as tb
import uuid
from typing import Any

import structlog
from celery import Celery, Task, signals
from celery.exceptions import NotRegistered
from celery.signals import task_failure
from celery.utils.objects import Bunch
from celery.worker.consumer import Consumer
from kombu.entity import Queue
from kombu.exceptions import ContentDisallowed
from kombu.message import Message

from celery_cluster_client.contract import SENDER_VERSION_HEADER
from worker.names import DEAD_LETTER_REASON_HEADER, EVENT_DEAD_LETTERED, MALFORMED_HEADER
from worker.runtime.dead_letter_store import dead_letter_queue, letters

# dead_letter_queue is the store's (it reads the queue this module writes to), and re-exported here.
__all__ = ["DeadLetteringConsumer", "dead_letter_queue", "install", "publish", "read"]

# One `task.dead_lettered` line per letter: the pool's metric filters count them per code version
# (dead-letter growth) and per reason (unknown task names: version skew), infra.components.canary.
log = structlog.get_logger("worker.dead_letters")
logger = logging.getLogger(__name__)

REASON_DECODE_ERROR = "decode_error"
REASON_UNKNOWN_TASK = "unknown_task"
REASON_INVALID_TASK = "invalid_task"
# A content type outside accept_content (pickle, yaml...): refused before it is decoded.
REASON_CONTENT_DISALLOWED = "content_disallowed"
REASON_UNKNOWN_MESSAGE = "unknown_message"
# The broker's envelope could not be read (worker.runtime.redis_take marks such messages).
REASON_MALFORMED_ENVELOPE = "malformed_envelope"
REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_TASK_FAILED = "task_failed"

_MAX_TRACEBACK = 4000

_state: dict[str, Any] = {}


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
    # and in `message` what happened (what, why, from where) with both ids, so that
    # `python -m worker.deadletter show` finds it by either one taken from this line.
    log.warning(
        EVENT_DEAD_LETTERED,
        message="dead-lettered {} as {} ({}, {}) from queue {}: {}".format(
            record.get("task_id") or "a message with no task id",
            record["dead_letter_id"],
            record["reason"],
            record.get("task") or "no task name",
            record.get("source_queue"),
            record.get("error"),
        ),
        reason=record["reason"],
        task=record.get("task"),
        task_id=record.get("task_id"),
        source_queue=record.get("source_queue"),
        sender_version=record.get("sender_version"),
        dead_letter_id=record["dead_letter_id"],
        error=record.get("error"),
    )


def _message_record(message: Message, reason: str, error: str | None) -> dict[str, Any]:
    headers = dict(message.headers) if isinstance(message.headers, dict) else {}
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return {
        "reason": reason,
        "error": error,
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

    def _refuse(self, message: Message, reason: str, error: BaseException | str | None) -> None:
        """Dead-letter the message, then ack it: one log line, and the queue moves on."""
        text = repr(error) if isinstance(error, BaseException) else error
        publish(self.app, _message_record(message, reason, text))
        if not message.acknowledged:
            message.ack_log_error(logger, self.connection_errors)

    def on_decode_error(self, message: Message, exc: BaseException) -> None:
        self._refuse(message, REASON_DECODE_ERROR, exc)

    def on_unknown_task(self, body: Any, message: Message, exc: BaseException) -> None:
        self._refuse(message, REASON_UNKNOWN_TASK, exc)
        _fail_unknown_task(self.app, message)

    def on_invalid_task(self, body: Any, message: Message, exc: BaseException) -> None:
        reason = REASON_CONTENT_DISALLOWED if isinstance(exc, ContentDisallowed) else REASON_INVALID_TASK
        self._refuse(message, reason, exc)
        signals.task_rejected.send(sender=self, message=message, exc=exc)

    def on_unknown_message(self, body: Any, message: Message) -> None:
        self._refuse(message, REASON_UNKNOWN_MESSAGE, None)
        signals.task_rejected.send(sender=self, message=message, exc=None)

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's handler, behind two guards: a message the transport marked as unreadable is refused
        before Celery looks at it, and any error Celery does not expect while it turns a message into a
        request refuses that message instead of ending the worker."""
        handle = super().create_task_handler(*args, **kwargs)
        fatal = (*self.connection_errors, *self.channel_errors, MemoryError)

        def on_task_received(message: Message) -> Any:
            headers = message.headers if isinstance(message.headers, dict) else {}
            if headers.get(MALFORMED_HEADER):
                return self._refuse(message, REASON_MALFORMED_ENVELOPE, str(headers[MALFORMED_HEADER]))
            try:
                return handle(message)
            except fatal:
                raise
            except Exception as exc:  # a message of a shape Celery does not expect: keep it, not the crash
                if message.acknowledged:  # refused already, before the error
                    return None
                return self._refuse(message, REASON_INVALID_TASK, exc)

        return on_task_received


def _fail_unknown_task(app: Celery, message: Message) -> None:
    """What Celery does besides logging for an unknown task: a caller waiting on the result gets the
    failure (NotRegistered) instead of waiting forever. Best effort; the dead letter is the record."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    task_id, name = headers.get("id"), headers.get("task")
    if not task_id or not name:
        return
    request = Bunch(
        name=name,
        chord=None,
        root_id=headers.get("root_id"),
        correlation_id=(message.properties or {}).get("correlation_id"),
        reply_to=(message.properties or {}).get("reply_to"),
        errbacks=None,
    )
    try:
        app.backend.mark_as_failure(task_id, NotRegistered(name), request=request)
    except Exception:
        logger.debug("could not record the failure of unknown task %s", task_id, exc_info=True)


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
    """Up to `limit` dead letters, oldest first. With `remove=False` they stay in the queue, in place
    (worker.runtime.dead_letter_store), so reading is safe even if the reader is killed."""
    records: list[dict[str, Any]] = []
    with letters(broker_url, queue_name, limit) as found:
        for letter in found:
            records.append(letter.record)
            if remove:
                letter.delete()
    return records
