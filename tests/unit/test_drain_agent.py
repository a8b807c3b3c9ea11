"""Drain agent settings and its IMDSv2 client (against the loopback IMDS server)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.fake_imds import fake_imds
from worker import drain
from worker.drain import DrainSettingsError, load_settings
from worker.imds import LIFECYCLE_STATE_PATH, SPOT_ACTION_PATH, Imds, MetadataError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRAIN_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DRAIN_POLL_INTERVAL", "often", "valid number"),
        ("DRAIN_POLL_INTERVAL", "0", "greater than 0"),
        ("DRAIN_HEARTBEAT_INTERVAL", "-1", "greater than 0"),
        ("DRAIN_TIMEOUT", "soon", "valid number"),
        ("DRAIN_SPOT_MARGIN", "130", "less than 120"),
        ("DRAIN_IMDS_TOKEN_TTL", "99999", "less than or equal to 21600"),
        ("DRAIN_IMDS_ENDPOINT", "ftp://169.254.169.254", "must be an http:// URL"),
        ("DRAIN_WORKER_UNIT", "worker; rm -rf /", "should match pattern"),
        ("DRAIN_REGION", "Europe", "should match pattern"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "hook")
    monkeypatch.setenv(variable, value)
    with pytest.raises(DrainSettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"{variable}: "), message
    assert fragment in message
    assert "\n" not in message


def test_missing_hook_name_is_named_and_main_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DrainSettingsError, match=r"^DRAIN_LIFECYCLE_HOOK_NAME: is required"):
        load_settings()
    assert drain.main([]) == 2
    assert "DRAIN_LIFECYCLE_HOOK_NAME: is required" in capsys.readouterr().err


def test_defaults_follow_aws_guidance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "hook")
    settings = load_settings()
    assert settings.poll_interval == 5.0  # AWS: check for Spot notices every 5 s
    assert settings.imds_endpoint == "http://169.254.169.254"
    assert settings.worker_unit == "celery-worker.service"


def test_imds_reads_with_a_token_and_renews_a_revoked_one() -> None:
    with fake_imds(instance_id="i-0fedcba9876543210", region="us-east-2", asg_name="pool") as (endpoint, state):
        client = Imds(endpoint=endpoint, token_ttl=60)
        assert client.instance_id() == "i-0fedcba9876543210"
        assert client.region() == "us-east-2"
        assert client.asg_name() == "pool"
        assert client.target_lifecycle_state() == "InService"
        assert client.spot_action() is None  # 404 until EC2 decides
        assert state.token_requests == 1
        state.revoke_tokens()
        state.set(LIFECYCLE_STATE_PATH, "Terminated")
        assert client.target_lifecycle_state() == "Terminated"
        assert state.token_requests == 2
        # The revoked token was refused once; every other read carried a live token.
        assert len(state.rejected) == 1
        assert "invalid token" in state.rejected[0]
        client.close()


def test_imds_refuses_reads_without_a_token() -> None:
    with fake_imds() as (endpoint, state):
        response = httpx.get(endpoint + LIFECYCLE_STATE_PATH, trust_env=False)
    assert response.status_code == 401
    assert state.rejected == [f"GET {LIFECYCLE_STATE_PATH}: no token"]


def test_spot_notice_sets_the_deadline_before_the_interruption(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "hook")
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    with fake_imds(asg_name="pool") as (endpoint, state):
        state.set(SPOT_ACTION_PATH, json.dumps({"action": "terminate", "time": "2026-01-01T12:01:30Z"}))
        agent = drain.build_agent(
            load_settings(imds_endpoint=endpoint, spot_margin=10), worker=None, autoscaling=object()
        )
        agent.clock = lambda: 1000.0
        agent.wall_clock = lambda: now
        notice = agent.check()
        assert notice is not None
        assert notice.reason == "spot"
        assert notice.deadline == 1000.0 + 90 - 10
        # A notice further out than two minutes is capped at two minutes.
        agent.wall_clock = lambda: now - timedelta(minutes=5)
        notice = agent.check()
        assert notice is not None
        assert notice.deadline == 1000.0 + 120 - 10
        state.set(SPOT_ACTION_PATH, '{"action": "explode"}')
        with pytest.raises(MetadataError, match="spot/instance-action"):
            agent.check()


def test_missing_asg_name_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_imds(asg_name=None) as (endpoint, _):
        settings = load_settings(lifecycle_hook_name="hook", imds_endpoint=endpoint)
        with pytest.raises(DrainSettingsError, match=r"^DRAIN_ASG_NAME: is not set"):
            drain.build_agent(settings, autoscaling=object())


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
    lines = calls.read_text().splitlines()
    assert lines[1] == "stop --no-block celery-worker.service"
    assert lines[0] == "show --property=ActiveState --value celery-worker.service"


def test_check_validates_settings_and_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_imds(asg_name="pool") as (endpoint, state):
        monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "drain")
        monkeypatch.setenv("DRAIN_IMDS_ENDPOINT", endpoint)
        assert drain.main(["--check"]) == 0
        assert state.rejected == []
        assert "/latest/meta-data/instance-id" in state.reads
        state.set("/latest/meta-data/instance-id", None)
        assert drain.main(["--check"]) == 2
