"""The local twin's samples carry what the workers recorded (busy processes, measured task time), in
model seconds, as the publisher's do; without records (RabbitMQ) they fall back to in-flight."""

from __future__ import annotations

import pytest

from infra.local.samples import pool_sample
from infra.scaling.group_state import GroupView
from worker.publisher.queues import QueueStats, Snapshot
from worker.runtime.task_stats import QueueService

SPEED = 10.0


def snapshot() -> Snapshot:
    # 3 waiting, the oldest published 2 wall seconds before the read; 5 in flight (2 of them prefetched).
    return Snapshot(1000.0, (QueueStats("q", waiting=3, in_flight=5, oldest_published_at=998.0),))


def test_a_sample_carries_the_workers_records_in_model_seconds() -> None:
    group = GroupView(in_service=2, ready=1, concurrency=4)
    # 4 tasks ended in the window, 6 wall seconds in all: 1.5 wall s each, 15 model s at speed 10.
    sample = pool_sample(50.0, snapshot(), group, [QueueService("q", ended=4, seconds=6.0, running=3)], SPEED)
    assert (sample.at, sample.waiting, sample.in_flight) == (50.0, 3, 5)
    assert sample.oldest_age == pytest.approx(2.0 * SPEED)
    assert sample.busy_processes == 3  # running, not in flight
    assert sample.busy_processes_ready == 2  # half the instances are past warm-up: round(3 * 1 / 2)
    assert sample.task_seconds == pytest.approx(15.0)


def test_no_measured_time_until_a_task_ends_and_in_flight_without_records() -> None:
    group = GroupView(in_service=1, ready=1, concurrency=4)
    fresh = pool_sample(0.0, snapshot(), group, [QueueService("q", ended=0, seconds=0.0, running=2)], SPEED)
    assert (fresh.busy_processes, fresh.task_seconds) == (2, None)
    without = pool_sample(0.0, snapshot(), group, None, SPEED)
    assert (without.busy_processes, without.busy, without.task_seconds) == (None, 5, None)
