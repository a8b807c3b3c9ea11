"""Fault tests: every task is counted (lost = sent - completed) while workers and brokers fail.

They run on Redis and on RabbitMQ. Short sleeps keep them quick; each one asserts 0 lost.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from infra.bench import sigkill
from infra.local.accounting import JournalTracker
from infra.servers.redis import RedisServer
from tests.support.brokers import Broker
from tests.support.cluster import unique
from tests.support.faults import (
    CONCURRENCY,
    EXIT_MARGIN,
    broker_restart_loses_nothing,
    sigkill_loses_nothing,
    sigterm_drains_within_the_window,
)
from tests.support.fixtures import ClusterFactory


@pytest.mark.slow
def test_sigkill_with_tasks_in_flight_loses_nothing(broker: Broker, cluster_factory: ClusterFactory) -> None:
    sigkill_loses_nothing(broker, cluster_factory)


# 100 in `make bench --only sigkill`; fewer here to keep the suite short. Before the atomic take (kombu's
# BRPOP, then the unacked record) 20 kills lost 3 tasks, so 20 fail it with high probability.
SHORT_TASK_KILLS = 20


@pytest.mark.slow
@pytest.mark.redis
# 20 kills and restarts: about 60 s alone, over 300 s with the machine's cores shared four ways.
@pytest.mark.timeout(900)
def test_sigkill_during_short_tasks_on_redis_loses_nothing(
    redis_server: RedisServer, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory(Broker("redis", redis_server.url, redis_server), **sigkill.FAST_REDELIVERY)
    tracker = JournalTracker(redis.Redis.from_url(cluster.journal_url))
    count = sigkill.kill_cycles(
        SHORT_TASK_KILLS,
        lambda: cluster.start_worker(concurrency=CONCURRENCY),
        lambda n: cluster.send("cluster.sleep", [sigkill.TASK_SECONDS], count=n),
        tracker,
    )
    assert count.lost == 0, f"{count.line('redis')}\n{cluster.log_tail()}"
    # Only tasks running on a killed worker run twice: at most one per process per kill.
    assert count.duplicated <= CONCURRENCY * SHORT_TASK_KILLS, count
    print(count.line("redis"))


@pytest.mark.slow
def test_sigterm_drains_in_flight_tasks_within_the_window(broker: Broker, cluster_factory: ClusterFactory) -> None:
    sigterm_drains_within_the_window(broker, cluster_factory)


@pytest.mark.slow
def test_broker_restart_under_load_loses_nothing(own_broker: Broker, cluster_factory: ClusterFactory) -> None:
    broker_restart_loses_nothing(own_broker, cluster_factory)


def test_a_task_delivered_twice_counts_as_one_duplicate(broker: Broker, cluster_factory: ClusterFactory) -> None:
    """The fault tests' `duplicates == 0` means something only if the journal and the count see a second
    run: the same message (same task id) delivered twice, as a redelivery is, shows as one duplicate."""
    cluster = cluster_factory(broker)
    cluster.start_worker(concurrency=CONCURRENCY)
    task_id = unique("twice")

    def deliver() -> None:
        cluster.client.send_task("cluster.sleep", args=[0.1], task_id=task_id, queue=cluster.queue)

    # One delivery at a time: the second is sent after the first completed, so both certainly run.
    deliver()
    first = cluster.wait_all([task_id], timeout=60)
    assert (first.completed, first.duplicates) == (1, 0), cluster.log_tail()
    deliver()
    counted = cluster.wait_until([task_id], lambda t: t.duplicates > 0, timeout=60)
    assert (counted.sent, counted.completed, counted.lost, counted.duplicates) == (1, 1, 0, 1), cluster.log_tail()


# Long enough that a task the worker reports running is still running when the kill lands.
CHILD_TASK_SECONDS = 5.0


@pytest.mark.slow
def test_a_pool_child_killed_mid_task_leaves_its_task_to_run_again(
    broker: Broker, cluster_factory: ClusterFactory
) -> None:
    """The out-of-memory case: the kernel kills one prefork child and the worker's main process lives on.
    With late acks and task_reject_on_worker_lost, the main process rejects the message with requeue, so
    the task runs again at once (the default visibility timeout, an hour, would be far too late on Redis):
    never acked as if done, never dead-lettered, never dropped."""
    cluster = cluster_factory(broker)
    worker = cluster.start_worker(concurrency=CONCURRENCY)
    (task_id,) = cluster.send("cluster.sleep", [CHILD_TASK_SECONDS])
    # The child that runs it, as the worker itself reports it (`inspect active` gives each task's pool pid).
    (active,) = cluster.wait_inspect("active", lambda items: [t["id"] for t in items] == [task_id], timeout=60)
    child = int(active["worker_pid"])
    assert child != worker.pid, "inspect reported the main process as the task's process"
    killed_at = time.time()
    os.kill(child, signal.SIGKILL)
    # The premise, from the worker's own start time: the task had not ended when its process died.
    assert killed_at < float(active["time_start"]) + CHILD_TASK_SECONDS

    result = cluster.wait_all([task_id], timeout=60)
    assert (result.completed, result.lost, result.duplicates) == (1, 0, 0), f"{result}\n{cluster.log_tail()}"
    (entry,) = [e for e in cluster.journal() if e["task_id"] == task_id]
    assert entry["state"] == "SUCCESS", entry
    assert float(entry["started_at"]) > killed_at, "the run that completed began before the kill"
    assert entry["hostname"].startswith(f"{worker.name}@"), entry  # the same worker: its main process lived
    assert worker.running(), cluster.log_tail(worker)
    cluster.wait_quiet(30)
    assert cluster.dead_letters() == [], "a task whose process was killed is requeued, not dead-lettered"
    print(
        f"pool child killed on {broker.kind}: the task ran again {float(entry['started_at']) - killed_at:.1f} s "
        f"after the kill (redelivered flag: {entry['redelivered']})"
    )


def test_sigterm_on_an_idle_worker_requeues_its_countdown_tasks(
    broker: Broker, cluster_factory: ClusterFactory
) -> None:
    window = 20.0
    cluster = cluster_factory(broker, CELERY_SOFT_SHUTDOWN_TIMEOUT=str(window))
    first = cluster.start_worker(concurrency=CONCURRENCY)
    # A retry with backoff looks like this: the worker holds the message, unacked, until its ETA.
    # The ETA leaves the worker time to receive the message and the test time to see it held, under load.
    sent = [cluster.client.send_task("cluster.sleep", args=[0.1], countdown=8, queue=cluster.queue).id]
    # Received and held until its ETA: the worker lists it as scheduled.
    cluster.wait_inspect("scheduled", lambda held: [t["request"]["id"] for t in held] == sent, timeout=30)

    sigterm_at = time.monotonic()
    first.terminate()
    assert first.wait(window + EXIT_MARGIN) == 0
    # Nothing was running, so the drain window is not waited out (scale-in of an idle instance).
    assert time.monotonic() - sigterm_at < window, cluster.log_tail(first)
    assert sent[0] not in {e["task_id"] for e in cluster.journal()}

    cluster.start_worker(concurrency=CONCURRENCY)
    result = cluster.wait_all(sent, timeout=30)
    assert result.lost == 0, cluster.log_tail()
    (entry,) = [e for e in cluster.journal() if e["task_id"] in sent]
    assert not entry["hostname"].startswith(f"{first.name}@")
