"""The workers' half of "each periodic run executes once, whatever the scheduler does".

The scheduler may publish one run twice: a holder paused (SIGSTOP, a long GC, a VM steal) after it
claimed a slot and before its publish landed, whose successor sent the unconfirmed claim again
(worker.scheduler.state). Both copies carry the run's task id (`periodic:<entry>@<slot>`, which names
the entry and the slot) and each its own send id (header `x-periodic-send`, worker.names).

Before a copy runs, the worker records its send id under the task id in the fence store, unless one
is recorded: the first copy to start wins. A redelivery of that copy (its worker was lost, a Redis
visibility timeout) carries the same send id and runs again, as any task does; any other copy is
acknowledged and not run (`periodic.copy_refused` in the worker's log).

The store: Redis (the broker's, by default, on Redis stacks: one key per run, kept FENCE_TTL_S), or
a DynamoDB table (`dynamodb://<table>`, the scheduler's; a conditional put). A store that cannot be
reached lets the copy run (at-least-once, as every task here) and says so in the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import boto3
import redis

from worker.names import PERIODIC_SEND_HEADER, PERIODIC_TASK_ID_PREFIX

logger = logging.getLogger(__name__)

# How long a run's first copy is remembered. A second copy arriving later than this runs again; it
# could only come from a scheduler paused for a day (a resumed holder publishes at most one run).
FENCE_TTL_S: Final = 86400
REDIS_KEY_PREFIX: Final = "celery-cluster:periodic-started:"

_ADMIT = """
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  return 1
end
return 0
"""


class Fence(Protocol):
    def admit(self, task_id: str, send_id: str) -> bool:
        """True when this copy may run: the first to start, or a redelivery of that one."""
        ...


class RedisFence:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._admit = self._client.register_script(_ADMIT)

    def admit(self, task_id: str, send_id: str) -> bool:
        return bool(self._admit(keys=[REDIS_KEY_PREFIX + task_id], args=[send_id, FENCE_TTL_S]))


class DynamoFence:
    """One item per run in the scheduler's table (`started#<task id>`), removed by the table's TTL on
    `purge_at` (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html: deletion
    happens within days of expiry, so the condition also treats an expired item as absent)."""

    def __init__(self, table: str, client: Any = None, region: str | None = None) -> None:
        self._client = client if client is not None else boto3.client("dynamodb", region_name=region)
        self._table = table

    def admit(self, task_id: str, send_id: str) -> bool:
        now = time.time()
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": f"started#{task_id}"},
                    "send_id": {"S": send_id},
                    "purge_at": {"N": str(int(now + FENCE_TTL_S))},
                },
                ConditionExpression="attribute_not_exists(pk) OR send_id = :me OR purge_at < :now",
                ExpressionAttributeValues={":me": {"S": send_id}, ":now": {"N": str(int(now))}},
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True


_fence: Fence | None = None


def open_fence(url: str, region: str | None = None) -> Fence:
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        return RedisFence(url)
    if parts.scheme == "dynamodb" and parts.netloc:
        return DynamoFence(parts.netloc, region=region)
    raise ValueError(f"must be redis://, rediss:// or dynamodb://<table>, got scheme {parts.scheme!r}")


def install(url: str | None, region: str | None = None) -> None:
    """Fence periodic runs in the store at `url`; None leaves them unfenced (at-least-once)."""
    global _fence  # noqa: PLW0603 - one store per worker process, set once at import
    _fence = None if url is None else open_fence(url, region)


def admits(task_id: str | None, headers: dict[str, Any]) -> bool:
    """May this copy of a task run? Always, unless it is a periodic run another copy of which started."""
    send_id = headers.get(PERIODIC_SEND_HEADER)
    if _fence is None or not task_id or not task_id.startswith(PERIODIC_TASK_ID_PREFIX) or not send_id:
        return True
    try:
        admitted = _fence.admit(task_id, str(send_id))
    except Exception:
        logger.warning("periodic.fence_unreachable: %s runs unfenced", task_id, exc_info=True)
        return True
    if not admitted:
        logger.warning("periodic.copy_refused: %s (send %s): another copy of this run started", task_id, send_id)
    return admitted
