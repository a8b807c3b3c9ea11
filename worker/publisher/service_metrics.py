"""The publisher's per-pool service measurements: measured task time, busy processes, in-service count.

Read once per sample next to the queue snapshot, and published at 10-second resolution by
`worker.publisher.handler` (names in `worker.names`, contract with the scaling policies):

- `PoolTaskSeconds`: the mean run time of the pool's tasks that ended in the last
  `worker.runtime.task_stats.WINDOW_MINUTES` minutes, as the workers recorded it (Redis: per-minute
  buckets, `worker.runtime.task_stats`; RabbitMQ: the per-process summaries of the stats queue,
  `worker.runtime.rabbit_task_stats` and `worker.publisher.rabbit_service`). No datum while no task ended in the
  window or the records cannot be read (never a made-up value; the policy then uses
  `averageTaskSeconds`).
- `PoolBusyProcesses`: tasks running now. Redis: the workers' running sets. RabbitMQ: the broker's
  unacknowledged count, which with prefetch multiplier 1 is the running tasks plus any countdown
  tasks a worker holds (docs/scaling.md, "Measured task time").
- `PoolInServiceInstances`: the pool group's InService instances from DescribeAutoScalingGroups in
  this same sample. AWS/AutoScaling group metrics arrive once a minute
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html), too coarse
  for a 10-second policy.
- With the pool's constants (POOLS_JSON's `signal`), the capacity rule's values computed from these
  same numbers (`worker.publisher.capacity`): PoolCapacityNeeded, PoolLoadWithOneFewer and
  PoolInstancesNeededAtZero, the metrics the scaling policies read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import redis

from worker.names import (
    METRIC_BUSY_PROCESSES,
    METRIC_CAPACITY_NEEDED,
    METRIC_IN_SERVICE,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_TASK_SECONDS,
)
from worker.publisher.capacity import Capacity, PoolSignal, Sample, capacity
from worker.publisher.queues import Snapshot
from worker.publisher.rabbit_service import RabbitServiceReader
from worker.runtime.task_stats import QueueService, read_service


@dataclass(frozen=True)
class Value:
    """One pool-level datum before it becomes a CloudWatch datum."""

    name: str
    value: float
    unit: str


class ServiceReader(Protocol):
    def read(self, queues: Sequence[str], now: float) -> list[QueueService]: ...

    def close(self) -> None: ...


class RedisServiceReader:
    def __init__(self, url: str, client: redis.Redis | None = None) -> None:
        self._client = client if client is not None else redis.Redis.from_url(url, socket_timeout=5)

    def read(self, queues: Sequence[str], now: float) -> list[QueueService]:
        return read_service(self._client, queues, now)

    def close(self) -> None:
        self._client.close()


def reader_for(broker_url: str) -> ServiceReader:
    """The workers' records: Redis keys per task, or RabbitMQ's stats queue of per-process summaries."""
    if urlsplit(broker_url).scheme in ("redis", "rediss"):
        return RedisServiceReader(broker_url)
    return RabbitServiceReader(broker_url)


def busy(queues: Sequence[str], snapshot: Snapshot, mine: Sequence[QueueService]) -> int:
    """The workers' running counts where the broker keeps them, else the in-flight count (RabbitMQ)."""
    running = [s.running for s in mine]
    if running and all(r is not None for r in running):
        return sum(r for r in running if r is not None)
    return snapshot.select(queues).in_flight


def pool_sample(
    queues: Sequence[str], snapshot: Snapshot, in_service: int, service: Mapping[str, QueueService] | None
) -> Sample:
    """One pool's reading at this sample, as the capacity rule takes it (`worker.publisher.capacity`);
    `service` is None where no records were read."""
    mine = [] if service is None else [service[q] for q in queues if q in service]
    part = snapshot.select(queues)
    ended = sum(s.ended for s in mine)
    return Sample(
        waiting=part.waiting,
        in_flight=part.in_flight,
        busy=busy(queues, snapshot, mine),
        task_seconds=sum(s.seconds for s in mine) / ended if ended else None,
        in_service=in_service,
    )


def pool_values(
    queues: Sequence[str],
    snapshot: Snapshot,
    in_service: int,
    service: Mapping[str, QueueService] | None,
    signal: PoolSignal | None = None,
) -> list[Value]:
    """The service values of one pool, and with its `signal` constants its capacity signals."""
    sample = pool_sample(queues, snapshot, in_service, service)
    values = [
        Value(METRIC_IN_SERVICE, float(in_service), "Count"),
        Value(METRIC_BUSY_PROCESSES, float(sample.busy), "Count"),
    ]
    if sample.task_seconds is not None:
        values.append(Value(METRIC_TASK_SECONDS, sample.task_seconds, "Seconds"))
    if signal is not None:
        values += capacity_values(capacity(sample, signal))
    return values


def capacity_values(signals: Capacity) -> list[Value]:
    """The capacity rule's result as datums: CapacityNeeded only while an instance is in service (no
    datum is what target tracking and the fast step see at zero), the other two every sample."""
    values = [
        Value(METRIC_LOAD_WITH_ONE_FEWER, signals.load_with_one_fewer, "None"),
        Value(METRIC_NEEDED_AT_ZERO, float(signals.needed_at_zero), "Count"),
    ]
    if signals.needed is not None:
        values.insert(0, Value(METRIC_CAPACITY_NEEDED, signals.needed, "None"))
    return values
