"""The capacity rule is one function (worker.publisher.capacity): the publisher publishes its values,
and the simulator's model of AWS, fed the same samples, computes the same ones. Fed once through the
publisher's own datums and once through the simulator's samples, the model takes the same decisions."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from infra.scaling.aws_model import GroupModel, ModelAssumptions, PoolSample, ScalingEvent
from infra.scaling.default_policy import Slo, default_pool_scaling, from_zero_ladder
from worker.publisher.capacity import NEVER_SCALE_IN, PoolSignal, Sample, capacity
from worker.publisher.handler import PoolQueues, metric_data, service_data
from worker.publisher.queues import QueueStats, Snapshot
from worker.runtime.task_stats import QueueService

SIGNAL = PoolSignal(
    concurrency=4, average_task_seconds=2.0, acceptable_latency_seconds=60, target_wait_seconds=30, headroom_seconds=120
)


def test_short_tasks_need_the_instances_that_clear_the_queue_in_the_target_wait() -> None:
    # 2 in service x 4 processes, 4 busy; 60 waiting + 4 reserved ahead of a new task, 2 s each:
    # 64 x 2 / 8 = 16 s of queue wait, over the 30 s target: 0.533.
    result = capacity(Sample(waiting=60, in_flight=8, busy=4, task_seconds=None, in_service=2), SIGNAL)
    assert result.needed == pytest.approx(64 * 2 / 8 / 30)
    assert result.needed_at_zero == 0
    # One instance fewer: (4 busy + 60 waiting) / 4 processes.
    assert result.load_with_one_fewer == pytest.approx(64 / 4)


def test_long_tasks_need_processes_with_headroom() -> None:
    # 600 s tasks: (8 busy + 2 waiting) / 8 processes x (1 + 120 / 600).
    result = capacity(Sample(waiting=2, in_flight=8, busy=8, task_seconds=600.0, in_service=2), SIGNAL)
    assert result.needed == pytest.approx(10 / 8 * 1.2)
    assert result.load_with_one_fewer == pytest.approx(10 / 4 * 1.2)


def test_at_zero_in_service_the_backlog_sets_the_count_and_capacity_needed_has_no_value() -> None:
    short = capacity(Sample(waiting=100, in_flight=0, busy=0, task_seconds=3.0, in_service=0), SIGNAL)
    # 100 tasks x 3 s within 30 s: 10 processes, 3 instances of 4.
    assert (short.needed, short.needed_at_zero) == (None, 3)
    long = capacity(Sample(waiting=9, in_flight=0, busy=0, task_seconds=600.0, in_service=0), SIGNAL)
    assert long.needed_at_zero == math.ceil(9 / 4)  # one process per long task
    one = capacity(Sample(waiting=1, in_flight=0, busy=0, task_seconds=0.01, in_service=0), SIGNAL)
    assert one.needed_at_zero == 1
    idle = capacity(Sample(waiting=0, in_flight=0, busy=0, task_seconds=None, in_service=0), SIGNAL)
    assert (idle.needed, idle.needed_at_zero, idle.load_with_one_fewer) == (None, 0, NEVER_SCALE_IN)


@pytest.mark.parametrize("max_size", [1, 2, 7, 20, 21, 64, 1000])
def test_the_from_zero_ladder_fits_a_policy_and_reaches_max_size(max_size: int) -> None:
    ladder = from_zero_ladder(max_size)
    assert len(ladder) <= 20  # step adjustments per policy (EC2 Auto Scaling quotas)
    assert ladder[0] == 1
    assert ladder[-1] == max_size
    assert list(ladder) == sorted(set(ladder))


# --- The same samples through the publisher and through the simulator ---------------------------

POOL = "burst"
QUEUES = ("burst_a", "burst_b")
ASG = "pool-burst-asg-0123456"
SLO = Slo(
    acceptable_latency_seconds=60, average_task_seconds=2.0, concurrency_per_instance=4, latency_alarm_seconds=120
)
ASSUMPTIONS = ModelAssumptions(boot_seconds=60.0, alarm_delay_seconds=20.0)


@dataclass(frozen=True)
class Reading:
    """What the broker and the workers' records hold at one sample."""

    waiting: int
    running: int
    reserved: int
    ended: int
    """Tasks that ended in the window (0: no measured time yet)."""
    seconds: float
    """Their total run time."""
    counted: bool
    """Whether the broker keeps the workers' running counts (Redis); else busy = in flight (RabbitMQ)."""
    age: float


