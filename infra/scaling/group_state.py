"""The state of an Auto Scaling group's instances, and which instance AWS terminates on scale-in.

An instance is Pending from launch until ready (`ModelAssumptions.boot_seconds`), then InService;
on scale-in it enters Terminating:Wait, held by the drain hook while its worker finishes its running
tasks (HOOK), and is terminated when the worker is idle or the drain window ends. A draining instance
keeps running what it holds and is billed until it goes (LIFE: "You are billed for instances as soon
as they are launched"), but it is no longer InService, so it is not in the in-service count.

Termination choice follows the default termination policy (TERM), then scale-in protection (PROT).
Sources: see `infra.scaling.assumptions`.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

AVAILABILITY_ZONES = 3
"""The model spreads instances over this many AZs, as the stacks do (AWS balances launches over AZs)."""


@dataclass
class Instance:
    id: int
    launched_at: float
    in_service_at: float
    warm_until: float
    zone: int
    template_version: int = 1
    terminated_at: float | None = None
    """When scale-in chose it (it enters Terminating:Wait); None while it is in the group."""
    protected: bool = False
    """Instance scale-in protection, as the worker sets it (PROT): AWS does not choose it for scale-in."""
    protecting_tasks: list[tuple[float, float]] = field(default_factory=list)
    """(when it reaches the protection threshold, when it ends) of its tasks at least that long (the
    simulator adds them as they start); the drain agent's protection follows them."""

    def protected_by_agent(self, now: float, hold: float) -> bool:
        """What worker.drain.protection sets at `now`: a task past the threshold runs, or one ended within `hold`."""
        spans = self.protecting_tasks
        spans[:] = [s for s in spans if s[1] + hold > now]  # ended and past the hold: never again
        return any(reached <= now for reached, _ in spans)

    def in_service(self, now: float) -> bool:
        return self.in_service_at <= now and self.terminated_at is None

    def warming(self, now: float) -> bool:
        return self.terminated_at is None and now < self.warm_until


@dataclass(frozen=True)
class PoolSample:
    """What the publisher (and EC2) report about the pool at one instant."""

    at: float
    waiting: int
    in_flight: int
    oldest_age: float
    busy_processes_ready: int = 0
    """Busy worker processes on instances past warm-up (the CPU metric AWS aggregates sees only those)."""
    busy_processes: int | None = None
    """Tasks running now (METRIC_BUSY_PROCESSES); None = not published, read as in_flight."""
    task_seconds: float | None = None
    """Measured mean task run time over the publisher's window (METRIC_TASK_SECONDS); None until a task ends."""

    @property
    def busy(self) -> int:
        return self.in_flight if self.busy_processes is None else self.busy_processes


@dataclass(frozen=True)
class GroupView:
    """The group as the metric functions see it at one instant."""

    in_service: int
    """The in-service count as published (the publisher's 10 s count, `publisher_lag_seconds` old)."""
    ready: int
    concurrency: int
    group_metric_in_service: int = 0
    """AWS/AutoScaling GroupInServiceInstances: one-minute granularity (ASGM), so up to a minute old."""


@dataclass(frozen=True)
class ScalingEvent:
    at: float
    policy: str
    """Which policy acted: "target-tracking", "step-...", "schedule-...", or a reference policy's name."""
    old_desired: int
    new_desired: int
    metric: float
    reason: str
    launched: tuple[int, ...] = ()
    terminated: tuple[int, ...] = ()

    @property
    def direction(self) -> Literal["out", "in"]:
        return "out" if self.new_desired > self.old_desired else "in"


def choose_for_termination(candidates: list[Instance], count: int, now: float, rng: random.Random) -> list[Instance]:
    """Which `count` instances AWS terminates, by the default termination policy (TERM):

    1. instances protected from scale-in are never chosen (PROT);
    2. from the AZ with the most instances (keeping the group balanced);
    3. the oldest launch template version first;
    4. those closest to the next billing hour;
    5. at random among the rest.
    """
    chosen: list[Instance] = []
    pool = [i for i in candidates if not i.protected]
    for _ in range(min(count, len(pool))):
        per_zone = Counter(i.zone for i in candidates if i not in chosen)
        busiest = max(per_zone[i.zone] for i in pool)
        step = [i for i in pool if per_zone[i.zone] == busiest]
        oldest = min(i.template_version for i in step)
        step = [i for i in step if i.template_version == oldest]
        nearest = max((now - i.launched_at) % 3600 for i in step)
        step = [i for i in step if (now - i.launched_at) % 3600 == nearest]
        pick = step[rng.randrange(len(step))] if len(step) > 1 else step[0]
        chosen.append(pick)
        pool.remove(pick)
    return chosen
