"""What the simulator needs to know about one pool (built from the stack config by `infra.simulation.stack`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from infra.scaling.assumptions import ImageMode
from infra.scaling.default_policy import TARGET_WAIT_SHARE, Slo, default_pool_scaling
from infra.scaling.policy import PoolScaling
from infra.scaling.traces import TraceShape
from infra.scaling.warm_pool import WarmPoolSpec


@dataclass(frozen=True)
class PoolSpec:
    name: str
    concurrency: int
    min_size: int
    max_size: int
    acceptable_latency_seconds: float
    """The SLO: the pool meets it when p95 queue wait is at or under this."""
    average_task_seconds: float
    """The configured task time: the starting value of our policy, and what the built-in traces are sized by."""
    alarm_threshold_seconds: float
    """The latency alarm's threshold (oldest message): pages on-call; not the SLO."""
    hourly_usd: float
    """Blended price of one instance-hour."""
    image_mode: ImageMode
    scaling: PoolScaling
    """Our policy for this pool, as the Pulumi program renders it."""
    drain_seconds: float = 1800.0
    """The longest a terminating instance drains: the worker heartbeats the drain hook while its tasks
    run, up to the task time limit (CELERY_TASK_TIME_LIMIT); a task still running then is interrupted
    and requeued."""
    warm_pool: WarmPoolSpec | None = None
    """The group's warm pool (`warmPool`), None without one."""
    target_wait_share: float = TARGET_WAIT_SHARE
    """`targetWaitShare`: the estimated queue wait our target tracking holds, as a share of the SLO."""

    @property
    def slo_seconds(self) -> float:
        return self.acceptable_latency_seconds

    def trace_shape(self, seed: int = 7) -> TraceShape:
        """What the built-in traces are sized to for this pool."""
        return TraceShape(self.capacity_per_second, self.average_task_seconds, seed=seed, max_size=self.max_size)

    @property
    def capacity_per_second(self) -> float:
        return self.max_size * self.concurrency / self.average_task_seconds

    @property
    def slo(self) -> Slo:
        """What the operator states about the pool, from which our policy is built."""
        return Slo(
            self.acceptable_latency_seconds,
            self.average_task_seconds,
            self.concurrency,
            self.alarm_threshold_seconds,
            self.target_wait_share,
        )

    def with_min_size(self, min_size: int) -> PoolSpec:
        """The same pool with another minSize, its policy rebuilt from the same SLO (a minSize 0 pool
        gets the policy that takes it to zero)."""
        if min_size == self.min_size:
            return self
        scaling = default_pool_scaling(
            self.name,
            self.slo,
            min_size,
            self.max_size,
            warmup_seconds=self.scaling.target_tracking.estimated_instance_warmup_seconds,
            schedules=self.scaling.schedules,
        )
        return replace(self, min_size=min_size, scaling=scaling)
