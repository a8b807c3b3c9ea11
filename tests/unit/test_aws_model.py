"""The EC2 Auto Scaling model: each documented rule, driven sample by sample with a supplied clock."""

from __future__ import annotations

import math

import pytest

from infra.scaling.aws_model import GroupModel, ModelAssumptions, NamedPolicies, PoolSample, ScalingEvent
from infra.scaling.policy import PoolScaling, StepAdjustment, StepScalingPolicy, TargetTrackingPolicy
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

TARGET = 10.0
NO_BOOT = ModelAssumptions(boot_seconds=0.0)


def tt(warmup: int = 0, disable_scale_in: bool = False, period: int = 10) -> TargetTrackingPolicy:
    return TargetTrackingPolicy(
        target_value=TARGET,
        estimated_instance_warmup_seconds=warmup,
        disable_scale_in=disable_scale_in,
        metric_period_seconds=period,  # type: ignore[arg-type]
    )


def group(
    policy: TargetTrackingPolicy | None = None,
    step: StepScalingPolicy | None = None,
    initial: int = 2,
    min_size: int = 1,
    max_size: int = 50,
    assumptions: ModelAssumptions = NO_BOOT,
) -> GroupModel:
    scaling = PoolScaling("p", min_size, max_size, policy or tt(), step_scaling=step)
    return GroupModel(scaling, concurrency=1, assumptions=assumptions, initial=initial)


def run(
    model: GroupModel, start: float, periods: int, per_instance: float = 0.0, age: float = 0.0
) -> list[ScalingEvent]:
    """One sample per 10 s period with backlog per in-service instance `per_instance`; decide after each."""
    events: list[ScalingEvent] = []
    for index in range(periods):
        now = start + 10 * (index + 1)
        in_service = model.view(now - 5).in_service
        model.observe(
            PoolSample(now - 5, waiting=round(per_instance * max(in_service, 1)), in_flight=0, oldest_age=age)
        )
        events.extend(model.decide(now))
    return events


def test_scale_out_needs_three_datapoints_then_is_proportional() -> None:
    model = group(initial=2)
    assert run(model, 0, 2, per_instance=25) == []  # two breaching datapoints: not yet
    events = run(model, 20, 1, per_instance=25)
    assert len(events) == 1
    # new = ceil(current x metric / target) = ceil(2 x 25 / 10)
    assert (events[0].old_desired, events[0].new_desired) == (2, 5)
    assert events[0].at == 30
    assert len(model.live()) == 5


def test_no_scale_in_between_90_and_100_percent_of_target() -> None:
    model = group(initial=4)
    assert run(model, 0, 40, per_instance=0.95 * TARGET) == []


def test_scale_in_after_15_datapoints_under_90_percent() -> None:
    model = group(initial=4)
    assert run(model, 0, 14, per_instance=0.5 * TARGET) == []
    events = run(model, 140, 1, per_instance=0.5 * TARGET)
    assert [(e.old_desired, e.new_desired, e.direction) for e in events] == [(4, 2, "in")]  # ceil(4 x 5 / 10)


def test_disable_scale_in() -> None:
    model = group(tt(disable_scale_in=True), initial=4)
    assert run(model, 0, 30, per_instance=0.0) == []


def test_warming_instances_count_as_added_and_block_scale_in() -> None:
    model = group(tt(warmup=300), initial=2)
    first = run(model, 0, 3, per_instance=20)
    assert [(e.old_desired, e.new_desired) for e in first] == [(2, 4)]
    # The same metric again while 2 warm up: base 2 -> 4 again, which the group already has.
    assert run(model, 30, 5, per_instance=20) == []
    # Higher metric: only the difference is added (ceil(2 x 30 / 10) = 6 -> 2 more).
    more = run(model, 80, 1, per_instance=30)
    assert [(e.old_desired, e.new_desired) for e in more] == [(4, 6)]
    # Idle during warm-up: no scale-in until the new instances are warm.
    assert run(model, 90, 20, per_instance=0.0) == []
    later = run(model, 400, 15, per_instance=0.0)
    assert later
    assert later[0].direction == "in"


def test_min_and_max_bound_every_policy() -> None:
    model = group(initial=2, max_size=3)
    events = run(model, 0, 3, per_instance=100)
    assert events[-1].new_desired == 3
    low = group(initial=3, min_size=2)
    events = run(low, 0, 15, per_instance=0.0)
    assert events[-1].new_desired == 2


def test_pool_at_zero_scales_out_on_its_whole_backlog() -> None:
    model = group(initial=0, min_size=0)
    assert run(model, 0, 2, per_instance=35) == []  # no instance: the metric is the whole backlog, 35
    events = run(model, 20, 1, per_instance=35)
    assert [(e.old_desired, e.new_desired) for e in events] == [(0, 4)]  # ceil(35 / 10)


