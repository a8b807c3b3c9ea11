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

from infra.vm.files import POOL_ENV, WORKER_UNIT
from tests.support.fake_imds import fake_imds
from tests.support.units import restart_prevented, unit_settings
from worker.drain import agent as drain
from worker.drain.protection import ScaleInProtection
from worker.instance.imds import LIFECYCLE_STATE_PATH, Imds
from worker.instance.state import mark_unhealthy, wait_in_service
from worker.runtime import busy
from worker.runtime.settings import SETTINGS_EXIT_CODE

ASG = "celery-cluster-dev-default"
INSTANCE = "i-0abc1234def567890"
IDLE_S = 60.0
AFTER_S = 30.0


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


def start_task(busy_dir: Path, task: str, started: float) -> Path:
    """A live marker (this process's pid) for a task that started at `started` on the wall clock."""
    marker = busy_dir / f"{os.getpid()}.{task}"
    marker.touch()
    os.utime(marker, (started, started))
    return marker


def protection_at(client: Any, busy_dir: Path, clock: list[float]) -> ScaleInProtection:
    """The agent's protection with its wall clock at `clock[0]` (the same seconds as `update(now)`)."""
    return ScaleInProtection(
        client, ASG, INSTANCE, str(busy_dir), idle_seconds=IDLE_S, after_seconds=AFTER_S, wall_clock=lambda: clock[0]
    )


def test_busy_markers_count_only_live_processes(tmp_path: Path) -> None:
    start_task(tmp_path, "task-1", 1000.0)
    start_task(tmp_path, "task-2", 1040.0)
    # A pool process that died mid-task: its pid is gone (pid_max is far below this).
    (tmp_path / "4194999.task-3").touch()
    (tmp_path / "not-a-marker").touch()
    assert busy.running_tasks(tmp_path) == 2
    assert busy.running_tasks(tmp_path / "gone") == 0
    assert sorted(busy.running_task_ages(tmp_path, 1050.0)) == [10.0, 50.0]
    assert busy.running_task_ages(tmp_path / "gone", 1050.0) == []


def test_short_tasks_never_protect(tmp_path: Path, autoscaling: tuple[Any, Stubber]) -> None:
    """Back-to-back tasks shorter than the threshold, for five idle periods: the only call is the
    first clear (an earlier agent may have left the instance protected), never a protection."""
    client, stubber = autoscaling
    clock = [0.0]
    protection = protection_at(client, tmp_path, clock)
    expect_protection(stubber, False)
    for task in range(int(5 * IDLE_S / 20)):
        marker = start_task(tmp_path, f"t{task}", clock[0])
        for _ in range(5):  # a poll every 5 s, the task runs 20 s (< AFTER_S)
            assert protection.update(clock[0]) is not True
            clock[0] += 5.0
        marker.unlink()
    assert protection.changes == [False]


def test_protected_once_a_task_has_run_the_threshold_and_released_after_the_hysteresis(
    tmp_path: Path, autoscaling: tuple[Any, Stubber]
) -> None:
    client, stubber = autoscaling
    clock = [0.0]
    protection = protection_at(client, tmp_path, clock)
    long = start_task(tmp_path, "long", 0.0)
    clock[0] = AFTER_S - 1
    assert protection.update(clock[0]) is None  # young: not yet
    expect_protection(stubber, True)
    clock[0] = AFTER_S
    assert protection.update(clock[0]) is True
    long.unlink()  # the long task ends at 100 s
    # Short tasks start and end within the hysteresis: they neither extend nor drop it, no call.
    for now in (100.0, 110.0, 120.0):
        clock[0] = now
        short = start_task(tmp_path, f"short-{now}", now)
        assert protection.update(now) is True
        clock[0] = now + 5
        assert protection.update(now + 5) is True
        short.unlink()
    clock[0] = 100.0 + IDLE_S - 1
    assert protection.update(clock[0]) is True
    expect_protection(stubber, False)
    clock[0] = 100.0 + IDLE_S
    assert protection.update(clock[0]) is False
    clock[0] = 100.0 + 2 * IDLE_S
    assert protection.update(clock[0]) is False
    assert protection.changes == [True, False]


def test_a_second_long_task_keeps_the_protection_without_a_call(
    tmp_path: Path, autoscaling: tuple[Any, Stubber]
) -> None:
    client, stubber = autoscaling
    clock = [AFTER_S]
    protection = protection_at(client, tmp_path, clock)
    first = start_task(tmp_path, "first", 0.0)
    expect_protection(stubber, True)
    assert protection.update(clock[0]) is True
    start_task(tmp_path, "second", 40.0)
    first.unlink()  # ends at 50 s; the second reaches the threshold at 70 s, within the hysteresis
    for now in (50.0, 70.0, 70.0 + IDLE_S):
        clock[0] = now
        assert protection.update(now) is True
    assert protection.changes == [True]


def test_an_idle_instance_clears_a_protection_left_by_an_earlier_agent(
    tmp_path: Path, autoscaling: tuple[Any, Stubber]
) -> None:
    client, stubber = autoscaling
    protection = protection_at(client, tmp_path, [0.0])
    assert protection.update(0.0) is None
    expect_protection(stubber, False)
    assert protection.update(IDLE_S) is False


def test_a_refused_call_is_retried_at_the_next_poll(tmp_path: Path, autoscaling: tuple[Any, Stubber]) -> None:
    client, stubber = autoscaling
    protection = protection_at(client, tmp_path, [AFTER_S])
    start_task(tmp_path, "task", 0.0)
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


def test_a_worker_with_a_bad_setting_is_not_restarted_and_its_failure_unit_marks_the_instance(
    autoscaling: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path from a bad setting to SetInstanceHealth, read from the image's units: the worker's
    settings status is one systemd does not restart on, so the unit enters "failed" and its OnFailure=
    unit runs; that unit's own command line, run here with the pool's drain settings, marks the
    instance unhealthy (RestartPreventExitStatus=, systemd.service(5); OnFailure=, systemd.unit(5))."""
    worker = unit_settings(WORKER_UNIT)
    assert str(SETTINGS_EXIT_CODE) in restart_prevented(WORKER_UNIT)
    (failed_unit,) = worker["OnFailure"]
    failed = unit_settings(failed_unit)
    assert failed["EnvironmentFile"] == [POOL_ENV], "it reads the drain settings user data writes"
    (command,) = failed["ExecStart"]
    program, *argv = command.split()
    assert program.endswith("/celery-cluster-drain")

    client, stubber = autoscaling
    stubber.add_response(
        "set_instance_health",
        {},
        {"InstanceId": INSTANCE, "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": False},
    )
    monkeypatch.setattr(boto3, "client", lambda *_, **__: client)
    with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, _):
        monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "drain")
        monkeypatch.setenv("DRAIN_IMDS_ENDPOINT", endpoint)
        assert drain.main(argv) == 0
