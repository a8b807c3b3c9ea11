"""Pools scaled before a known fan-out: periodic entries (`worker.scheduler.schedule`) that declare how much
work a run starts become the receiving pool's scheduled capacity (`pools.<name>.schedules`).

Pure code, no Pulumi. `apply_periodic` runs where the stack config is parsed, so the Pulumi
program, the simulator and the local twin all see the derived schedules, and an entry routed to a
queue that no pool of the stack consumes stops them all with one line naming the entry.

For an entry with `lead_seconds` and
- `capacity`: the pool holds that many instances or more from `lead_seconds` before each run;
- `expect_tasks`: the instances that clear that many tasks within the pool's SLO,
  ceil(tasks x average task seconds / (concurrency x acceptable latency)), at most maxSize.
The hold lasts the lead, plus the time those instances take to run the work (at least the
pool's acceptable latency), rounded up to whole minutes, since scheduled actions fire on minutes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache

from infra.config.errors import ConfigError
from infra.config.pool import SCHEDULES_MAX, PoolConfig, ScheduleConfig
from infra.config.stack import StackConfig
from infra.scaling.schedules import DAY_MINUTES, Cron, ScheduleError, rate_to_cron
from worker.names import DEFAULT_QUEUE
from worker.scheduler.periodic import Periodic, check_entries, resolve_queue
from worker.scheduler.periodic import ScheduleError as EntryError

SCHEDULE_PREFIX = "periodic-"


def entry_cron(entry: Periodic) -> str:
    """The run's times as a cron expression (EC2 Auto Scaling recurrences are cron only)."""
    if isinstance(entry.schedule, str):
        return " ".join(entry.schedule.split())
    seconds = float(entry.schedule)
    if seconds % 60:
        raise ScheduleError(f"interval {seconds:g} s is not whole minutes")
    minutes = int(seconds // 60)
    return rate_to_cron(f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hours")


def shift_back(cron: Cron, seconds: int) -> str:
    """The cron expression that fires `seconds` (rounded up to minutes) before each firing of `cron`."""
    shift = math.ceil(seconds / 60)
    starts = [t - shift for t in cron.times_of_day()]
    if any(s < 0 for s in starts) and not cron.every_day:
        raise ScheduleError(f"cron {cron.text!r} less {seconds} s starts the day before a restricted day")
    starts = [s % DAY_MINUTES for s in starts]
    minutes, hours = sorted({s % 60 for s in starts}), sorted({s // 60 for s in starts})
    if sorted(starts) != sorted(h * 60 + m for h in hours for m in minutes):
        raise ScheduleError(f"cron {cron.text!r} less {seconds} s is not one cron expression")
    minute_text = "*" if len(minutes) == 60 else ",".join(map(str, minutes))
    hour_text = "*" if len(hours) == 24 else ",".join(map(str, hours))
    return f"{minute_text} {hour_text} {' '.join(cron.text.split()[2:])}"


def capacity_for(entry: Periodic, pool: PoolConfig) -> tuple[int, int]:
    """(instances, seconds to hold them) for one run of `entry` on `pool`."""
    lead = entry.lead_seconds or 0
    if entry.capacity is not None:
        instances = min(entry.capacity, pool.max_size)
        work = pool.acceptable_latency_seconds
    else:
        tasks = entry.expect_tasks or 0
        process_seconds = tasks * pool.average_task_seconds
        instances = min(
            pool.max_size, max(1, math.ceil(process_seconds / (pool.concurrency * pool.acceptable_latency_seconds)))
        )
        work = max(pool.acceptable_latency_seconds, process_seconds / (instances * pool.concurrency))
    return instances, max(60, math.ceil((lead + work) / 60) * 60)


def derived_schedules(config: StackConfig, entries: Iterable[Periodic]) -> dict[str, tuple[ScheduleConfig, ...]]:
    """Per pool, the schedules its periodic entries ask for. Raises ConfigError naming the entry."""
    routes: Mapping[str, str] = config.task_routes
    owner = {queue: name for name, pool in config.pools.items() for queue in pool.queues}
    try:
        checked = check_entries(entries, consumed_queues=owner, routes=routes, default_queue=DEFAULT_QUEUE)
    except EntryError as exc:
        raise ConfigError(f"invalid config for stack {config.stack!r}: {exc}") from None
    found: dict[str, list[ScheduleConfig]] = {}
    for entry in checked:
        if not entry.runs_on(config.stack) or entry.lead_seconds is None:
            continue
        pool_name = owner[resolve_queue(entry, routes, DEFAULT_QUEUE)]
        pool = config.pools[pool_name]
        instances, hold = capacity_for(entry, pool)
        try:
            start = shift_back(Cron.parse(entry_cron(entry)), entry.lead_seconds)
            schedule = ScheduleConfig(
                name=f"{SCHEDULE_PREFIX}{entry.name}", cron=start, capacity=instances, duration_seconds=hold
            )
        except (ScheduleError, ValueError) as exc:
            message = str(exc).splitlines()[0]
            raise ConfigError(
                f"invalid config for stack {config.stack!r}: periodic entry {entry.name!r}: "
                f"cannot scale pool {pool_name!r} ahead of it: {message}"
            ) from None
        found.setdefault(pool_name, []).append(schedule)
    return {name: tuple(items) for name, items in found.items()}


@cache
def registered_task_names() -> frozenset[str]:
    """The tasks `worker.app` registers, asked of a child process (`python -m worker.scheduler.periodic`).

    A child, because importing `worker.app` reads the worker's settings and installs its logging;
    the placeholder broker URL is never contacted.
    """
    env = {**os.environ, "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")}
    done = subprocess.run(
        [sys.executable, "-m", "worker.scheduler.periodic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"cannot list worker.app's tasks to check the periodic entries: {last}")
    return frozenset(json.loads(done.stdout))


def check_tasks(stack: str, entries: Iterable[Periodic]) -> None:
    """Render time: every entry names a task worker.app registers."""
    try:
        check_entries(entries, tasks=registered_task_names())
    except EntryError as exc:
        raise ConfigError(f"invalid config for stack {stack!r}: {exc}") from None


def apply_periodic(config: StackConfig, entries: Iterable[Periodic]) -> StackConfig:
    """The config with each pool's derived schedules after its own."""
    derived = derived_schedules(config, entries)
    if not derived:
        return config
    for name, items in derived.items():
        total = len(config.pools[name].schedules) + len(items)
        if total > SCHEDULES_MAX:
            raise ConfigError(
                f"invalid config for stack {config.stack!r}: celery-cluster:pools.{name}.schedules: "
                f"{total} schedules with the {len(items)} its periodic entries add; at most {SCHEDULES_MAX} "
                "(each is two scheduled actions, and an Auto Scaling group takes 125)"
            )
    pools = {
        name: pool.model_copy(update={"schedules": (*pool.schedules, *derived.get(name, ()))})
        for name, pool in config.pools.items()
    }
    return config.model_copy(update={"pools": pools})
