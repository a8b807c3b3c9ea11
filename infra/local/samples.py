"""What the local twin tells its model every sample, read the way the metrics publisher reads it on AWS.

The publisher (`worker.publisher.handler`, `worker.publisher.service_metrics`) publishes the queue depth and age, the
busy processes the workers record in the broker, and the measured mean task time over
`worker.runtime.task_stats.WINDOW_MINUTES`; the policy follows the measured time, with `averageTaskSeconds`
only until a task has ended. The twin's workers record the same (`worker.runtime.task_stats`, on its Redis;
the same reading works on a RabbitMQ broker's records, `worker.publisher.rabbit_service`),
so the twin reads them too and its model sees what a deployed pool's would, instead of falling back
to the configured task time. The twin runs time-scaled: measured wall seconds are multiplied by the
speed into model seconds; the window is `WINDOW_MINUTES` of wall time, longer in model time than the
simulator's, which matters only when the task time changes during a run.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.scaling.aws_model import PoolSample
from infra.scaling.group_state import GroupView
from worker.publisher.queues import Snapshot
from worker.publisher.service_metrics import busy
from worker.runtime.task_stats import QueueService


def pool_sample(
    at: float, snapshot: Snapshot, group: GroupView, service: Sequence[QueueService] | None, speed: float
) -> PoolSample:
    """One sample at model time `at`; `service` is None where no records were read. On RabbitMQ the
    records hold task time only, and busy processes come from the in-flight count, as the publisher's."""
    age = (snapshot.oldest_age or 0.0) * speed
    mine = list(service or ())
    counted = bool(mine) and all(s.running is not None for s in mine)
    running = busy([q.queue for q in snapshot.queues], snapshot, mine)
    # The CPU a reference policy sees comes only from instances past warm-up.
    ready = round(running * group.ready / group.in_service) if group.in_service else 0
    ended = sum(s.ended for s in service) if service is not None else 0
    task_seconds = sum(s.seconds for s in service) / ended * speed if service is not None and ended else None
    return PoolSample(
        at,
        snapshot.waiting,
        snapshot.in_flight,
        age,
        ready,
        busy_processes=running if counted else None,
        task_seconds=task_seconds,
    )
