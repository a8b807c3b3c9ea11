"""What a local twin run is: the plan (stack, pool, trace, speed), the pool fitted to this machine, the
trace window it replays and the model's assumptions for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.canary.rules import Judge, canary_judges, refresh_preferences
from infra.config import ROOT, load_stack_config
from infra.local.timescale import DEFAULT_WINDOWS, window
from infra.scaling.assumptions import ModelAssumptions, default_assumptions
from infra.scaling.simulator import PoolSpec
from infra.scaling.traces import Trace, built_in, read_csv
from infra.simulation.stack import pool_spec

# tasks hold a process but hardly any CPU, so the limit is the worker processes' memory and start-up.
LOCAL_CONCURRENCY = 2
LOCAL_MAX_PROCESSES = 16
# What `make local --scheduler` runs: a periodic canary every 10 wall seconds, so a short run shows it.
LOCAL_SCHEDULE = "worker.scheduler.schedule:LOCAL_ENTRIES"


@dataclass(frozen=True)
class TwinPlan:
    stack: str = "dev"
    pool: str = "default"
    trace: str = "burst"
    speed: float = 10.0
    window: tuple[float, float] | None = None
    """Minutes of the trace to replay; None = the trace's DEFAULT_WINDOWS entry (whole CSV traces)."""
    seed: int = 7
    boot_seconds: float | None = None
    """Launch to consuming, model seconds; None = the stack's image mode (BOOT_SECONDS)."""
    concurrency: int = LOCAL_CONCURRENCY
    max_processes: int = LOCAL_MAX_PROCESSES
    drain_timeout: float = 120.0
    """Wall seconds to wait, after the last arrival, for every task to complete."""
    log_dir: Path = Path("build/local")
    scheduler: bool = False
    """Also run two periodic task schedulers beside the pool (LOCAL_SCHEDULE, one lease between them)."""
    upgrade_to: Path | None = None
    """Roll the workers to the worker package at this path (a directory or a wheel) as the run starts."""


@dataclass(frozen=True)
class LocalPool:
    """The stack's pool as it runs here, and how it was mapped."""

    spec: PoolSpec
    mapping: str
    queue: str
    """Where the trace's tasks go: the pool's first queue (a trace has no queue column)."""
    soft_shutdown_seconds: float
    """The stack's CELERY_SOFT_SHUTDOWN_TIMEOUT (model seconds): a draining worker's window."""
    judges: tuple[Judge, ...] = ()
    """What judges a new version of the pool's code (its canary alarms)."""
    refresh: Mapping[str, Any] = field(default_factory=dict)
    """The stack's refresh preferences for the pool, as the deploy step starts its refresh with them."""


def local_pool(plan: TwinPlan, root: Path = ROOT) -> LocalPool:
    """The pool with its concurrency and max size cut to fit this machine. The policy is rebuilt from the
    same SLO for the smaller instance (target backlog per instance follows the concurrency), and the
    built-in traces are sized to the local pool's capacity, so the run means what it means on AWS."""
    config = load_stack_config(plan.stack, root)
    original = pool_spec(config, plan.pool)  # PoolNotFoundError names the stack's pools
    pool = config.pools[plan.pool]
    concurrency = min(pool.concurrency, plan.concurrency)
    max_size = max(1, min(pool.max_size, plan.max_processes // concurrency))
    min_size = min(pool.min_size, max_size)
    fitted = pool.model_copy(
        update={"concurrency": concurrency, "max_size": max_size, "min_size": min_size, "desired_size": None}
    )
    spec = _capped_schedules(
        pool_spec(config.model_copy(update={"pools": {**config.pools, plan.pool: fitted}}), plan.pool), max_size
    )
    same = (concurrency, min_size, max_size) == (pool.concurrency, pool.min_size, pool.max_size)
    mapping = f"{plan.stack}/{plan.pool}: {pool.concurrency} processes x {pool.min_size}..{pool.max_size} instances" + (
        " (as configured)"
        if same
        else f", run here as {concurrency} x {min_size}..{max_size} (processes per instance in the scaling math "
        f"{original.scaling.signal.concurrency} -> {spec.scaling.signal.concurrency})"
    )
    judges = canary_judges(config, plan.pool)
    preferences = refresh_preferences(config, pool, [f"{plan.pool}-{judge.suffix}" for judge in judges])
    return LocalPool(spec, mapping, pool.queues[0], config.soft_shutdown_seconds, tuple(judges), preferences)


def _capped_schedules(spec: PoolSpec, max_size: int) -> PoolSpec:
    """Scheduled capacity (a periodic entry's, prod's fan-out: 17 instances) held to the machine's max
    size, as AWS holds the group to MaxSize; else the twin would start more workers than fit here."""
    schedules = tuple(replace(s, capacity=min(s.capacity, max_size)) for s in spec.scaling.schedules)
    return replace(spec, scaling=replace(spec.scaling, schedules=schedules))


def local_trace(plan: TwinPlan, spec: PoolSpec) -> Trace:
    path = Path(plan.trace)
    if path.suffix == ".csv" or path.is_file():
        trace = read_csv(path)
        return trace if plan.window is None else window(trace, *plan.window)
    trace = built_in(plan.trace, spec.trace_shape(plan.seed))
    chosen = plan.window or DEFAULT_WINDOWS.get(plan.trace)
    return trace if chosen is None else window(trace, *chosen)


def assumptions_for(plan: TwinPlan, spec: PoolSpec) -> ModelAssumptions:
    return default_assumptions(spec.image_mode, plan.boot_seconds)
