"""What every scaling decision of our policy must satisfy, on every built-in trace and every stack's pools,
whatever the policy's numbers: each event changes the desired capacity, within the pool's min..max; a
scale-out launches up to the new capacity, a scale-in terminates down to it except instances protected
from scale-in, which go later in "protection" events that leave the desired capacity alone (PROT).
(Kills mutants of the model that the rule-by-rule tests in test_aws_model.py let through.)"""

from __future__ import annotations

import pytest

from infra.config import load_stack_config, stack_names
from infra.scaling.simulator import ours, simulate
from infra.scaling.traces import BUILT_IN, TraceShape, built_in
from infra.simulation.stack import load_pool_spec

POOLS = [(stack, pool) for stack in stack_names() for pool in load_stack_config(stack).pools]


@pytest.mark.parametrize(("stack", "pool"), POOLS)
@pytest.mark.parametrize("trace_name", sorted(BUILT_IN))  # diurnal (24 h) too: about 3.5 s over every pool
def test_every_event_changes_capacity_within_bounds_by_exactly_its_instances(
    stack: str, pool: str, trace_name: str
) -> None:
    spec = load_pool_spec(stack, pool)
    trace = built_in(trace_name, TraceShape(spec.capacity_per_second, spec.average_task_seconds, seed=3))
    result = simulate(spec, trace, ours())
    # A trace may set the pool's minSize (the flash crowd hits an idle pool at 0); scheduled capacity only raises it.
    lowest = spec.min_size if trace.min_size is None else trace.min_size
    assert result.events, "the trace made the policy act"
    desired = live = result.events[0].old_desired
    for event in result.events:
        assert event.old_desired == desired, "an event starts from the capacity the previous one set"
        if event.policy == "protection":
            # Instances above the desired capacity, terminated as their protection goes: no more than the excess.
            assert (event.new_desired, event.launched) == (desired, ()), event
            assert 0 < len(event.terminated) <= live - desired, event
            live -= len(event.terminated)
            continue
        assert event.new_desired != event.old_desired, event
        assert lowest <= event.new_desired <= spec.max_size, event
        desired = event.new_desired
        if event.direction == "out":
            assert event.terminated == (), event
            assert len(event.launched) == max(0, desired - live), event
            live += len(event.launched)
        else:
            # Protected instances stay above the desired capacity; the rest go down to it.
            assert event.launched == (), event
            assert len(event.terminated) <= live - desired, event
            live -= len(event.terminated)
        assert live >= desired, event
    assert result.scale_outs == sum(1 for e in result.events if e.direction == "out")
    assert result.scale_ins == sum(1 for e in result.events if e.direction == "in")
    assert result.peak_instances <= spec.max_size
