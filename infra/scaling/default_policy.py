"""Our default scaling policy for a pool, derived from what its operator states (`Slo`).

It needs no guess of the task time: the capacity rule (`worker.publisher.capacity`) uses the task time
the workers measure, with `averageTaskSeconds` only until a task has ended. The publisher computes the
rule every sample and publishes its values; each policy below reads one of those metrics (names in
`worker.names`). Numbers and why: docs/scaling.md; measured by `make bench`.

- Target tracking (scale-out only) on CapacityNeeded, target 1: the estimated queue wait (work queued
  ahead x measured task time / processes) over the target wait for short tasks; process demand
  ((busy + waiting) / processes) with headroom for long ones, so a pool of 10-minute tasks scales out
  as soon as every process is busy and work waits, by as many instances as the waiting tasks need.
- A one-datapoint step on the same metric for the start of a burst (target tracking needs three).
- Scale-out from zero: with no instance in service CapacityNeeded has no datum (target tracking's
  proportional change of zero capacity is zero, and AWS documents PercentChangeInCapacity rounding only
  for 0 < x < 1), so a ChangeInCapacity step on InstancesNeededAtZero adds what the backlog needs.
- A safety net on queue latency (oldest message) at the SLO.
- Scale-in, with hysteresis: while the pool would still run under SCALE_IN_LOAD with one instance
  fewer, for SCALE_IN_SECONDS, by the share of instances that load leaves idle (SCALE_IN_SHARES);
  never below one instance. Going from one to none takes a separate policy (pools with minSize 0): no
  waiting or in-flight task seen for TO_ZERO_MINUTES, or only for SCALE_IN_SECONDS where the SLO
  covers a relaunch (QUICK_TO_ZERO_WARMUPS).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from infra.scaling.policy import (
    PoolScaling,
    StepAdjustment,
    StepScalingPolicy,
    TargetTrackingPolicy,
    finite_positive,
    require,
)
from infra.scaling.schedules import Schedule
from worker.names import METRIC_BACKLOG, METRIC_CAPACITY_NEEDED, METRIC_LOAD_WITH_ONE_FEWER, METRIC_NEEDED_AT_ZERO
from worker.publisher.capacity import PoolSignal

TARGET_WAIT_SHARE: Final = 0.5
"""The estimated queue wait that target tracking holds, as a share of the SLO: p95 must stay under
the SLO, and a mean held at it would not. The default of `pools.<name>.targetWaitShare`: a smaller
share scales out on a shorter queue (sooner in a burst, at more instance-hours); `scripts/simulate
--tune` searches it."""

FAST_SCALE_OUT_AT: Final = 1.5
"""CapacityNeeded at which one datapoint scales out (target tracking waits for three)."""

SCALE_IN_LOAD: Final = 0.7
"""Scale in while (busy + waiting) would stay under this share of the processes of one instance fewer."""

SCALE_IN_SECONDS: Final = 60
"""How long that must hold, in 10 s datapoints. The hysteresis is mostly in the band: scale-in needs the
load to fit one instance fewer under SCALE_IN_LOAD, scale-out needs CapacityNeeded over 1. Measured
(`make bench`): 180 s cost 6-30% more instance-hours on steady, diurnal and the fan-out, for one
in->out reversal within 5 minutes fewer on long tasks (2 instead of 3 in 4 h)."""

SCALE_IN_SHARES: Final = (10, 20, 30, 40, 50, 60, 70, 80, 90)
"""Percent of the instances one scale-in step removes: r % where the load with one fewer is under
(1 - r %) x SCALE_IN_LOAD, so the pool left still runs under SCALE_IN_LOAD (the smallest, anywhere
under it, removes one instance of a pool under 20); at most 90 %, so no step empties a pool. One step
gives back what a finished burst left idle, where the earlier four steps (10 / 25 / 50 / 75 %) took a
minute each: on prod/reports' `periodic-fan-out`, 8.06 -> 7.71 instance-hours at the same p95."""

