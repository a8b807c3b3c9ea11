"""The simulator's queue arithmetic, drains and interrupted tasks, the measured task time, the
perfect-foresight bound, and traces from CSV."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from infra.scaling.aws_model import GroupModel, ModelAssumptions, PoolSample
from infra.scaling.default_policy import Slo, default_pool_scaling
from infra.scaling.policy import PoolScaling, TargetTrackingPolicy
from infra.scaling.simulator import Contender, PoolSpec, ours, perfect_foresight_instance_hours, simulate
from infra.scaling.traces import BUILT_IN, Trace, TraceError, TraceShape, built_in, read_csv, write_csv

FIXED = ModelAssumptions(boot_seconds=0, alarm_delay_seconds=0)


def fixed_pool(instances: int, concurrency: int = 1, min_size: int | None = None) -> PoolSpec:
    # A target no backlog reaches and scale-in disabled: the pool stays at `instances`.
    low = instances if min_size is None else min_size
    scaling = PoolScaling("p", low, instances, TargetTrackingPolicy(target_value=1e9, disable_scale_in=True))
    return PoolSpec("p", concurrency, low, instances, 10, 5, 20, 0.5, "bake", scaling)


def trace(arrivals: list[float], seconds: list[float], duration: float) -> Trace:
    return Trace("t", np.asarray(arrivals, dtype=np.float64), np.asarray(seconds, dtype=np.float64), duration)


def test_fifo_waits_on_one_process() -> None:
    result = simulate(fixed_pool(1), trace([0, 0, 0, 30], [5, 5, 5, 1], 60), ours(), FIXED)
    # Tasks queue behind each other: they start at 0, 5, 10; the last finds the process free.
    assert result.tasks == 4
    assert result.max_wait == pytest.approx(10)
    assert result.p50_wait == pytest.approx(2.5)
    assert result.max_backlog == 1  # sampled at 10 s: the second task just finished, the third waits
    assert result.instance_hours == pytest.approx(60 / 3600)
    assert result.cost_usd == pytest.approx(0.5 * 60 / 3600)


def test_processes_of_all_instances_share_the_queue() -> None:
    result = simulate(fixed_pool(2, concurrency=2), trace([0] * 8, [10] * 8, 60), ours(), FIXED)
    # 4 processes: 4 tasks start at once, 4 wait 10 s.
    assert result.max_wait == pytest.approx(10)
    assert result.p50_wait == pytest.approx(5)


def test_work_outlasting_the_trace_is_finished_not_dropped() -> None:
    result = simulate(fixed_pool(1), trace([0, 1, 2], [100, 100, 100], 10), ours(), FIXED)
    assert result.max_wait == pytest.approx(198)
    assert result.simulated_seconds >= 200


def test_perfect_foresight_bound() -> None:
    spec = PoolSpec("p", 2, 0, 5, 10, 5, 20, 1.0, "bake", fixed_pool(1).scaling)
    # 240 task-seconds in the first minute on 2 processes: 2 instances for that minute, none after.
    bound = perfect_foresight_instance_hours(spec, trace([0, 10, 20, 30], [60, 60, 60, 60], 180))
    assert bound == pytest.approx(2 * 60 / 3600)
    floor = PoolSpec("p", 2, 1, 5, 10, 5, 20, 1.0, "bake", spec.scaling)
    assert perfect_foresight_instance_hours(floor, trace([0], [1], 180)) == pytest.approx(180 / 3600)


def test_default_policy_scales_a_burst_out_and_back_in() -> None:
    slo = Slo(
        acceptable_latency_seconds=30, average_task_seconds=2, concurrency_per_instance=4, latency_alarm_seconds=60
    )
    spec = PoolSpec("p", 4, 1, 20, 30, 2, 60, 0.1, "bake", default_pool_scaling("p", slo, 1, 20))
    result = simulate(spec, built_in("burst", TraceShape(spec.capacity_per_second, 2.0)), ours(), FIXED)
    assert result.first_scale_out_after_burst is not None
    assert result.first_scale_out_after_burst <= 30
    assert result.peak_instances > 10
    assert result.scale_ins > 0
    assert result.timeline.in_service[-1] < result.peak_instances  # gave the burst's instances back
    assert result.meets_slo


class _Recording(GroupModel):
    """Our model, keeping every sample it is fed; it scales in to `shrink_to` at `shrink_at`."""

    samples: list[PoolSample]
    shrink_at: float = -1.0
    shrink_to: int = 0

    def observe(self, sample: PoolSample) -> None:
        self.samples.append(sample)
        super().observe(sample)

    def decide(self, now: float):  # type: ignore[no-untyped-def]
        if now == self.shrink_at:
            event = self._set_desired(now, self.shrink_to, "test", 0.0, "forced scale-in")
            self.events.append(event)
            return [event]
        return super().decide(now)


def recording(shrink_at: float = -1.0, shrink_to: int = 0) -> tuple[Contender, list[_Recording]]:
    built: list[_Recording] = []

    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        model = _Recording(spec.scaling, spec.concurrency, assumptions, initial=spec.max_size)
        model.samples, model.shrink_at, model.shrink_to = [], shrink_at, shrink_to
        built.append(model)
        return model

    return Contender("recording", "our model, recorded", build), built


def test_the_measured_task_time_comes_from_finished_tasks_not_the_config() -> None:
    spec = fixed_pool(2)  # configured: 5 s tasks
    contender, built = recording()
    simulate(spec, trace([0, 0, 25, 25], [40, 40, 40, 40], 120), contender, FIXED)
    by_time = {s.at: s.task_seconds for s in built[0].samples}
    assert by_time[30] is None  # no task has ended yet: the policy uses its starting value
    assert by_time[40] == pytest.approx(40)  # two ended at 40 s, each after 40 s
    assert by_time[70] == pytest.approx(40)
    assert all(s.busy_processes == s.in_flight for s in built[0].samples)


def test_a_drain_waits_for_running_tasks_and_interrupts_what_outlasts_it() -> None:
    spec = replace(fixed_pool(2, min_size=1), drain_seconds=50.0)
    # Two 200 s tasks on two instances; at 20 s one instance is scaled in.
    contender, _ = recording(shrink_at=20.0, shrink_to=1)
    result = simulate(spec, trace([0, 0], [200, 200], 30), contender, FIXED)
    # Its task runs until the drain ends at 70 s, is killed and requeued: 70 s of work lost, then it
    # runs again on the remaining instance once that one is free at 200 s.
    assert result.interrupted_tasks == 1
    assert result.work_lost_seconds == pytest.approx(70)
    assert result.max_wait == pytest.approx(200)
    # The drained instance is billed until the drain ends (70 s), the other to the end.
    assert result.instance_hours == pytest.approx((70 + result.simulated_seconds) / 3600)


def test_a_drain_ends_when_the_tasks_do() -> None:
    spec = replace(fixed_pool(2, min_size=1), drain_seconds=1800.0)
    contender, _ = recording(shrink_at=20.0, shrink_to=1)
    result = simulate(spec, trace([0, 0], [100, 100], 30), contender, FIXED)
    assert result.interrupted_tasks == 0
    assert result.instance_hours == pytest.approx((100 + result.simulated_seconds) / 3600)


def test_a_trace_can_set_the_pools_min_size() -> None:
    slo = Slo(30, 2, 4, 60)
    spec = PoolSpec("p", 4, 2, 20, 30, 2, 60, 0.1, "bake", default_pool_scaling("p", slo, 2, 20))
    crowd = built_in("flash-crowd", TraceShape(spec.capacity_per_second, 2.0))
    assert crowd.min_size == 0
    result = simulate(spec, crowd, ours(), FIXED)
    # Idle for 20 min at zero (no instance-hours), then out; the trickle does not send it back to zero.
    assert result.timeline.in_service[: 20 * 6 - 1].max() == 0
    trickle = (result.timeline.t > 30 * 60) & (result.timeline.t < 60 * 60)
    assert result.timeline.in_service[trickle].min() >= 1
    assert result.timeline.in_service[-1] == 0  # idle for TO_ZERO_MINUTES after the trickle: back to zero


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_traces_are_seeded_and_sized_to_the_pool(name: str) -> None:
    shape = TraceShape(capacity_per_second=10.0, average_task_seconds=2.0)
    first, second = built_in(name, shape), built_in(name, shape)
    assert np.array_equal(first.arrivals, second.arrivals)
    assert first.count > 100
    assert np.all(np.diff(first.arrivals) >= 0)
    assert first.arrivals[-1] < first.duration
    # Task times have the pool's mean, but where the trace is about a different time (3x, 10 minutes).
    mean = {"misestimated-3x": 6.0, "long-tasks": 600.0}.get(name, 2.0)
    assert 0.5 * mean < float(first.task_seconds.mean()) < 1.5 * mean
    # No built-in trace asks for more than the pool can do at max_size, averaged over the trace.
    assert first.work_seconds / first.duration < 2.0 * 10.0 * (1 if name != "long-tasks" else 300)


def test_unknown_trace_lists_the_built_ins() -> None:
    with pytest.raises(TraceError, match="built-in traces: steady"):
        built_in("tsunami", TraceShape(1, 1))


def test_csv_round_trip(tmp_path: Path) -> None:
    original = trace([0.5, 1.25, 3.0], [2.0, 0.5, 1.0], 4)
    path = tmp_path / "traffic.csv"
    write_csv(original, path)
    loaded = read_csv(path)
    assert np.allclose(loaded.arrivals, original.arrivals)
    assert np.allclose(loaded.task_seconds, original.task_seconds)
    assert loaded.name == "traffic"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("when,how_long\n1,2\n", "header must name arrival_seconds, task_seconds"),
        (
            "arrival_seconds,task_seconds\n1,2\nx,2\n",
            r"traffic.csv:3: arrival_seconds and task_seconds must be numbers",
        ),
        ("arrival_seconds,task_seconds\n-1,2\n", r"traffic.csv:2: arrival_seconds must be >= 0"),
        ("arrival_seconds,task_seconds\n1,0\n", r"traffic.csv:2: task_seconds must be > 0"),
        ("arrival_seconds,task_seconds\n", "no tasks"),
    ],
)
def test_bad_csv_names_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "traffic.csv"
    path.write_text(text)
    with pytest.raises(TraceError, match=fragment):
        read_csv(path)
