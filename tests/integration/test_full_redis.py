"""A full Redis (maxmemory reached under `noeviction`, as the stack's ElastiCache is configured) neither ends a
worker nor loses a task: the take keeps working, acks need no MULTI, the idle wait that Redis refuses
becomes polling with backoff (worker/runtime/redis_take.py), and once memory frees the worker waits as
before. Its own redis-server with a small maxmemory, filled by the test; tasks counted by the journal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu.exceptions import OperationalError

from infra.servers.redis import RedisServer
from tests.support.brokers import Broker
from tests.support.fixtures import ClusterFactory
from tests.support.full_redis import full, rejected, wait_for
from worker.runtime.redis_take import FULL_WAIT_MAX_SECONDS

pytestmark = pytest.mark.redis

FULL = "the broker is full and refuses the wait"
FREED = "the broker accepts the wait again"
# Enough refused waits that the backoff has reached its longest sleep (0.1 s doubling to 2 s: five).
REFUSED_WAITS = 6


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False, maxmemory="8mb") as server:
        yield server


def test_a_full_redis_neither_ends_the_worker_nor_loses_a_task(
    small_redis: RedisServer, cluster_factory: ClusterFactory
) -> None:
    cluster = cluster_factory(Broker("redis", small_redis.url, small_redis))
    worker = cluster.start_worker(concurrency=1)
    before = cluster.send("cluster.sleep", [0.5], count=6)
    with full(small_redis.url) as client:
        assert client.llen(cluster.queue) > 0  # the premise: tasks still queued when Redis is full
        # Taken and acked on the full server: they all ran, and none is left recorded as unacked.
        result = cluster.wait_all(before, timeout=120)
        assert result.lost == 0, f"{result}\n{cluster.log_tail()}"
        wait_for(lambda: client.hlen("unacked") == 0, 60, "the acks")
        # Then idle: Redis refuses its wait again and again; it polls, and stays up.
        wait_for(lambda: rejected(client, "BLMOVE") >= REFUSED_WAITS, 60 + 5 * FULL_WAIT_MAX_SECONDS, "refusals")
        assert worker.running(), cluster.log_tail()
        # A producer's publish is refused too: the producer knows (an error), so nothing is lost unseen.
        with pytest.raises(OperationalError, match="maxmemory"):
            cluster.client.send_task("cluster.canary", args=["x"], queue=cluster.queue, retry=False)
    # Memory freed: new work runs, and the worker waits with BLMOVE again.
    after = cluster.send("cluster.canary", ["after"], count=5)
    result = cluster.wait_all(before + after, timeout=120)
    assert result.lost == 0, f"{result}\n{cluster.log_tail()}"
    assert result.duplicates == 0, result
    wait_for(lambda: FREED in worker.log_path.read_text(), 30, "the worker's line that the wait works again")
    log = worker.log_path.read_text()
    # One line when Redis refused the wait, one when it accepted it again: not one per attempt.
    assert (log.count(FULL), log.count(FREED)) == (1, 1), cluster.log_tail()
    assert "Unrecoverable error" not in log
    assert worker.running()
    print(
        f"full redis: {len(before)} tasks queued before it filled all ran while full, {len(after)} after it freed; "
        f"refused waits {rejected(redis.Redis.from_url(small_redis.url), 'BLMOVE')}, lost {result.lost}"
    )