def latency_steps(cooldown: int = 0, warmup: int = 300) -> StepScalingPolicy:
    return StepScalingPolicy(
        threshold=60,
        steps=(StepAdjustment(1, 0, 30), StepAdjustment(3, 30, None)),
        metric_name=METRIC_OLDEST_AGE,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        estimated_instance_warmup_seconds=warmup,
        cooldown_seconds=cooldown,
    )


def test_step_scaling_picks_the_step_by_breach_size_and_respects_warm_up() -> None:
    model = group(tt(disable_scale_in=True), step=latency_steps(), initial=2)
    assert run(model, 0, 2, age=70) == []
    first = run(model, 20, 1, age=70)
    assert [(e.policy, e.old_desired, e.new_desired) for e in first] == [("step-latency", 2, 3)]
    # Same step again while the first instance warms up: nothing more.
    assert run(model, 30, 3, age=75) == []
    # A higher step: +3 over the 2 instances not warming = 5, so 2 more than the 3 there are.
    higher = run(model, 60, 1, age=100)
    assert [(e.old_desired, e.new_desired) for e in higher] == [(3, 5)]


def test_step_cooldown_blocks_repeats() -> None:
    model = group(tt(disable_scale_in=True), step=latency_steps(cooldown=120, warmup=0), initial=2)
    events = run(model, 0, 15, age=70)
    # Every 10 s the alarm is in ALARM, but the 120 s cooldown lets it act at 30 s and 150 s only.
    assert [e.at for e in events] == [30, 150]


@pytest.mark.parametrize(
    ("capacity", "percent", "minimum", "expected"),
    [
        (10, 25, None, 12),  # 2.5 -> 2 (magnitudes over 1 round towards zero)
        (2, 25, None, 3),  # 0.5 -> 1 (between 0 and 1 rounds away from zero)
        (4, 25, 3, 7),  # at least MinAdjustmentMagnitude
        (10, -50, None, 5),
    ],
)
def test_percent_change_in_capacity(capacity: int, percent: int, minimum: int | None, expected: int) -> None:
    step = StepScalingPolicy(
        threshold=0 if percent < 0 else 5,
        steps=(StepAdjustment(percent, None, 0.0),) if percent < 0 else (StepAdjustment(percent, 0.0, None),),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=minimum,
        metric_name=METRIC_BACKLOG_PER_INSTANCE,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        comparison="LessThanThreshold" if percent < 0 else "GreaterThanOrEqualToThreshold",
        estimated_instance_warmup_seconds=0,
    )
    model = GroupModel(
        PoolScaling("p", 1, 50, tt(disable_scale_in=True)),
        concurrency=1,
        assumptions=NO_BOOT,
        initial=capacity,
        extra=NamedPolicies(step_scaling=(("pct", step),)),
    )
    events = run(model, 0, 1, per_instance=-1 if percent < 0 else 6)
    assert events[0].new_desired == expected


def test_scale_in_only_when_every_target_tracking_policy_agrees() -> None:
    other = TargetTrackingPolicy(target_value=50.0, metric_name=METRIC_OLDEST_AGE, estimated_instance_warmup_seconds=0)
    scaling = PoolScaling("p", 1, 50, tt(), extra_target_tracking=(other,))
    model = GroupModel(scaling, concurrency=1, assumptions=NO_BOOT, initial=4)
    # Backlog says scale in; queue latency (48 s, 96% of its 50 s target) does not.
    assert run(model, 0, 20, per_instance=1.0, age=48) == []
    events = run(model, 200, 15, per_instance=1.0, age=1)
    assert events
    assert events[0].direction == "in"


def test_boot_time_delays_in_service() -> None:
    model = group(initial=1, assumptions=ModelAssumptions(boot_seconds=60))
    events = run(model, 0, 3, per_instance=30)
    launched = events[0].launched
    assert len(launched) == 2
    assert model.view(80).in_service == 1
    assert model.view(90).in_service == 3  # launched at 30 s, in service at 90 s
    assert math.isclose(min(i.in_service_at for i in model.instances if i.id in launched), 90)


def test_alarm_delay_postpones_decisions_by_that_much() -> None:
    model = group(initial=2, assumptions=ModelAssumptions(boot_seconds=0, alarm_delay_seconds=10))
    events = run(model, 0, 4, per_instance=25)
    # The third breaching period closes at 30 s; its alarm evaluates 10 s later, with the same data.
    assert [(e.at, e.new_desired) for e in events] == [(40, 5)]
