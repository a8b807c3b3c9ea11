"""The simulator's queue arithmetic, the perfect-foresight bound, and traces from CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from infra.scaling.aws_model import ModelAssumptions
from infra.scaling.policy import PoolScaling, Slo, TargetTrackingPolicy, default_pool_scaling
from infra.scaling.simulator import PoolSpec, ours, perfect_foresight_instance_hours, simulate
from infra.scaling.traces import BUILT_IN, Trace, TraceError, TraceShape, built_in, read_csv, write_csv

FIXED = ModelAssumptions(boot_seconds=0)


def fixed_pool(instances: int, concurrency: int = 1) -> PoolSpec:
    # A target no backlog reaches and scale-in disabled: the pool stays at `instances`.
    scaling = PoolScaling("p", instances, instances, TargetTrackingPolicy(target_value=1e9, disable_scale_in=True))
    return PoolSpec("p", concurrency, instances, instances, 10, 5, 20, 0.5, "bake", scaling)


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


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_traces_are_seeded_and_sized_to_the_pool(name: str) -> None:
    shape = TraceShape(capacity_per_second=10.0, average_task_seconds=2.0)
    first, second = built_in(name, shape), built_in(name, shape)
    assert np.array_equal(first.arrivals, second.arrivals)
    assert first.count > 100
    assert np.all(np.diff(first.arrivals) >= 0)
    assert first.arrivals[-1] < first.duration
    assert 1.0 < float(first.task_seconds.mean()) < 3.0
    # No built-in trace asks for more than the pool can do at max_size, averaged over the trace.
    assert first.work_seconds / first.duration < 2.0 * 10.0


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
