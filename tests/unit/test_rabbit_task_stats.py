"""The pure parts of RabbitMQ task time: a worker process's pending summaries, the publisher's parse of a
summary, and which busy count a pool gets. The broker side runs in tests/integration/test_rabbit_task_time.py."""

from __future__ import annotations

from typing import Any

import pytest

from worker.publisher.queues import QueueStats, Snapshot
from worker.publisher.rabbit_service import parse
from worker.publisher.service_metrics import busy
from worker.runtime.rabbit_task_stats import Summaries
from worker.runtime.task_stats import QueueService


def test_summaries_add_up_per_queue_and_a_failed_send_gives_them_back() -> None:
    summaries = Summaries()
    summaries.add("a", 1, 0.5)
    summaries.add("a", 1, 1.5)
    summaries.add("b", 1, 2.0)
    taken = summaries.take()
    assert taken == {"a": [2, 2.0], "b": [1, 2.0]}
    assert summaries.take() == {}
    summaries.add("a", 1, 1.0)
    summaries.give_back(taken)
    assert summaries.take() == {"a": [3, 3.0], "b": [1, 2.0]}


def test_a_summary_parses_to_its_time_and_counts() -> None:
    assert parse({"at": 100.5, "queues": {"a": [2, 3.0], "b": [1, 0]}}) == (100.5, {"a": (2, 3.0), "b": (1, 0.0)})


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        {"queues": {"a": [1, 1.0]}},
        {"at": "soon", "queues": {"a": [1, 1.0]}},
        {"at": 1.0, "queues": [["a", 1, 1.0]]},
        {"at": 1.0, "queues": {"a": [1]}},
        {"at": 1.0, "queues": {"a": [1, "1.0"]}},
        {"at": 1.0, "queues": {"a": [-1, 1.0]}},
        {"at": 1.0, "queues": {"a": [1, -0.5]}},
    ],
)
def test_anything_else_is_not_a_summary(body: Any) -> None:
    assert parse(body) is None


def _snapshot(in_flight: int) -> Snapshot:
    return Snapshot(0.0, (QueueStats("a", waiting=0, in_flight=in_flight, oldest_published_at=None),))


def test_busy_is_the_running_count_where_the_broker_keeps_one_else_in_flight() -> None:
    redis = [QueueService("a", ended=0, seconds=0.0, running=2)]
    rabbit = [QueueService("a", ended=3, seconds=1.0, running=None)]
    assert busy(["a"], _snapshot(5), redis) == 2
    assert busy(["a"], _snapshot(5), rabbit) == 5
    assert busy(["a"], _snapshot(5), []) == 5
