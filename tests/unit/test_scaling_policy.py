"""Policy model: the SLO-to-target math, and invalid policies refused with the field named."""

from __future__ import annotations

import dataclasses
import math

import pytest

from infra.scaling.policy import (
    SCALE_IN_RATIO,
    PolicyError,
    PoolScaling,
    Slo,
    StepAdjustment,
    StepScalingPolicy,
    TargetTrackingPolicy,
    default_pool_scaling,
    target_backlog_per_instance,
)
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE


@pytest.mark.parametrize(
    ("latency", "task", "concurrency", "expected"),
    [
        (30.0, 2.0, 4, 60.0),  # an instance clears 4 tasks / 2 s = 2 tasks/s, so 60 in 30 s
        (10.0, 10.0, 1, 1.0),
        (1.0, 4.0, 2, 0.5),  # tasks slower than the SLO: under one task queued per instance
        (120, 0.5, 8, 1920.0),
    ],
)
def test_target_backlog_per_instance(latency: float, task: float, concurrency: int, expected: float) -> None:
    assert target_backlog_per_instance(latency, task, concurrency) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 1, 1), "acceptable_latency_seconds"),
        ((-5, 1, 1), "acceptable_latency_seconds"),
        ((math.nan, 1, 1), "acceptable_latency_seconds"),
        ((10, 0, 1), "average_task_seconds"),
        ((10, math.inf, 1), "average_task_seconds"),
        ((10, 1, 0), "concurrency_per_instance"),
        ((10, 1, 2.5), "concurrency_per_instance"),
        ((10, 1, True), "concurrency_per_instance"),
    ],
)
def test_target_math_refuses_bad_input_by_name(args: tuple[float, float, int], name: str) -> None:
    with pytest.raises(PolicyError, match=rf"^{name} must"):
        target_backlog_per_instance(*args)


def test_default_policy_follows_the_slo() -> None:
    slo = Slo(
        acceptable_latency_seconds=30, average_task_seconds=2, concurrency_per_instance=4, latency_alarm_seconds=60
    )
    scaling = default_pool_scaling("default", slo, min_size=0, max_size=20, warmup_seconds=90)
    tt = scaling.target_tracking
    assert tt.metric_name == METRIC_BACKLOG_PER_INSTANCE
    assert tt.target_value == pytest.approx(60.0)
    assert tt.scale_in_below == pytest.approx(60.0 * SCALE_IN_RATIO)
    assert tt.estimated_instance_warmup_seconds == 90
    assert tt.metric_period_seconds == 10
    # Target tracking only scales out; the step policy below scales in (see SCALE_IN_UTILISATION).
    assert tt.disable_scale_in
    scale_in = scaling.scale_in
    assert scale_in is not None
    assert scale_in.scales_in
    assert scale_in.metric_name == METRIC_BACKLOG_PER_INSTANCE
    assert scale_in.threshold == pytest.approx(0.85 * 4)  # 85% of an instance's 4 processes busy
    fast = scaling.fast_scale_out
    assert fast is not None
    assert fast.threshold == pytest.approx(90.0)
    assert fast.datapoints_to_alarm == 1
    assert [name for name, _ in scaling.step_policies] == ["latency", "fast-out", "scale-in"]
    plain = default_pool_scaling("default", slo, 0, 20, step_scale_in=False, fast_scale_out=False)
    assert not plain.target_tracking.disable_scale_in
    assert plain.scale_in is None
    step = scaling.step_scaling
    assert step is not None
    assert step.metric_name == METRIC_OLDEST_AGE
    assert step.threshold == 60
    # Under the threshold no step applies; each step covers its own interval of the excess.
    assert step.step_for(59.9) is None
    assert [step.step_for(age).scaling_adjustment for age in (60, 89.9, 90, 179.9, 180, 10_000)] == [1, 1, 2, 2, 4, 4]  # type: ignore[union-attr]


def test_policies_are_frozen() -> None:
    policy = TargetTrackingPolicy(target_value=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.target_value = 6  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: TargetTrackingPolicy(target_value=0), "target_tracking.target_value"),
        (lambda: TargetTrackingPolicy(target_value=1, metric_period_seconds=5), "metric_period_seconds"),  # type: ignore[arg-type]
        (lambda: TargetTrackingPolicy(target_value=1, estimated_instance_warmup_seconds=-1), "warmup"),
        (lambda: StepScalingPolicy(threshold=10, steps=()), "at least one step"),
        (
            lambda: StepScalingPolicy(
                threshold=10,
                steps=(StepAdjustment(1, 0, 5), StepAdjustment(2, 6, None)),
            ),
            "contiguous",
        ),
        (
            lambda: StepScalingPolicy(
                threshold=10,
                steps=(StepAdjustment(2, 5, None), StepAdjustment(1, 0, 5)),
            ),
            "sorted",
        ),
        (lambda: StepAdjustment(1, 5, 5), "must be below upper_bound"),
        (
            lambda: StepScalingPolicy(
                threshold=10, steps=(StepAdjustment(1),), evaluation_periods=2, datapoints_to_alarm=3
            ),
            "datapoints_to_alarm",
        ),
        (
            lambda: StepScalingPolicy(threshold=10, steps=(StepAdjustment(1),), min_adjustment_magnitude=2),
            "PercentChangeInCapacity",
        ),
        (
            lambda: PoolScaling("p", min_size=3, max_size=2, target_tracking=TargetTrackingPolicy(1)),
            "max_size",
        ),
        (lambda: PoolScaling("p", min_size=-1, max_size=2, target_tracking=TargetTrackingPolicy(1)), "min_size"),
        (
            lambda: PoolScaling(
                "p",
                0,
                2,
                TargetTrackingPolicy(10),
                scale_in=StepScalingPolicy(
                    threshold=9.5, steps=(StepAdjustment(-1, None, 0.0),), comparison="LessThanThreshold"
                ),
            ),
            "flaps",
        ),
        (
            lambda: StepScalingPolicy(
                threshold=1, steps=(StepAdjustment(-1, -5, None),), comparison="LessThanThreshold"
            ),
            "at or below the threshold",
        ),
        (
            lambda: Slo(
                acceptable_latency_seconds=10,
                average_task_seconds=1,
                concurrency_per_instance=1,
                latency_alarm_seconds=0,
            ),
            "latency_alarm_seconds",
        ),
    ],
)
def test_invalid_policies_are_refused(build: object, fragment: str) -> None:
    with pytest.raises(PolicyError, match=fragment):
        build()  # type: ignore[operator]
