"""The drain loop (`DrainAgent.drain`) on the agent's own clock: when it heartbeats, requeues, gives up and
completes, and how a Spot notice shortens a scale-in drain. Real IMDS server (loopback), Auto Scaling
through a Stubber-checked client; time is the clock the agent is given (its `sleep` advances it), so
the schedule is exact and load cannot move it. The worker is a recording implementation of the agent's
`WorkerControl` (the systemd one is tested in test_drain_agent.py; a real worker in
tests/integration/test_drain.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import structlog
from botocore.config import Config
from botocore.stub import Stubber
from structlog.testing import capture_logs

from tests.support.fake_imds import ImdsState, fake_imds
from tests.support.lifecycle_stub import COMPLETE, HEARTBEAT, LifecycleStub, RefusingStub
from worker.drain import agent as drain
from worker.drain.settings import load_settings
from worker.instance.imds import ASG_TAG_PATH, LIFECYCLE_STATE_PATH, SPOT_ACTION_PATH, Imds
from worker.runtime.settings import SETTINGS_EXIT_CODE

T0 = 1000.0
WALL0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's logger, unbound: once `main` has configured logging (another test), structlog caches
    each logger on first use and `capture_logs` would see nothing."""
    monkeypatch.setattr(drain, "log", structlog.get_logger("worker.drain.agent"))


@dataclass
class Worker:
    """Stops `stops_after` seconds after it is asked to (never when None); records what it was asked, when."""

    clock: list[float]
    stops_after: float | None
    requeue_fails: bool = False
    asked: list[tuple[str, float]] = field(default_factory=list)

    def stop(self) -> None:
        self.asked.append(("stop", self.clock[0] - T0))

    def requeue(self) -> None:
        self.asked.append(("requeue", self.clock[0] - T0))
        if self.requeue_fails:
            raise OSError("systemctl: no such unit")

    def stopped(self) -> bool:
        return self.stops_after is not None and self.clock[0] - T0 >= self.stops_after


@dataclass
class Rig:
    agent: drain.DrainAgent
    worker: Worker
    stub: LifecycleStub
    imds: ImdsState
    clock: list[float]
    sleeps: list[float]
    at: dict[float, Any] = field(default_factory=dict)  # seconds -> action run by the sleep that reaches it

    def heartbeats(self) -> int:
        return len(self.stub.of(HEARTBEAT))


@pytest.fixture
def rig_factory() -> Iterator[Any]:
    made: list[Any] = []

    def make(stops_after: float | None, *, refusing: bool = False, requeue_fails: bool = False, **settings: Any) -> Rig:
        context = fake_imds(instance_id="i-0feedfacecafe0001", asg_name="pool")
        made.append(context)
        endpoint, imds = context.__enter__()
        clock = [T0]
        worker = Worker(clock, stops_after, requeue_fails)
        stub = (RefusingStub if refusing else LifecycleStub)("hook", "pool", "i-0feedfacecafe0001", lambda: True)
        values = {"poll_interval": 5.0, "heartbeat_interval": 30.0, "timeout": 300.0, "spot_margin": 10.0} | settings
        lifecycle = drain.LifecycleAction(stub.client, "hook", "pool", "i-0feedfacecafe0001")
        agent = drain.DrainAgent(
            load_settings(lifecycle_hook_name="hook", imds_endpoint=endpoint, **values),
            Imds(endpoint=endpoint),
            worker,
            lifecycle,
            clock=lambda: clock[0],
            wall_clock=lambda: WALL0 + timedelta(seconds=clock[0] - T0),
        )
        rig = Rig(agent, worker, stub, imds, clock, [])

        def sleep(seconds: float) -> None:
            assert seconds >= 0
            rig.sleeps.append(seconds)
            before = clock[0] - T0
            clock[0] += seconds
            for when in [w for w in rig.at if before < w <= clock[0] - T0]:
                rig.at.pop(when)()

        agent.sleep = sleep
        return rig

    yield make
    for context in made:
        context.__exit__(None, None, None)


def test_a_scale_in_drain_heartbeats_until_the_worker_stops_then_completes(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=70.0)
    outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 300))
    assert outcome.events == ["stop", "heartbeat", "heartbeat", "heartbeat", "stopped", "complete"]
    assert (outcome.reason, outcome.worker_stopped, outcome.completed) == ("scale-in", True, True)
    assert (outcome.heartbeats, rig.heartbeats(), outcome.seconds) == (3, 3, 70.0)
    assert rig.worker.asked == [("stop", 0.0)]  # no requeue: the window never ran short
    assert max(rig.sleeps) == 0.25  # checks the worker four times a second
    (complete,) = rig.stub.of(COMPLETE)
    assert complete.params == {**rig.stub.ids, "LifecycleActionResult": "CONTINUE"}
    assert rig.stub.of(HEARTBEAT)[0].params == rig.stub.ids


