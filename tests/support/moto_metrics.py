"""The AWS side of the metrics tests on moto (Auto Scaling groups, CloudWatch): one region, one namespace,
the `aws` fixture (registered in tests/conftest.py) and the reads the tests share."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto import mock_aws

from tests.support.moto_groups import create_group

NAMESPACE = "CeleryCluster/test"
REGION = "eu-west-1"


@contextmanager
def moto_account(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> Iterator[None]:
    """moto in `region`, with throwaway credentials (a session token of the shell is replaced too)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    with mock_aws():
        yield


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto for the test, in REGION (a module whose stack has another region defines its own `aws`)."""
    with moto_account(monkeypatch):
        yield


def group(name: str, instances: int) -> None:
    create_group(name, REGION, desired=instances, max_size=10)


def latest(cloudwatch: Any, name: str, dimensions: dict[str, str]) -> float:
    """The newest datapoint of metric `name` in NAMESPACE (its Maximum), of the last five minutes."""
    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - timedelta(minutes=5),
        EndTime=now + timedelta(minutes=1),
        Period=10,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert points, f"no datapoints for {name} {dimensions}"
    return float(max(points, key=lambda p: p["Timestamp"])["Maximum"])
