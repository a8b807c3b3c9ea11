"""A Redis that is full: every command that can grow memory is refused ("OOM command not allowed when used
memory > 'maxmemory'"), as ElastiCache's `noeviction` does at its memory limit. Used by
tests/integration/test_full_redis.py on a server of its own (RedisServer(maxmemory=...))."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

FILL_PREFIX = "test-fill:"
# Below what Redis uses once full, so that the few bytes an ack or a pop frees never let a write through:
# a test sees the server full all along, not flickering at the limit.
HEADROOM_BYTES = 512 * 1024


@contextmanager
def full(url: str) -> Iterator[redis.Redis]:
    """Fill the server with junk until it refuses a write, keep it full, and free it on exit."""
    client = redis.Redis.from_url(url)
    limit = str(client.config_get("maxmemory")["maxmemory"])
    try:
        n = 0
        try:
            while True:
                client.set(f"{FILL_PREFIX}{n}", b"x" * 256 * 1024)
                n += 1
        except redis.exceptions.OutOfMemoryError:
            pass
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - HEADROOM_BYTES)
        yield client
    finally:
        client.delete(*client.keys(f"{FILL_PREFIX}*"))
        client.config_set("maxmemory", limit)
        client.close()


def rejected(client: redis.Redis, command: str) -> int:
    """How many times the server refused `command` (INFO commandstats' rejected_calls, Redis 7+)."""
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return int(stats.get("rejected_calls", 0))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
