"""Where the publisher's metrics live: namespace and dimension names.

Metric names come from `worker.names` (the publisher writes them); this module only says how the
Pulumi program addresses them.
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
