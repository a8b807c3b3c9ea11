"""Agreement (issue 5, part 6): one trace through the local twin (real Redis, real worker processes,
time-scaled x10) and through the simulator (virtual time), with the same pool, policy, trace, boot delay
and speed assumptions.

The test gates on what machine load cannot move (`infra.local.agreement.gate_failures`): no task lost,
every canary back, the burst made the pool scale out, the peak within the pool's bounds, the fleet
started and drained exactly the instances the model decided, and the twin's recorded samples, replayed
through a fresh model, give the very decisions the twin made. How close the twin's counts come to the
simulator's depends on how busy the machine is (the twin runs 10x faster than model time), so that
comparison is printed here and measured in `make bench` (section `twin-agreement`), not asserted.

The run: dev/default (2 processes x 0..3 instances, boot 180 s in `boot` image mode), minutes 18-40 of
the burst trace (the burst starts at minute 2 of the window), x10: about 2.5 minutes of wall time.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from infra.local.agreement import Comparison, gate_failures
from infra.local.plan import TwinPlan, assumptions_for, local_pool, local_trace
from infra.local.run_loop import run_twin

AGREEMENT_PLAN = TwinPlan(stack="dev", pool="default", trace="burst", window=(18.0, 40.0), speed=10.0)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_twin_decides_as_its_model_and_loses_nothing(tmp_path: Path) -> None:
    plan = replace(AGREEMENT_PLAN, log_dir=tmp_path / "logs")
    pool = local_pool(plan)
    trace = local_trace(plan, pool.spec)
    assert trace.burst_start == 120.0

    with (tmp_path / "view.txt").open("w") as view:
        result = run_twin(plan, pool, trace, Console(file=view, width=150))

    # Shown with -s or on failure: the measured counts next to the simulator's (not asserted, see above).
    print(Comparison(result.local, result.simulated).summary())
    print(f"worst sample lag {result.worst_sample_lag:.2f} s wall; {len(result.samples)} samples")
    assert result.tally.sent == trace.count
    assert result.samples, "the metrics loop never sampled"
    assert gate_failures(result, pool.spec, assumptions_for(plan, pool.spec)) == []