def test_a_drain_that_runs_out_requeues_five_seconds_before_its_deadline(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None, heartbeat_interval=8.0)
    with capture_logs() as logs:
        outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 20))
    assert rig.worker.asked == [("stop", 0.0), ("requeue", 15.0)]
    assert outcome.events == ["stop", "heartbeat", "heartbeat", "requeue", "heartbeat", "deadline", "complete"]
    assert (outcome.worker_stopped, outcome.completed, outcome.heartbeats, outcome.seconds) == (False, True, 3, 20.0)
    assert logs == [
        {"event": "drain.start", "log_level": "info", "reason": "scale-in", "deadline_s": 20.0},
        {"event": "drain.requeue", "log_level": "warning", "reason": "scale-in"},
        {"event": "drain.window_ran_out", "log_level": "error", "reason": "scale-in"},
        {
            "event": "drain.finished",
            "log_level": "info",
            "reason": "scale-in",
            "worker_stopped": False,
            "heartbeats": 3,
            "completed": True,
            "seconds": 20.0,
        },
    ]


def test_a_worker_that_stops_on_requeue_ends_the_drain_before_its_deadline(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=16.0)
    outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 20))
    assert outcome.events == ["stop", "heartbeat", "requeue", "stopped", "complete"]
    assert outcome.seconds == 16.0


def test_a_failed_requeue_is_logged_and_the_drain_goes_on(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None, requeue_fails=True)
    with capture_logs() as logs:
        outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 10))
    assert outcome.events[-2:] == ["deadline", "complete"]
    assert {"event": "drain.requeue_failed", "log_level": "error", "error": "systemctl: no such unit"} in logs


def test_a_spot_notice_during_a_scale_in_drain_brings_its_deadline_forward(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None)
    # EC2 posts the notice 7 s in, for an interruption 67 s after the drain began; the poll at 10 s sees it.
    spot = json.dumps({"action": "terminate", "time": (WALL0 + timedelta(seconds=67)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    rig.at[7.0] = lambda: rig.imds.set(SPOT_ACTION_PATH, spot)
    outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 300))
    # Deadline 67 - 10 (spot margin) = 57 s; requeue 5 s before it.
    assert rig.worker.asked == [("stop", 0.0), ("requeue", 52.0)]
    assert (outcome.events[-2:], outcome.seconds) == (["deadline", "complete"], 57.0)
    assert rig.imds.reads.count(SPOT_ACTION_PATH) == 11  # every 5 s until it was seen, then every 5 s on


def test_a_spot_drain_does_not_poll_for_spot_notices(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=30.0)
    outcome = rig.agent.drain(drain.Notice("spot", T0 + 100))
    assert (outcome.reason, outcome.seconds) == ("spot", 30.0)
    assert SPOT_ACTION_PATH not in rig.imds.reads


def test_an_imds_error_while_draining_keeps_the_deadline(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None)
    rig.imds.set(SPOT_ACTION_PATH, '{"action": "explode"}')
    with capture_logs() as logs:
        outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 12))
    assert outcome.seconds == 12.0
    assert next(e for e in logs if e["event"] == "imds.poll_failed")["log_level"] == "warning"


def test_a_refused_lifecycle_action_is_logged_and_counted_as_not_done(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=1.0, refusing=True)
    with capture_logs() as logs:
        outcome = rig.agent.drain(drain.Notice("scale-in", T0 + 300))
    assert (outcome.heartbeats, rig.heartbeats(), outcome.completed, outcome.worker_stopped) == (0, 1, False, True)
    refused = [e for e in logs if e["event"] == "lifecycle.refused"]
    assert refused == [
        {
            "event": "lifecycle.refused",
            "log_level": "warning",
            "operation": operation,
            "error": "No active Lifecycle Action found with instance ID i-0feedfacecafe0001",
        }
        for operation in ("record_lifecycle_action_heartbeat", "complete_lifecycle_action")
    ]
    assert outcome.events == ["stop", "stopped", "complete"]


def test_the_agent_waits_through_imds_errors_for_a_notice_then_drains(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None)
    rig.imds.set(SPOT_ACTION_PATH, '{"action": "explode"}')  # an unreadable notice: retried, not fatal
    rig.at[10.0] = lambda: rig.imds.set(SPOT_ACTION_PATH, None)
    rig.at[12.0] = lambda: rig.imds.set(LIFECYCLE_STATE_PATH, "Terminated")
    rig.worker.stops_after = 17.0  # 2 s into the drain that starts at 15 s
    with capture_logs() as logs:
        outcome = rig.agent.run()
    assert outcome is not None
    assert (outcome.reason, outcome.worker_stopped, outcome.seconds) == ("scale-in", True, 2.0)
    assert rig.sleeps[:3] == [5.0, 5.0, 5.0]  # polled at 0, 5, 10 and 15 s
    assert [e["log_level"] for e in logs if e["event"] == "imds.poll_failed"] == ["warning", "warning"]
    assert rig.worker.asked == [("stop", 15.0)]


