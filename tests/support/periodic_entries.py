"""Schedules for the scheduler tests (SCHEDULER_SCHEDULE=tests.support.periodic_entries:...)."""

from __future__ import annotations

from worker.scheduler.periodic import Periodic

# A one-second entry on the default queue (each test cluster sets its own default queue).
EVERY_SECOND = (Periodic(name="every-second", task="cluster.sleep", schedule=1.0, args=(0.0,)),)
EVERY_SECOND_SKIP = (Periodic(name="every-second", task="cluster.sleep", schedule=1.0, args=(0.0,), catch_up="skip"),)
# Bad entries: the scheduler must refuse to start, with one line naming the entry.
UNKNOWN_TASK = (Periodic(name="typo", task="cluster.pnig", schedule=60.0),)
# Every three seconds: with a 1 s lease a successor takes over (at most a lease and a third after the
# holder's last renewal) before the next slot, so every slot is sent by someone and none is folded
# into a catch-up run: the fault tests can count each slot's executions.
EVERY_3S = (Periodic(name="every-3s", task="cluster.sleep", schedule=3.0, args=(0.0,)),)
