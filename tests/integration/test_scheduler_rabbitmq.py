"""Exactly one scheduler sends on a RabbitMQ stack: the lease in DynamoDB (as the stack creates it).

As far as this machine allows: a real RabbitMQ node, a real worker and the execution journal, two
`LeasedScheduler`s with their own broker connections and lease clients, and DynamoDB on moto. moto
mocks AWS inside one process, so the two schedulers are threads of this test rather than two
processes (their DynamoDB calls are serialised, as DynamoDB's own conditional writes are atomic and
moto's are not across threads); "killing" the holder stops its thread without the clean stop that releases the lease,
so the successor must wait for the lease to lapse, as after an instance loss.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.rabbitmq_server import RabbitMQServer
from tests.support.brokers import Broker
from tests.support.fixtures import ClusterFactory
from tests.support.periodic import check_runs, runs, wait_runs
from worker.lease import DynamoLeaseStore
from worker.scheduler import LeasedScheduler

LEASE_S = 3.0
OBSERVE_S = 30.0
TABLE = "celery-cluster-test-scheduler"

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


class Linearized:
    """A DynamoDB client whose calls run one at a time, as DynamoDB applies conditional writes to an
    item atomically. moto does not: two threads' conditional updates could both pass their check."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


class Ticking:
    """One scheduler ticking in a thread, as `celery beat`'s loop does."""

    def __init__(self, scheduler: LeasedScheduler) -> None:
        self.scheduler = scheduler
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.stopped.wait(min(self.scheduler.tick(), 0.5))
        except BaseException as exc:  # reported by the test
            self.error = exc

    def die(self) -> None:
        """Stop ticking without releasing the lease (an instance loss)."""
        self.stopped.set()
        self.thread.join(10)


def _stand_in(seconds: float) -> float:
    return seconds


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        # The table as infra/components/scheduler.py creates it.
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_two_schedulers_on_rabbitmq_send_each_run_once_and_survive_losing_the_holder(
    rabbitmq_server: RabbitMQServer,
    cluster_factory: ClusterFactory,
    dynamodb: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = cluster_factory(Broker("rabbitmq", rabbitmq_server.url, rabbitmq_server))
    cluster.start_worker(concurrency=2)
    for name, value in {
        "SCHEDULER_LEASE_URL": f"dynamodb://{TABLE}",
        "SCHEDULER_LEASE_SECONDS": str(LEASE_S),
        "SCHEDULER_SCHEDULE": "tests.support.periodic_entries:EVERY_SECOND",
        "SCHEDULER_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    # The schedulers publish through the producer app (the cluster's queues, stamping); the task's
    # name is registered on it so the start-up check passes, while the worker runs the real one.
    app = cluster.client
    app.task(name="cluster.sleep")(_stand_in)
    schedulers = []
    for holder in ("a", "b"):
        scheduler = LeasedScheduler(app=app)
        scheduler.holder_id = holder
        scheduler.store = DynamoLeaseStore(TABLE, client=Linearized(boto3.client("dynamodb", region_name="eu-west-1")))
        schedulers.append(Ticking(scheduler))

    def describe() -> str:
        return "; ".join(
            f"{t.scheduler.holder_id}: holding={t.scheduler.holding} error={t.error!r}" for t in schedulers
        )

    try:
        started = time.time()
        wait_runs(cluster, started + OBSERVE_S, timeout=OBSERVE_S + 10 * LEASE_S, describe=describe)
        assert not any(t.error for t in schedulers), describe()
        holder = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "lease"}})["Item"]["holder"]["S"]
        (victim,) = [t for t in schedulers if t.scheduler.holder_id == holder]
        victim.die()
        killed_at = time.time()
        wait_runs(cluster, killed_at + 2 * LEASE_S + 3, timeout=10 * LEASE_S, describe=describe)
        found = runs(cluster)
    finally:
        for ticking in schedulers:
            ticking.die()
    assert found[-1][0] - found[0][0] >= OBSERVE_S
    takeover = check_runs(found, killed_at, LEASE_S)
    print(f"takeover on RabbitMQ + DynamoDB lease: {takeover:.2f} s after the holder stopped (lease {LEASE_S} s)")
