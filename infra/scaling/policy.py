"""Scaling policy objects: what a pool's Auto Scaling policies are, as plain frozen data.

Pure code, no Pulumi. Three consumers read the same objects:
- the Pulumi program renders them into `aws.autoscaling.Policy` resources and their alarms
  (`infra.components.pool_scaling`);
- the simulator (`infra.scaling.simulator`) runs them through `infra.scaling.aws_model` in virtual time;
- the local twin runs the same model in real time.

Our default policy, built from a pool's SLO, is in `infra.scaling.default_policy`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Final, Literal

from infra.scaling.schedules import Schedule
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE
from worker.publisher.capacity import PoolSignal

AdjustmentType = Literal["ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity"]
# CloudWatch periods target tracking accepts for a customized metric (TargetTrackingMetricStat.Period:
# "Accepted values are 10, 30, and 60"); under 60 needs a high-resolution metric.
MetricPeriod = Literal[10, 30, 60]
Statistic = Literal["Average", "Maximum", "Minimum", "Sum", "SampleCount"]
Comparison = Literal[
    "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanOrEqualToThreshold", "LessThanThreshold"
]

METRIC_PERIODS: Final = (10, 30, 60)

# Target tracking removes capacity only once the metric is "more than 10% below" the target
# (https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html;
# the EC2 Auto Scaling guide describes the same conservative scale-in). It is AWS behaviour, not a
# setting, so it is a constant here and the model reads it from the policy via `scale_in_below`.
SCALE_IN_RATIO: Final = 0.9


class PolicyError(ValueError):
    """A policy value is invalid; the message names the field and the value."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise PolicyError(message)


def finite_positive(name: str, value: float) -> None:
    require(
        isinstance(value, int | float) and math.isfinite(value) and value > 0,
        f"{name} must be a finite number > 0, got {value!r}",
    )


def _non_negative(name: str, value: float) -> None:
    require(value >= 0, f"{name} must be >= 0, got {value!r}")


def _period(policy: str, value: int) -> None:
    require(value in METRIC_PERIODS, f"{policy}.metric_period_seconds must be one of {METRIC_PERIODS}, got {value!r}")


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """Target tracking on one metric (an `aws.autoscaling.Policy` with `policy_type="TargetTrackingScaling"`
    and a customized metric)."""

    target_value: float
    """The value to hold the metric at (TargetTrackingConfiguration.TargetValue)."""

    metric_name: str = METRIC_BACKLOG_PER_INSTANCE
    """CloudWatch metric the publisher writes under the stack's namespace, dimension `Pool`."""

    statistic: Statistic = "Average"
    """CloudWatch statistic over each period (CustomizedMetricSpecification.Statistic)."""

    metric_period_seconds: MetricPeriod = 10
    """Period target tracking reads the metric at (TargetTrackingMetricStat.Period): 10 = high resolution."""

    estimated_instance_warmup_seconds: int = 120
    """Seconds a new instance is left out of the group's metric and counted as already added
    (Policy.EstimatedInstanceWarmup); about boot plus worker start."""

    disable_scale_in: bool = False
    """True: this policy only adds instances (TargetTrackingConfiguration.DisableScaleIn)."""

    def __post_init__(self) -> None:
        finite_positive("target_tracking.target_value", self.target_value)
        require(bool(self.metric_name), "target_tracking.metric_name must not be empty")
        _period("target_tracking", self.metric_period_seconds)
        _non_negative("target_tracking.estimated_instance_warmup_seconds", self.estimated_instance_warmup_seconds)

    @property
    def scale_in_below(self) -> float:
        """Metric value under which AWS starts removing capacity (90% of the target)."""
        return self.target_value * SCALE_IN_RATIO


@dataclass(frozen=True)
class StepAdjustment:
    """One step of a step-scaling policy (StepAdjustment in the Auto Scaling API).

    Bounds are relative to the alarm threshold: the step applies when
    threshold + lower_bound <= metric < threshold + upper_bound.
    """

    scaling_adjustment: int
    """Instances (or percent, or exact capacity, by the policy's adjustment type) this step applies."""

    lower_bound: float | None = 0.0
    """Inclusive lower bound over the threshold (MetricIntervalLowerBound); None = minus infinity."""

    upper_bound: float | None = None
    """Exclusive upper bound over the threshold (MetricIntervalUpperBound); None = plus infinity."""

    def __post_init__(self) -> None:
        if self.lower_bound is not None and self.upper_bound is not None:
            require(
                self.lower_bound < self.upper_bound,
                f"step lower_bound {self.lower_bound} must be below upper_bound {self.upper_bound}",
            )

    def contains(self, excess: float) -> bool:
        """Whether `excess` (metric - threshold) falls in this step's interval."""
        low = -math.inf if self.lower_bound is None else self.lower_bound
        high = math.inf if self.upper_bound is None else self.upper_bound
        return low <= excess < high


