"""The EC2 Auto Scaling model: each documented rule, driven sample by sample with a supplied clock.
The sources are cited in infra/scaling/ (abbreviations in infra.scaling.assumptions)."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from infra.scaling.aws_model import GroupModel, ModelAssumptions, NamedPolicies, PoolSample, ScalingEvent
from infra.scaling.default_policy import Slo, default_pool_scaling
from infra.scaling.group_state import Instance, choose_for_termination
from infra.scaling.policy import PoolScaling, StepAdjustment, StepScalingPolicy, TargetTrackingPolicy
from infra.scaling.schedules import Cron, Schedule
from worker.drain.settings import DrainSettings
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

TARGET = 10.0
# No boot, no CloudWatch delay, no publisher lag: each rule seen on its own.
NO_BOOT = ModelAssumptions(boot_seconds=0.0, alarm_delay_seconds=0.0, publisher_lag_seconds=0.0)


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
    scaling = PoolScaling("p", min_size, max_size, policy or tt(), steps=(("latency", step),) if step else ())
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


def test_action_repeats_once_a_minute_while_the_alarm_stays_in_alarm() -> None:
    model = group(tt(warmup=0, disable_scale_in=True), initial=1, max_size=1000)
    events = run(model, 0, 15, per_instance=11)
    # In ALARM from 30 s on, evaluated every 10 s, but the action runs at 30, 90, 150 s only.
    assert [e.at for e in events] == [30, 90, 150]


def test_warming_instances_count_as_current_capacity_and_block_scale_in() -> None:
    model = group(tt(warmup=300), initial=2)
    first = run(model, 0, 3, per_instance=20)
    assert [(e.old_desired, e.new_desired) for e in first] == [(2, 4)]
    # The next action, a minute later, is proportional to the whole capacity, warming instances included.
    assert run(model, 30, 5, per_instance=12) == []
    more = run(model, 80, 1, per_instance=12)
    assert [(e.at, e.old_desired, e.new_desired) for e in more] == [(90, 4, 5)]  # ceil(4 x 12 / 10)
    # Idle during warm-up: no scale-in until the new instances are warm.
    assert run(model, 90, 20, per_instance=0.0) == []
    later = run(model, 400, 15, per_instance=0.0)
    assert later
    assert later[0].direction == "in"


def test_warm_up_counts_from_in_service() -> None:
    assumptions = ModelAssumptions(boot_seconds=60, alarm_delay_seconds=0, publisher_lag_seconds=0)
    model = group(tt(warmup=120), initial=1, assumptions=assumptions)
    (event,) = run(model, 0, 3, per_instance=20)
    (new,) = [i for i in model.instances if i.id in event.launched]
    assert (new.in_service_at, new.warm_until) == (event.at + 60, event.at + 60 + 120)


def test_in_service_counts_lag_as_published() -> None:
    assumptions = ModelAssumptions(boot_seconds=60, alarm_delay_seconds=0, publisher_lag_seconds=10)
    model = group(tt(), initial=1, assumptions=assumptions)
    run(model, 0, 3, per_instance=20)  # launches one at 30 s: in service at 90 s
    assert [model.view(t).in_service for t in (89, 95, 100)] == [1, 1, 2]
    # AWS/AutoScaling GroupInServiceInstances: one-minute datapoints, so the new one shows at 120 s.
    assert [model.view(t).group_metric_in_service for t in (100, 119, 120)] == [1, 1, 2]


def _instance(id: int, zone: int, launched: float) -> Instance:
    return Instance(id, launched, launched, launched, zone)


def test_termination_balances_zones_then_picks_closest_to_the_billing_hour() -> None:
    # Zone 0 holds three instances, zones 1 and 2 one each: AWS takes from zone 0 first.
    group_ = [_instance(0, 0, 0), _instance(1, 0, 100), _instance(2, 0, 3000), _instance(3, 1, 0), _instance(4, 2, 0)]
    (first,) = choose_for_termination(group_, 1, 3500, random.Random(1))
    # In zone 0, the one closest to its next billing hour: launched at 0 (3500 s into its hour).
    assert first.id == 0
    two = choose_for_termination(group_, 2, 3500, random.Random(1))
    assert [i.id for i in two] == [0, 1]
    # A protected instance is never chosen.
    group_[0].protected = True
    assert [i.id for i in choose_for_termination(group_, 1, 3500, random.Random(1))] == [1]


def test_an_instance_running_a_long_task_is_not_chosen_while_another_exists() -> None:
    model = group(tt(disable_scale_in=False), initial=4, min_size=1)
    # Zones 0, 1, 2, 0: by AZ balance alone AWS would take one of zone 0's two, and both run a task
    # that has passed the agent's threshold (at 0 s) and runs on.
    busy = [i for i in model.live() if i.zone == 0]
    assert len(busy) == 2
    for instance in busy:
        instance.protecting_tasks.append((0.0, 10_000.0))
    events = run(model, 0, 15, per_instance=6)  # 15 datapoints under 90% of the target: 4 -> 3
    (event,) = events
    assert len(event.terminated) == 1
    assert all(i.id not in event.terminated for i in busy)


def test_the_agents_protection_starts_at_the_threshold_and_ends_after_the_hold() -> None:
    instance = _instance(0, 0, 0)
    instance.protecting_tasks.append((30.0, 100.0))  # started at 0 s, ran to 100 s, threshold 30 s
    hold = 60.0
    assert [instance.protected_by_agent(t, hold) for t in (29.0, 30.0, 100.0, 159.0, 160.0)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert instance.protecting_tasks == []  # pruned once past the hold


def test_without_protection_scale_in_takes_an_instance_running_a_long_task() -> None:
    model = group(tt(disable_scale_in=False), initial=2, min_size=1, assumptions=replace(NO_BOOT, protection="none"))
    for instance in model.live():
        instance.protecting_tasks.append((0.0, 10_000.0))
    (event,) = run(model, 0, 15, per_instance=4)
    assert len(event.terminated) == 1


def test_a_schedule_raises_min_size_at_its_start_and_releases_it_at_its_end() -> None:
    schedule = Schedule("fan-out", Cron.parse("*/15 * * * *"), capacity=4, duration_seconds=300)
    scaling = PoolScaling("p", 1, 10, tt(disable_scale_in=False), schedules=(schedule,))
    model = GroupModel(scaling, concurrency=1, assumptions=NO_BOOT, now=400.0, initial=1)
    assert model.decide(890.0) == []
    events = model.decide(900.0)
    assert [(e.policy, e.old_desired, e.new_desired) for e in events] == [("min-size", 1, 4)]
    assert model.min_size(1199) == 4
    assert model.min_size(1200) == 1
    # After the window, MinSize is back to 1: target tracking may scale in again.
    later = run(model, 1200, 16, per_instance=0.0)
    assert later
    assert later[-1].new_desired == 1


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
    # Same step again a minute later, while the first instance warms up: nothing more.
    assert run(model, 30, 6, age=75) == []
    # A higher step at the next repeat: +3 over the 2 instances not warming = 5, so 2 more than the 3.
    higher = run(model, 90, 6, age=100)
    assert [(e.at, e.old_desired, e.new_desired) for e in higher] == [(150, 3, 5)]


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
    model = group(
        initial=1, assumptions=ModelAssumptions(boot_seconds=60, alarm_delay_seconds=0, publisher_lag_seconds=0)
    )
    events = run(model, 0, 3, per_instance=30)
    launched = events[0].launched
    assert len(launched) == 2
    assert model.view(80).in_service == 1
    assert model.view(90).in_service == 3  # launched at 30 s, in service at 90 s
    assert math.isclose(min(i.in_service_at for i in model.instances if i.id in launched), 90)


def test_alarm_delay_postpones_decisions_by_that_much() -> None:
    model = group(
        initial=2, assumptions=ModelAssumptions(boot_seconds=0, alarm_delay_seconds=10, publisher_lag_seconds=0)
    )
    events = run(model, 0, 4, per_instance=25)
    # The third breaching period closes at 30 s; its alarm evaluates 10 s later, with the same data.
    assert [(e.at, e.new_desired) for e in events] == [(40, 5)]


def test_the_protection_threshold_and_hold_are_the_drain_agents() -> None:
    assert ModelAssumptions().protection_hold_seconds == DrainSettings.model_fields["protect_idle_seconds"].default
    assert ModelAssumptions().protection_after_seconds == DrainSettings.model_fields["protect_after_seconds"].default


def test_protected_instances_hold_the_excess_until_one_loses_its_protection() -> None:
    model = group(tt(disable_scale_in=False), initial=2, min_size=1, assumptions=NO_BOOT)
    for instance in model.live():
        instance.protecting_tasks.append((0.0, 200.0))
    (event,) = run(model, 0, 15, per_instance=4)  # 2 -> 1, but both are protected: nothing terminates
    assert (event.new_desired, event.terminated) == (1, ())
    assert len(model.live()) == 2
    model.live()[0].protecting_tasks[:] = [(0.0, 150.0)]  # its long task ended at 150 s; 60 s hold
    assert model.decide(200.0) == []
    (freed,) = model.decide(220.0)
    assert freed.policy == "protection"
    assert len(freed.terminated) == 1


def _latency_percent(minimum: int | None) -> StepScalingPolicy:
    return StepScalingPolicy(
        threshold=60,
        steps=(StepAdjustment(100, 0.0, None),),
        adjustment_type="PercentChangeInCapacity",
        min_adjustment_magnitude=minimum,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        estimated_instance_warmup_seconds=0,
    )


@pytest.mark.parametrize(("at_zero", "expected"), [(False, []), (True, [(0, 2)])])
def test_a_percentage_of_an_empty_group_is_no_change_unless_assumed(
    at_zero: bool, expected: list[tuple[int, int]]
) -> None:
    """API: 0 % of 0 instances is 0; whether MinAdjustmentMagnitude lifts it is the named assumption."""
    assumptions = replace(NO_BOOT, min_adjustment_at_zero=at_zero, empty_group_counts_as=0)
    model = group(tt(disable_scale_in=True), step=_latency_percent(2), initial=0, min_size=0, assumptions=assumptions)
    events = run(model, 0, 3, age=500)
    assert [(e.old_desired, e.new_desired) for e in events] == expected


def test_target_tracking_leaves_zero_only_by_the_named_assumption() -> None:
    """TT is proportional to the current capacity; at zero the model counts `empty_group_counts_as`."""
    stuck = group(initial=0, min_size=0, assumptions=replace(NO_BOOT, empty_group_counts_as=0))
    assert run(stuck, 0, 6, per_instance=35) == []


def test_our_pool_leaves_zero_by_its_change_in_capacity_step_whatever_the_assumptions() -> None:
    """Ours publishes no CapacityNeeded at zero in service and adds what InstancesNeededAtZero asks, by a
    count: the same decision with either assumption about zero."""
    slo = Slo(
        acceptable_latency_seconds=60, average_task_seconds=3, concurrency_per_instance=4, latency_alarm_seconds=120
    )
    scaling = default_pool_scaling("p", slo, min_size=0, max_size=30, warmup_seconds=0)
    decisions = []
    for assumptions in (NO_BOOT, replace(NO_BOOT, empty_group_counts_as=0, min_adjustment_at_zero=True)):
        model = GroupModel(scaling, 4, replace(assumptions, boot_seconds=120.0))
        model.observe(PoolSample(5.0, waiting=100, in_flight=0, oldest_age=500.0))
        decisions.append([(e.policy, e.old_desired, e.new_desired) for e in model.decide(10.0)])
    # 100 tasks x 3 s within the 30 s target wait: 10 processes, 3 instances of 4.
    assert decisions == [[("step-from-zero", 0, 3)]] * 2


def test_a_missed_sample_is_missing_data_and_moves_nothing() -> None:
    model = group(initial=2)
    for at in (10.0, 20.0):
        model.observe_published(at - 5, {METRIC_BACKLOG_PER_INSTANCE: 100.0})
        assert model.decide(at) == []
    model.observe_published(25.0, {})  # the publisher missed this sample: no datum
    assert model.decide(30.0) == []  # 2 of 3 breaching datapoints: no ALARM
    model.observe_published(35.0, {METRIC_BACKLOG_PER_INSTANCE: 100.0})
    assert model.decide(40.0) == []
