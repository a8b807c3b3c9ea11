"""The scheduler's lease and its state: who may send, and what each entry last sent.

Two stores, one contract (`LeaseStore`):
- Redis (the broker's Redis, or any): the lease is one key set with `SET NX PX` and renewed by a
  script that extends it only for its holder; the state is one hash. Redis runs a script
  atomically (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/), so a
  renewal or a state write cannot interleave with another scheduler's.
- DynamoDB (stacks whose broker is RabbitMQ): one table, a lease item taken and renewed by a
  conditional update (holder is us, or the lease has expired), state items written in a
  transaction that also checks we still hold the lease
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html,
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
  DynamoDB has no server clock in expressions, so expiry compares the writers' clocks:
  assumption CLOCK_SKEW_S, EC2 instances keep time with the Amazon Time Sync Service
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html), far inside a second.

State writes are fenced: a scheduler that lost its lease cannot record a run, so the next holder
never reads a slot that a stale holder claimed. The holder never sends once its own, conservative
view of the lease has run out (`worker.scheduler.beat`), which ends before the store's expiry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import boto3
import redis

# Named assumption: how far apart two schedulers' clocks may be (DynamoDB leases only); see the
# module docstring.
CLOCK_SKEW_S: Final = 1.0

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_RECORD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class LeaseError(RuntimeError):
    """The lease store cannot be reached or is misconfigured; the message names the store."""


@dataclass(frozen=True)
class RunState:
    """What an entry last did: the slot it covered and when it was sent (epoch seconds)."""

    slot: float
    sent_at: float | None  # None: the slot was skipped (catch_up "skip"), not sent

    def dumps(self) -> str:
        return json.dumps({"slot": self.slot, "sent_at": self.sent_at})

    @classmethod
    def loads(cls, text: str | bytes) -> RunState:
        data = json.loads(text)
        return cls(float(data["slot"]), None if data.get("sent_at") is None else float(data["sent_at"]))


class LeaseStore(Protocol):
    def acquire(self, holder: str, seconds: float) -> bool:
        """Take the lease, or renew it if `holder` has it; False when someone else holds it."""
        ...

    def release(self, holder: str) -> None:
        """Give the lease up at once (a clean stop), if `holder` has it."""
        ...

    def holder(self) -> str | None: ...

    def load(self) -> dict[str, RunState]:
        """Every entry's last run."""
        ...

    def record(self, holder: str, entry: str, state: RunState) -> bool:
        """Store an entry's run, only while `holder` holds the lease; False when it does not."""
        ...

    def close(self) -> None: ...


class RedisLeaseStore:
    def __init__(self, url: str, prefix: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._lease_key = f"{prefix}:lease"
        self._state_key = f"{prefix}:state"
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._record = self._client.register_script(_RECORD)
        self._where = f"redis {urlsplit(url).hostname}:{urlsplit(url).port or 6379} key {self._lease_key}"

    def acquire(self, holder: str, seconds: float) -> bool:
        return bool(self._call(self._renew, [self._lease_key], [holder, int(seconds * 1000)]))

    def release(self, holder: str) -> None:
        self._call(self._release, [self._lease_key], [holder])

    def holder(self) -> str | None:
        value: Any = self._guard(lambda: self._client.get(self._lease_key))
        return value.decode() if value is not None else None

    def load(self) -> dict[str, RunState]:
        raw: Any = self._guard(lambda: self._client.hgetall(self._state_key))
        return {name.decode(): RunState.loads(text) for name, text in raw.items()}

    def record(self, holder: str, entry: str, state: RunState) -> bool:
        return bool(self._call(self._record, [self._lease_key, self._state_key], [holder, entry, state.dumps()]))

    def close(self) -> None:
        self._client.close()

    def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        return self._guard(lambda: script(keys=keys, args=args))

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except redis.RedisError as exc:
            raise LeaseError(f"{self._where}: {exc}") from exc


class DynamoLeaseStore:
    """One table with a string partition key `pk`: item `lease`, and one `state#<entry>` per entry."""

    LEASE_ITEM: Final = "lease"

    def __init__(self, table: str, client: Any = None, region: str | None = None) -> None:
        if client is None:
            client = boto3.client("dynamodb", region_name=region)
        self._client = client
        self._table = table

    def acquire(self, holder: str, seconds: float) -> bool:
        now = time.time()
        with self._guard():
            try:
                self._client.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": self.LEASE_ITEM}},
                    UpdateExpression="SET holder = :me, expires_at = :expires",
                    ConditionExpression="attribute_not_exists(holder) OR holder = :me OR expires_at < :now",
                    ExpressionAttributeValues={
                        ":me": {"S": holder},
                        ":expires": {"N": repr(now + seconds)},
                        # A lease counts as expired only once the slowest clock agrees.
                        ":now": {"N": repr(now - CLOCK_SKEW_S)},
                    },
                )
            except self._client.exceptions.ConditionalCheckFailedException:
                return False
        return True

    def release(self, holder: str) -> None:
        with self._guard(), suppress(self._client.exceptions.ConditionalCheckFailedException):
            self._client.delete_item(
                TableName=self._table,
                Key={"pk": {"S": self.LEASE_ITEM}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )

    def holder(self) -> str | None:
        with self._guard():
            item = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": self.LEASE_ITEM}}, ConsistentRead=True
            ).get("Item")
        # An item without both attributes holds no lease: seen from moto's server, which applies an
        # UpdateItem in steps a concurrent GetItem can observe (a scheduler starting beside a holder).
        if not item or "holder" not in item or "expires_at" not in item:
            return None
        if float(item["expires_at"]["N"]) < time.time():
            return None
        return str(item["holder"]["S"])

    def load(self) -> dict[str, RunState]:
        states: dict[str, RunState] = {}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "FilterExpression": "begins_with(pk, :state)",
            "ExpressionAttributeValues": {":state": {"S": "state#"}},
        }
        while True:
            with self._guard():
                page = self._client.scan(**kwargs)
            for item in page.get("Items", []):
                states[item["pk"]["S"].removeprefix("state#")] = RunState.loads(item["run"]["S"])
            if "LastEvaluatedKey" not in page:
                return states
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record(self, holder: str, entry: str, state: RunState) -> bool:
        with self._guard():
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "ConditionCheck": {
                                "TableName": self._table,
                                "Key": {"pk": {"S": self.LEASE_ITEM}},
                                "ConditionExpression": "holder = :me AND expires_at > :now",
                                "ExpressionAttributeValues": {":me": {"S": holder}, ":now": {"N": repr(time.time())}},
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": {"pk": {"S": f"state#{entry}"}, "run": {"S": state.dumps()}},
                            }
                        },
                    ]
                )
            except self._client.exceptions.TransactionCanceledException:
                return False
            return True

    def close(self) -> None:
        return None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Any error from DynamoDB, other than the refused conditions each call handles, is a LeaseError,
        which the scheduler's loop retries; anything else would stop beat."""
        try:
            yield
        except Exception as exc:
            raise LeaseError(f"dynamodb table {self._table}: {exc}") from exc


def open_store(url: str, prefix: str, region: str | None = None) -> LeaseStore:
    """`redis://`/`rediss://` URLs use Redis (keys under `prefix`); `dynamodb://<table>` a DynamoDB table."""
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        return RedisLeaseStore(url, prefix)
    if parts.scheme == "dynamodb" and parts.netloc:
        return DynamoLeaseStore(parts.netloc, region=region)
    raise LeaseError(f"lease store must be redis://, rediss:// or dynamodb://<table>, got scheme {parts.scheme!r}")