TO_ZERO_MINUTES: Final = 15
"""A minSize 0 pool goes from one instance to none after this many minutes with no task seen."""

QUICK_TO_ZERO_WARMUPS: Final = 1.5
"""A minSize 0 pool whose SLO is at least this many instance warm-ups goes to zero after SCALE_IN_SECONDS
with no task seen instead of TO_ZERO_MINUTES. A task that then finds it empty waits for the from-zero
step (one datapoint and CloudWatch's delay) and a launch (about a warm-up: boot plus worker start), which
such an SLO covers with half a warm-up to spare; shorter SLOs keep the pool's last instance for the
trickle. prod/reports (SLO 300 s, warm-up 180 s) is one: between its fan-outs it holds no idle instance
(`periodic-fan-out` 7.71 -> 7.53 instance-hours, p95 37 -> 71 s of its 300 s)."""

STEP_ADJUSTMENTS_MAX: Final = 20
"""Step adjustments per step scaling policy: 20
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-quotas.html)."""


def target_backlog_per_instance(
    acceptable_latency_seconds: float,
    average_task_seconds: float,
    concurrency_per_instance: int,
) -> float:
    """Backlog per instance that one instance clears within the acceptable latency.

    An instance running `concurrency_per_instance` tasks at once finishes
    concurrency / average_task_seconds tasks a second, so in `acceptable_latency_seconds` it clears
    acceptable_latency / average_task_seconds x concurrency tasks (the AWS "backlog per instance"
    method for SQS, https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-using-sqs-queue.html,
    and Copilot's `queue_delay`). Our estimated queue wait is the same idea in seconds, with the
    measured task time. Every input must be > 0; a bad one raises PolicyError naming it.
    """
    finite_positive("acceptable_latency_seconds", acceptable_latency_seconds)
    finite_positive("average_task_seconds", average_task_seconds)
    require(
        isinstance(concurrency_per_instance, int) and not isinstance(concurrency_per_instance, bool),
        f"concurrency_per_instance must be an integer, got {concurrency_per_instance!r}",
    )
    require(concurrency_per_instance >= 1, f"concurrency_per_instance must be >= 1, got {concurrency_per_instance}")
    return acceptable_latency_seconds / average_task_seconds * concurrency_per_instance


@dataclass(frozen=True)
class Slo:
    """What an operator states about a pool; the policies are derived from it."""

    acceptable_latency_seconds: float
    """The SLO: p95 queue wait at or under this."""

    average_task_seconds: float
    """Starting value of the task time, until the workers have measured it."""

    concurrency_per_instance: int
    """Worker processes per instance (`--concurrency`): tasks an instance runs at once."""

    latency_alarm_seconds: float
    """The alarm threshold: oldest-message age at which the latency alarm pages (not the SLO)."""

    target_wait_share: float = TARGET_WAIT_SHARE
    """The estimated queue wait target tracking holds, as a share of the SLO (0 < share <= 1)."""

    def __post_init__(self) -> None:
        target_backlog_per_instance(
            self.acceptable_latency_seconds, self.average_task_seconds, self.concurrency_per_instance
        )
        finite_positive("latency_alarm_seconds", self.latency_alarm_seconds)
        finite_positive("target_wait_share", self.target_wait_share)
        require(self.target_wait_share <= 1, f"target_wait_share must be <= 1, got {self.target_wait_share!r}")

    @property
    def target_backlog_per_instance(self) -> float:
        return target_backlog_per_instance(
            self.acceptable_latency_seconds, self.average_task_seconds, self.concurrency_per_instance
        )

    @property
    def signal(self) -> PoolSignal:
        return PoolSignal(
            concurrency=self.concurrency_per_instance,
            average_task_seconds=self.average_task_seconds,
            acceptable_latency_seconds=self.acceptable_latency_seconds,
            target_wait_seconds=self.target_wait_share * self.acceptable_latency_seconds,
        )

    def signal_with(self, warmup_seconds: int) -> PoolSignal:
        return replace(self.signal, headroom_seconds=float(warmup_seconds))


