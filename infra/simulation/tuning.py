"""The tuner (`scripts/simulate --tune`): the cheapest configuration of one pool that meets its SLO on
a trace, in the model, as a change to the pool's keys in Pulumi.<stack>.yaml.

The knobs, each a key of `pools.<name>`, so whatever the search finds is a config change:
- `minSize`: instances that always run (a trace that sets its own minSize, as `flash-crowd` does,
  keeps it: the trace is about that pool);
- `targetWaitShare`: how short a queue target tracking holds: sooner in a burst, at more instance-hours;
- `warmPool.minSize`: Stopped instances that a scale-out starts instead of launching cold ones
  (`infra.scaling.warm_pool`). EC2 Auto Scaling allows no warm pool on a group that launches Spot
  Instances (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html#warm-pools-limitations)
  and the validator asks for one instance type, so for a Spot or mixed pool this family also turns
  Spot off and keeps the preferred type at its on-demand price: the search weighs that price against
  the instance-hours the warm pool saves.

The search: for every warm pool size and share, minSize 0, and the smallest minSize from 1 that meets
the SLO, by bisection (taken to be monotone from 1: more standing instances never lengthen the wait;
0 is apart, since a pool that may idle at zero leaves it with two instances on the first task); a
minSize whose standing instances alone cost at least the best found is not run. Cheapest is, by the
objective, the run's cost (instance-hours at the family's price, plus the warm pool's volumes) or its
instance-hours; ties go to the other, then to fewer changed keys.
Every candidate is validated by the pool's own config model; the result is then checked as a whole
stack file by the caller (`infra.cli.simulate_tune`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from infra.config import PoolConfig, StackConfig
from infra.scaling.assumptions import ModelAssumptions
from infra.scaling.bounds import BootBound, boot_bound
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.simulator import SimulationResult, ours, simulate
from infra.scaling.traces import Trace
from infra.scaling.warm_pool import GP3_USD_PER_GB_MONTH, HOURS_PER_MONTH, WARM_LAUNCH_SECONDS
from infra.simulation.stack import pool_spec

SHARES: Final = (0.5, 0.35, 0.25, 0.15, 0.1, 0.07, 0.05)
"""targetWaitShare values searched (and the pool's own). Under about a task time over the SLO the
pool switches to the long-task rule, which for short tasks is a pool at maxSize: the grid stops there."""

WARM_SHARES_OF_MAX: Final = (0.25, 0.5, 1.0)
"""Warm pool sizes searched, as shares of maxSize (rounded up), besides none."""

REPLACED_KEYS: Final = frozenset({"hourlyUsd", "instanceTypes"})
"""Keys a change replaces whole (a map of prices for the types in use), where others merge."""

Objective = Literal["cost", "instance-hours"]
"""What "cheapest" means: the bill (instance-hours at the family's price, plus warm volumes), or
instance-hours (what the bench's promise counts; a warm pool's stopped instances add none)."""


@dataclass(frozen=True, order=True)
class Knobs:
    min_size: int
    target_wait_share: float
    warm_pool: int
    """Instances in the warm pool; 0 = none."""
    trace_min_size: int | None = None
    """The minSize the trace runs the pool at, whatever `min_size` (the config's) says; None = min_size."""

    def describe(self) -> str:
        warm = f"warm pool {self.warm_pool}" if self.warm_pool else "no warm pool"
        size = f"minSize {self.min_size}" if self.trace_min_size is None else f"minSize {self.trace_min_size} (trace)"
        return f"{size}, targetWaitShare {self.target_wait_share:g}, {warm}"


@dataclass(frozen=True)
class Trial:
    """One configuration run on the trace."""

    knobs: Knobs
    changes: Mapping[str, Any]
    """The keys of `pools.<name>` that differ from today's config (empty for today's)."""
    result: SimulationResult
    spec: PoolSpec
    monthly_usd: float
    """The run's cost scaled to a month (730 h) of this traffic."""

    @property
    def meets_slo(self) -> bool:
        return self.result.meets_slo

    def rank(self, objective: Objective) -> tuple[float, float, int]:
        cost, hours = round(self.result.cost_usd, 9), round(self.result.instance_hours, 9)
        return (cost, hours, len(self.changes)) if objective == "cost" else (hours, cost, len(self.changes))


@dataclass(frozen=True)
class Tuning:
    today: Trial
    best: Trial | None
    """The cheapest trial that meets the SLO; None when none does."""
    closest: Trial
    """The trial with the shortest p95 wait (what to read when none meets)."""
    bound: BootBound
    trials: int
    objective: Objective
    searched: Sequence[str] = field(default_factory=tuple)
    """What was searched, one line per knob."""


def merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied: maps merge key by key, except REPLACED_KEYS and scalars, replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping) and key not in REPLACED_KEYS:
            merged[key] = merge(base[key], value)
        else:
            merged[key] = value
    return merged


def warm_pool_allowed(pool: PoolConfig) -> bool:
    """Whether the pool takes a warm pool as configured (no Spot, one instance type)."""
    return not pool.spot.enabled and len(pool.instance_types) == 1


def changes_for(pool: PoolConfig, knobs: Knobs) -> dict[str, Any]:
    """The keys of `pools.<name>` to set for `knobs`, against `pool` (today's config)."""
    changes: dict[str, Any] = {}
    if knobs.min_size != pool.min_size:
        changes["minSize"] = knobs.min_size
        if pool.desired_size is not None and pool.desired_size < knobs.min_size:
            changes["desiredSize"] = knobs.min_size
    if knobs.target_wait_share != pool.target_wait_share:
        changes["targetWaitShare"] = knobs.target_wait_share
    today_warm = pool.warm_pool.min_size if pool.warm_pool.enabled else 0
    if knobs.warm_pool == today_warm:
        return changes
    if knobs.warm_pool == 0:
        changes["warmPool"] = {"enabled": False}
        return changes
    changes["warmPool"] = {"enabled": True, "minSize": knobs.warm_pool}
    if not warm_pool_allowed(pool):
        preferred = pool.instance_types[0]
        changes["instanceTypes"] = [preferred]
        changes["spot"] = {"enabled": False}
        if preferred in pool.hourly_usd:
            changes["hourlyUsd"] = {preferred: pool.hourly_usd[preferred]}
    return changes


class Tuner:
    """Runs configurations of one pool on one trace; `search` finds the cheapest that meets the SLO."""

    def __init__(
        self,
        config: StackConfig,
        pool_raw: Mapping[str, Any],
        pool: str,
        trace: Trace,
        assumptions: ModelAssumptions,
        on_trial: Callable[[Trial], None] | None = None,
        objective: Objective = "cost",
    ) -> None:
        self.objective: Objective = objective
        self.config = config
        self.pool_raw = pool_raw
        self.name = pool
        self.today_pool = config.pools[pool]
        self.trace = trace
        self.assumptions = assumptions
        self.on_trial = on_trial
        self._trials: dict[Knobs, Trial] = {}

    @property
    def today_knobs(self) -> Knobs:
        pool = self.today_pool
        warm = pool.warm_pool.min_size if pool.warm_pool.enabled else 0
        return Knobs(pool.min_size, pool.target_wait_share, warm, self.floor)

    @property
    def floor(self) -> int | None:
        """The minSize the trace sets (not searched), or None."""
        return self.trace.min_size

    def shares(self) -> list[float]:
        return sorted({*SHARES, self.today_pool.target_wait_share}, reverse=True)

    def warm_sizes(self) -> list[int]:
        top = self.today_pool.max_size
        return sorted({0, self.today_knobs.warm_pool, *(math.ceil(share * top) for share in WARM_SHARES_OF_MAX)})

    def plan_size(self) -> int:
        """Trials the search runs at most (for a progress bar)."""
        per_family = 1 if self.floor is not None else math.ceil(math.log2(self.today_pool.max_size)) + 2
        return 1 + len(self.warm_sizes()) * len(self.shares()) * per_family

    def spec_for(self, knobs: Knobs) -> tuple[PoolSpec, dict[str, Any]]:
        changes = changes_for(self.today_pool, knobs)
        candidate = PoolConfig.model_validate(merge(self.pool_raw, changes))
        # Schedules derived from periodic entries are added to the config after validation; keep them.
        candidate = candidate.model_copy(update={"schedules": self.today_pool.schedules})
        pools = {**self.config.pools, self.name: candidate}
        return pool_spec(self.config.model_copy(update={"pools": pools}), self.name), changes

    def run(self, knobs: Knobs) -> Trial:
        if knobs in self._trials:
            return self._trials[knobs]
        spec, changes = self.spec_for(knobs)
        result = simulate(spec, self.trace, ours(), self.assumptions)
        trial = Trial(knobs, changes, result, spec, result.cost_usd * HOURS_PER_MONTH * 3600 / self.trace.duration)
        self._trials[knobs] = trial
        if self.on_trial is not None:
            self.on_trial(trial)
        return trial

    def standing(self, knobs: Knobs) -> float:
        """What `knobs` cost at least over the trace, in the objective: minSize instances all along (and
        the warm pool's volumes, for the bill)."""
        hours = self.trace.duration / 3600
        if self.objective == "instance-hours":
            return knobs.min_size * hours
        spec, _ = self.spec_for(knobs)
        volumes = knobs.warm_pool * self.today_pool.volume_size_gb * GP3_USD_PER_GB_MONTH * hours / HOURS_PER_MONTH
        return knobs.min_size * hours * spec.hourly_usd + volumes

    def score(self, trial: Trial) -> float:
        return trial.result.cost_usd if self.objective == "cost" else trial.result.instance_hours

    def _smallest_meeting(self, share: float, warm: int, best: Trial | None) -> Trial | None:
        if self.floor is not None:
            # The trace runs the pool at its own minSize: the config's stays as it is.
            trial = self.run(Knobs(self.today_pool.min_size, share, warm, self.floor))
            return trial if trial.meets_slo else None
        # minSize 0 is a different pool (it idles at zero and leaves it on the first task, where one
        # instance idles at one): run it, then bisect over 1..maxSize.
        zero = self.run(Knobs(0, share, warm))
        found = zero if zero.meets_slo else None
        lo, hi = 1, self.today_pool.max_size
        while lo <= hi:
            mid = (lo + hi) // 2
            knobs = Knobs(mid, share, warm)
            if best is not None and self.standing(knobs) >= self.score(best):
                hi = mid - 1
                continue
            trial = self.run(knobs)
            if trial.meets_slo:
                if found is None or trial.rank(self.objective) < found.rank(self.objective):
                    found = trial
                hi = mid - 1
            else:
                lo = mid + 1
        return found

    def search(self) -> Tuning:
        today = self.run(self.today_knobs)
        best = today if today.meets_slo else None
        for warm in self.warm_sizes():
            for share in self.shares():
                found = self._smallest_meeting(share, warm, best)
                if found is not None and (best is None or found.rank(self.objective) < best.rank(self.objective)):
                    best = found
        trials = list(self._trials.values())
        closest = min(trials, key=lambda t: (t.result.p95_wait, t.rank(self.objective)))
        return Tuning(today, best, closest, self.bound(), len(trials), self.objective, self.searched())

    def bound(self) -> BootBound:
        """The boot bound at the fastest launch-to-ready the search can reach (a warm instance's)."""
        warm = self.assumptions.warm_launch_seconds
        launch = min(self.assumptions.boot_seconds, WARM_LAUNCH_SECONDS["Stopped"] if warm is None else warm)
        spec, _ = self.spec_for(self.today_knobs)
        return boot_bound(spec, self.trace, launch, self.assumptions.alarm_delay_seconds)

    def searched(self) -> list[str]:
        pool = self.today_pool
        lines = [
            f"minSize {self.floor} (set by the trace)"
            if self.floor is not None
            else f"minSize 0, and 1..{pool.max_size} (the smallest that meets, by bisection)",
            "targetWaitShare " + ", ".join(f"{s:g}" for s in self.shares()),
            "warmPool.minSize " + ", ".join(str(w) for w in self.warm_sizes()) + " (Stopped)",
        ]
        if not warm_pool_allowed(pool):
            price = pool.hourly_usd.get(pool.instance_types[0])
            at = f" at ${price:g}/h on-demand" if price is not None else ""
            lines.append(
                f"a warm pool turns Spot off and keeps {pool.instance_types[0]} only{at} (no warm pool with Spot)"
            )
        return lines
