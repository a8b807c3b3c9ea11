"""The README's promise about our scaling policy, held in CI rather than only by `make bench`.

Every pool of every stack, on every built-in trace, runs through the model of AWS with its default
assumptions (launch-to-ready for the stack's image mode, the CloudWatch delay: what `scripts/simulate`
and `make bench` use), once with ours and once with each reference policy. The rule is
`infra.scaling.slo.promise_breaches`; every threshold in it is a reference's result from the same run:

- ours interrupts no task;
- where a reference meets the SLO, ours meets it, at fewer instance-hours than each reference that
  meets it;
- where no reference meets it (today mostly bursts, where launch-to-ready alone outlasts the SLO),
  the SLO cannot rank the policies, and ours must not be dominated: no reference may wait no longer at
  p95 for no more instance-hours. "Not costlier than the cheapest reference" would be no rule at all:
  CPU target tracking on a pool at zero never starts an instance, costs 0 and waits for hours. "The
  shortest wait" would reward buying a shorter miss with more instances than the references use.
  Such traces pass here while the bench reports them as "no policy meets the SLO", with the bound.

It covers every pool of every stack, not only the prod/default pool the README's table shows. It found
one breach there (prod/reports on `periodic-fan-out`, where copilot-1m met the 300 s SLO at fewer
instance-hours), since fixed in the policy; KNOWN_BREACHES is where a breach found on today's code is
named, with why, and reported as xfail.

The tests at the end check the rule itself on outcomes built by hand, so each clause is seen to fail.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache

import pytest

from infra.config import load_stack_config, stack_names
from infra.scaling.assumptions import default_assumptions
from infra.scaling.simulator import (
    PoolSpec,
    SimulationResult,
    ours,
    perfect_foresight_instance_hours,
    reference_contenders,
    simulate,
)
from infra.scaling.slo import promise_breaches
from infra.scaling.traces import BUILT_IN, built_in
from infra.simulation.stack import load_pool_spec
from tests.support.untraced import untraced

POOLS = [(stack, pool) for stack in stack_names() for pool in sorted(load_stack_config(stack).pools)]

KNOWN_BREACHES: dict[tuple[str, str, str], tuple[str, str]] = {}
"""Breaches of the promise on today's code: (the one breach allowed there, a regex; why). The test
reports them as xfail; it fails if that breach goes away (remove the entry: the list only shrinks) or
if any other breach appears on that trace, so nothing else hides behind an entry."""


@cache
def _spec(stack: str, pool: str) -> PoolSpec:
    return load_pool_spec(stack, pool)


def _table(results: list[SimulationResult], bound: float) -> str:
    lines = [f"{'policy':<12} {'p95 s':>9} {'SLO s':>6} {'inst-h':>8} {'interrupted':>11}"]
    for r in results:
        cells = f"{r.p95_wait:>9.1f} {r.slo_seconds:>6.0f} {r.instance_hours:>8.2f} {r.interrupted_tasks:>11}"
        lines.append(f"{r.policy:<12} {cells}")
    lines.append(f"{'bound':<12} {'':>9} {'':>6} {bound:>8.2f}")
    return "\n".join(lines)


@pytest.mark.parametrize("trace_name", list(BUILT_IN))
@pytest.mark.parametrize(("stack", "pool"), POOLS, ids=[f"{s}-{p}" for s, p in POOLS])
def test_ours_keeps_the_promise_against_every_reference(stack: str, pool: str, trace_name: str) -> None:
    spec = _spec(stack, pool)
    trace = built_in(trace_name, spec.trace_shape())
    assumptions = default_assumptions(spec.image_mode)
    # Only worth its name with AWS's delays in it: a model that launches instantly and alarms at once
    # lets a loosened policy look as good as a tight one (as the 0 s test in test_simulator.py does).
    assert assumptions.boot_seconds > 0
    assert assumptions.alarm_delay_seconds > 0
    # The first pool's cases run traced and cover the simulator, the policies and every trace; the other
    # pools repeat those paths with other numbers, at three times the CPU under coverage (untraced.py).
    with nullcontext() if (stack, pool) == POOLS[0] else untraced():
        mine = simulate(spec, trace, ours(), assumptions)
        references = [simulate(spec, trace, contender, assumptions) for contender in reference_contenders()]
    breaches = promise_breaches(mine, references)
    bound = perfect_foresight_instance_hours(spec, trace)
    known = KNOWN_BREACHES.get((stack, pool, trace_name))
    if known is not None:
        pattern, why = known
        assert breaches, f"{stack}/{pool} on {trace_name} keeps the promise now: remove it from KNOWN_BREACHES"
        assert len(breaches) == 1
        assert re.fullmatch(pattern, breaches[0]), breaches[0]
        pytest.xfail(why)
    assert not breaches, (
        f"{stack}/{pool} on {trace_name}:\n" + "\n".join(breaches) + "\n" + _table([mine, *references], bound)
    )


@dataclass(frozen=True)
class _Run:
    policy: str
    p95_wait: float
    instance_hours: float
    slo_seconds: float = 30.0
    interrupted_tasks: int = 0


def test_ours_missing_where_a_reference_meets_breaks_the_promise() -> None:
    breaches = promise_breaches(_Run("ours", 31.0, 1.0), [_Run("ref", 30.0, 9.0)])
    assert len(breaches) == 1
    assert "ref (p95 30.0 s) meet the 30 s SLO" in breaches[0]


def test_ours_meeting_at_no_fewer_instance_hours_breaks_the_promise() -> None:
    references = [_Run("dearer", 0.0, 5.0), _Run("same", 10.0, 4.0), _Run("missing", 99.0, 1.0)]
    breaches = promise_breaches(_Run("ours", 20.0, 4.0), references)
    assert len(breaches) == 1
    assert breaches[0].startswith("same (4.00) meet")
    assert promise_breaches(_Run("ours", 20.0, 3.9), references) == []


def test_where_no_reference_meets_ours_must_not_be_dominated() -> None:
    # A reference that misses by less but costs more, or costs less but waits longer, is a trade.
    trades = [_Run("faster", 40.0, 9.0), _Run("cheaper", 500.0, 0.0)]
    assert promise_breaches(_Run("ours", 60.0, 5.0), trades) == []
    assert promise_breaches(_Run("ours", 20.0, 5.0), trades) == []  # only ours meets it
    dominated = promise_breaches(_Run("ours", 60.0, 5.0), [*trades, _Run("better", 60.0, 4.0)])
    assert len(dominated) == 1
    assert "better (p95 60.0 s, 4.00 inst-h) waits no longer" in dominated[0]


def test_an_interrupted_task_breaks_the_promise_even_where_ours_wins() -> None:
    breaches = promise_breaches(_Run("ours", 1.0, 1.0, interrupted_tasks=2), [_Run("ref", 5.0, 9.0)])
    assert breaches == ["ours interrupted 2 tasks"]
