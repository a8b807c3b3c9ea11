"""The drain agent in the cases tests/integration/test_drain.py does not cover: a worker on RabbitMQ, a
Spot notice in the middle of a scale-in drain, a lifecycle action that no longer exists ("No active
Lifecycle Action"), and an agent restarted (systemd `Restart=`) while its worker was already draining.
Real IMDSv2 server on loopback, real worker processes, lifecycle calls on a Stubber-checked client."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery

from infra.local.accounting import tally
from infra.local.workers import WorkerProcess, wait_for_workers
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from tests.support.drain import (
    ASG,
    HOOK,
    INSTANCE,
    ProcessControl,
    agent_for,
    start_stubborn,
    wait_for_active,
)
from tests.support.fake_imds import fake_imds
from tests.support.lifecycle_stub import COMPLETE, HEARTBEAT, LifecycleStub, RefusingStub
from worker.drain.agent import DrainAgent, DrainOutcome
from worker.instance.imds import LIFECYCLE_STATE_PATH, SPOT_ACTION_PATH
from worker.runtime import journal
from worker.sender import sender_app

pytestmark = pytest.mark.timeout(180)

TASK_SECONDS = 2.0
TASKS = 4
WINDOW_S = 20


@dataclass
class Pool:
    """A worker's broker and queue, and the journal that counts its tasks."""

    broker_url: str
    journal_url: str
    queue: str
    log_dir: Path

    def worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(
            name=name,
            queues=[self.queue],
            broker_url=self.broker_url,
            log_path=self.log_dir / f"{name}.log",
            concurrency=2,
            env={"CELERY_JOURNAL_URL": self.journal_url, "CELERY_SOFT_SHUTDOWN_TIMEOUT": str(WINDOW_S)},
        ).start()

    def busy_worker(self, name: str) -> tuple[WorkerProcess, Celery, list[str]]:
        """A worker with tasks running and more waiting."""
        worker = self.worker(name)
        app = sender_app(self.broker_url)
        wait_for_workers(app, 1, timeout=60)
        ids = [app.send_task("cluster.sleep", args=[TASK_SECONDS], queue=self.queue).id for _ in range(TASKS)]
        wait_for_active(app, 2)
        return worker, app, ids

    def assert_none_lost(self, ids: list[str]) -> None:
        """A second worker takes what the drained one left; the journal must count every task once."""
        client = redis.Redis.from_url(self.journal_url)
        survivor = self.worker(f"survivor-{uuid.uuid4().hex[:6]}")
        try:
            deadline = time.monotonic() + 60
            while tally(ids, journal.read(client)).lost and time.monotonic() < deadline:
                time.sleep(0.2)
            counted = tally(ids, journal.read(client))
        finally:
            survivor.stop(timeout=30)
            client.close()
        assert (counted.sent, counted.lost, counted.duplicates) == (TASKS, 0, 0), counted


@pytest.fixture
def redis_pool(journal_url: str, tmp_path: Path) -> Iterator[Pool]:
    with RedisServer(appendonly=False) as server:
        yield Pool(server.url, journal_url, "default", tmp_path)


