"""Drain agent settings and its IMDSv2 client (against the loopback IMDS server); the agent driving
systemctl is in tests/integration/test_drain_systemctl.py."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.stub import Stubber

from infra.vm.files import DRAIN_UNIT
from tests.support.fake_imds import fake_imds
from tests.support.units import restart_prevented
from worker.drain import agent as drain
from worker.drain.settings import DrainSettingsError, load_settings
from worker.instance.imds import LIFECYCLE_STATE_PATH, SPOT_ACTION_PATH, Imds, MetadataError
from worker.runtime.settings import SETTINGS_EXIT_CODE


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
        ("DRAIN_PROTECT_AFTER_SECONDS", "-1", "greater than or equal to 0"),
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


def test_missing_hook_name_is_named_and_main_exits_with_the_settings_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(DrainSettingsError, match=r"^DRAIN_LIFECYCLE_HOOK_NAME: is required"):
        load_settings()
    # 64, which celery-drain.service does not restart (a restart reads the same pool.env).
    assert drain.main([]) == SETTINGS_EXIT_CODE
    assert str(SETTINGS_EXIT_CODE) in restart_prevented(DRAIN_UNIT)
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


def test_check_validates_settings_and_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_imds(asg_name="pool") as (endpoint, state):
        monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "drain")
        monkeypatch.setenv("DRAIN_IMDS_ENDPOINT", endpoint)
        assert drain.main(["--check"]) == 0
        assert state.rejected == []
        assert "/latest/meta-data/instance-id" in state.reads
        state.set("/latest/meta-data/instance-id", None)
        assert drain.main(["--check"]) == 2


def test_scale_in_notice_gives_the_drain_the_whole_window(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_imds(asg_name="pool") as (endpoint, state):
        agent = drain.build_agent(
            load_settings(lifecycle_hook_name="hook", imds_endpoint=endpoint, timeout=300), autoscaling=object()
        )
        agent.clock = lambda: 1000.0
        assert agent.check() is None
        state.set(LIFECYCLE_STATE_PATH, "Terminated")
        assert agent.check() == drain.Notice("scale-in", 1300.0)
        state.set(LIFECYCLE_STATE_PATH, "InService")
        assert agent.check() is None


def test_a_spot_notice_already_past_leaves_no_time_at_all() -> None:
    with fake_imds(asg_name="pool") as (endpoint, state):
        state.set(SPOT_ACTION_PATH, json.dumps({"action": "terminate", "time": "2026-01-01T12:00:00Z"}))
        agent = drain.build_agent(
            load_settings(lifecycle_hook_name="hook", imds_endpoint=endpoint, spot_margin=10), autoscaling=object()
        )
        agent.clock = lambda: 1000.0
        agent.wall_clock = lambda: datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
        assert agent.check() == drain.Notice("spot", 1000.0)


def test_a_validator_message_is_the_whole_line() -> None:
    with pytest.raises(DrainSettingsError) as caught:
        load_settings(lifecycle_hook_name="hook", imds_endpoint="ftp://169.254.169.254")
    assert str(caught.value) == "DRAIN_IMDS_ENDPOINT: must be an http:// URL with a host"


def test_the_agent_protects_its_instance_only_for_a_task_past_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's poll loop (real IMDS server, real busy markers, SetInstanceProtection on Stubber),
    with DRAIN_PROTECT_AFTER_SECONDS from the environment: a task younger than it leaves the instance
    alone; the poll after the task reaches it protects the instance, once."""
    after_s, poll_s, wall0 = 12.0, 5.0, 1_000_000.0
    monkeypatch.setenv("DRAIN_PROTECT_AFTER_SECONDS", str(after_s))
    client = boto3.client(
        "autoscaling", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    clock = [0.0]
    with fake_imds(instance_id="i-0abc1234def567890", asg_name="pool") as (endpoint, _), Stubber(client) as stubber:
        settings = load_settings(
            lifecycle_hook_name="hook", imds_endpoint=endpoint, busy_dir=str(tmp_path), poll_interval=poll_s
        )
        agent = drain.build_agent(settings, autoscaling=client)
        assert agent.protection is not None
        assert agent.protection.after_seconds == after_s
        agent.protection.wall_clock = lambda: wall0 + clock[0]
        agent.clock = lambda: clock[0]
        polls: list[tuple[float, bool | None]] = []

        def sleep(seconds: float) -> None:
            assert agent.protection is not None
            polls.append((clock[0], agent.protection.protected))
            clock[0] += seconds

        agent.sleep = sleep
        marker = tmp_path / f"{os.getpid()}.task"
        marker.touch()
        os.utime(marker, (wall0, wall0))  # the task starts at 0 s
        stubber.add_response(
            "set_instance_protection",
            {},
            {"InstanceIds": ["i-0abc1234def567890"], "AutoScalingGroupName": "pool", "ProtectedFromScaleIn": True},
        )
        assert agent.wait_for_notice(lambda: clock[0] > 4 * poll_s) is None
        stubber.assert_no_pending_responses()
    # Polls at 0, 5, 10 s see a younger task; the one at 15 s (first past 12 s) protects.
    assert polls == [(0.0, None), (5.0, None), (10.0, None), (15.0, True), (20.0, True)]
    assert agent.protection.changes == [True]
