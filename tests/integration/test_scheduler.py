"""Exactly one scheduler sends: two real `celery beat` processes (image/bin/start-scheduler) on one
real Redis, a one-second entry, a real worker, and the execution journal counting every run.

Each run's task id names its entry and slot (`worker.periodic.run_id`), so a run sent twice shows
as one id journalled twice, and a run never sent as a hole in the slots.
"""

from __future__ import annotations

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
from tests.support.periodic import check_runs, runs, wait_runs
from worker.lease import RedisLeaseStore, RunState

LEASE_S = 3.0
OBSERVE_S = 30.0

pytestmark = [pytest.mark.redis, pytest.mark.slow]


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

    def tails() -> str:
        return "\n".join(s.log_tail() for s in schedulers)

    try:
        started = time.time()
        # Both run side by side for at least 30 s of one-second slots.
        wait_runs(cluster, started + OBSERVE_S, timeout=OBSERVE_S + 10 * LEASE_S, describe=tails)
        assert all(s.running() for s in schedulers), "\n".join(s.log_tail() for s in schedulers)

        raw = store.get(f"{prefix}:lease")
        holder = raw.decode() if isinstance(raw, bytes) else str(raw)
        by_pid = {str(s.pid): s for s in schedulers}
        victim = by_pid[holder.rsplit(":", 1)[1]]
        survivor = next(s for s in schedulers if s is not victim)
        os.killpg(victim.pid, signal.SIGKILL)  # instance loss: no clean release, the lease must lapse
        killed_at = time.time()

        # The survivor takes over and keeps going: wait for a few slots past the takeover window.
        wait_runs(cluster, killed_at + 2 * LEASE_S + 3, timeout=10 * LEASE_S, describe=survivor.log_tail)
        found = runs(cluster)
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        store.close()

    assert found[-1][0] - found[0][0] >= OBSERVE_S
    takeover = check_runs(found, killed_at, LEASE_S)
    print(f"takeover: first run sent {takeover:.2f} s after the holder was killed (lease {LEASE_S} s)")


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