def spot_action(seconds_from_now: float) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return json.dumps({"action": "terminate", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ")})


@pytest.mark.rabbitmq
def test_scale_in_drains_a_worker_on_rabbitmq(
    rabbitmq_server: RabbitMQServer, journal_url: str, tmp_path: Path
) -> None:
    pool = Pool(rabbitmq_server.url, journal_url, f"drain-{uuid.uuid4().hex[:8]}", tmp_path)
    worker, app, ids = pool.busy_worker("rabbit-draining")
    stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
    try:
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(LIFECYCLE_STATE_PATH, "Terminated")
            outcome = agent_for(endpoint, worker, stub).run()
    finally:
        worker.stop(timeout=30)
        app.close()
    assert outcome is not None
    assert (outcome.reason, outcome.worker_stopped, outcome.completed) == ("scale-in", True, True)
    assert outcome.events[-2:] == ["stopped", "complete"]
    assert worker.process is not None
    assert worker.process.returncode == 0
    assert len(stub.of(COMPLETE)) == 1
    assert not stub.of(COMPLETE)[0].worker_running
    pool.assert_none_lost(ids)


def test_a_spot_notice_during_a_scale_in_drain_brings_its_deadline_forward(tmp_path: Path) -> None:
    """A worker that ignores SIGTERM (and the SIGQUIT that requeues before the deadline); the scale-in
    window (60 s) would hold it, the Spot notice must not."""
    stubborn = start_stubborn(90)
    worker = WorkerProcess("stubborn", [], "redis://unused", tmp_path / "unused.log", process=stubborn)
    stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
    result: list[DrainOutcome | None] = []
    try:
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(LIFECYCLE_STATE_PATH, "Terminated")
            agent = agent_for(endpoint, worker, stub)  # scale-in window 60 s, Spot margin 5 s
            thread = threading.Thread(target=lambda: result.append(agent.run()))
            thread.start()
            deadline = time.monotonic() + 30
            while not stub.of(HEARTBEAT):  # the scale-in drain is under way
                assert time.monotonic() < deadline, "the agent never started draining"
                time.sleep(0.05)
            interruption_in = 10.0
            state.set(SPOT_ACTION_PATH, spot_action(interruption_in))
            raised_at = time.monotonic()
            thread.join(90)
            assert not thread.is_alive()
    finally:
        stubborn.kill()
        stubborn.wait(10)
    (outcome,) = result
    assert outcome is not None
    assert outcome.reason == "scale-in"
    assert outcome.events[-2:] == ["deadline", "complete"]
    (complete,) = stub.of(COMPLETE)
    # Completed at the Spot deadline (interruption less the margin), long before the scale-in window's end.
    assert complete.at < raised_at + interruption_in, "the Spot notice did not shorten the drain"
    assert complete.worker_running


def test_no_active_lifecycle_action_still_drains_the_worker(redis_pool: Pool) -> None:
    """A Spot interruption of an instance no hook holds: every lifecycle call is refused, the worker is
    drained all the same, and the agent ends as done (its process exits 0 on `worker_stopped`)."""
    worker, app, ids = redis_pool.busy_worker("no-action")
    stub = RefusingStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
    try:
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(SPOT_ACTION_PATH, spot_action(60))
            outcome = agent_for(endpoint, worker, stub).run()
    finally:
        worker.stop(timeout=30)
        app.close()
    assert outcome is not None
    assert (outcome.reason, outcome.worker_stopped, outcome.completed, outcome.heartbeats) == ("spot", True, False, 0)
    assert outcome.events[-2:] == ["stopped", "complete"]
    assert stub.of(HEARTBEAT), "the agent never tried to heartbeat"
    assert len(stub.of(COMPLETE)) == 1, "a refused completion must not be retried"
    redis_pool.assert_none_lost(ids)


@dataclass
class UnitControl(ProcessControl):
    """`systemctl stop` semantics: a stop of a unit that is already stopping joins that stop (no second signal)."""

    signalled: bool = False

    def stop(self) -> None:
        if not self.signalled:
            self.signalled = True
            super().stop()


def test_a_restarted_agent_finishes_the_drain_its_predecessor_began(redis_pool: Pool) -> None:
    worker, app, ids = redis_pool.busy_worker("restarted")
    stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
    control = UnitControl(worker)
    try:
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(LIFECYCLE_STATE_PATH, "Terminated")
            # The first agent stopped the worker and died before completing (killed, out of memory...).
            control.stop()
            assert worker.running(), "the tasks in flight should keep the worker draining"
            # systemd starts it again; the notice is still there and the worker is still draining.
            restarted = agent_for(endpoint, worker, stub)
            outcome = DrainAgent(restarted.settings, restarted.imds, control, restarted.lifecycle).run()
    finally:
        worker.stop(timeout=30)
        app.close()
    assert outcome is not None
    assert (outcome.reason, outcome.worker_stopped, outcome.completed) == ("scale-in", True, True)
    assert outcome.heartbeats >= 1
    assert all(c.worker_running for c in stub.of(HEARTBEAT))
    (complete,) = stub.of(COMPLETE)
    assert not complete.worker_running
    assert worker.process is not None
    assert worker.process.returncode == 0
    redis_pool.assert_none_lost(ids)
