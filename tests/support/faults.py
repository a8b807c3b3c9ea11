"""The fault scenarios the worker-fault tests run on plain brokers (tests/integration/test_worker_faults.py)
and on TLS brokers with credentials (tests/integration/test_tls_brokers.py): each starts workers of its own,
breaks something, and counts every task through the journal (lost = sent - completed)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.support.brokers import Broker
from tests.support.cluster import Cluster
from tests.support.fixtures import ClusterFactory
from tests.support.whereabouts import NOWHERE, describe, redis_whereabouts

# Small limits so Redis redelivers a killed worker's tasks within seconds (the settings insist
# that the visibility timeout exceeds the hard time limit, which exceeds the soft one).
FAST_REDELIVERY = {
    "CELERY_VISIBILITY_TIMEOUT": "6",
    "CELERY_TASK_TIME_LIMIT": "5",
    "CELERY_TASK_SOFT_TIME_LIMIT": "4",
}
CONCURRENCY = 2
# Under the 4 s soft limit, and long enough that a task seen starting under half of it ago is still
# running when the kill lands.
SIGKILL_TASK_SECONDS = 2.0
# kombu's Redis transport can drop the message a worker's BRPOP took when the broker stops before replying.


def start_times(active: list[dict[str, Any]]) -> dict[str, float]:
    """Each active task's start, as its worker reports it (so a slow machine only makes a test wait)."""
    return {t["id"]: float(t["time_start"]) for t in active if t.get("time_start")}