def default_latency_net(slo: Slo, warmup_seconds: int) -> StepScalingPolicy:
    """The safety net: oldest message at or over the SLO on 3 of 3 datapoints adds 50% / 100% / 200% (at
    least one instance) by how far over (under 1.5x, up to 3x, beyond), for what the other signals miss:
    tasks whose time nobody has measured yet."""
    slo_seconds = slo.acceptable_latency_seconds
    return StepScalingPolicy(
        threshold=slo_seconds,
        steps=(
            StepAdjustment(scaling_adjustment=50, lower_bound=0.0, upper_bound=0.5 * slo_seconds),
            StepAdjustment(scaling_adjustment=100, lower_bound=0.5 * slo_seconds, upper_bound=2.0 * slo_seconds),
            StepAdjustment(scaling_adjustment=200, lower_bound=2.0 * slo_seconds, upper_bound=None),
        ),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=1,
        estimated_instance_warmup_seconds=warmup_seconds,
    )


def default_fast_scale_out(warmup_seconds: int) -> StepScalingPolicy:
    """From one 10 s datapoint of CapacityNeeded >= 1.5, add about what it asks: +50% under 2, +100%
    under 3, +200% under 5, +400% beyond; at least 2 instances. Never at zero in service (no datum)."""
    at = FAST_SCALE_OUT_AT
    return StepScalingPolicy(
        threshold=at,
        steps=(
            StepAdjustment(scaling_adjustment=50, lower_bound=0.0, upper_bound=2.0 - at),
            StepAdjustment(scaling_adjustment=100, lower_bound=2.0 - at, upper_bound=3.0 - at),
            StepAdjustment(scaling_adjustment=200, lower_bound=3.0 - at, upper_bound=5.0 - at),
            StepAdjustment(scaling_adjustment=400, lower_bound=5.0 - at, upper_bound=None),
        ),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=2,
        metric_name=METRIC_CAPACITY_NEEDED,
        statistic="Average",
        evaluation_periods=1,
        datapoints_to_alarm=1,
        estimated_instance_warmup_seconds=warmup_seconds,
    )


def scale_in_steps(threshold: float) -> tuple[StepAdjustment, ...]:
    """SCALE_IN_SHARES as step adjustments below `threshold`, largest cut first: r % on a load with one
    fewer in [(1 - next share) x threshold, (1 - r %) x threshold), the smallest share up to the threshold."""
    shares = SCALE_IN_SHARES
    steps: list[StepAdjustment] = []
    for index, share in enumerate(shares):
        bigger = shares[index + 1] if index + 1 < len(shares) else None
        steps.append(
            StepAdjustment(
                scaling_adjustment=-share,
                lower_bound=None if bigger is None else -bigger / 100 * threshold,
                upper_bound=0.0 if index == 0 else -share / 100 * threshold,
            )
        )
    return tuple(reversed(steps))


def default_scale_in(warmup_seconds: int) -> StepScalingPolicy:
    """Remove the share of instances the load leaves idle (SCALE_IN_SHARES, at least one instance) while
    the load with one instance fewer stays under SCALE_IN_LOAD for SCALE_IN_SECONDS. Never below one."""
    threshold = SCALE_IN_LOAD
    periods = SCALE_IN_SECONDS // 10
    return StepScalingPolicy(
        threshold=threshold,
        steps=scale_in_steps(threshold),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=1,
        metric_name=METRIC_LOAD_WITH_ONE_FEWER,
        statistic="Maximum",
        evaluation_periods=periods,
        datapoints_to_alarm=periods,
        comparison="LessThanThreshold",
        estimated_instance_warmup_seconds=warmup_seconds,
    )


def quick_to_zero(slo: Slo, warmup_seconds: int) -> bool:
    """Whether the SLO covers a relaunch, so an idle pool need not keep its last instance
    (QUICK_TO_ZERO_WARMUPS)."""
    return slo.acceptable_latency_seconds >= QUICK_TO_ZERO_WARMUPS * warmup_seconds