@dataclass(frozen=True)
class StepScalingPolicy:
    """Step scaling on one metric (an `aws.autoscaling.Policy` with `policy_type="StepScaling"`, plus the
    CloudWatch alarm that invokes it)."""

    threshold: float
    """Alarm threshold in the metric's unit."""

    steps: tuple[StepAdjustment, ...]
    """Step adjustments, sorted, contiguous and non-overlapping, as the API requires."""

    adjustment_type: AdjustmentType = "ChangeInCapacity"
    """How `scaling_adjustment` is read (Policy.AdjustmentType)."""

    metric_name: str = METRIC_OLDEST_AGE
    """CloudWatch metric the alarm watches (per pool: the oldest message over the pool's queues)."""

    statistic: Statistic = "Maximum"
    """Alarm statistic over each period: the worst queue latency in the period."""

    metric_period_seconds: int = 10
    """Alarm period in seconds (CloudWatch: 10, 30 or a multiple of 60); 10 reads the publisher's
    high-resolution datapoints."""

    evaluation_periods: int = 3
    """Alarm EvaluationPeriods: how many recent periods the alarm looks at."""

    datapoints_to_alarm: int = 3
    """Alarm DatapointsToAlarm: how many of those must breach (M of N)."""

    comparison: Comparison = "GreaterThanOrEqualToThreshold"
    """Alarm ComparisonOperator; a LessThan* alarm makes this a scale-in policy (negative steps)."""

    estimated_instance_warmup_seconds: int = 120
    """Policy.EstimatedInstanceWarmup: while instances warm up, a repeat alarm only adds the part of
    its step not already covered by them."""

    cooldown_seconds: int = 0
    """Seconds after this policy's activity during which it does not fire again. EC2 Auto Scaling
    ignores Cooldown on step policies (it uses warm-up); Application Auto Scaling (ECS, as in CDK's
    QueueProcessingService) honours it. 0 = EC2 semantics; the renderer never sets it on an EC2 step policy."""

    min_adjustment_magnitude: int | None = None
    """With PercentChangeInCapacity, the least number of instances a step changes (MinAdjustmentMagnitude)."""

    def __post_init__(self) -> None:
        require(
            math.isfinite(self.threshold) and self.threshold >= 0,
            f"step_scaling.threshold must be >= 0, got {self.threshold!r}",
        )
        require(len(self.steps) > 0, "step_scaling.steps must hold at least one step")
        require(
            self.metric_period_seconds in (10, 30)
            or (self.metric_period_seconds >= 60 and self.metric_period_seconds % 60 == 0),
            f"step_scaling.metric_period_seconds must be 10, 30 or a multiple of 60, got {self.metric_period_seconds}",
        )
        require(
            self.evaluation_periods >= 1, f"step_scaling.evaluation_periods must be >= 1, got {self.evaluation_periods}"
        )
        require(
            1 <= self.datapoints_to_alarm <= self.evaluation_periods,
            f"step_scaling.datapoints_to_alarm must be within 1..evaluation_periods ({self.evaluation_periods}), "
            f"got {self.datapoints_to_alarm}",
        )
        require(self.cooldown_seconds >= 0, f"step_scaling.cooldown_seconds must be >= 0, got {self.cooldown_seconds}")
        _non_negative("step_scaling.estimated_instance_warmup_seconds", self.estimated_instance_warmup_seconds)
        if self.min_adjustment_magnitude is not None:
            require(
                self.adjustment_type == "PercentChangeInCapacity",
                "step_scaling.min_adjustment_magnitude is valid only with PercentChangeInCapacity",
            )
            require(self.min_adjustment_magnitude >= 1, "step_scaling.min_adjustment_magnitude must be >= 1")
        _check_steps(self.steps)
        if self.scales_in:
            require(
                all(s.upper_bound is not None and s.upper_bound <= 0 for s in self.steps),
                "a LessThan step policy's steps must lie at or below the threshold (upper_bound <= 0)",
            )
        else:
            first = self.steps[0].lower_bound
            require(
                first is not None and first >= 0,
                "a GreaterThan step policy's steps must start at or above the threshold (lower_bound >= 0)",
            )

    @property
    def scales_in(self) -> bool:
        """True for a low alarm (LessThan*): its steps remove capacity."""
        return self.comparison.startswith("LessThan")

    def breaches(self, value: float) -> bool:
        """Whether one datapoint breaches the alarm threshold."""
        match self.comparison:
            case "GreaterThanOrEqualToThreshold":
                return value >= self.threshold
            case "GreaterThanThreshold":
                return value > self.threshold
            case "LessThanOrEqualToThreshold":
                return value <= self.threshold
            case "LessThanThreshold":
                return value < self.threshold

    def step_for(self, metric: float) -> StepAdjustment | None:
        """The step whose interval holds `metric`, or None when the metric is under the threshold."""
        excess = metric - self.threshold
        for step in self.steps:
            if step.contains(excess):
                return step
        # A LessThanOrEqual alarm breaches at the threshold itself, where an upper bound of 0 is exclusive.
        last = self.steps[-1]
        if self.scales_in and excess == 0 and last.upper_bound == 0:
            return last
        return None


