"""One pool's config: the queues it consumes, its shape, its SLO, Spot and warm pool settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from celery_cluster_client.routing import QUEUE_NAME
from infra.config.aws_types import architecture_of, ec2_instance_types
from infra.config.base import ConfigModel
from infra.config.errors import KeyRuleError
from infra.config.pool_worker import PoolWorkerConfig
from infra.scaling.default_policy import TARGET_WAIT_SHARE, Slo, default_pool_scaling
from infra.scaling.policy import PoolScaling
from infra.scaling.schedules import Cron, Schedule, ScheduleError, end_cron, rate_to_cron
from worker.names import DEAD_LETTER_QUEUE


class SpotConfig(ConfigModel):
    """Spot capacity of a pool: an on-demand base, then a share of Spot above it."""

    enabled: bool = Field(default=False, description="Use Spot Instances above the on-demand base.")
    on_demand_base_capacity: int = Field(
        default=0, ge=0, description="Instances that are always on-demand (the first ones launched)."
    )
    on_demand_percentage_above_base: int = Field(
        default=0, ge=0, le=100, description="Percent on-demand above the base when Spot is enabled (0-100)."
    )
    allocation_strategy: Literal["price-capacity-optimized", "capacity-optimized", "lowest-price"] = Field(
        default="price-capacity-optimized", description="How Spot capacity is chosen across instance types and AZs."
    )
    expected_discount: float = Field(
        default=0.6, ge=0, lt=1, description="Expected Spot discount off on-demand, for cost estimates only."
    )


class WarmPoolConfig(ConfigModel):
    """Pre-initialised stopped instances that start faster than a cold launch."""

    enabled: bool = Field(default=False, description="Keep a warm pool (not with Spot or several instance types).")
    min_size: int = Field(default=0, ge=0, description="Instances kept in the warm pool.")
    state: Literal["Stopped", "Hibernated", "Running"] = Field(default="Stopped", description="Warm pool state.")


class ScheduleConfig(ConfigModel):
    """Known load met ahead of time: hold the pool at `capacity` instances or more for a while, from
    each time a cron expression or a rate fires (rendered as EC2 Auto Scaling scheduled actions)."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = Field(
        description="Schedule name, unique in the pool (lowercase letters, digits, dashes; required)."
    )
    cron: str | None = Field(
        default=None, description="When it starts: five-field cron, UTC (minute hour day month weekday)."
    )
    rate: str | None = Field(
        default=None, description="When it starts, instead of cron: every '<n> minutes' or '<n> hours' from 00:00 UTC."
    )
    capacity: int = Field(ge=0, description="Instances the pool holds at least (its MinSize) while it runs (required).")
    duration_seconds: int = Field(
        ge=60, le=86340, description="How long it holds that capacity, in seconds (required)."
    )

    @model_validator(mode="after")
    def _when(self) -> ScheduleConfig:
        if (self.cron is None) == (self.rate is None):
            raise KeyRuleError("cron", "set exactly one of cron and rate")
        key = "cron" if self.cron is not None else "rate"
        try:
            schedule = self.schedule
            end_cron(schedule.cron, self.duration_seconds)
        except ScheduleError as exc:
            raise KeyRuleError(key, str(exc)) from None
        return self

    @property
    def cron_expression(self) -> str:
        return self.cron if self.cron is not None else rate_to_cron(self.rate or "")

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.name, Cron.parse(self.cron_expression), self.capacity, float(self.duration_seconds))


QueueName = Annotated[str, StringConstraints(pattern=QUEUE_NAME.pattern)]


