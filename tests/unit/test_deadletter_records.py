"""What a dead letter says (worker/runtime/dead_letters.py): the reason (retries exhausted or a plain failure), the
task, where it came from, and a poison message's bytes kept intact. The broker round trip is in
tests/integration/test_dead_letters.py; here the records themselves, with the publish captured."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from celery import Celery
from kombu.message import Message

from worker.runtime import dead_letters as deadletter


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    monkeypatch.setattr(deadletter, "publish", lambda app, record, queue=None: records.append(record))
    return records


def _fail(app: Celery, max_retries: int | None, retries: int, exc: BaseException) -> None:
    @app.task(name="reports.flaky", max_retries=max_retries, shared=False)
    def flaky(*_: Any, **__: Any) -> None: ...

    flaky.push_request(retries=retries, delivery_info={"routing_key": "io"})
    try:
        deadletter._on_task_failure(
            sender=flaky, task_id="t-1", exception=exc, args=("r7",), kwargs={"force": True}, einfo=None
        )
    finally:
        flaky.pop_request()


@pytest.mark.parametrize(
    ("max_retries", "retries", "reason"),
    [
        (3, 3, "retries_exhausted"),  # the last retry failed
        (1, 1, "retries_exhausted"),
        (3, 5, "retries_exhausted"),
        (3, 2, "task_failed"),  # a failure that is not a retry's (retries left, or none asked for)
        (None, 4, "task_failed"),
        (0, 0, "task_failed"),
    ],
)
def test_a_failed_task_is_dead_lettered_with_its_reason(
    published: list[dict[str, Any]], max_retries: int | None, retries: int, reason: str
) -> None:
    _fail(Celery("t", set_as_current=False), max_retries, retries, ValueError("no such report"))
    (record,) = published
    assert record["reason"] == reason
    assert record["retries"] == retries
    assert (record["task"], record["task_id"], record["source_queue"]) == ("reports.flaky", "t-1", "io")
    assert (record["args"], record["kwargs"]) == (["r7"], {"force": True})
    assert record["error"] == "ValueError('no such report')"
    assert record["traceback"] == "ValueError: no such report\n"  # raised nowhere: no frames above it


def test_a_long_traceback_keeps_its_end(published: list[dict[str, Any]]) -> None:
    _fail(Celery("t", set_as_current=False), 3, 3, RuntimeError("x" * 10_000))
    (record,) = published
    assert record["traceback"] == ("RuntimeError: " + "x" * 10_000 + "\n")[-4000:]


def test_no_sender_publishes_nothing(published: list[dict[str, Any]]) -> None:
    deadletter._on_task_failure(sender=None, task_id="t-1", exception=ValueError())
    assert published == []


def test_a_poison_message_is_recorded_whole() -> None:
    body = b"\x80\x04\x95 not json, maybe pickle"
    message = Message(
        body=body,
        content_type="application/x-python-serialize",
        content_encoding="binary",
        delivery_info={"routing_key": "default"},
        headers={
            "task": "cluster.ping",
            "id": "p-1",
            "nested": {"no": "kept"},
            "retries": 0,
            "sender_version": "src-0123456789ab",
        },
    )
    record = deadletter._message_record(message, deadletter.REASON_CONTENT_DISALLOWED, repr(ValueError("refused")))
    assert record == {
        "reason": "content_disallowed",
        "error": "ValueError('refused')",
        "task": "cluster.ping",
        "task_id": "p-1",
        "sender_version": "src-0123456789ab",
        "source_queue": "default",
        "content_type": "application/x-python-serialize",
        "content_encoding": "binary",
        "headers": {"task": "cluster.ping", "id": "p-1", "retries": 0, "sender_version": "src-0123456789ab"},
        "body_b64": base64.b64encode(body).decode(),
    }
    unknown = deadletter._message_record(Message(body="text", headers=None), deadletter.REASON_UNKNOWN_MESSAGE, None)
    assert (unknown["error"], unknown["task"], unknown["source_queue"]) == (None, None, None)
    assert base64.b64decode(unknown["body_b64"]) == b"text"


def test_the_dead_letter_queue_is_durable_and_routed_by_its_name() -> None:
    queue = deadletter.dead_letter_queue("dead_letter")
    assert (queue.name, queue.routing_key, queue.durable) == ("dead_letter", "dead_letter", True)
    assert (queue.exchange.name, queue.exchange.type, queue.exchange.durable) == ("dead_letter", "direct", True)


def test_the_traceback_is_celerys_when_it_gives_one(published: list[dict[str, Any]]) -> None:
    app = Celery("t", set_as_current=False)

    @app.task(name="reports.flaky", shared=False)
    def flaky() -> None: ...

    class Einfo:
        def __str__(self) -> str:
            return "Traceback (from the worker)\nValueError: x\n"

    deadletter._on_task_failure(sender=flaky, task_id="t-1", exception=ValueError("x"), einfo=Einfo())
    deadletter._on_task_failure(sender=flaky, task_id="t-2", exception=None, einfo=None)
    assert [r["traceback"] for r in published] == ["Traceback (from the worker)\nValueError: x\n", ""]
