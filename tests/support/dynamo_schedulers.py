"""Two `LeasedScheduler`s sharing a DynamoDB lease on moto, in a process of their own (the RabbitMQ
scheduler test starts it, so nothing else in the test process can slow their ticks).

moto mocks AWS inside one process, so the two schedulers are threads here; each has its own broker
connection and lease client. moto does not apply two threads' conditional writes atomically, so
their DynamoDB calls are serialised, as DynamoDB applies a conditional write to an item atomically.

Control through files in DIR: the test creates `kill` to stop the lease holder's thread without its
clean release (an instance loss), and this process answers with `killed` ({"holder", "at"}); `stop`
ends the run. Usage: python -m tests.support.dynamo_schedulers DIR (settings from the environment:
CELERY_BROKER_URL, CELERY_DEFAULT_QUEUE, CELERY_DEAD_LETTER_QUEUE, SCHEDULER_*).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from worker.scheduler.beat import LeasedScheduler
from worker.scheduler.lease import DynamoLeaseStore
from worker.sender import sender_app

TABLE = "celery-cluster-test-scheduler"
REGION = "eu-west-1"


class Linearized:
    """A DynamoDB client whose calls run one at a time."""

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
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.stopped.wait(min(self.scheduler.tick(), 0.5))

    def die(self) -> None:
        self.stopped.set()
        self.thread.join(10)


def _stand_in(seconds: float) -> float:
    return seconds


def main(control: Path) -> None:
    os.environ.update({"SCHEDULER_LEASE_URL": f"dynamodb://{TABLE}", "SCHEDULER_REGION": REGION})
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        # The table as infra/components/scheduler.py creates it.
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        app = sender_app(
            os.environ["CELERY_BROKER_URL"],
            default_queue=os.environ["CELERY_DEFAULT_QUEUE"],
            dead_letter_queue=os.environ["CELERY_DEAD_LETTER_QUEUE"],
        )
        # Registered on the producer app so the start-up check passes; the worker runs the real task.
        app.task(name="cluster.sleep")(_stand_in)
        threads = []
        for holder in ("a", "b"):
            scheduler = LeasedScheduler(app=app)
            scheduler.holder_id = holder
            scheduler.store = DynamoLeaseStore(TABLE, client=Linearized(boto3.client("dynamodb", region_name=REGION)))
            threads.append(Ticking(scheduler))
        killed = False
        while not (control / "stop").exists():
            if not killed and (control / "kill").exists():
                item = client.get_item(TableName=TABLE, Key={"pk": {"S": "lease"}})["Item"]
                holder = item["holder"]["S"]
                for ticking in threads:
                    if ticking.scheduler.holder_id == holder:
                        ticking.die()
                at = time.time()
                (control / "killed").write_text(json.dumps({"holder": holder, "at": at}))
                killed = True
            time.sleep(0.1)
        for ticking in threads:
            ticking.die()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
