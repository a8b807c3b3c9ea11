"""The smoke function (`worker.smoke.handler.handler`, the smoke test inside the VPC) on a real Redis with real
worker processes; Secrets Manager and Auto Scaling on moto (validated against the service models).

What cannot run here: the Lambda runtime itself, its VPC networking to a private broker, and a real
Auto Scaling group launching an instance from the canaries' backlog. The scale-out is played by the
test: it starts the cold pool's worker (and raises the moto group's capacity) once the canaries wait.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from infra.local.workers import WorkerProcess, wait_for_workers
from infra.servers.redis import RedisServer
from tests.support.moto_groups import create_group
from tests.support.moto_metrics import REGION
from worker.sender import sender_app
from worker.smoke.handler import MARGIN_SECONDS, handler

pytestmark = pytest.mark.redis
# The `aws` fixture (moto in REGION) comes from tests.support.moto_metrics, a plugin of tests/conftest.py.


def _group(name: str, instances: int) -> None:
    create_group(name, REGION, desired=instances, max_size=4)


class _Context:
    """The part of Lambda's context object the handler reads."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def _environment(monkeypatch: pytest.MonkeyPatch, url: str, pools: list[dict[str, Any]]) -> None:
    # The publisher's secret holds the bare URL; the function reads the same secret.
    arn = boto3.client("secretsmanager", region_name=REGION).create_secret(Name="broker", SecretString=url)["ARN"]
    monkeypatch.setenv("BROKER_SECRET_ARN", arn)
    monkeypatch.setenv("POOLS_JSON", json.dumps(pools))
    monkeypatch.setenv("CELERY_QUEUE_TYPE", "classic")


def test_waits_for_a_pool_at_zero_to_scale_out_and_reports_each_pool(
    aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _group("pool-warm", 1)
    _group("pool-cold", 0)
    count, wait = 5, 90.0
    with RedisServer(appendonly=False) as server:
        _environment(
            monkeypatch,
            server.url,
            [
                {"name": "warm", "queues": ["smoke_warm"], "asg": "pool-warm"},
                {"name": "cold", "queues": ["smoke_cold"], "asg": "pool-cold"},
            ],
        )
        workers = [WorkerProcess("warm", ["smoke_warm"], server.url, tmp_path / "warm.log", concurrency=1).start()]
        try:
            wait_for_workers(sender_app(server.url), 1, timeout=60)
            result: dict[str, Any] = {}
            run = threading.Thread(
                target=lambda: result.update(handler({"count": count, "timeout": wait}, _Context(wait + 60)))
            )
            run.start()
            # The cold pool's ping and canaries wait in its queue: the backlog a scale-out starts from.
            queued = redis.Redis.from_url(server.url)
            deadline = time.monotonic() + wait
            while queued.llen("smoke_cold") < count + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert queued.llen("smoke_cold") == count + 1
            boto3.client("autoscaling", region_name=REGION).set_desired_capacity(
                AutoScalingGroupName="pool-cold", DesiredCapacity=1
            )
            workers.append(
                WorkerProcess("cold", ["smoke_cold"], server.url, tmp_path / "cold.log", concurrency=1).start()
            )
            run.join(timeout=wait + 30)
            assert not run.is_alive()
        finally:
            for worker in workers:
                worker.stop(timeout=30)
    assert result["ok"] is True, result
    rows = {row["pool"]: row for row in result["pools"]}
    assert rows["cold"]["in_service_before"] == 0
    assert rows["cold"]["in_service_after"] == 1
    assert rows["warm"]["in_service_before"] == rows["warm"]["in_service_after"] == 1
    for row in rows.values():
        assert (row["sent"], row["returned"], row["wrong"]) == (count, count, 0)
        assert row["pings_sent"] == 1
        assert len(row["answered_by"]) == 1


def test_a_pool_that_never_answers_fails_before_the_invocation_ends(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _group("pool-orphan", 0)
    with RedisServer(appendonly=False) as server:
        _environment(monkeypatch, server.url, [{"name": "orphan", "queues": ["nobody_consumes"], "asg": "pool-orphan"}])
        # The caller asks for 600 s, the invocation has 20 s left: the wait ends MARGIN_SECONDS before it.
        context = _Context(20)
        report = handler({"count": 2, "timeout": 600}, context)
        assert context.get_remaining_time_in_millis() / 1000 > MARGIN_SECONDS / 2
    assert report["ok"] is False
    (row,) = report["pools"]
    assert (row["sent"], row["returned"], row["pings_sent"], row["answered_by"]) == (2, 0, 1, [])
    assert report["timeout_seconds"] <= 20 - MARGIN_SECONDS


def test_a_refused_broker_is_one_line_not_a_traceback(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    _group("pool-x", 0)
    _environment(monkeypatch, "redis://127.0.0.1:1/0", [{"name": "x", "queues": ["x"], "asg": "pool-x"}])
    report = handler({"count": 1, "timeout": 5, "run_id": "run-7"}, _Context(60))
    assert report["ok"] is False
    assert report["run_id"] == "run-7", "the report names the run the deploy waits for"
    assert report["error"].startswith("cannot connect to the broker at redis://")
    assert "127.0.0.1:1" in report["error"]
    assert "\n" not in report["error"]
