"""The local twin's pure parts: trace windows, the pool mapping to a small machine, the agreement check."""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from infra.cli.local import main
from infra.local.accounting import Tally
from infra.local.agreement import TOLERANCE, Comparison, gate_failures
from infra.local.plan import TwinPlan, assumptions_for, local_pool, local_trace
from infra.local.result import TwinResult
from infra.local.timescale import ModelClock, parse_window
from infra.scaling.aws_model import ModelAssumptions, PoolSample
from infra.scaling.simulator import PoolSpec, ours, simulate
from infra.scaling.traces import TraceError


def test_window_keeps_the_arrivals_inside_and_shifts_them_and_the_burst() -> None:
    plan = TwinPlan(window=(15.0, 45.0))
    pool = local_pool(plan)
    trace = local_trace(plan, pool.spec)
    assert trace.duration == 30 * 60
    assert trace.burst_start == 5 * 60
    assert trace.arrivals.min() >= 0
    assert trace.arrivals.max() < 30 * 60
    assert np.all(np.diff(trace.arrivals) >= 0)
    assert "minutes 15-45 only" in trace.description


def test_a_window_past_the_end_of_the_trace_is_refused_by_name() -> None:
    plan = TwinPlan(window=(95.0, 100.0))
    with pytest.raises(TraceError, match="burst lasts 90 min"):
        local_trace(plan, local_pool(plan).spec)
    with pytest.raises(TraceError, match="START:END"):
        parse_window("15-45")
    with pytest.raises(TraceError, match="START < END"):
        parse_window("45:15")


def test_model_clock_divides_durations_by_the_speed() -> None:
    clock = ModelClock(10.0)
    assert clock.wall(60.0) == 6.0
    with pytest.raises(ValueError, match="speed"):
        ModelClock(0.0)


def test_dev_pool_runs_as_configured_and_prod_is_cut_to_fit_with_its_target_rebuilt() -> None:
    dev = local_pool(TwinPlan(stack="dev"))
    assert (dev.spec.concurrency, dev.spec.min_size, dev.spec.max_size) == (2, 0, 3)
    assert "as configured" in dev.mapping
    prod = local_pool(TwinPlan(stack="prod"))
    assert (prod.spec.concurrency, prod.spec.min_size, prod.spec.max_size) == (2, 2, 8)
    # Same SLO, half the processes per instance: the scaling math counts 2 processes an instance.
    assert prod.spec.scaling.signal.concurrency == 2
    assert "4 -> 2" in prod.mapping


def test_comparison_reports_each_difference_beyond_the_tolerance() -> None:
    plan = TwinPlan(window=(18.0, 40.0))
    pool = local_pool(plan)
    trace = local_trace(plan, pool.spec)
    simulated = simulate(pool.spec, trace, ours("simulator"))
    assert Comparison(simulated, simulated).failures() == []
    off = replace(
        simulated,
        scale_outs=simulated.scale_outs + TOLERANCE.scale_events + 1,
        peak_instances=simulated.peak_instances + 2,
        p95_wait=simulated.p95_wait * 2 + 100,
    )
    failures = Comparison(off, simulated).failures()
    assert [f.split(":")[0] for f in failures] == ["scale-outs", "peak instances", "p95 wait"]


def test_docs_options_table_lists_every_option_of_scripts_local() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "local.md").read_text()
    block = docs.split("## Options", 1)[1].split("##", 1)[0]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", block, re.M))
    options = {f"--{name.replace('_', '-')}" for name in inspect.signature(main).parameters}
    assert documented == options


def _twin_run_of(samples: list[PoolSample]) -> tuple[TwinResult, PoolSpec, ModelAssumptions]:
    """A twin run as `run_twin` reports it, with the decisions a model made on `samples`."""
    plan = TwinPlan(window=(18.0, 40.0))
    pool = local_pool(plan)
    assumptions = assumptions_for(plan, pool.spec)
    model = ours().build(pool.spec, assumptions)
    for sample in samples:
        model.observe(sample)
        model.decide(sample.at)
    simulated = simulate(pool.spec, local_trace(plan, pool.spec), ours("simulator"), assumptions)
    result = TwinResult(
        local=simulated,
        simulated=simulated,
        tally=Tally(simulated.tasks, simulated.tasks, 0, 0, ()),
        speed=10.0,
        wall_seconds=1.0,
        late_boots=0,
        problems=(),
        producer_lag=0.0,
        samples=tuple(samples),
        decisions=tuple(model.events),
        launched=tuple(i.id for i in model.instances),
        drained=tuple(i.id for i in model.instances if i.terminated_at is not None),
    )
    return result, pool.spec, assumptions


def _burst_samples() -> list[PoolSample]:
    """Empty, then 20 minutes of a backlog no pool of 3 clears, then empty again: out, then in."""
    return [
        PoolSample(at, 200 if 120 <= at < 1320 else 0, 0, 300.0 if 120 <= at < 1320 else 0.0)
        for at in np.arange(10.0, 2400.0, 10.0).tolist()
    ]


def test_gate_holds_for_a_run_that_did_what_its_model_decided() -> None:
    result, spec, assumptions = _twin_run_of(_burst_samples())
    assert result.decisions, "the burst made the model decide"
    assert {e.direction for e in result.decisions} == {"out", "in"}
    assert gate_failures(result, spec, assumptions) == []


def test_gate_names_each_thing_load_cannot_move_that_broke() -> None:
    result, spec, assumptions = _twin_run_of(_burst_samples())
    # Samples the run did not actually feed its model (the burst's first two minutes read as empty):
    # the replay decides differently.
    tampered = [replace(s, waiting=0, oldest_age=0.0) if s.at < 240 else s for s in result.samples]
    broken = replace(
        result,
        samples=tuple(tampered),
        tally=replace(result.tally, lost=1),
        canaries_sent=3,
        canaries_returned=2,
        launched=result.launched[:-1],
        drained=(),
    )
    failures = gate_failures(broken, spec, assumptions)
    assert [f.split(":")[0].split(" ")[0] for f in failures] == ["tasks", "canaries", "replaying", "the", "the"]
    assert "first difference at decision 1" in failures[2]
    idle, _, _ = _twin_run_of([PoolSample(at, 0, 0, 0.0) for at in np.arange(10.0, 600.0, 10.0).tolist()])
    assert "the model never scaled out" in " ".join(
        gate_failures(replace(idle, local=replace(idle.local, scale_outs=0)), spec, assumptions)
    )
    too_many = replace(result, local=replace(result.local, peak_instances=spec.max_size + 1))
    assert [f for f in gate_failures(too_many, spec, assumptions)] == [
        f"peak {spec.max_size + 1} outside the pool's 0..3"
    ]