def sigkill_loses_nothing(broker: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(broker, **FAST_REDELIVERY)
    first = cluster.start_worker(concurrency=CONCURRENCY)
    sent = cluster.send("cluster.sleep", [SIGKILL_TASK_SECONDS], count=8)

    # Kill while the worker reports a task that started under half its length ago (its own start time,
    # so a slow machine only makes the test wait; waiting on completions instead let a busy CI run
    # observe them so late that every task had finished before the kill).
    in_flight: list[str] = []

    def fresh(active: list[dict[str, Any]]) -> bool:
        started = start_times(active)
        in_flight[:] = [i for i in sent if i in started and time.time() - started[i] < SIGKILL_TASK_SECONDS / 2]
        return bool(in_flight)

    cluster.wait_inspect("active", fresh, timeout=60)
    killed_at = time.monotonic()
    first.kill()  # the whole process group: main process and pool children, as an instance loss
    first.wait(10)
    cluster.start_worker(concurrency=CONCURRENCY)
    result = cluster.wait_all(sent, timeout=60)

    assert result.lost == 0, f"{result}\n{cluster.log_tail()}"
    # Only tasks that were running on the killed worker may run twice.
    assert result.duplicates <= CONCURRENCY, result
    redelivered = [e for e in cluster.journal() if e["task_id"] in sent and e["redelivered"] == "True"]
    assert set(in_flight) <= {e["task_id"] for e in redelivered}, (in_flight, redelivered)
    print(
        f"sigkill on {broker.kind}: {result.completed}/{result.sent} completed, {result.duplicates} duplicates, "
        f"{len(redelivered)} redelivered, all done {time.monotonic() - killed_at:.1f} s after the kill"
    )


SOFT_SHUTDOWN_WINDOW = 3.0
EXIT_MARGIN = 10.0
# The long task outlasts the window by this much from its start, so the drain must cut it off and requeue it.
LONG_TASK_SECONDS = SOFT_SHUTDOWN_WINDOW + 8.0
# Short tasks run back to back on the other process; SIGTERM goes out while one has at least half to go.
SHORT_TASK_SECONDS = 2.0


def sigterm_drains_within_the_window(broker: Broker, cluster_factory: ClusterFactory) -> None:
    # The default (long) visibility timeout: tasks requeued by the drain must come back at once,
    # not when Redis would redeliver them.
    cluster = cluster_factory(broker, CELERY_SOFT_SHUTDOWN_TIMEOUT=str(SOFT_SHUTDOWN_WINDOW))
    first = cluster.start_worker(concurrency=CONCURRENCY)
    # One process takes the long task (longer than the window), the other runs short ones.
    long_ids = cluster.send("cluster.sleep", [LONG_TASK_SECONDS])
    short_ids = cluster.send("cluster.sleep", [SHORT_TASK_SECONDS], count=6)
    long_ids += cluster.send("cluster.sleep", [LONG_TASK_SECONDS])
    sent = long_ids + short_ids

    # SIGTERM once the worker reports the long task running and a short one that started under half its
    # length ago (each task's start as the worker reports it, so a slow machine only makes the test wait).
    def ready(active: list[dict[str, Any]]) -> bool:
        started = start_times(active)
        fresh = [i for i in short_ids if i in started and time.time() - started[i] < SHORT_TASK_SECONDS / 2]
        return long_ids[0] in started and bool(fresh)

    active = cluster.wait_inspect("active", ready, timeout=90)
    started = start_times(active)
    running_short = max((i for i in short_ids if i in started), key=lambda i: started[i])
    sigterm_at = time.time()
    first.terminate()  # scale-in: SIGTERM, soft shutdown
    # The premise, from the worker's own start time: the long task cannot finish inside the window.
    assert sigterm_at + SOFT_SHUTDOWN_WINDOW < started[long_ids[0]] + LONG_TASK_SECONDS
    exit_code = first.wait(SOFT_SHUTDOWN_WINDOW + EXIT_MARGIN)
    exited_after = time.time() - sigterm_at
    assert exit_code == 0, cluster.log_tail(first)

    cluster.start_worker(concurrency=CONCURRENCY)
    result = cluster.wait_all(sent, timeout=LONG_TASK_SECONDS + 60)
    assert result.lost == 0, f"{result}\n{cluster.log_tail()}"
    assert result.duplicates == 0, result

    entries = {e["task_id"]: e for e in cluster.journal() if e["task_id"] in sent}
    # The short task running at SIGTERM finished inside the window, on the draining worker...
    short = entries[running_short]
    assert short["hostname"].startswith(f"{first.name}@"), short
    assert sigterm_at < float(short["finished_at"]) < sigterm_at + SOFT_SHUTDOWN_WINDOW, (short, sigterm_at)
    # ...and the long one, cut off at the end of the window, was requeued and ran on the next worker.
    assert not entries[long_ids[0]]["hostname"].startswith(f"{first.name}@")
    print(
        f"sigterm on {broker.kind}: worker exited {exited_after:.1f} s after SIGTERM (window {SOFT_SHUTDOWN_WINDOW} s)"
    )


class Producer(threading.Thread):
    """Publishes short tasks at a steady rate; keeps the ids of the publishes that returned.

    A publish that raised (the broker was down longer than the retry policy) is not counted:
    the producer knows it failed and would resend it.
    """

    def __init__(self, cluster: Cluster, seconds: float = 0.2, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.cluster, self.seconds, self.every = cluster, seconds, every
        self.sent: list[str] = []
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.sent += self.cluster.send("cluster.sleep", [self.seconds])
            except Exception:
                self.failed += 1
            time.sleep(self.every)

    def stop(self) -> list[str]:
        self.stopping.set()
        self.join(60)
        return list(self.sent)


def broker_restart_loses_nothing(own_broker: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(own_broker, **FAST_REDELIVERY)
    worker = cluster.start_worker(concurrency=CONCURRENCY)
    producer = Producer(cluster)
    producer.start()
    time.sleep(2)

    restart_started = time.monotonic()
    own_broker.restart(down_for=2.0)  # Redis: AOF with fsync always; RabbitMQ: durable queues, persistent messages
    outage = time.monotonic() - restart_started
    time.sleep(2)
    sent = producer.stop()
    before = cluster.tally(sent)

    result = cluster.wait_until(sent, lambda t: t.completed == t.sent or not worker.running(), timeout=60)
    restarted = ""
    if not worker.running():
        # kombu's Redis transport can die while restoring unacked messages on reconnect ("'NoneType'
        # object has no attribute 'hostname'" in restore_unacked; the kombu #970/#582 family): when a
        # BRPOP is outstanding as the drop is seen on another socket, the channel's first close reads
        # that BRPOP, fails and stops half-way; Celery closes it again after collect() dropped the
        # transport's client. On an instance systemd restarts the worker (celery-worker.service:
        # Restart=on-failure), so the promise under test is that nothing is lost across that restart.
        code = worker.wait(10)
        assert code != 0, "the worker stopped cleanly during the broker restart; systemd would not restart it"
        restarted = f" (worker exited {code} and was restarted as systemd would)"
        cluster.start_worker(concurrency=CONCURRENCY)
        result = cluster.wait_all(sent, timeout=60)
    where, dropped = "", []
    if result.lost and own_broker.is_redis:
        # Queued or held unacked means late (a sweep held back), nowhere means dropped.
        places, lock_ms = redis_whereabouts(own_broker.url, cluster.queue, cluster.missing(sent))
        where = "\n" + describe(places, lock_ms)
        dropped = [task_id for task_id, place in places.items() if place == NOWHERE]
    # No loss on either broker. kombu's own Redis take (BRPOP, then the unacked record in a second
    # command) dropped a message a broker stopped between the two (celery/kombu#305; 3 of 38 runs here);
    # the worker's atomic take (worker.runtime.redis_take) records it in the same step, so such a message
    # is held unacked and restored after the visibility timeout (6 s here): late, within the wait above.
    lost = f"lost {cluster.missing(sent)} of {result.sent}{restarted}{where}\n{cluster.log_tail()}"
    assert result.lost == 0, lost
    # Only tasks running when the connection dropped may run twice.
    assert result.duplicates <= CONCURRENCY, result
    print(
        f"broker restart on {own_broker.kind}: outage {outage:.1f} s, {len(sent)} published "
        f"({producer.failed} publishes failed and were not counted), {before.completed} done before the "
        f"drain, lost {result.lost} (in no queue and no unacked record: {len(dropped)}), "
        f"duplicates {result.duplicates}{restarted}"
    )
