"""The project's periodic tasks. Add an entry here; `make render` and the scheduler check it.

Each entry is `worker.scheduler.periodic.Periodic`: Celery's beat_schedule fields (task, schedule as seconds
or a five-field UTC crontab, args, kwargs, queue) plus `catch_up`, `stacks` and, for a run that
starts a lot of work, `expect_tasks` (or `capacity`) with `lead_seconds`: the Pulumi program then
scales the receiving pool that long before each run. README "Periodic tasks" has the guarantees.
"""

from __future__ import annotations

from typing import Final

from worker.scheduler.periodic import Periodic

ENTRIES: Final[tuple[Periodic, ...]] = (
    # Proves, every five minutes on every stack, that exactly one scheduler sends and a pool runs
    # what it sends (its alarm fires when a run is late by more than five minutes).
    Periodic(name="canary", task="cluster.canary", schedule="*/5 * * * *", args=("periodic",), catch_up="skip"),
    # prod: a fan-out of 1,000 two-second tasks every 15 minutes on the default pool, scaled five
    # minutes ahead (boot plus warm-up is about three).
    Periodic(
        name="fan-out",
        task="cluster.fan_out",
        schedule="*/15 * * * *",
        args=(1000, 2.0),
        queue="default",
        expect_tasks=1000,
        lead_seconds=300,
        stacks=("prod",),
    ),
)

# `make local ARGS=--scheduler`: two schedulers beside the local pool send this; every wall second
# matters there, so it runs every 10 s (the twin's summary counts its runs, and none may run twice).
LOCAL_ENTRIES: Final[tuple[Periodic, ...]] = (
    Periodic(name="local-canary", task="cluster.canary", schedule=10.0, args=("periodic",)),
)
