"""The tuner (`scripts/simulate --tune`) on a small trace through the dev stack's pool: what it returns
is the cheapest configuration of its grid that meets the SLO (held against every configuration of
the grid, run one by one), its lines give the same run once written into the stack file and read back
through the stack config's validation, and where nothing can meet the SLO it says so with the bound."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import yaml

from infra.cli.simulate_tune import changed_stack_file, changes_yaml
from infra.config import ROOT, load_stack_config
from infra.config.loading import read_stack_file
from infra.scaling.assumptions import default_assumptions
from infra.scaling.simulator import ours, simulate
from infra.scaling.traces import Trace
from infra.simulation.report import spec_from_file
from infra.simulation.tuning import Knobs, Objective, Trial, Tuner, Tuning, changes_for, merge

STACK = "dev"
POOL = "default"


def small_burst() -> Trace:
    """15 minutes: idle for one, then 3 minutes at one 5 s task a second (5 processes busy on a pool of
    3 x 2), then a task every 20 s."""
    rng = np.random.default_rng(3)
    trickle = np.arange(240.0, 900.0, 20.0)
    burst = np.sort(rng.uniform(60.0, 240.0, 180))
    arrivals = np.sort(np.concatenate([trickle, burst]))
    return Trace("small-burst", arrivals, np.full(arrivals.size, 5.0), 900.0, schedules=())


def tuner(trace: Trace, objective: Objective = "cost") -> Tuner:
    config = load_stack_config(STACK)
    raw = read_stack_file(STACK)["pools"][POOL]
    return Tuner(config, raw, POOL, trace, default_assumptions(config.image_mode), objective=objective)


Searched = tuple[Tuner, Tuning, list[Trial]]


@pytest.fixture(scope="module")
def searched() -> Searched:
    """The search, and then every configuration of its grid run one by one."""
    search = tuner(small_burst())
    tuning = search.search()
    every = tuner(small_burst())
    grid = itertools.product(range(every.today_pool.max_size + 1), every.shares(), every.warm_sizes())
    return search, tuning, [every.run(Knobs(m, share, warm)) for m, share, warm in grid]


def test_the_search_returns_the_cheapest_configuration_of_its_grid_that_meets_the_slo(searched: Searched) -> None:
    _, tuning, every = searched
    assert not tuning.today.meets_slo, "the trace must be one today's config misses, or nothing is tuned"
    meeting = [t for t in every if t.meets_slo]
    assert meeting, "some configuration of the grid meets the SLO"
    assert tuning.best is not None
    assert tuning.best.meets_slo
    cheapest = min(t.result.cost_usd for t in meeting)
    assert tuning.best.result.cost_usd == pytest.approx(cheapest)
    # It ran fewer configurations than the grid holds (bisection and the standing-cost cut).
    assert tuning.trials < len(every)


def test_the_instance_hours_objective_ranks_by_instance_hours(searched: Searched) -> None:
    _, _, every = searched
    tuning = tuner(small_burst(), "instance-hours").search()
    assert tuning.best is not None
    assert tuning.best.result.instance_hours == pytest.approx(
        min(t.result.instance_hours for t in every if t.meets_slo)
    )


def test_the_printed_lines_give_the_same_run_from_the_stack_file(searched: Searched, tmp_path: Path) -> None:
    search, tuning, _ = searched
    best = tuning.best
    assert best is not None
    assert best.changes, "today's config misses, so the best one changes something"
    printed = yaml.safe_load(changes_yaml(POOL, dict(best.changes)))
    assert printed == {"config": {"celery-cluster:pools": {POOL: dict(best.changes)}}}
    path = changed_stack_file(STACK, POOL, dict(best.changes), ROOT, tmp_path)
    spec = spec_from_file(path, STACK, POOL)
    again = simulate(spec, small_burst(), ours(), search.assumptions)
    assert again.p95_wait == pytest.approx(best.result.p95_wait)
    assert again.instance_hours == pytest.approx(best.result.instance_hours)


def test_a_warm_pool_on_a_spot_pool_turns_spot_off_and_keeps_one_type() -> None:
    pool = load_stack_config(STACK).pools[POOL]
    assert pool.spot.enabled, "dev's pool is a Spot pool with two types"
    changes = changes_for(pool, Knobs(pool.min_size, pool.target_wait_share, 2))
    preferred = pool.instance_types[0]
    assert changes == {
        "warmPool": {"enabled": True, "minSize": 2},
        "instanceTypes": [preferred],
        "spot": {"enabled": False},
        "hourlyUsd": {preferred: pool.hourly_usd[preferred]},
    }
    merged = merge(read_stack_file(STACK)["pools"][POOL], changes)
    assert merged["hourlyUsd"] == {preferred: pool.hourly_usd[preferred]}  # replaced, not merged
    assert merged["spot"]["onDemandPercentageAboveBase"] == 0  # merged: the rest of spot is kept


def test_where_no_configuration_can_meet_the_slo_the_bound_says_so() -> None:
    # 600 ten-second tasks at once on an idle minSize 0 pool of 6 processes: 1000 s of queue.
    arrivals = np.full(600, 120.0)
    flood = Trace("flood", arrivals, np.full(600, 10.0), 600.0, min_size=0, schedules=())
    tuning = tuner(flood).search()
    assert tuning.best is None
    assert not tuning.bound.meets_slo
    assert tuning.closest.result.p95_wait >= tuning.bound.p95_wait
