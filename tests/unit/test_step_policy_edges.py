"""Step policies at their edges: each alarm comparison at and either side of its threshold, the alarm
periods CloudWatch accepts, and the bounds that put a step on the wrong side of the threshold."""

from __future__ import annotations

import math

import pytest

from infra.scaling.policy import Comparison, PolicyError, StepAdjustment, StepScalingPolicy

OUT = (StepAdjustment(1, 0.0, 10.0), StepAdjustment(2, 10.0, None))
IN = (StepAdjustment(-2, None, -10.0), StepAdjustment(-1, -10.0, 0.0))


@pytest.mark.parametrize(
    ("comparison", "below", "at", "above"),
    [
        ("GreaterThanOrEqualToThreshold", False, True, True),
        ("GreaterThanThreshold", False, False, True),
        ("LessThanOrEqualToThreshold", True, True, False),
        ("LessThanThreshold", True, False, False),
    ],
)
def test_each_comparison_breaches_on_its_side_of_the_threshold(
    comparison: Comparison, below: bool, at: bool, above: bool
) -> None:
    steps = IN if comparison.startswith("LessThan") else OUT
    policy = StepScalingPolicy(threshold=50.0, steps=steps, comparison=comparison)
    assert (policy.breaches(49.0), policy.breaches(50.0), policy.breaches(51.0)) == (below, at, above)


def test_a_scale_in_policy_has_no_step_above_its_threshold() -> None:
    policy = StepScalingPolicy(threshold=50.0, steps=IN, comparison="LessThanOrEqualToThreshold")
    assert policy.step_for(50.0) == IN[-1]  # the threshold itself breaches a LessThanOrEqual alarm
    assert policy.step_for(45.0) == IN[-1]
    assert policy.step_for(30.0) == IN[0]
    assert policy.step_for(50.5) is None
    assert policy.step_for(80.0) is None


@pytest.mark.parametrize("period", [10, 30, 60, 120])
def test_alarm_periods_cloudwatch_accepts(period: int) -> None:
    assert StepScalingPolicy(threshold=5.0, steps=OUT, metric_period_seconds=period).metric_period_seconds == period


@pytest.mark.parametrize("period", [0, 20, 31, 90])
def test_alarm_periods_cloudwatch_refuses(period: int) -> None:
    with pytest.raises(PolicyError, match="metric_period_seconds must be 10, 30 or a multiple of 60"):
        StepScalingPolicy(threshold=5.0, steps=OUT, metric_period_seconds=period)


@pytest.mark.parametrize("threshold", [-1.0, math.inf, math.nan])
def test_threshold_must_be_finite_and_not_negative(threshold: float) -> None:
    with pytest.raises(PolicyError, match=r"step_scaling\.threshold must be >= 0"):
        StepScalingPolicy(threshold=threshold, steps=OUT)


def test_scale_out_steps_cannot_start_below_the_threshold() -> None:
    with pytest.raises(PolicyError, match="must start at or above the threshold"):
        StepScalingPolicy(threshold=5.0, steps=(StepAdjustment(1, -1.0, None),))


def test_scale_in_steps_cannot_reach_above_the_threshold() -> None:
    with pytest.raises(PolicyError, match="must lie at or below the threshold"):
        StepScalingPolicy(threshold=5.0, steps=(StepAdjustment(-1, None, 0.5),), comparison="LessThanThreshold")
