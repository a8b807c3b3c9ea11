"""The warm pool in the model (infra.scaling.warm_pool): a scale-out takes prepared instances first,
each taken one is replaced and prepared for a cold launch's time, and the bill holds what it runs
and the volumes of what is stopped. And the boot bound (infra.scaling.bounds)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from infra.scaling.assumptions import ModelAssumptions
from infra.scaling.aws_model import GroupModel, PoolSample
from infra.scaling.bounds import boot_bound, fifo_waits
from infra.scaling.policy import PoolScaling, StepAdjustment, StepScalingPolicy, TargetTrackingPolicy
from infra.scaling.simulator import PoolSpec, ours, simulate
from infra.scaling.traces import Trace
from infra.scaling.warm_pool import (
    GP3_USD_PER_GB_MONTH,
    HOURS_PER_MONTH,
    WARM_LAUNCH_SECONDS,
    WarmPool,
    WarmPoolSpec,
    warm_pool_for,
)
from worker.names import METRIC_OLDEST_AGE

COLD = 100.0
WARM = 5.0
ASSUMED = ModelAssumptions(
    boot_seconds=COLD, alarm_delay_seconds=0.0, publisher_lag_seconds=0.0, warm_launch_seconds=WARM
)


def add_three() -> StepScalingPolicy:
    """One datapoint of oldest age >= 1 s adds 3 instances (a scale-out the test can provoke)."""
    return StepScalingPolicy(
        threshold=1.0,
        steps=(StepAdjustment(3, 0.0, None),),
        metric_name=METRIC_OLDEST_AGE,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        estimated_instance_warmup_seconds=0,
    )


def scaling() -> PoolScaling:
    never = TargetTrackingPolicy(target_value=1e9, disable_scale_in=True)
    return PoolScaling("p", 0, 10, never, steps=(("out", add_three()),))


def scale_out_once(warm: WarmPool | None) -> GroupModel:
    model = GroupModel(scaling(), concurrency=1, assumptions=ASSUMED, initial=1, warm_pool=warm)
    model.observe(PoolSample(5.0, waiting=1, in_flight=0, oldest_age=5.0))
    (event,) = model.decide(10.0)
    assert (event.old_desired, event.new_desired) == (1, 4)
    return model


def test_a_scale_out_takes_prepared_warm_instances_first_then_launches_cold() -> None:
    warm = WarmPool(WarmPoolSpec(2), launch_seconds=WARM, prepare_seconds=COLD)
    model = scale_out_once(warm)
    launched = sorted(i.in_service_at - i.launched_at for i in model.instances if i.launched_at == 10.0)
    assert launched == [WARM, WARM, COLD]
    assert warm.taken == 2
    # Each instance taken is replaced at once, and is prepared only after a cold launch's time.
    assert warm.available(10.0 + COLD - 1) == 0
    assert warm.available(10.0 + COLD) == 2


def test_without_a_warm_pool_every_launch_is_cold() -> None:
    model = scale_out_once(None)
    assert [i.in_service_at - i.launched_at for i in model.instances if i.launched_at == 10.0] == [COLD] * 3


def test_instances_present_at_the_start_take_nothing_from_the_warm_pool() -> None:
    warm = WarmPool(WarmPoolSpec(3), launch_seconds=WARM, prepare_seconds=COLD)
    GroupModel(scaling(), concurrency=1, assumptions=ASSUMED, initial=2, warm_pool=warm)
    assert (warm.taken, warm.available(0.0)) == (0, 3)


def test_stopped_warm_instances_cost_their_volumes_and_replacements_their_preparation() -> None:
    warm = WarmPool(WarmPoolSpec(4, "Stopped", volume_gb=20), launch_seconds=WARM, prepare_seconds=COLD)
    warm.take(0.0, COLD)
    charges = warm.charges(3600.0)
    assert charges.instance_hours == pytest.approx(COLD / 3600)
    assert charges.storage_usd == pytest.approx(4 * 20 * GP3_USD_PER_GB_MONTH / HOURS_PER_MONTH)


def test_running_warm_instances_are_billed_as_running() -> None:
    warm = WarmPool(WarmPoolSpec(4, "Running"), launch_seconds=WARM, prepare_seconds=COLD)
    charges = warm.charges(1800.0)
    assert charges.instance_hours == pytest.approx(2.0)
    assert charges.storage_usd == 0.0


def test_warm_launch_time_is_the_states_assumption_unless_overridden() -> None:
    spec = WarmPoolSpec(2, "Stopped")
    default = warm_pool_for(spec, ModelAssumptions())
    assert default is not None
    assert default.launch_seconds == WARM_LAUNCH_SECONDS["Stopped"]
    overridden = warm_pool_for(spec, ModelAssumptions(warm_launch_seconds=12.0))
    assert overridden is not None
    assert overridden.launch_seconds == 12.0
    assert warm_pool_for(WarmPoolSpec(0), ModelAssumptions()) is None
    assert warm_pool_for(None, ModelAssumptions()) is None


def flash(count: int, at: float, seconds: float, duration: float) -> Trace:
    arrivals = np.full(count, at, dtype=np.float64)
    return Trace("flash", arrivals, np.full(count, seconds), duration, min_size=0, schedules=())


def spec_from_zero(warm: WarmPoolSpec | None = None) -> PoolSpec:
    scaling_ = replace(scaling(), min_size=0)
    return PoolSpec("p", 1, 0, 10, 30.0, 10.0, 60.0, 1.0, "bake", scaling_, warm_pool=warm)


def test_a_warm_pool_shortens_the_wait_of_a_burst_on_an_idle_pool() -> None:
    trace = flash(3, 100.0, 10.0, 600.0)
    cold = simulate(spec_from_zero(), trace, ours(), ASSUMED)
    warm = simulate(spec_from_zero(WarmPoolSpec(3)), trace, ours(), ASSUMED)
    # Same decision time: the waits differ by exactly the launch-to-ready saved.
    assert cold.max_wait - warm.max_wait == pytest.approx(COLD - WARM)
    assert warm.cost_usd > warm.instance_hours * 1.0  # the stopped volumes are on the bill


def test_fifo_waits_start_each_task_on_the_earliest_free_process() -> None:
    assert fifo_waits([0.0, 0.0, 0.0, 1.0], [4.0, 4.0, 4.0, 1.0], [0.0, 2.0]) == [0.0, 2.0, 4.0, 5.0]


def test_the_boot_bound_waits_for_the_first_datapoint_the_delay_and_the_launch() -> None:
    # 10 tasks at t=105 on an idle pool: the 110 s datapoint closes, 20 s delay, 30 s launch: all of
    # maxSize (10 processes) consumes from 160 s, so every task waits 55 s.
    bound = boot_bound(spec_from_zero(), flash(10, 105.0, 1.0, 600.0), launch_seconds=30.0, alarm_delay_seconds=20.0)
    assert bound.p95_wait == pytest.approx(55.0)
    assert bound.ready_after == pytest.approx(55.0)
    assert not bound.meets_slo  # the SLO is 30 s
    # With the pool's standing instances the first tasks start at once.
    standing = replace(spec_from_zero(), min_size=10)
    assert boot_bound(standing, replace(flash(10, 105.0, 1.0, 600.0), min_size=None), 30.0, 20.0).p95_wait == 0.0


def test_no_policy_beats_the_boot_bound() -> None:
    trace = flash(30, 100.0, 10.0, 900.0)
    spec = spec_from_zero(WarmPoolSpec(10))
    result = simulate(spec, trace, ours(), ASSUMED)
    bound = boot_bound(spec, trace, launch_seconds=WARM, alarm_delay_seconds=ASSUMED.alarm_delay_seconds)
    assert result.p95_wait >= bound.p95_wait > 0
