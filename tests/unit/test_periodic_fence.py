"""The workers' fence on periodic runs (worker.runtime.periodic_fence), DynamoDB on moto: the first copy
of a run to start wins, its redelivery runs, any other copy is refused; other tasks are never fenced."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from worker.names import PERIODIC_SEND_HEADER
from worker.runtime import periodic_fence
from worker.runtime.periodic_fence import DynamoFence

RUN = "periodic:nightly@1000.000"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        dynamodb.create_table(
            TableName="scheduler",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield dynamodb


def test_the_first_copy_to_start_wins_and_its_redelivery_runs(client: Any) -> None:
    fence = DynamoFence("scheduler", client=client)
    assert fence.admit(RUN, "first")
    assert fence.admit(RUN, "first"), "a redelivery of the copy that started must run"
    assert not fence.admit(RUN, "second"), "a second copy of the run ran"
    assert fence.admit("periodic:nightly@2000.000", "second"), "another run is not fenced"


def test_only_periodic_runs_with_a_send_id_are_fenced(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic_fence, "_fence", DynamoFence("scheduler", client=client))
    assert periodic_fence.admits(RUN, {PERIODIC_SEND_HEADER: "a"})
    assert not periodic_fence.admits(RUN, {PERIODIC_SEND_HEADER: "b"})
    assert periodic_fence.admits(RUN, {}), "a run sent without a send id (by hand) is not fenced"
    assert periodic_fence.admits("0b6f-task", {PERIODIC_SEND_HEADER: "b"})


def test_an_unreachable_fence_lets_the_copy_run(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(periodic_fence, "_fence", DynamoFence("missing", client=client))
    assert periodic_fence.admits(RUN, {PERIODIC_SEND_HEADER: "a"})
