"""Exactly one scheduler sends: two real `celery beat` processes (image/bin/start-scheduler) on one
real Redis, a one-second entry, a real worker, and the execution journal counting every run.

Each run's task id names its entry and slot (`worker.scheduler.periodic.run_id`), so a run sent twice shows
as one id journalled twice, and a run never sent as a hole in the slots.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import redis

from infra.local.scheduler import SchedulerProcess
from infra.servers.redis import RedisServer
from tests.support.brokers import Broker
from tests.support.cluster import Cluster, unique
from tests.support.fixtures import ClusterFactory
from tests.support.periodic import check_runs, runs, wait_runs, wait_span
from worker.runtime.settings import SETTINGS_EXIT_CODE
from worker.scheduler.lease import RedisLeaseStore, RunState

LEASE_S = 3.0
OBSERVE_S = 30.0

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _start(
    cluster: Cluster,
    name: str,
    prefix: str,
    tmp_path: Path,
    schedule: str,
    log_format: str = "console",
    extra: dict[str, str] | None = None,
) -> SchedulerProcess:
    return SchedulerProcess(
        name=name,
        broker_url=cluster.broker.url,
        log_path=tmp_path / f"{name}.log",
        env={
            **cluster.env,
            "SCHEDULER_SCHEDULE": f"tests.support.periodic_entries:{schedule}",
            "SCHEDULER_LEASE_SECONDS": str(LEASE_S),
            "SCHEDULER_KEY_PREFIX": prefix,
            "CELERY_LOG_FORMAT": log_format,
            **(extra or {}),
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
        # Both run side by side for at least 30 s of one-second slots, from the first run: under load a
        # scheduler took over 20 s to send its first, and a window counted from here came up short.
        wait_span(cluster, OBSERVE_S, timeout=10 * LEASE_S + 30, describe=tails)
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


@pytest.mark.parametrize(
    ("schedule", "env", "expected"),
    [
        (
            "UNKNOWN_TASK",
            {},
            "celery-cluster scheduler: periodic entry 'typo': task 'cluster.pnig' is not registered by worker.app",
        ),
        (
            "EVERY_SECOND",
            {"SCHEDULER_QUEUES": "reports"},
            "celery-cluster scheduler: periodic entry 'every-second': its runs go to queue",
        ),
        (
            "EVERY_SECOND",
            {"SCHEDULER_LEASE_SECONDS": "0"},
            "celery-cluster scheduler: SCHEDULER_LEASE_SECONDS: Input should be greater than or equal to 1",
        ),
        (
            "EVERY_SECOND",
            {"SCHEDULER_LEASE_URL": "http://lease.example"},
            "celery-cluster scheduler: SCHEDULER_LEASE_URL: lease store must be redis://",
        ),
    ],
)
def test_scheduler_refuses_bad_input_in_one_line(
    schedule: str,
    env: dict[str, str],
    expected: str,
    redis_server: RedisServer,
    cluster_factory: ClusterFactory,
    tmp_path: Path,
) -> None:
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    scheduler = _start(cluster, "bad", unique("scheduler"), tmp_path, schedule, extra=env)
    assert scheduler.process is not None
    code = scheduler.process.wait(60)
    scheduler.stop()
    # The settings status, which celery-scheduler.service does not restart (RestartPreventExitStatus=64).
    assert code == SETTINGS_EXIT_CODE
    lines = [line for line in scheduler.log_path.read_text().splitlines() if "celery-cluster scheduler:" in line]
    assert len(lines) == 1, scheduler.log_tail()
    assert lines[0].startswith(expected)
    assert "Traceback" not in scheduler.log_path.read_text()


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


def _events(scheduler: SchedulerProcess, event: str) -> list[dict[str, object]]:
    found = []
    for line in scheduler.log_path.read_text().splitlines():
        if line.startswith("{") and f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found


@pytest.mark.parametrize("schedule", ["EVERY_SECOND", "EVERY_SECOND_SKIP"])
def test_a_replacement_reads_the_last_run_and_catches_up_once_or_skips(
    schedule: str, redis_server: RedisServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """The first scheduler stops; slots fall due with nobody alive; a new one starts from the state in
    Redis: no slot is sent again, and the missed ones are sent once (catch_up "once") or not at all."""
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    cluster.start_worker(concurrency=2)
    prefix = unique("scheduler")
    first = _start(cluster, "first", prefix, tmp_path, schedule, log_format="json")
    try:
        wait_runs(cluster, time.time() + 3, timeout=20 * LEASE_S, describe=first.log_tail)
    finally:
        first.stop()  # a clean stop releases the lease; its last slot stays in Redis
    store = RedisLeaseStore(redis_server.url, prefix)
    last_before = store.load()["every-second"].slot
    store.close()
    # An outage: slots fall due while no scheduler is alive, more than a lease period of them.
    time.sleep(3 * LEASE_S)
    second = _start(cluster, "second", prefix, tmp_path, schedule, log_format="json")
    try:
        wait_runs(cluster, time.time() + 3, timeout=20 * LEASE_S, describe=second.log_tail)
    finally:
        second.stop()
    slots = [slot for slot, _ in runs(cluster)]
    assert len(slots) == len(set(slots)), "a slot was sent twice across the replacement"
    after = [slot for slot in slots if slot > last_before]
    catch_ups = [e for e in _events(second, "scheduler.sent") if e["catch_up_since"] is not None]
    skipped = _events(second, "scheduler.skipped")
    if schedule == "EVERY_SECOND":
        # One run for the whole outage, for its latest stale slot; it knew where the first one stopped.
        assert len(catch_ups) == 1, second.log_tail()
        assert catch_ups[0]["catch_up_since"] == last_before
        assert not skipped
        caught = float(str(catch_ups[0]["task_id"]).rsplit("@", 1)[1])
        assert after[0] == caught
        assert caught - last_before >= LEASE_S, "the catch-up run is not for a slot of the outage"
    else:
        assert not catch_ups, second.log_tail()
        assert len(skipped) == 1
        assert skipped[0]["since"] == last_before
        through = float(str(skipped[0]["through"]))
        assert after[0] == through + 1, "the first run after the outage is not the slot after the skipped ones"
    # From its first run on, the new scheduler sent every slot.
    assert after == [after[0] + i for i in range(len(after))]


def test_a_holder_cut_off_from_its_lease_stops_sending_within_a_lease_period(
    redis_server: RedisServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """The lease lives in a Redis of its own here; stopping it cuts the holder off (as a partition
    would) while the broker stays up: the holder must stop sending before its lease could lapse."""
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    cluster.start_worker(concurrency=2)
    with RedisServer(appendonly=False) as lease_server:
        scheduler = SchedulerProcess(
            name="cut-off",
            broker_url=cluster.broker.url,
            log_path=tmp_path / "cut-off.log",
            env={
                **cluster.env,
                "SCHEDULER_SCHEDULE": "tests.support.periodic_entries:EVERY_SECOND",
                "SCHEDULER_LEASE_SECONDS": str(LEASE_S),
                "SCHEDULER_LEASE_URL": lease_server.url,
                "CELERY_LOG_FORMAT": "json",
            },
        ).start()
        try:
            wait_runs(cluster, time.time() + 3, timeout=20 * LEASE_S, describe=scheduler.log_tail)
            lease_server.stop()
            cut_at = time.time()
            # Watch for two lease periods: anything sent after the first would break the promise.
            deadline = cut_at + 2 * LEASE_S
            while time.time() < deadline:
                time.sleep(0.25)
            assert scheduler.running(), scheduler.log_tail()
        finally:
            scheduler.stop()
    last_sent = max(published for _, published in runs(cluster))
    assert last_sent - cut_at <= LEASE_S, f"sent {last_sent - cut_at:.1f} s after losing its lease store"
    assert _events(scheduler, "scheduler.lease_unreachable"), scheduler.log_tail()


def test_a_state_that_cannot_be_read_holds_the_scheduler_back_until_it_can(
    redis_server: RedisServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """The lease is won but the entries' last runs cannot be read (here the state key holds the wrong
    type): the scheduler must neither stop nor send; it sends once a renewal reads the state."""
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server))
    cluster.start_worker(concurrency=2)
    prefix = unique("scheduler")
    client = redis.Redis.from_url(redis_server.url)
    client.set(f"{prefix}:state", "not a hash")
    scheduler = _start(cluster, "unreadable", prefix, tmp_path, "EVERY_SECOND", log_format="json")
    try:
        deadline = time.monotonic() + 20 * LEASE_S
        while len(_events(scheduler, "scheduler.lease_unreachable")) < 2:
            assert scheduler.running(), scheduler.log_tail()
            assert time.monotonic() < deadline, scheduler.log_tail()
            time.sleep(0.1)
        assert not _events(scheduler, "scheduler.sent"), "sent a run without the entries' last runs"
        client.delete(f"{prefix}:state")
        wait_runs(cluster, time.time() + 1, timeout=20 * LEASE_S, describe=scheduler.log_tail)
    finally:
        scheduler.stop()
        client.close()


def test_a_lease_store_that_refuses_the_password_stops_the_scheduler_in_one_line(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    """Before, the scheduler retried the lease every renewal for ever with the password it started
    with (the secret is read only at unit start); now it exits 64, which its unit does not restart."""
    with RedisServer(appendonly=False, password="right0password") as server:
        wrong = f"redis://:wrong0password@127.0.0.1:{server.port}/0"
        cluster = cluster_factory(Broker("redis", wrong, server))
        scheduler = _start(cluster, "refused", unique("scheduler"), tmp_path, "EVERY_SECOND")
        assert scheduler.process is not None
        code = scheduler.process.wait(60)
        scheduler.stop()
        text = scheduler.log_path.read_text()
        lines = [line for line in text.splitlines() if "celery-cluster scheduler:" in line]
        assert code == SETTINGS_EXIT_CODE, text
        assert lines == [
            "celery-cluster scheduler: CELERY_BROKER_URL: the lease store refused the credentials: "
            "invalid username-password pair or user is disabled."
        ]
        assert "wrong0password" not in text
        assert "Traceback" not in text
