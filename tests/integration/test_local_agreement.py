"""Agreement (issue 5, part 6): one trace through the local twin (real Redis, real worker processes,
time-scaled x10) and through the simulator (virtual time), with the same pool, policy, trace, boot delay
and speed assumptions. They must agree within `infra.local.agreement.TOLERANCE`:

- scale-outs and scale-ins: each count within 2 of the simulator's;
- first scale-out after the burst starts: within 20 model seconds (two 10 s samples);
- peak instances: within 1;
- p95 queue wait: within 20 model seconds or 20% of the simulator's, whichever is larger.

The run: dev/default (2 processes x 0..3 instances, SLO 120 s, boot 60 s), minutes 18-40 of the burst
trace (the burst starts at minute 2 of the window), x10: about 2.5 minutes of wall time. The tolerances
come from measured runs, idle and with other suites running (docs/local.md, "Agreement").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from infra.local.agreement import Comparison
from infra.local.twin import TwinPlan, local_pool, local_trace, run_twin

AGREEMENT_PLAN = TwinPlan(stack="dev", pool="default", trace="burst", window=(18.0, 40.0), speed=10.0)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_local_twin_agrees_with_the_simulator(tmp_path: Path) -> None:
    plan = replace(AGREEMENT_PLAN, log_dir=tmp_path / "logs")
    pool = local_pool(plan)
    trace = local_trace(plan, pool.spec)
    assert trace.burst_start == 120.0

    with (tmp_path / "view.txt").open("w") as view:
        result = run_twin(plan, pool, trace, Console(file=view, width=150))

    assert result.tally.lost == 0, result.problems
    assert result.tally.sent == trace.count
    comparison = Comparison(result.local, result.simulated)
    print(comparison.summary())  # shown with -s or on failure: the measured numbers
    # The burst must make both scale out, or the comparison says nothing.
    assert result.local.scale_outs > 0
    assert result.simulated.scale_outs > 0
    assert comparison.failures() == [], comparison.summary()