class PoolConfig(ConfigModel):
    """One pool of worker VMs: the queues it consumes, its shape, its SLO and its capacity."""

    queues: tuple[QueueName, ...] = Field(min_length=1, description="Queues the pool consumes (required).")
    instance_types: tuple[str, ...] = Field(
        min_length=1, description="Instance types, most preferred first (required)."
    )
    architecture: Literal["x86_64", "arm64"] = Field(
        default="x86_64", description="CPU architecture; must match every instance type."
    )
    concurrency: int = Field(default=2, ge=1, le=256, description="Worker processes per instance.")
    min_size: int = Field(default=0, ge=0, description="Fewest instances; 0 lets an idle pool cost nothing.")
    max_size: int = Field(default=4, ge=1, le=1000, description="Most instances.")
    desired_size: int | None = Field(default=None, ge=0, description="Instances at creation (default minSize).")
    acceptable_latency_seconds: float = Field(
        default=60.0, description="The SLO: p95 queue wait at or under this many seconds; must be > 0."
    )
    average_task_seconds: float = Field(
        default=5.0,
        description="Starting value of the task time in seconds, until the workers have measured it; must be > 0.",
    )
    target_wait_share: float = Field(
        default=TARGET_WAIT_SHARE,
        gt=0,
        le=1,
        description="The estimated queue wait that target tracking holds, as a share of acceptableLatencySeconds "
        "(0-1]: smaller scales out on a shorter queue, sooner in a burst, at more instance-hours.",
    )
    latency_alarm_seconds: float | None = Field(
        default=None,
        description="The alarm threshold: oldest-message age at which the latency alarm pages (not the SLO). "
        "Default 2 x acceptableLatencySeconds.",
    )
    instance_warmup_seconds: int = Field(
        default=120, ge=0, le=3600, description="Boot plus worker start: new instances are excluded from metrics."
    )
    volume_size_gb: int = Field(default=20, ge=8, le=1024, description="Encrypted gp3 root volume size.")
    spot: SpotConfig = Field(default_factory=SpotConfig, description="Spot settings.")
    warm_pool: WarmPoolConfig = Field(default_factory=WarmPoolConfig, description="Warm pool settings.")
    schedules: tuple[ScheduleConfig, ...] = Field(
        default=(), description="Scheduled capacity for known load: each item's cron or rate, capacity, duration."
    )
    hourly_usd: Mapping[str, float] = Field(
        default_factory=dict,
        description="On-demand hourly price per instance type (cost estimates and the simulator).",
    )
    worker: PoolWorkerConfig = Field(
        default_factory=PoolWorkerConfig, description="Worker settings, checked by the worker's own model."
    )

    @field_validator("acceptable_latency_seconds", "average_task_seconds", "latency_alarm_seconds")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"must be a number > 0 (got {value})")
        return value

    @field_validator("queues")
    @classmethod
    def _queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if DEAD_LETTER_QUEUE in value:
            raise ValueError(f"must not include the dead-letter queue {DEAD_LETTER_QUEUE!r}")
        if len(set(value)) != len(value):
            raise ValueError("lists a queue twice")
        return value

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if item not in ec2_instance_types():
                raise ValueError(f"{item!r} is not an EC2 instance type (family.size, e.g. m7g.large)")
        if len(set(value)) != len(value):
            raise ValueError("lists an instance type twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.min_size > self.max_size:
            raise KeyRuleError("minSize", f"must be <= maxSize ({self.max_size}), got {self.min_size}")
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            raise KeyRuleError(
                "desiredSize",
                f"must be within minSize..maxSize ({self.min_size}..{self.max_size}), got {self.desired_size}",
            )
        for item in self.instance_types:
            arch = architecture_of(item)
            if arch != self.architecture:
                raise KeyRuleError("instanceTypes", f"{item} is {arch} but architecture is {self.architecture}")
        unknown = sorted(set(self.hourly_usd) - set(self.instance_types))
        if unknown:
            raise KeyRuleError("hourlyUsd", f"prices types the pool does not use: {', '.join(unknown)}")
        if any(price <= 0 for price in self.hourly_usd.values()):
            raise KeyRuleError("hourlyUsd", "prices must be > 0")
        if self.warm_pool.enabled and (self.spot.enabled or len(self.instance_types) > 1):
            raise KeyRuleError(
                "warmPool.enabled",
                "needs spot.enabled=false and one instance type (EC2 Auto Scaling has no warm pools "
                "for mixed instances groups)",
            )
        if self.warm_pool.min_size > self.max_size:
            raise KeyRuleError("warmPool.minSize", f"must be <= maxSize ({self.max_size})")
        for index, scheduled in enumerate(self.schedules):
            if scheduled.capacity > self.max_size:
                raise KeyRuleError(f"schedules.{index}.capacity", f"must be <= maxSize ({self.max_size})")
        names = [scheduled.name for scheduled in self.schedules]
        if len(set(names)) != len(names):
            raise KeyRuleError("schedules", "lists a schedule name twice")
        if self.spot.on_demand_base_capacity > self.max_size:
            raise KeyRuleError("spot.onDemandBaseCapacity", f"must be <= maxSize ({self.max_size})")
        return self

    @property
    def initial_size(self) -> int:
        return self.min_size if self.desired_size is None else self.desired_size

    @property
    def alarm_threshold_seconds(self) -> float:
        """Where the latency alarm fires (the SLO itself is acceptable_latency_seconds)."""
        if self.latency_alarm_seconds is not None:
            return self.latency_alarm_seconds
        return 2 * self.acceptable_latency_seconds

    @property
    def slo(self) -> Slo:
        return Slo(
            acceptable_latency_seconds=self.acceptable_latency_seconds,
            average_task_seconds=self.average_task_seconds,
            concurrency_per_instance=self.concurrency,
            latency_alarm_seconds=self.alarm_threshold_seconds,
            target_wait_share=self.target_wait_share,
        )

    def scaling(self, name: str) -> PoolScaling:
        """The pool's scaling policies (what the program renders and the simulator runs)."""
        return default_pool_scaling(
            name,
            self.slo,
            self.min_size,
            self.max_size,
            warmup_seconds=self.instance_warmup_seconds,
            schedules=tuple(item.schedule for item in self.schedules),
        )

    @property
    def on_demand_percentage_above_base(self) -> int:
        """Percent on-demand above the base: 100 when Spot is off."""
        return self.spot.on_demand_percentage_above_base if self.spot.enabled else 100