def _check_steps(steps: tuple[StepAdjustment, ...]) -> None:
    # Step scaling rules from the EC2 Auto Scaling user guide ("Step adjustments for step scaling"):
    # ranges can't overlap or have a gap; only one step may have a null lower bound, and only one
    # a null upper bound; the alarm's breach side decides whether bounds are >= 0 or <= 0.
    # https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
    ordered = sorted(steps, key=lambda s: -math.inf if s.lower_bound is None else s.lower_bound)
    require(list(ordered) == list(steps), "step_scaling.steps must be sorted by lower_bound")
    require(sum(s.lower_bound is None for s in steps) <= 1, "only one step may have no lower_bound")
    require(sum(s.upper_bound is None for s in steps) <= 1, "only one step may have no upper_bound")
    for before, after in itertools.pairwise(steps):
        require(
            before.upper_bound is not None and before.upper_bound == after.lower_bound,
            f"steps must be contiguous: upper_bound {before.upper_bound} is followed by {after.lower_bound}",
        )


@dataclass(frozen=True)
class PoolScaling:
    """Everything the model needs to scale one pool: size bounds, its policies and its schedules."""

    pool: str
    """Pool name (the CloudWatch `Pool` dimension)."""

    min_size: int
    """Auto Scaling group MinSize; 0 lets an idle pool cost nothing."""

    max_size: int
    """Auto Scaling group MaxSize: no policy goes over it."""

    target_tracking: TargetTrackingPolicy
    """Main policy."""

    steps: tuple[tuple[str, StepScalingPolicy], ...] = ()
    """Step policies with stable short names (the renderer's resource names), each with its own alarm."""

    extra_target_tracking: tuple[TargetTrackingPolicy, ...] = field(default_factory=tuple)
    """Further target-tracking policies (on other metrics); AWS scales out if any wants to and in only if all do."""

    signal: PoolSignal = field(default_factory=PoolSignal)
    """The constants of the capacity rule (worker.publisher.capacity), which the publisher gets in POOLS_JSON."""

    schedules: tuple[Schedule, ...] = ()
    """Scheduled capacity (`pools.<name>.schedules`): MinSize raised for each window."""

    @property
    def step_policies(self) -> tuple[tuple[str, StepScalingPolicy], ...]:
        """Every step policy with its stable short name, for renderers and the model to iterate."""
        return self.steps

    def step(self, name: str) -> StepScalingPolicy | None:
        return dict(self.steps).get(name)

    def __post_init__(self) -> None:
        require(bool(self.pool), "pool must not be empty")
        require(self.min_size >= 0, f"pool {self.pool}: min_size must be >= 0, got {self.min_size}")
        names = [name for name, _ in self.steps]
        require(len(set(names)) == len(names), f"pool {self.pool}: step policy names must be unique, got {names}")
        require(
            self.max_size >= max(self.min_size, 1),
            f"pool {self.pool}: max_size ({self.max_size}) must be >= min_size ({self.min_size}) and >= 1",
        )
