"""Scale-in protection with hysteresis, the in-service wait and the unhealthy mark: the calls go to a
boto3 Auto Scaling client under botocore's Stubber (validated against the service model), instance
metadata to the loopback IMDSv2 server, busy markers to real files."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.fake_imds import fake_imds
from worker import busy, drain
from worker.imds import LIFECYCLE_STATE_PATH, Imds
from worker.instance_state import mark_unhealthy, wait_in_service
from worker.protection import ScaleInProtection

ASG = "celery-cluster-dev-default"
INSTANCE = "i-0abc1234def567890"
IDLE_S = 60.0


@pytest.fixture
def autoscaling() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "autoscaling", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_protection(stubber: Stubber, protect: bool) -> None:
    stubber.add_response(
        "set_instance_protection",
        {},
        {"InstanceIds": [INSTANCE], "AutoScalingGroupName": ASG, "ProtectedFromScaleIn": protect},
    )


def test_busy_markers_count_only_live_processes(tmp_path: Path) -> None:
    (tmp_path / f"{os.getpid()}.task-1").touch()
    (tmp_path / f"{os.getpid()}.task-2").touch()
    # A pool process that died mid-task: its pid is gone (pid_max is far below this).
    (tmp_path / "4194999.task-3").touch()
    (tmp_path / "not-a-marker").touch()
    assert busy.running_tasks(tmp_path) == 2
    assert busy.running_tasks(tmp_path / "gone") == 0


def test_protected_while_busy_and_released_only_after_the_idle_hysteresis(
    tmp_path: Path, autoscaling: tuple[Any, Stubber]
) -> None:
    client, stubber = autoscaling
    protection = ScaleInProtection(client, ASG, INSTANCE, str(tmp_path), IDLE_S)
    marker = tmp_path / f"{os.getpid()}.task"

    marker.touch()
    expect_protection(stubber, True)
    assert protection.update(0.0) is True
    # Many tasks start and end within the hysteresis: no further call.
    for now in (5.0, 10.0):
        marker.unlink()
        assert protection.update(now) is True
        marker.touch()
        assert protection.update(now + 1) is True
    marker.unlink()
    assert protection.update(20.0) is True
    assert protection.update(20.0 + IDLE_S - 1) is True
    expect_protection(stubber, False)
    assert protection.update(20.0 + IDLE_S) is False
    assert protection.update(20.0 + 2 * IDLE_S) is False
    assert protection.changes == [True, False]


def test_an_idle_instance_clears_a_protection_left_by_an_earlier_agent(
    tmp_path: Path, autoscaling: tuple[Any, Stubber]
) -> None:
    client, stubber = autoscaling
    protection = ScaleInProtection(client, ASG, INSTANCE, str(tmp_path), IDLE_S)
    assert protection.update(0.0) is None
    expect_protection(stubber, False)
    assert protection.update(IDLE_S) is False


def test_a_refused_call_is_retried_at_the_next_poll(tmp_path: Path, autoscaling: tuple[Any, Stubber]) -> None:
    client, stubber = autoscaling
    protection = ScaleInProtection(client, ASG, INSTANCE, str(tmp_path), IDLE_S)
    (tmp_path / f"{os.getpid()}.task").touch()
    stubber.add_client_error("set_instance_protection", "ResourceContention", "pending update")
    assert protection.update(0.0) is None
    expect_protection(stubber, True)
    assert protection.update(5.0) is True


def test_worker_waits_while_the_instance_is_in_the_warm_pool() -> None:
    with fake_imds(instance_id=INSTANCE) as (endpoint, state):
        state.set(LIFECYCLE_STATE_PATH, "Warmed:Stopped")
        seen: list[str | None] = []
        polls = threading.Semaphore(0)

        def sleep(_: float) -> None:
            polls.release()

        def run() -> None:
            seen.append(wait_in_service(Imds(endpoint=endpoint), poll_interval=0.01, sleep=sleep))

        thread = threading.Thread(target=run)
        thread.start()
        for _ in range(3):  # three polls that see the warm pool
            assert polls.acquire(timeout=30)
        assert not seen, "the worker would have started in the warm pool"
        state.set(LIFECYCLE_STATE_PATH, "InService")
        thread.join(30)
    assert seen == ["InService"]


def test_outside_an_auto_scaling_group_the_worker_starts_at_once() -> None:
    with fake_imds(instance_id=INSTANCE) as (endpoint, state):
        state.set(LIFECYCLE_STATE_PATH, None)
        assert wait_in_service(Imds(endpoint=endpoint), poll_interval=0.01) is None


def test_a_failed_worker_marks_its_in_service_instance_unhealthy(autoscaling: tuple[Any, Stubber]) -> None:
    client, stubber = autoscaling
    stubber.add_response(
        "set_instance_health",
        {},
        {"InstanceId": INSTANCE, "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": False},
    )
    with fake_imds(instance_id=INSTANCE) as (endpoint, _):
        assert mark_unhealthy(Imds(endpoint=endpoint), client) == "marked"


@pytest.mark.parametrize("target", ["Terminated", "Warmed:Stopped"])
def test_a_worker_stopped_by_a_drain_or_the_warm_pool_marks_nothing(
    autoscaling: tuple[Any, Stubber], target: str
) -> None:
    client, _ = autoscaling  # no response queued: any call would fail the Stubber
    with fake_imds(instance_id=INSTANCE) as (endpoint, state):
        state.set(LIFECYCLE_STATE_PATH, target)
        assert mark_unhealthy(Imds(endpoint=endpoint), client) == "not-in-service"


def test_cli_modes_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        drain.main(["--check", "--mark-unhealthy"])
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
