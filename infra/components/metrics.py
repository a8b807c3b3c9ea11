"""Where the publisher's metrics live: namespace, dimension names, and the metric queries that read them.

Metric names come from `worker.names` (the publisher writes them); this module only says how the
Pulumi program addresses them. Pure code: plain dicts that alarms and policies turn into Args.
"""

from __future__ import annotations

from typing import Final

DIMENSION_QUEUE: Final = "Queue"
"""Per-queue metrics (waiting, in-flight, oldest age) carry dimensions Pool and Queue (worker.publisher.handler)."""
DIMENSION_POOL: Final = "Pool"
"""Per-pool metrics (backlog, backlog per instance, the pool's oldest age, heartbeat) carry dimension Pool."""
ASG_NAMESPACE: Final = "AWS/AutoScaling"
ASG_IN_SERVICE: Final = "GroupInServiceInstances"
ASG_DIMENSION: Final = "AutoScalingGroupName"

# Auto Scaling group metrics the pools publish (1-minute granularity, free of charge).
GROUP_METRICS: Final = (
    "GroupMinSize",
    "GroupMaxSize",
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
    "GroupInServiceCapacity",
    "GroupTotalCapacity",
)


def queue_ids(prefix: str, queues: tuple[str, ...]) -> list[tuple[str, str]]:
    """(metric-math id, queue) pairs; ids must start with a lowercase letter."""
    return [(f"{prefix}{index}", queue) for index, queue in enumerate(queues)]


def backlog_per_instance_expression(waiting_ids: list[str], in_flight_ids: list[str], in_service_id: str) -> str:
    """Metric math for backlog per instance that stays defined at zero instances.

    Backlog counts waiting plus in-flight (reserved + running) tasks: a bare queue length misses
    prefetched and running work and would scale in a busy pool. In-service is filled forward
    (group metrics arrive once a minute, the queue metrics every 10 s) and floored at 1, so a pool
    at zero with work waiting yields backlog / 1 and scales out from zero.
    """
    backlog = " + ".join([*waiting_ids, *in_flight_ids])
    in_service = f"FILL({in_service_id}, REPEAT)"
    return f"({backlog}) / IF({in_service} > 0, {in_service}, 1)"
