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
  DynamoDB has no server clock in expressions, so expiry and slots use the schedulers' own clocks:
  assumption CLOCK_SKEW_S, EC2 instances keep time with the Amazon Time Sync Service
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/set-time.html), far inside a second. That is
  the bound on a RabbitMQ stack: a run may go out up to CLOCK_SKEW_S early or late; Redis stacks use
  the server's TIME, one clock for all.

State writes are fenced: a scheduler that lost its lease can neither claim a run (`advance`, which
also refuses a slot the store already has and, on Redis, one not yet due on the server's clock)
nor confirm one (`record`). The contract is in `worker.scheduler.state`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Final, cast
from urllib.parse import urlsplit

import boto3
import redis

from worker.scheduler.state import Advance, Grant, LeaseError, LeaseStore, RunState

__all__ = ["CLOCK_SKEW_S", "DynamoLeaseStore", "LeaseError", "LeaseStore", "RedisLeaseStore", "RunState", "open_store"]

# Named assumption: how far apart two schedulers' clocks may be (DynamoDB leases only); see the
# module docstring.
CLOCK_SKEW_S: Final = 1.0

# Each script reads the server's clock (TIME): every scheduler computes slots from this one clock.
# Redis replicates a script's effects, not the script, so TIME before a write is allowed
# (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/, "Script replication").
_RENEW = """
local t = redis.call('TIME')
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, t[1], t[2]}
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2, t[1], t[2]}
end
return {0, t[1], t[2]}
"""
_ADVANCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 'lost'
end
local t = redis.call('TIME')
local slot = tonumber(ARGV[3])
if slot > tonumber(t[1]) + tonumber(t[2]) / 1000000 then
  return 'early'
end
local current = redis.call('HGET', KEYS[2], ARGV[2])
if current and tonumber(cjson.decode(current)['slot']) >= slot then
  return 'behind'
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
return 'ok'
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


class RedisLeaseStore:
    def __init__(self, url: str, prefix: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._lease_key = f"{prefix}:lease"
        self._state_key = f"{prefix}:state"
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._record = self._client.register_script(_RECORD)
        self._advance = self._client.register_script(_ADVANCE)
        self._where = f"redis {urlsplit(url).hostname}:{urlsplit(url).port or 6379} key {self._lease_key}"

    def acquire(self, holder: str, seconds: float) -> Grant | None:
        held, sec, usec = self._call(self._renew, [self._lease_key], [holder, int(seconds * 1000)])
        return Grant(fresh=held == 2, store_time=int(sec) + int(usec) / 1e6) if held else None

    def release(self, holder: str) -> None:
        self._call(self._release, [self._lease_key], [holder])

    def holder(self) -> str | None:
        value: Any = self._guard(lambda: self._client.get(self._lease_key))
        return value.decode() if value is not None else None

    def load(self) -> dict[str, RunState]:
        raw: Any = self._guard(lambda: self._client.hgetall(self._state_key))
        return {name.decode(): RunState.loads(text) for name, text in raw.items()}

    def advance(self, holder: str, entry: str, state: RunState) -> Advance:
        keys, args = [self._lease_key, self._state_key], [holder, entry, repr(state.slot), state.dumps()]
        found = self._call(self._advance, keys, args)
        return cast(Advance, found.decode() if isinstance(found, bytes) else str(found))

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


def _wall_clock() -> float:
    return time.time()  # looked up at each call: tests replace time.time


class DynamoLeaseStore:
    """One table with a string partition key `pk`: item `lease`, and one `state#<entry>` per entry."""

    LEASE_ITEM: Final = "lease"

    def __init__(
        self, table: str, client: Any = None, region: str | None = None, clock: Callable[[], float] | None = None
    ) -> None:
        if client is None:
            client = boto3.client("dynamodb", region_name=region)
        self._client = client
        self._table = table
        # DynamoDB has no clock in expressions: expiry and slots use this one (see CLOCK_SKEW_S).
        self._clock = clock if clock is not None else _wall_clock

    def acquire(self, holder: str, seconds: float) -> Grant | None:
        now = self._clock()
        with self._guard():
            try:
                old = self._client.update_item(
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
                    ReturnValues="ALL_OLD",
                ).get("Attributes", {})
            except self._client.exceptions.ConditionalCheckFailedException:
                return None
        return Grant(fresh=old.get("holder", {}).get("S") != holder, store_time=now)

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
        if float(item["expires_at"]["N"]) < self._clock():
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

    def advance(self, holder: str, entry: str, state: RunState) -> Advance:
        if state.slot > self._clock():
            return "early"
        condition = "attribute_not_exists(slot) OR slot < :slot"
        found = self._write(holder, entry, state, condition, {":slot": {"N": repr(state.slot)}})
        return found

    def record(self, holder: str, entry: str, state: RunState) -> bool:
        return self._write(holder, entry, state) == "ok"

    def _write(
        self,
        holder: str,
        entry: str,
        state: RunState,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Advance:
        """The state item, in a transaction whose first item checks the lease: "lost" when that check
        failed, "behind" when the item's own `condition` did."""
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": {"pk": {"S": f"state#{entry}"}, "run": {"S": state.dumps()}, "slot": {"N": repr(state.slot)}},
        }
        if condition is not None:
            put |= {"ConditionExpression": condition, "ExpressionAttributeValues": values}
        lease_check = {
            "TableName": self._table,
            "Key": {"pk": {"S": self.LEASE_ITEM}},
            "ConditionExpression": "holder = :me AND expires_at > :now",
            "ExpressionAttributeValues": {":me": {"S": holder}, ":now": {"N": repr(self._clock())}},
        }
        with self._guard():
            try:
                self._client.transact_write_items(TransactItems=[{"ConditionCheck": lease_check}, {"Put": put}])
            except self._client.exceptions.TransactionCanceledException as exc:
                # One reason per item, in order (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                return "behind" if reasons[:1] == ["None"] and "ConditionalCheckFailed" in reasons[1:] else "lost"
            return "ok"

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
