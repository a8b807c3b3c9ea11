"""Scaling policy objects: what a pool's Auto Scaling policies are, as plain frozen data.

Pure code, no Pulumi. Three consumers read the same objects:
- the Pulumi program renders them into `aws.autoscaling.Policy` resources (branch `infra`);
- the simulator (`infra.scaling.simulator`) runs them through `infra.scaling.aws_model` in virtual time;
- the local cluster runs the same model in real time.

The scale signal (docs/architecture.md "Scaling model") is backlog per instance =
(waiting + reserved + running tasks on the pool's queues) / max(in-service instances, 1), and its
target comes from an SLO rather than a magic number (`target_backlog_per_instance`).

Our default (`default_pool_scaling`, tuned on the simulator; numbers in docs/scaling.md):
- target tracking on backlog per instance, scale-out only;
- a one-datapoint step scale-out on the same metric, for the start of a burst;
- a step scale-in while instances run under 85% busy with nothing queued;
- a step policy on queue latency (the age of the oldest waiting message), the safety net for what
  the backlog misses: tasks far slower than the stated average.
`PoolScaling.step_policies` lists the step policies with stable short names for renderers.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Final, Literal

from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

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


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PolicyError(message)


def _finite_positive(name: str, value: float) -> None:
    _require(
        isinstance(value, int | float) and math.isfinite(value) and value > 0,
        f"{name} must be a finite number > 0, got {value!r}",
    )


def _non_negative(name: str, value: float) -> None:
    _require(value >= 0, f"{name} must be >= 0, got {value!r}")


def _period(policy: str, value: int) -> None:
    _require(value in METRIC_PERIODS, f"{policy}.metric_period_seconds must be one of {METRIC_PERIODS}, got {value!r}")


def target_backlog_per_instance(
    acceptable_latency_seconds: float,
    average_task_seconds: float,
    concurrency_per_instance: int,
) -> float:
    """Backlog per instance that one instance clears within the acceptable latency.

    An instance running `concurrency_per_instance` tasks at once finishes
    concurrency / average_task_seconds tasks a second, so in `acceptable_latency_seconds` it clears
    acceptable_latency / average_task_seconds x concurrency tasks: hold the backlog per instance at
    that and a newly queued task waits about the acceptable latency (the AWS "backlog per instance"
    method for SQS, https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-using-sqs-queue.html,
    and Copilot's `queue_delay`). Every input must be > 0; a bad one raises PolicyError naming it.
    """
    _finite_positive("acceptable_latency_seconds", acceptable_latency_seconds)
    _finite_positive("average_task_seconds", average_task_seconds)
    _require(
        isinstance(concurrency_per_instance, int) and not isinstance(concurrency_per_instance, bool),
        f"concurrency_per_instance must be an integer, got {concurrency_per_instance!r}",
    )
    _require(concurrency_per_instance >= 1, f"concurrency_per_instance must be >= 1, got {concurrency_per_instance}")
    return acceptable_latency_seconds / average_task_seconds * concurrency_per_instance


@dataclass(frozen=True)
class TargetTrackingPolicy:
    """Target tracking on the pool's backlog per instance (an `aws.autoscaling.Policy` with
    `policy_type="TargetTrackingScaling"` and a customized metric)."""

    target_value: float
    """Backlog per instance to hold, from `target_backlog_per_instance` (TargetTrackingConfiguration.TargetValue)."""

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
        _finite_positive("target_tracking.target_value", self.target_value)
        _require(bool(self.metric_name), "target_tracking.metric_name must not be empty")
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
            _require(
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
    """Step scaling on queue latency over the SLO: the safety net (an `aws.autoscaling.Policy` with
    `policy_type="StepScaling"`, plus the CloudWatch alarm that invokes it)."""

    threshold: float
    """Alarm threshold in the metric's unit; for queue latency, the SLO in seconds."""

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
        _require(
            math.isfinite(self.threshold) and self.threshold >= 0,
            f"step_scaling.threshold must be >= 0, got {self.threshold!r}",
        )
        _require(len(self.steps) > 0, "step_scaling.steps must hold at least one step")
        _require(
            self.metric_period_seconds in (10, 30)
            or (self.metric_period_seconds >= 60 and self.metric_period_seconds % 60 == 0),
            f"step_scaling.metric_period_seconds must be 10, 30 or a multiple of 60, got {self.metric_period_seconds}",
        )
        _require(
            self.evaluation_periods >= 1, f"step_scaling.evaluation_periods must be >= 1, got {self.evaluation_periods}"
        )
        _require(
            1 <= self.datapoints_to_alarm <= self.evaluation_periods,
            f"step_scaling.datapoints_to_alarm must be within 1..evaluation_periods ({self.evaluation_periods}), "
            f"got {self.datapoints_to_alarm}",
        )
        _require(self.cooldown_seconds >= 0, f"step_scaling.cooldown_seconds must be >= 0, got {self.cooldown_seconds}")
        _non_negative("step_scaling.estimated_instance_warmup_seconds", self.estimated_instance_warmup_seconds)
        if self.min_adjustment_magnitude is not None:
            _require(
                self.adjustment_type == "PercentChangeInCapacity",
                "step_scaling.min_adjustment_magnitude is valid only with PercentChangeInCapacity",
            )
            _require(self.min_adjustment_magnitude >= 1, "step_scaling.min_adjustment_magnitude must be >= 1")
        _check_steps(self.steps)
        if self.scales_in:
            _require(
                all(s.upper_bound is not None and s.upper_bound <= 0 for s in self.steps),
                "a LessThan step policy's steps must lie at or below the threshold (upper_bound <= 0)",
            )
        else:
            first = self.steps[0].lower_bound
            _require(
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
    _require(list(ordered) == list(steps), "step_scaling.steps must be sorted by lower_bound")
    _require(sum(s.lower_bound is None for s in steps) <= 1, "only one step may have no lower_bound")
    _require(sum(s.upper_bound is None for s in steps) <= 1, "only one step may have no upper_bound")
    for before, after in itertools.pairwise(steps):
        _require(
            before.upper_bound is not None and before.upper_bound == after.lower_bound,
            f"steps must be contiguous: upper_bound {before.upper_bound} is followed by {after.lower_bound}",
        )


@dataclass(frozen=True)
class Slo:
    """What an operator states about a pool; the policies are derived from it."""

    acceptable_latency_seconds: float
    """Queue wait a task may see at steady state (target tracking aims here)."""

    average_task_seconds: float
    """Mean run time of the pool's tasks, from production measurements or a guess to revisit."""

    concurrency_per_instance: int
    """Worker processes per instance (`--concurrency`): tasks an instance runs at once."""

    latency_alarm_seconds: float
    """Oldest-message age that breaches the SLO: fires the step-scaling safety net and the SLO alarm."""

    def __post_init__(self) -> None:
        target_backlog_per_instance(
            self.acceptable_latency_seconds, self.average_task_seconds, self.concurrency_per_instance
        )
        _finite_positive("latency_alarm_seconds", self.latency_alarm_seconds)

    @property
    def target_backlog_per_instance(self) -> float:
        return target_backlog_per_instance(
            self.acceptable_latency_seconds, self.average_task_seconds, self.concurrency_per_instance
        )


@dataclass(frozen=True)
class PoolScaling:
    """Everything the model needs to scale one pool: size bounds and its policies."""

    pool: str
    """Pool name (the CloudWatch `Pool` dimension)."""

    min_size: int
    """Auto Scaling group MinSize; 0 lets an idle pool cost nothing."""

    max_size: int
    """Auto Scaling group MaxSize: no policy goes over it."""

    target_tracking: TargetTrackingPolicy
    """Main policy: backlog per instance held at the SLO-derived target."""

    step_scaling: StepScalingPolicy | None = None
    """Safety net on queue latency, or None for none."""

    scale_in: StepScalingPolicy | None = None
    """Step scale-in on backlog per instance (a LessThan alarm), used with `target_tracking.disable_scale_in`;
    None leaves scale-in to target tracking. The renderer must create it with its own low alarm."""

    fast_scale_out: StepScalingPolicy | None = None
    """Step scale-out on backlog per instance from a single datapoint, for the start of a burst (target
    tracking needs three); None for none."""

    extra_target_tracking: tuple[TargetTrackingPolicy, ...] = field(default_factory=tuple)
    """Further target-tracking policies (on other metrics); AWS scales out if any wants to and in only if all do."""

    @property
    def step_policies(self) -> tuple[tuple[str, StepScalingPolicy], ...]:
        """Every step policy with a stable short name, for renderers and the model to iterate."""
        named = (("latency", self.step_scaling), ("fast-out", self.fast_scale_out), ("scale-in", self.scale_in))
        return tuple((name, policy) for name, policy in named if policy is not None)

    def __post_init__(self) -> None:
        _require(bool(self.pool), "pool must not be empty")
        _require(self.min_size >= 0, f"pool {self.pool}: min_size must be >= 0, got {self.min_size}")
        if self.scale_in is not None:
            _require(self.scale_in.scales_in, f"pool {self.pool}: scale_in must use a LessThan comparison")
            _require(
                self.scale_in.threshold < self.target_tracking.target_value * SCALE_IN_RATIO,
                f"pool {self.pool}: scale_in.threshold ({self.scale_in.threshold:.3g}) must be below 90% of the "
                f"target ({self.target_tracking.target_value:.3g}), or the pool flaps between the two policies",
            )
        _require(
            self.max_size >= max(self.min_size, 1),
            f"pool {self.pool}: max_size ({self.max_size}) must be >= min_size ({self.min_size}) and >= 1",
        )


def default_step_scaling(slo: Slo, warmup_seconds: int) -> StepScalingPolicy:
    """The safety net: over the latency SLO, add instances by how far over it the oldest message is.

    +1 while under 1.5x the SLO, +2 up to 3x, +4 beyond. Three 10-second datapoints (30 s) must
    breach, so a single slow message does not scale the pool.
    """
    alarm = slo.latency_alarm_seconds
    return StepScalingPolicy(
        threshold=alarm,
        steps=(
            StepAdjustment(scaling_adjustment=1, lower_bound=0.0, upper_bound=0.5 * alarm),
            StepAdjustment(scaling_adjustment=2, lower_bound=0.5 * alarm, upper_bound=2.0 * alarm),
            StepAdjustment(scaling_adjustment=4, lower_bound=2.0 * alarm, upper_bound=None),
        ),
        estimated_instance_warmup_seconds=warmup_seconds,
    )


# A healthy pool with no queue has backlog per instance = busy processes per instance, at most the
# concurrency: far under a target derived from a latency of several task lengths. AWS target tracking
# scales in proportionally (new = ceil(current x metric / target)), so it would cut such a pool to its
# minimum as soon as its queue drains, and the queue would build again (measured: `make bench`, row
# "ours-tt-in"). So target tracking only scales out, and this step policy scales in while the pool
# runs below SCALE_IN_UTILISATION with nothing queued: it stops where the pool is busy, not at zero.
SCALE_IN_UTILISATION: Final = 0.85


def default_scale_in(slo: Slo, warmup_seconds: int) -> StepScalingPolicy:
    """Remove capacity when backlog per instance stays under 85% of an instance's processes.

    Steps by how far under: -10% just under, -25% further under, -50% when nearly idle; at least one
    instance each time. 6 datapoints of 10 s (one minute) must breach: `make bench` measured 15 (target
    tracking's own count) to cost 10-15% more instance-hours for no latency gain.
    """
    full = float(slo.concurrency_per_instance)
    target = slo.target_backlog_per_instance
    threshold = min(SCALE_IN_UTILISATION * full, 0.8 * target)
    return StepScalingPolicy(
        threshold=threshold,
        steps=(
            StepAdjustment(scaling_adjustment=-50, lower_bound=None, upper_bound=-0.75 * threshold),
            StepAdjustment(scaling_adjustment=-25, lower_bound=-0.75 * threshold, upper_bound=-0.4 * threshold),
            StepAdjustment(scaling_adjustment=-10, lower_bound=-0.4 * threshold, upper_bound=0.0),
        ),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=1,
        metric_name=METRIC_BACKLOG_PER_INSTANCE,
        statistic="Average",
        evaluation_periods=6,
        datapoints_to_alarm=6,
        comparison="LessThanThreshold",
        estimated_instance_warmup_seconds=warmup_seconds,
    )


FAST_SCALE_OUT_TARGETS: Final = 1.5


def default_fast_scale_out(slo: Slo, warmup_seconds: int) -> StepScalingPolicy:
    """At the start of a burst, add capacity from one 10 s datapoint instead of target tracking's three.

    Fires when backlog per instance reaches 1.5x the target: +500% of the capacity (at least 2
    instances), +1000% past 3x; MaxSize caps it, and the scale-in step gives back what is not needed.
    Target tracking then sets the size from its proportional rule. Measured (`make bench`): it cuts
    burst-start-to-first-scale-out from 30 s to 10 s and keeps the burst and spike traces within the
    SLO even with a 10 s CloudWatch delay (+300% did not: burst p95 62-64 s).
    """
    threshold = FAST_SCALE_OUT_TARGETS * slo.target_backlog_per_instance
    return StepScalingPolicy(
        threshold=threshold,
        steps=(
            StepAdjustment(scaling_adjustment=500, lower_bound=0.0, upper_bound=threshold),
            StepAdjustment(scaling_adjustment=1000, lower_bound=threshold, upper_bound=None),
        ),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=2,
        metric_name=METRIC_BACKLOG_PER_INSTANCE,
        statistic="Average",
        evaluation_periods=1,
        datapoints_to_alarm=1,
        estimated_instance_warmup_seconds=warmup_seconds,
    )


def default_pool_scaling(
    pool: str,
    slo: Slo,
    min_size: int,
    max_size: int,
    warmup_seconds: int = 120,
    with_safety_net: bool = True,
    step_scale_in: bool = True,
    fast_scale_out: bool = True,
) -> PoolScaling:
    """Our default policy for a pool, from its SLO: target tracking out (plus a one-datapoint burst
    step), step scaling in, and the latency safety net.

    `step_scale_in=False, fast_scale_out=False` gives plain target tracking (scale-in by AWS's
    proportional rule), kept for the benchmark row that shows why it is not the default.
    """
    return PoolScaling(
        pool=pool,
        min_size=min_size,
        max_size=max_size,
        target_tracking=TargetTrackingPolicy(
            target_value=slo.target_backlog_per_instance,
            estimated_instance_warmup_seconds=warmup_seconds,
            disable_scale_in=step_scale_in,
        ),
        step_scaling=default_step_scaling(slo, warmup_seconds) if with_safety_net else None,
        scale_in=default_scale_in(slo, warmup_seconds) if step_scale_in else None,
        fast_scale_out=default_fast_scale_out(slo, warmup_seconds) if fast_scale_out else None,
    )