def default_to_zero(slo: Slo, warmup_seconds: int) -> StepScalingPolicy:
    """A minSize 0 pool with no waiting and no in-flight task in any sample for TO_ZERO_MINUTES goes to
    zero (ExactCapacity 0). One-minute periods of the Maximum: one task seen in a minute keeps it. Where
    the SLO covers a relaunch, SCALE_IN_SECONDS of 10 s datapoints instead (`quick_to_zero`)."""
    if quick_to_zero(slo, warmup_seconds):
        period, periods = 10, SCALE_IN_SECONDS // 10
    else:
        period, periods = 60, TO_ZERO_MINUTES
    return StepScalingPolicy(
        threshold=0.0,
        steps=(StepAdjustment(scaling_adjustment=0, lower_bound=None, upper_bound=0.0),),
        adjustment_type="ExactCapacity",
        metric_name=METRIC_BACKLOG,
        statistic="Maximum",
        metric_period_seconds=period,
        evaluation_periods=periods,
        datapoints_to_alarm=periods,
        comparison="LessThanOrEqualToThreshold",
        estimated_instance_warmup_seconds=warmup_seconds,
    )


def from_zero_ladder(max_size: int) -> tuple[int, ...]:
    """The instance counts the from-zero step can add, at most STEP_ADJUSTMENTS_MAX of them: every count
    up to max_size when that fits, else 1, 2, 3, ... growing geometrically to max_size."""
    if max_size <= STEP_ADJUSTMENTS_MAX:
        return tuple(range(1, max_size + 1))
    last = STEP_ADJUSTMENTS_MAX - 1
    ladder: list[int] = []
    for index in range(last):
        ladder.append(max(ladder[-1] + 1 if ladder else 1, round(max_size ** (index / last))))
    return (*ladder, max_size)


def default_from_zero(max_size: int, warmup_seconds: int) -> StepScalingPolicy:
    """With no instance in service, one 10 s datapoint of InstancesNeededAtZero >= 1 adds the ladder's
    count at or above it (ChangeInCapacity: a count, not a percentage of zero). While the launched
    instances warm up, a repeat in the same step adds nothing and a higher step adds the difference
    (STEP, warm-up), so the repeats of the alarm every minute do not stack up."""
    ladder = from_zero_ladder(max_size)
    # Threshold 1, so a need of n instances is n - 1 above it; needs are whole numbers, so the step that
    # adds ladder[i] covers n - 1 in [ladder[i - 1], ladder[i]).
    steps = [
        StepAdjustment(
            scaling_adjustment=count,
            lower_bound=float(ladder[index - 1]) if index else 0.0,
            upper_bound=float(count) if index < len(ladder) - 1 else None,
        )
        for index, count in enumerate(ladder)
    ]
    return StepScalingPolicy(
        threshold=1.0,
        steps=tuple(steps),
        adjustment_type="ChangeInCapacity",
        metric_name=METRIC_NEEDED_AT_ZERO,
        statistic="Maximum",
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
    schedules: tuple[Schedule, ...] = (),
) -> PoolScaling:
    """Our default policy for a pool, from its SLO (see the module docstring)."""
    steps: list[tuple[str, StepScalingPolicy]] = [
        ("latency", default_latency_net(slo, warmup_seconds)),
        ("fast-out", default_fast_scale_out(warmup_seconds)),
        ("from-zero", default_from_zero(max_size, warmup_seconds)),
        ("scale-in", default_scale_in(warmup_seconds)),
    ]
    if min_size == 0:
        steps.append(("to-zero", default_to_zero(slo, warmup_seconds)))
    return PoolScaling(
        pool=pool,
        min_size=min_size,
        max_size=max_size,
        target_tracking=TargetTrackingPolicy(
            target_value=1.0,
            metric_name=METRIC_CAPACITY_NEEDED,
            estimated_instance_warmup_seconds=warmup_seconds,
            disable_scale_in=True,
        ),
        steps=tuple(steps),
        signal=slo.signal_with(warmup_seconds),
        schedules=schedules,
    )
