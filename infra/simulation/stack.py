"""The simulator's view of a stack's pool, read from the stack config (`infra.config`)."""

from __future__ import annotations

from pathlib import Path

from infra.config import ROOT, StackConfig, load_stack_config
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.warm_pool import WarmPoolSpec
from worker.runtime.settings import WorkerSettings

# The drain heartbeats the lifecycle hook while tasks run, up to the worker's task time limit.
TASK_TIME_LIMIT = WorkerSettings.model_fields["task_time_limit"].default


class PoolNotFoundError(KeyError):
    """The stack has no pool of that name."""

    def __str__(self) -> str:
        return str(self.args[0])


def blended_hourly_usd(config: StackConfig, pool_name: str) -> float:
    """Price of one instance-hour: the first (preferred) instance type's on-demand price, blended with
    the expected Spot discount above the on-demand base (the base itself is ignored: an estimate)."""
    pool = config.pools[pool_name]
    price = pool.hourly_usd.get(pool.instance_types[0], 0.0)
    if pool.spot.enabled:
        on_demand = pool.on_demand_percentage_above_base / 100
        price *= on_demand + (1 - on_demand) * (1 - pool.spot.expected_discount)
    return price


def pool_spec(config: StackConfig, pool_name: str) -> PoolSpec:
    if pool_name not in config.pools:
        raise PoolNotFoundError(
            f"stack {config.stack!r} has no pool {pool_name!r}; its pools: {', '.join(sorted(config.pools))}"
        )
    pool = config.pools[pool_name]
    return PoolSpec(
        name=pool_name,
        concurrency=pool.concurrency,
        min_size=pool.min_size,
        max_size=pool.max_size,
        acceptable_latency_seconds=pool.acceptable_latency_seconds,
        average_task_seconds=pool.average_task_seconds,
        alarm_threshold_seconds=pool.alarm_threshold_seconds,
        hourly_usd=blended_hourly_usd(config, pool_name),
        image_mode=config.image_mode,
        scaling=pool.scaling(pool_name),
        drain_seconds=float(TASK_TIME_LIMIT),
        target_wait_share=pool.target_wait_share,
        warm_pool=WarmPoolSpec(pool.warm_pool.min_size, pool.warm_pool.state, pool.volume_size_gb)
        if pool.warm_pool.enabled
        else None,
    )


def load_pool_spec(stack: str, pool_name: str, root: Path = ROOT) -> PoolSpec:
    return pool_spec(load_stack_config(stack, root), pool_name)
