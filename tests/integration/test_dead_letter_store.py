"""worker.runtime.dead_letter_store on the session's Redis, in this process: letters are read in place,
oldest first, deleted one by one only when asked, and a read yields only the letters present when it
began (what keeps `replay --all` from chasing letters a worker writes back while it runs). The same
promises under SIGKILL, on both brokers: tests/integration/test_deadletter_replay_kills.py."""

from __future__ import annotations

import pytest
from celery import Celery

from tests.support.redis_queues import RedisQueues
from worker.runtime import dead_letter_store as store
from worker.runtime import dead_letters as deadletter

pytestmark = pytest.mark.redis


def _add(redis_queues: RedisQueues, dlq: str, task_id: str) -> None:
    app = Celery("t", broker=redis_queues.url, set_as_current=False)
    deadletter.publish(app, {"reason": "task_failed", "task_id": task_id}, deadletter.dead_letter_queue(dlq))


def test_letters_are_read_in_place_and_deleted_only_when_asked(redis_queues: RedisQueues) -> None:
    dlq = redis_queues.name("dead")
    for i in range(store.PAGE + 5):  # more than one page
        _add(redis_queues, dlq, f"t-{i}")
    deleted = 0
    with store.letters(redis_queues.url, dlq, limit=10_000) as found:
        seen = []
        for letter in found:
            seen.append(letter.record["task_id"])
            assert redis_queues.depth(dlq) == store.PAGE + 5 - deleted  # reading took nothing
            if len(seen) % 2:  # every other one
                assert letter.delete() is True
                assert letter.delete() is False  # already gone
                deleted += 1
    assert seen == [f"t-{i}" for i in range(store.PAGE + 5)]
    left = [r["task_id"] for r in deadletter.read(redis_queues.url, dlq, limit=1000)]
    assert left == [f"t-{i}" for i in range(1, store.PAGE + 5, 2)]


def test_a_read_yields_only_the_letters_present_when_it_began(redis_queues: RedisQueues) -> None:
    dlq = redis_queues.name("dead")
    for i in range(3):
        _add(redis_queues, dlq, f"old-{i}")
    with store.letters(redis_queues.url, dlq, limit=10_000) as found:
        seen = []
        for letter in found:
            seen.append(letter.record["task_id"])
            letter.delete()
            _add(redis_queues, dlq, f"new-{len(seen)}")  # as a worker writes a replayed task back
    assert seen == ["old-0", "old-1", "old-2"]
    assert [r["task_id"] for r in deadletter.read(redis_queues.url, dlq)] == ["new-1", "new-2", "new-3"]


def test_a_limit_stops_the_read(redis_queues: RedisQueues) -> None:
    dlq = redis_queues.name("dead")
    for i in range(5):
        _add(redis_queues, dlq, f"t-{i}")
    assert [r["task_id"] for r in deadletter.read(redis_queues.url, dlq, limit=2, remove=True)] == ["t-0", "t-1"]
    assert redis_queues.depth(dlq) == 3
