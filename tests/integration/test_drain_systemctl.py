"""The drain agent drives the worker's unit through systemctl: a stand-in `systemctl` on PATH (a
subprocess the agent starts) records the calls and plays the unit's state; Auto Scaling is a
Stubber-checked client, the metadata service the loopback IMDS server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.support.fake_imds import fake_imds
from tests.support.lifecycle_stub import COMPLETE, LifecycleStub, RefusingStub
from worker.drain import agent as drain
from worker.instance.imds import LIFECYCLE_STATE_PATH


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRAIN_"):
            monkeypatch.delenv(name)


def test_systemd_unit_control_runs_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a VM the agent drives the worker through systemctl: a stand-in on PATH records the calls."""
    calls = tmp_path / "calls"
    state = tmp_path / "state"
    state.write_text("active\n")
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n[ "$1" = show ] && cat {state}\nexit 0\n')
    systemctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    unit = drain.SystemdUnit("celery-worker.service")
    assert not unit.stopped()
    unit.stop()
    state.write_text("deactivating\n")
    assert not unit.stopped()
    state.write_text("inactive\n")
    assert unit.stopped()
    state.write_text("failed\n")
    assert unit.stopped()
    unit.requeue()
    lines = calls.read_text().splitlines()
    assert lines[1] == "stop --no-block celery-worker.service"
    assert lines[0] == "show --property=ActiveState --value celery-worker.service"
    assert lines[-1] == "kill --kill-whom=main --signal=SIGQUIT celery-worker.service"
    # A refused systemctl is an error the agent sees (and logs), not a silent success.
    systemctl.write_text("#!/bin/sh\nexit 1\n")
    for action in (unit.stop, unit.requeue, unit.stopped):
        with pytest.raises(subprocess.CalledProcessError):
            action()


@pytest.mark.parametrize(
    ("stub_kind", "unit_stops", "exit_code", "completes_sent"),
    [
        ("accepting", True, 0, 1),  # the drain as it should go: worker stopped, hook completed
        ("refusing", True, 0, 1),  # "No active Lifecycle Action": the worker is down, nothing waits on us
        ("refusing", False, 1, 1),  # neither: exit 1, so systemd restarts the agent and it tries again
    ],
)
def test_main_drains_through_systemd_and_exits_by_what_it_achieved(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stub_kind: str,
    unit_stops: bool,
    exit_code: int,
    completes_sent: int,
) -> None:
    """`celery-cluster-drain` as systemd runs it: settings from DRAIN_*, the worker unit driven through
    systemctl (a stand-in on PATH), Auto Scaling through a Stubber-checked client."""
    state = tmp_path / "state"
    state.write_text("active\n")
    stops_to = "inactive" if unit_stops else "active"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\nif [ "$1" = stop ]; then echo {stops_to} > {state}; exit 0; fi\ncat {state}\n')
    systemctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    stub_type = LifecycleStub if stub_kind == "accepting" else RefusingStub
    stub = stub_type(
        "pool-drain", "pool", "i-0feedfacecafe0001", worker_running=lambda: state.read_text().strip() == "active"
    )
    made: list[dict[str, object]] = []

    def client(service: str, **kwargs: object) -> object:
        made.append({"service": service, **kwargs})
        return stub.client

    monkeypatch.setattr(boto3, "client", client)
    with fake_imds(instance_id="i-0feedfacecafe0001", region="eu-west-1", asg_name="pool") as (endpoint, imds):
        imds.set(LIFECYCLE_STATE_PATH, "Terminated")
        for name, value in {
            "DRAIN_LIFECYCLE_HOOK_NAME": "pool-drain",
            "DRAIN_IMDS_ENDPOINT": endpoint,
            "DRAIN_POLL_INTERVAL": "0.05",
            "DRAIN_HEARTBEAT_INTERVAL": "0.05",
            "DRAIN_TIMEOUT": "0.5",
        }.items():
            monkeypatch.setenv(name, value)
        assert drain.main([]) == exit_code

    (made_client,) = made
    assert (made_client["service"], made_client["region_name"]) == ("autoscaling", "eu-west-1")
    config = made_client["config"]
    assert config.retries == {"mode": "standard", "max_attempts": 5}  # type: ignore[attr-defined]
    assert (config.connect_timeout, config.read_timeout) == (5, 10)  # type: ignore[attr-defined]
    completes = stub.of(COMPLETE)
    assert len(completes) == completes_sent
    assert completes[0].params == {**stub.ids, "LifecycleActionResult": "CONTINUE"}
    assert completes[0].worker_running is not unit_stops
