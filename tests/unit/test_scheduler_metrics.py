"""The scheduler's metrics, checked against CloudWatch's service model (botocore Stubber), and the
lateness it reports per entry."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.scheduler.beat import LeasedScheduler
from worker.scheduler.lease import RunState
from worker.scheduler.periodic import Periodic, Slots
from worker.scheduler.settings import CloudWatchMetrics


def test_heartbeat_and_lateness_are_one_valid_put_metric_data() -> None:
    client = boto3.client("cloudwatch", region_name="eu-west-1")
    expected = {
        "Namespace": "CeleryCluster/prod",
        "MetricData": [
            {"MetricName": METRIC_SCHEDULER_HEARTBEAT, "Value": 1.0, "Unit": "Count", "StorageResolution": 1},
            {
                "MetricName": METRIC_ENTRY_LATENESS,
                "Dimensions": [{"Name": "Entry", "Value": "nightly"}],
                "Value": 12.5,
                "Unit": "Seconds",
                "StorageResolution": 1,
            },
        ],
    }
    with Stubber(client) as stub:
        stub.add_response("put_metric_data", {}, expected)
        CloudWatchMetrics("CeleryCluster/prod", "eu-west-1", client=client).publish({"nightly": 12.5})
        stub.assert_no_pending_responses()


def test_lateness_is_the_time_past_the_next_slot() -> None:
    scheduler = LeasedScheduler.__new__(LeasedScheduler)  # the arithmetic only: no app, no store
    entry = Periodic("every-minute", "cluster.ping", 60)
    scheduler.entries = (entry,)
    scheduler._slots = {entry.name: Slots.of(entry)}
    scheduler.state = {entry.name: RunState(600.0, 600.1)}
    assert scheduler.lateness(now=630.0) == {"every-minute": 0.0}  # next run at 660: not due yet
    assert scheduler.lateness(now=700.0) == {"every-minute": 40.0}  # 660 passed without a send
