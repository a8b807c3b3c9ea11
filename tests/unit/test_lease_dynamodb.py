"""The DynamoDB lease (stacks on RabbitMQ) on moto: one holder, takeover after expiry, fenced state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from worker.scheduler.lease import CLOCK_SKEW_S, DynamoLeaseStore, LeaseError, RunState
from worker.scheduler.state import Grant


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.create_table(
            TableName="lease",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield dynamodb


def test_one_holder_at_a_time_and_renewal_by_the_holder_only(client: Any) -> None:
    store = DynamoLeaseStore("lease", client=client)
    assert store.acquire("a", 30)
    assert not store.acquire("b", 30)
    assert store.acquire("a", 30)  # a renewal
    assert store.holder() == "a"


def test_an_expired_lease_is_taken_over_once_clocks_agree(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DynamoLeaseStore("lease", client=client)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)
    assert store.acquire("a", 10)
    monkeypatch.setattr(time, "time", lambda: now + 10 + CLOCK_SKEW_S / 2)
    assert not store.acquire("b", 10), "taken over within the clock skew allowance"
    monkeypatch.setattr(time, "time", lambda: now + 10 + CLOCK_SKEW_S * 1.5)
    assert store.acquire("b", 10)
    assert store.holder() == "b"


def test_state_is_written_only_by_the_holder_and_survives_it(client: Any) -> None:
    store = DynamoLeaseStore("lease", client=client)
    assert store.acquire("a", 30)
    assert store.record("a", "nightly", RunState(100.0, 101.5))
    assert not store.record("b", "nightly", RunState(200.0, 201.0)), "a non-holder wrote state"
    store.release("a")
    assert store.holder() is None
    assert not store.record("a", "nightly", RunState(300.0, None)), "wrote state after releasing the lease"
    successor = DynamoLeaseStore("lease", client=client)
    assert successor.acquire("b", 30)
    assert successor.load() == {"nightly": RunState(100.0, 101.5)}


def test_an_item_without_a_lease_has_no_holder(client: Any) -> None:
    # A scheduler starting beside a holder reads the item while it is written; it must not crash.
    client.put_item(TableName="lease", Item={"pk": {"S": DynamoLeaseStore.LEASE_ITEM}})
    assert DynamoLeaseStore("lease", client=client).holder() is None


def test_an_unreachable_table_is_a_lease_error(client: Any) -> None:
    with pytest.raises(LeaseError, match="dynamodb table missing"):
        DynamoLeaseStore("missing", client=client).holder()


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.acquire("a", 30),
        lambda store: store.release("a"),
        lambda store: store.load(),
        lambda store: store.record("a", "nightly", RunState(1.0, 2.0)),
    ],
    ids=["acquire", "release", "load", "record"],
)
def test_every_call_on_an_unreachable_table_is_a_lease_error(client: Any, call: Any) -> None:
    # The scheduler's loop retries a LeaseError; any other exception would stop beat.
    with pytest.raises(LeaseError, match="dynamodb table missing"):
        call(DynamoLeaseStore("missing", client=client))


def test_a_run_is_claimed_only_by_the_holder_forward_and_when_due(client: Any) -> None:
    now = 1_000.0
    store = DynamoLeaseStore("lease", client=client, clock=lambda: now)
    grant = store.acquire("a", 30)
    assert grant == Grant(fresh=True, store_time=now)
    assert store.acquire("a", 30) == Grant(fresh=False, store_time=now), "a renewal is not a takeover"
    claim = RunState(990.0, None, claimed=True)
    assert store.advance("a", "nightly", claim) == "ok"
    assert store.load() == {"nightly": claim}
    assert store.advance("a", "nightly", RunState(990.0, None, claimed=True)) == "behind", "claimed twice"
    assert store.advance("a", "nightly", RunState(980.0, None)) == "behind", "moved backwards"
    assert store.advance("b", "nightly", RunState(995.0, None, claimed=True)) == "lost", "a non-holder claimed"
    assert store.advance("a", "nightly", RunState(1_005.0, None, claimed=True)) == "early", "claimed before due"
    assert store.record("a", "nightly", RunState(990.0, 990.2))
    assert store.load() == {"nightly": RunState(990.0, 990.2)}


def test_a_takeover_is_a_fresh_grant(client: Any) -> None:
    clock = {"now": 1_000.0}
    store = DynamoLeaseStore("lease", client=client, clock=lambda: clock["now"])
    assert store.acquire("a", 10)
    clock["now"] += 10 + 2 * CLOCK_SKEW_S
    assert store.acquire("b", 10) == Grant(fresh=True, store_time=clock["now"])