def _reading(rng: random.Random, minute: float, in_service: int) -> Reading:
    """A burst of short tasks, a stretch of 10-minute tasks, then nothing for half an hour."""
    processes = in_service * SLO.concurrency_per_instance
    if minute < 3 or minute >= 50:
        return Reading(0, 0, 0, 0, 0.0, True, 0.0)
    long = 25 <= minute < 50
    backlog = rng.randint(5, 15) if long else rng.randint(150, 400)
    running = min(backlog, processes)
    reserved = min(backlog - running, processes // 4)
    return Reading(
        waiting=backlog - running - reserved,
        running=running,
        reserved=reserved,
        ended=(ended := 0 if minute < 4 else rng.randint(1, 30)),
        seconds=ended * (600.0 if long else rng.uniform(1.0, 4.0)),
        counted=minute % 7 >= 1,
        # Whole seconds, so the publisher's `at - published_at` is exact; now and then over the SLO.
        age=float(rng.randint(0, 40) if rng.random() > 0.03 else 150),
    )


def _publisher_values(reading: Reading, at: float, in_service: int) -> dict[str, float]:
    """The publisher's own datums for the pool (dimension Pool only), by metric name, from a snapshot and
    the workers' records as it reads them; the reading is all on the pool's first queue."""
    pool = PoolQueues(name=POOL, queues=QUEUES, asg=ASG, signal=SLO.signal_with(120))
    first = QueueStats(QUEUES[0], reading.waiting, reading.running + reading.reserved, at - reading.age)
    snapshot = Snapshot(at, (first, QueueStats(QUEUES[1], 0, 0, None)))
    records = [
        QueueService(QUEUES[0], reading.ended, reading.seconds, reading.running),
        QueueService(QUEUES[1], 0, 0.0, 0),
    ]
    if not reading.counted:
        records = [QueueService(r.queue, r.ended, r.seconds, None) for r in records]
    data = metric_data((pool,), snapshot, {ASG: in_service}) + service_data(
        (pool,), snapshot, {ASG: in_service}, records
    )
    return {d["MetricName"]: d["Value"] for d in data if d["Dimensions"] == [{"Name": "Pool", "Value": POOL}]}


def _simulator_sample(reading: Reading, at: float) -> PoolSample:
    """The same reading as the simulator's sample."""
    return PoolSample(
        at,
        reading.waiting,
        reading.running + reading.reserved,
        reading.age if reading.waiting else 0.0,
        busy_processes=reading.running if reading.counted else None,
        task_seconds=reading.seconds / reading.ended if reading.ended else None,
    )


def _runs(seed: int) -> Iterator[tuple[list[ScalingEvent], list[ScalingEvent]]]:
    scaling = default_pool_scaling(POOL, SLO, min_size=0, max_size=30, warmup_seconds=120)
    through_publisher = GroupModel(scaling, SLO.concurrency_per_instance, ASSUMPTIONS)
    simulator = GroupModel(scaling, SLO.concurrency_per_instance, ASSUMPTIONS)
    rng = random.Random(seed)
    for index in range(1, 6 * 90):
        at = 10.0 * index
        # Both groups are the same so far (asserted by the caller), so either one's count will do.
        in_service = simulator.view(at).in_service
        reading = _reading(rng, at / 60, in_service)
        if index % 37 == 0:
            pass  # a sample the publisher missed: neither side gets a datum
        else:
            through_publisher.observe_published(at, _publisher_values(reading, at, in_service))
            simulator.observe(_simulator_sample(reading, at))
        yield through_publisher.decide(at), simulator.decide(at)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_publishers_datums_and_the_simulators_samples_give_the_same_decisions(seed: int) -> None:
    """The policies the simulator runs, fed the publisher's datums, decide exactly as when the model
    computes the signals from its own samples; the run has every kind of decision."""
    policies: set[str] = set()
    for published, simulated in _runs(seed):
        assert published == simulated
        policies |= {event.policy for event in simulated}
    assert {"step-from-zero", "target-tracking", "step-scale-in", "step-to-zero"} <= policies