def test_the_agent_stops_waiting_when_asked(rig_factory: Any) -> None:
    rig = rig_factory(stops_after=None)
    assert rig.agent.run(lambda: rig.clock[0] - T0 >= 20) is None
    assert rig.sleeps == [5.0] * 4
    assert rig.worker.asked == []


@pytest.fixture
def drain_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ImdsState, Stubber]]:
    """`celery-cluster-drain` as systemd starts it: DRAIN_* from the environment, IMDS on loopback, and
    Auto Scaling through a Stubber (`boto3.client` hands it out)."""
    for name in [n for n in os.environ if n.startswith("DRAIN_")]:
        monkeypatch.delenv(name)
    client = boto3.client("autoscaling", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
    monkeypatch.setattr(boto3, "client", lambda *_, **__: client)
    with fake_imds(instance_id="i-0feedfacecafe0001", asg_name="pool") as (endpoint, imds), Stubber(client) as stub:
        monkeypatch.setenv("DRAIN_LIFECYCLE_HOOK_NAME", "hook")
        monkeypatch.setenv("DRAIN_IMDS_ENDPOINT", endpoint)
        monkeypatch.setenv("DRAIN_POLL_INTERVAL", "0.01")
        yield imds, stub


def test_mark_unhealthy_exits_by_whether_auto_scaling_took_it(
    drain_env: tuple[ImdsState, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    _, stub = drain_env
    ids = {"InstanceId": "i-0feedfacecafe0001", "HealthStatus": "Unhealthy", "ShouldRespectGracePeriod": False}
    stub.add_response("set_instance_health", {}, ids)
    assert drain.main(["--mark-unhealthy"]) == 0
    stub.add_client_error("set_instance_health", service_error_code="Throttling", service_message="slow down")
    assert drain.main(["--mark-unhealthy"]) == 1
    # The last line: the agent logs on stderr too, as JSON (the journal ships it to CloudWatch as is).
    err = capsys.readouterr().err.splitlines()
    assert json.loads(err[0])["level"] == "info"
    assert err[-1].startswith("celery-cluster-drain: could not mark the instance unhealthy: An error occurred")
    stub.assert_no_pending_responses()


def test_wait_in_service_returns_once_in_service(drain_env: tuple[ImdsState, Stubber]) -> None:
    imds, _ = drain_env
    assert drain.main(["--wait-in-service"]) == 0
    assert LIFECYCLE_STATE_PATH in imds.reads


def test_a_group_name_neither_set_nor_in_metadata_is_a_bad_setting_unreachable_metadata_is_retried(
    drain_env: tuple[ImdsState, Stubber], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    imds, _ = drain_env
    imds.set(ASG_TAG_PATH, None)
    assert drain.main(["--check"]) == SETTINGS_EXIT_CODE  # celery-drain.service does not restart it
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith("celery-cluster-drain: invalid setting DRAIN_ASG_NAME: is not set")
    )
    monkeypatch.setenv("DRAIN_ASG_NAME", "pool")
    assert drain.main(["--check"]) == 0
    monkeypatch.setenv("DRAIN_IMDS_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    assert drain.main(["--check"]) == 2  # systemd retries it
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("celery-cluster-drain: ")
    assert "invalid setting" not in last


def test_an_unreachable_auto_scaling_endpoint_is_logged_and_not_taken_for_done() -> None:
    """A network failure (botocore's, not an answer from AWS) must not count as a completed action: main
    then exits 1 and systemd runs the agent again."""
    client = boto3.client(
        "autoscaling",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: refused at once
        aws_access_key_id="t",
        aws_secret_access_key="t",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2),
    )
    action = drain.LifecycleAction(client, "hook", "pool", "i-0feedfacecafe0001")
    with capture_logs() as logs:
        assert action.complete() is False
        assert action.heartbeat() is False
    assert [(e["event"], e["log_level"], e["operation"]) for e in logs] == [
        ("lifecycle.failed", "error", "complete_lifecycle_action"),
        ("lifecycle.failed", "error", "record_lifecycle_action_heartbeat"),
    ]
    assert all("127.0.0.1:9" in e["error"] for e in logs)


def test_without_a_busy_directory_the_agent_protects_nothing() -> None:
    with fake_imds(asg_name="pool") as (endpoint, _):
        settings = load_settings(lifecycle_hook_name="hook", imds_endpoint=endpoint)
        agent = drain.build_agent(settings, autoscaling=object())
    assert agent.protection is None
