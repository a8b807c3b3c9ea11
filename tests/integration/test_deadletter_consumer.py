"""The consumer's "cannot run this message" hooks and `publish`, in this process against the session's
Redis: each hook puts a dead letter with its reason and the message whole on the dead-letter queue, and
the original leaves its queue (Celery's own handling still runs). The same paths inside a real worker,
on both brokers, are in tests/integration/test_dead_letters.py; these are the ones mutation testing sees."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.signals import task_failure
from kombu.asynchronous.timer import Timer
from kombu.connection import Connection
from kombu.exceptions import ContentDisallowed
from kombu.message import Message

from tests.support.redis_queues import RedisQueues
from worker.names import DEAD_LETTER_REASON_HEADER
from worker.runtime import dead_letters as deadletter

pytestmark = pytest.mark.redis


@pytest.fixture
def app(redis_queues: RedisQueues) -> Celery:
    return Celery("t", broker=redis_queues.url, set_as_current=False)


def _consumer(app: Celery) -> deadletter.DeadLetteringConsumer:
    # Celery's consumer asks its worker controller only whether it runs an event loop; a worker is
    # what the integration tests start.
    return deadletter.DeadLetteringConsumer(
        lambda *_: None, app=app, hostname="t@h", timer=Timer(), controller=SimpleNamespace(use_eventloop=False)
    )


def test_publish_adds_an_id_time_and_host_and_labels_the_message(app: Celery, redis_queues: RedisQueues) -> None:
    dlq = redis_queues.name("dead")
    before = time.time()
    deadletter.publish(app, {"reason": "task_failed", "task_id": "t-1"}, deadletter.dead_letter_queue(dlq))
    (message,) = redis_queues.take(dlq)
    record = message.payload
    assert set(record) == {"dead_letter_id", "dead_lettered_at", "hostname", "reason", "task_id"}
    assert len(record["dead_letter_id"]) == 32
    assert int(record["dead_letter_id"], 16) >= 0
    assert before <= record["dead_lettered_at"] <= time.time()
    assert record["hostname"] == socket.gethostname()
    assert (record["reason"], record["task_id"]) == ("task_failed", "t-1")
    assert message.headers[DEAD_LETTER_REASON_HEADER] == "task_failed"
    assert message.content_type == "application/json"


def test_each_letter_gets_its_own_id_and_the_record_keeps_a_given_one(app: Celery, redis_queues: RedisQueues) -> None:
    dlq = deadletter.dead_letter_queue(redis_queues.name("dead"))
    deadletter.publish(app, {"reason": "task_failed"}, dlq)
    deadletter.publish(app, {"reason": "task_failed"}, dlq)
    deadletter.publish(app, {"reason": "task_failed", "dead_letter_id": "kept"}, dlq)
    ids = [m.payload["dead_letter_id"] for m in redis_queues.take(dlq.name)]
    assert len(set(ids)) == 3
    assert ids[2] == "kept"


def test_install_makes_publish_use_the_configured_queue(app: Celery, redis_queues: RedisQueues) -> None:
    deadletter.install(redis_queues.name("configured"))
    deadletter.publish(app, {"reason": "task_failed", "task_id": "t-2"})
    assert [m.payload["task_id"] for m in redis_queues.take(redis_queues.name("configured"))] == ["t-2"]


@contextmanager
def _received(redis_queues: RedisQueues, queue: str, body: bytes, headers: dict[str, Any]) -> Iterator[Message]:
    """A message as the consumer receives it: taken from `queue`, not yet acked; on exit its channel
    closes, which hands it back to the queue unless it was acked or rejected."""
    redis_queues.publish(queue, body, content_type="application/json", content_encoding="utf-8", headers=headers)
    with Connection(redis_queues.url) as connection:
        channel = connection.channel()
        message = deadletter.dead_letter_queue(queue)(channel).get(no_ack=False, accept=["json"])
        assert message is not None
        try:
            yield message
        finally:
            channel.close()


Hook = Callable[[deadletter.DeadLetteringConsumer, Message, BaseException], None]


@pytest.mark.parametrize(
    ("hook", "exc", "reason", "error"),
    [
        (lambda c, m, e: c.on_decode_error(m, e), ValueError("bad json"), "decode_error", "ValueError('bad json')"),
        (lambda c, m, e: c.on_unknown_task(None, m, e), KeyError("no.such"), "unknown_task", "KeyError('no.such')"),
        (lambda c, m, e: c.on_invalid_task(None, m, e), TypeError("no args"), "invalid_task", "TypeError('no args')"),
        (
            lambda c, m, e: c.on_invalid_task(None, m, e),
            ContentDisallowed("pickle"),
            "content_disallowed",
            "ContentDisallowed('pickle')",
        ),
        (lambda c, m, e: c.on_unknown_message(None, m), RuntimeError(), "unknown_message", None),
    ],
    ids=["decode", "unknown-task", "invalid-task", "content-disallowed", "unknown-message"],
)
def test_a_message_the_consumer_cannot_run_is_dead_lettered_and_leaves_its_queue(
    app: Celery, redis_queues: RedisQueues, hook: Hook, exc: BaseException, reason: str, error: str | None
) -> None:
    dlq, source = redis_queues.name("dead"), redis_queues.name("io")
    deadletter.install(dlq)
    body = b"\xff\xfe{not json"
    headers = {"task": "no.such", "id": "p-1", "retries": 0, "nested": {"dropped": True}}
    with _received(redis_queues, source, body, headers) as message:
        hook(_consumer(app), message, exc)
    (letter,) = redis_queues.take(dlq)
    record = letter.payload
    assert record["reason"] == reason
    assert letter.headers[DEAD_LETTER_REASON_HEADER] == reason
    assert record["error"] == error
    assert (record["task"], record["task_id"], record["source_queue"]) == ("no.such", "p-1", source)
    assert (record["content_type"], record["content_encoding"]) == ("application/json", "utf-8")
    assert record["headers"] == {"task": "no.such", "id": "p-1", "retries": 0}
    assert base64.b64decode(record["body_b64"]) == body
    # Celery's own handling ran too: the original was acked or rejected, not handed back.
    assert redis_queues.depth(source) == 0


def test_a_failing_task_reaches_the_queue_install_configured(app: Celery, redis_queues: RedisQueues) -> None:
    """Through Celery's own task_failure signal, as the worker process sends it, to the real queue."""
    dlq = redis_queues.name("dead")
    task_failure.disconnect(dispatch_uid="celery-cluster-dead-letter")  # connected by an earlier test
    deadletter.install(dlq)
    deadletter.install(dlq)  # the worker imports its app more than once; one letter per failure still

    @app.task(name="reports.flaky", max_retries=2, shared=False)
    def flaky() -> None: ...

    flaky.push_request(retries=2, delivery_info={"routing_key": "io"})
    try:
        task_failure.send(sender=flaky, task_id="t-9", exception=ValueError("x"), args=[1], kwargs={}, einfo=None)
    finally:
        flaky.pop_request()
    (letter,) = redis_queues.take(dlq)
    assert (letter.payload["reason"], letter.payload["task_id"]) == ("retries_exhausted", "t-9")
    assert letter.headers[DEAD_LETTER_REASON_HEADER] == "retries_exhausted"
