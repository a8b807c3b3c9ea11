"""Exactly one scheduler sends: two real `celery beat` processes (image/bin/start-scheduler) on one
real Redis, a one-second entry, a real worker, and the execution journal counting every run.

Each run's task id names its entry and slot (`worker.periodic.run_id`), so a run sent twice shows
as one id journalled twice, and a run never sent as a hole in the slots.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from infra.local.redis_server import RedisServer
from infra.local.scheduler import SchedulerProcess
from tests.support.brokers import Broker
from tests.support.cluster import Cluster, unique
from tests.support.fixtures import ClusterFactory
from worker.lease import RedisLeaseStore, RunState
from worker.periodic import run_id

LEASE_S = 3.0
ENTRY = "every-second"
RUN_PREFIX = run_id(ENTRY, 0.0).split("@")[0] + "@"
OBSERVE_S = 30.0

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _runs(cluster: Cluster) -> list[tuple[float, float]]:
    """(slot, published_at) of every journalled run of the entry, in slot order, duplicates kept."""
    found = []
    for item in cluster.journal():
        if item["task_id"].startswith(RUN_PREFIX):
            found.append((float(item["task_id"].removeprefix(RUN_PREFIX)), float(item["published_at"])))
    return sorted(found)


def _wait_runs(cluster: Cluster, until: float, schedulers: list[SchedulerProcess], timeout: float) -> None:
    """Until a run of a slot at or after `until` is journalled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(cluster)
        if runs and runs[-1][0] >= until:
            return
        time.sleep(0.25)
    tails = "\n".join(s.log_tail() for s in schedulers)
    raise AssertionError(f"no run of slot >= {until:.0f} within {timeout:.0f} s\n{tails}\n{cluster.log_tail()}")


def _start(cluster: Cluster, name: str, prefix: str, tmp_path: Path, schedule: str) -> SchedulerProcess:
    return SchedulerProcess(
        name=name,
        broker_url=cluster.broker.url,
        log_path=tmp_path / f"{name}.log",
        env={
            **cluster.env,
            "SCHEDULER_SCHEDULE": f"tests.support.periodic_entries:{schedule}",
            "SCHEDULER_LEASE_SECONDS": str(LEASE_S),
            "SCHEDULER_KEY_PREFIX": prefix,
            "CELERY_LOG_FORMAT": "console",
        },
    ).start()


def test_two_schedulers_send_each_run_once_and_survive_losing_the_holder(
    redis_server: RedisServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    cluster.start_worker(concurrency=2)
    prefix = unique("scheduler")
    schedulers = [_start(cluster, name, prefix, tmp_path, "EVERY_SECOND") for name in ("a", "b")]
    store = redis.Redis.from_url(redis_server.url)
    try:
        started = time.time()
        # Both run side by side for at least 30 s of one-second slots.
        _wait_runs(cluster, started + OBSERVE_S, schedulers, timeout=OBSERVE_S + 10 * LEASE_S)
        assert all(s.running() for s in schedulers), "\n".join(s.log_tail() for s in schedulers)

        raw = store.get(f"{prefix}:lease")
        holder = raw.decode() if isinstance(raw, bytes) else str(raw)
        by_pid = {str(s.pid): s for s in schedulers}
        victim = by_pid[holder.rsplit(":", 1)[1]]
        survivor = next(s for s in schedulers if s is not victim)
        os.killpg(victim.pid, signal.SIGKILL)  # instance loss: no clean release, the lease must lapse
        killed_at = time.time()
        before = {slot for slot, _ in _runs(cluster)}

        # The survivor takes over and keeps going: wait for a few slots past the takeover window.
        _wait_runs(cluster, killed_at + 2 * LEASE_S + 3, [survivor], timeout=10 * LEASE_S)
        runs = _runs(cluster)
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        store.close()

    slots = [slot for slot, _ in runs]
    assert len(slots) == len(set(slots)), f"a run was sent twice: {sorted(s for s in slots if slots.count(s) > 1)}"
    assert slots[-1] - slots[0] >= OBSERVE_S
    # Every slot from the first on ran, except slots that fell due while nobody held the lease
    # (older than a lease period when the survivor took over), which catch_up "once" folds into
    # one run: so there is at most one hole, and it is where the holder died.
    holes = [(a, b) for a, b in itertools.pairwise(slots) if b - a > 1]
    assert len(holes) <= 1, f"slots missing away from the takeover: {holes}"
    for a, b in holes:
        assert a in before, f"hole {a}..{b} is not at the takeover"
        assert b not in before, f"hole {a}..{b} is not at the takeover"
    first_after = min(published for slot, published in runs if slot not in before and published > killed_at)
    print(f"takeover: first run sent {first_after - killed_at:.2f} s after the holder was killed (lease {LEASE_S} s)")
    assert first_after - killed_at <= 2 * LEASE_S, (
        f"the survivor sent {first_after - killed_at:.1f} s after the holder died, over two lease periods"
    )


def test_scheduler_refuses_a_bad_schedule_in_one_line(
    redis_server: RedisServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    scheduler = _start(cluster, "bad", unique("scheduler"), tmp_path, "UNKNOWN_TASK")
    assert scheduler.process is not None
    code = scheduler.process.wait(60)
    scheduler.stop()
    assert code != 0
    lines = [line for line in scheduler.log_path.read_text().splitlines() if "periodic entry" in line]
    assert lines == [
        "celery-cluster scheduler: periodic entry 'typo': task 'cluster.pnig' is not registered by worker.app"
    ]


def test_the_redis_lease_is_fenced(redis_server: RedisServer) -> None:
    """A holder whose lease lapsed can neither renew over a successor nor record a run."""
    prefix = unique("scheduler")
    first, second = RedisLeaseStore(redis_server.url, prefix), RedisLeaseStore(redis_server.url, prefix)
    try:
        assert first.acquire("a", 1.0)
        assert not second.acquire("b", 1.0)
        assert first.record("a", "e", RunState(10.0, 11.0))
        client = redis.Redis.from_url(redis_server.url)
        client.delete(f"{prefix}:lease")  # the lease lapses (as after a lease period without renewal)
        client.close()
        assert second.acquire("b", 30.0)
        assert not first.acquire("a", 30.0)
        assert not first.record("a", "e", RunState(20.0, 21.0))
        assert second.load() == {"e": RunState(10.0, 11.0)}
        first.release("a")  # not the holder: a no-op
        assert second.holder() == "b"
    finally:
        first.close()
        second.close()
