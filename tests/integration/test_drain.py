"""The drain agent against a real IMDSv2 server on loopback and a real worker with tasks in flight.

The worker runs `image/bin/start-worker` exactly as the VM's unit does; the agent stops it with
SIGTERM (the unit's stop signal, Celery soft shutdown). Lifecycle calls go to a Stubber-checked
boto3 client. Every task is counted through the execution journal: none is lost.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from infra.local.accounting import tally
from infra.local.workers import WorkerProcess, wait_for_workers
from infra.servers.redis import RedisServer
from tests.support.drain import ASG, HOOK, INSTANCE, agent_for, start_stubborn, wait_for_active
from tests.support.fake_imds import ImdsState, fake_imds
from tests.support.lifecycle_stub import COMPLETE, HEARTBEAT, LifecycleStub
from worker.drain.agent import DrainAgent, DrainOutcome
from worker.instance.imds import LIFECYCLE_STATE_PATH, SPOT_ACTION_PATH
from worker.runtime import journal
from worker.sender import sender_app

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

TASKS = 6
TASK_SECONDS = 1.5
SOFT_SHUTDOWN_S = 3
# Long enough to be running when the notice comes (an inspect round trip takes about a second).
LONGER_TASK_S = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False) as srv:
        yield srv


def start_worker(server: RedisServer, name: str, log_dir: Path, soft_shutdown: int = SOFT_SHUTDOWN_S) -> WorkerProcess:
    return WorkerProcess(
        name=name,
        queues=["default"],
        broker_url=server.url,
        log_path=log_dir / f"{name}.log",
        concurrency=2,
        env={
            "CELERY_JOURNAL_URL": journal_url(server),
            "CELERY_SOFT_SHUTDOWN_TIMEOUT": str(soft_shutdown),
        },
    ).start()


def journal_url(server: RedisServer) -> str:
    return server.url.removesuffix("/0") + "/1"


def wait_for_polls(state: ImdsState, count: int, timeout: float = 30) -> None:
    """Until the agent has read the lifecycle state `count` times from IMDS (observed polls)."""
    deadline = time.monotonic() + timeout
    while state.reads.count(LIFECYCLE_STATE_PATH) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the agent polled IMDS {state.reads.count(LIFECYCLE_STATE_PATH)} times in {timeout} s")
        time.sleep(0.05)


def drain_with_tasks_in_flight(
    server: RedisServer, tmp_path: Path, notice: Callable[[], dict[str, str]]
) -> tuple[DrainOutcome, LifecycleStub, ImdsState, WorkerProcess, list[str]]:
    """Start a worker, put tasks in flight, raise the notice in IMDS (made when it is raised, so a
    slow start-up spends none of its time), and let the agent drain it."""
    worker = start_worker(server, "draining", tmp_path)
    app = sender_app(server.url)
    try:
        wait_for_workers(app, 1, timeout=60)
        ids = [app.send_task("cluster.sleep", args=[TASK_SECONDS]).id for _ in range(TASKS)]
        wait_for_active(app, 2)
        stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            agent = agent_for(endpoint, worker, stub)
            result: list[DrainOutcome | None] = []
            quit_polling = threading.Event()
            thread = threading.Thread(target=lambda: result.append(agent.run(quit_polling.is_set)))
            thread.start()
            wait_for_polls(state, 3)  # a few polls that see nothing
            assert not stub.calls, "the agent acted before any notice"
            for path, value in notice().items():
                state.set(path, value)
            thread.join(90)
            quit_polling.set()
            assert not thread.is_alive(), "the drain did not finish"
        assert result
        assert result[0] is not None
        return result[0], stub, state, worker, ids
    finally:
        worker.stop(timeout=30)
        app.close()


def assert_no_task_lost(server: RedisServer, tmp_path: Path, ids: list[str]) -> None:
    """A second worker takes what the drained one left in the queue; the journal counts all."""
    client = redis.Redis.from_url(journal_url(server))
    # Stopped only once every task has run, so it needs no soft shutdown window.
    survivor = start_worker(server, "survivor", tmp_path, soft_shutdown=0)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and tally(ids, journal.read(client)).lost:
            time.sleep(0.2)
    finally:
        survivor.stop(timeout=30)
    counted = tally(ids, journal.read(client))
    assert counted.sent == TASKS
    assert counted.lost == 0, counted
    # A graceful drain runs nothing twice (duplicates are only for killed workers).
    assert counted.duplicates == 0, counted


def assert_drained(outcome: DrainOutcome, stub: LifecycleStub, state: ImdsState, worker: WorkerProcess) -> None:
    assert outcome.worker_stopped
    assert worker.process is not None
    assert worker.process.returncode == 0, "the worker did not exit cleanly"
    assert outcome.heartbeats >= 1
    assert len(stub.of(HEARTBEAT)) == outcome.heartbeats
    assert all(call.worker_running for call in stub.of(HEARTBEAT)), "heartbeats are sent while tasks drain"
    completes = stub.of(COMPLETE)
    assert len(completes) == 1
    assert completes[0].params["LifecycleActionResult"] == "CONTINUE"
    assert not completes[0].worker_running, "CompleteLifecycleAction was sent before the worker stopped"
    assert stub.calls[-1].operation == COMPLETE
    # Every call addressed this instance's lifecycle action, and AWS accepted the completion (a call the
    # Stubber refused would have been logged and not counted, so the counts above would differ).
    assert all({k: call.params[k] for k in stub.ids} == stub.ids for call in stub.calls)
    assert outcome.completed
    # IMDSv2 handshake: every read carried a live token.
    assert state.rejected == []
    assert state.token_requests >= 1


def test_scale_in_notice_drains_worker_and_completes_once(server: RedisServer, tmp_path: Path) -> None:
    outcome, stub, state, worker, ids = drain_with_tasks_in_flight(
        server, tmp_path, lambda: {LIFECYCLE_STATE_PATH: "Terminated"}
    )
    assert outcome.reason == "scale-in"
    assert_drained(outcome, stub, state, worker)
    assert_no_task_lost(server, tmp_path, ids)


def test_spot_notice_drains_worker_before_the_interruption(server: RedisServer, tmp_path: Path) -> None:
    raised: list[datetime] = []

    def spot_notice() -> dict[str, str]:
        # EC2 gives two minutes; a 40 s notice leaves the drain (3 s window) ample room under load.
        raised.append(datetime.now(UTC))
        action = {"action": "terminate", "time": (raised[0] + timedelta(seconds=40)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {SPOT_ACTION_PATH: json.dumps(action)}

    outcome, stub, state, worker, ids = drain_with_tasks_in_flight(server, tmp_path, spot_notice)
    assert outcome.reason == "spot"
    assert_drained(outcome, stub, state, worker)
    # Done because the worker stopped, not because the deadline the notice fixed (interruption less the
    # 5 s margin, on the agent's own clock) ran out.
    assert outcome.events[-2:] == ["stopped", "complete"], outcome.events
    assert_no_task_lost(server, tmp_path, ids)


def test_window_running_out_completes_at_the_deadline_not_before(tmp_path: Path) -> None:
    """A worker that ignores SIGTERM: the agent heartbeats until the window ends, then completes."""
    stubborn = start_stubborn(60)
    worker = WorkerProcess("stubborn", [], "redis://unused", tmp_path / "unused.log", process=stubborn)
    stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
    try:
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(LIFECYCLE_STATE_PATH, "Terminated")
            agent = agent_for(endpoint, worker, stub)
            agent = DrainAgent(
                agent.settings.model_copy(update={"timeout": 2.0}), agent.imds, agent.worker, agent.lifecycle
            )
            started = time.monotonic()
            outcome = agent.run()
    finally:
        stubborn.kill()
        stubborn.wait(10)
    assert outcome is not None
    assert not outcome.worker_stopped
    assert outcome.events[-2:] == ["deadline", "complete"]
    assert "requeue" in outcome.events, "the running tasks were not sent back before the deadline"
    completes = stub.of(COMPLETE)
    assert len(completes) == 1
    assert completes[0].at - started >= 2.0, "completed before the window ran out"
    assert completes[0].worker_running
    assert len(stub.of(HEARTBEAT)) >= 2


def test_drain_ends_as_soon_as_the_worker_is_idle(server: RedisServer, tmp_path: Path) -> None:
    """Tasks that end well inside a long window: the hook is completed once they end, not at the window.

    Celery's own soft shutdown slept its whole window whenever a task was running at the signal;
    worker.runtime.shutdown makes SIGTERM a warm shutdown bounded by the window instead.
    """
    window = 60
    worker = start_worker(server, "idle-soon", tmp_path, soft_shutdown=window)
    app = sender_app(server.url)
    client = redis.Redis.from_url(journal_url(server))
    try:
        wait_for_workers(app, 1, timeout=60)
        ids = [app.send_task("cluster.sleep", args=[LONGER_TASK_S]).id for _ in range(2)]
        wait_for_active(app, 2)
        stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            agent = agent_for(endpoint, worker, stub)
            agent = DrainAgent(
                agent.settings.model_copy(update={"timeout": float(window + 15)}),
                agent.imds,
                agent.worker,
                agent.lifecycle,
            )
            state.set(LIFECYCLE_STATE_PATH, "Terminated")
            noticed_at = time.monotonic()
            outcome = agent.run()
        assert outcome is not None
        assert outcome.worker_stopped
        (complete,) = stub.of(COMPLETE)
        ran = [e for e in journal.read(client) if e["task_id"] in ids]
        assert {e["state"] for e in ran} == {"SUCCESS"}, "the running tasks were cut off instead of finishing"
        # Wall clock of the journal against the stub's monotonic clock.
        last_task_ended = max(float(e["finished_at"]) for e in ran) - (time.time() - time.monotonic())
        assert last_task_ended > noticed_at, "the tasks ended before the notice; nothing was drained"
        assert complete.at < noticed_at + window, "the drain waited out the soft shutdown window"
        print(
            f"drain completed {complete.at - last_task_ended:.2f} s after the last task ended "
            f"({complete.at - noticed_at:.2f} s after the notice; window {window} s)"
        )
    finally:
        worker.stop(timeout=30)
        app.close()
        client.close()


def test_tasks_still_running_at_a_spot_deadline_go_back_to_the_queue_at_once(
    server: RedisServer, tmp_path: Path
) -> None:
    """Tasks longer than the Spot notice: the agent requeues them just before its deadline (Celery cold
    shutdown), so when the instance disappears they are already back in the queue. Without that they
    would sit unacknowledged until the Redis visibility timeout (here the default, an hour)."""
    long_task_s = 30.0
    worker = start_worker(server, "spot-long", tmp_path, soft_shutdown=120)
    app = sender_app(server.url)
    client = redis.Redis.from_url(journal_url(server))
    try:
        wait_for_workers(app, 1, timeout=60)
        ids = [app.send_task("cluster.sleep", args=[long_task_s]).id for _ in range(2)]
        wait_for_active(app, 2)
        stub = LifecycleStub(HOOK, ASG, INSTANCE, worker_running=worker.running)
        interruption = datetime.now(UTC) + timedelta(seconds=15)
        action = {"action": "terminate", "time": interruption.strftime("%Y-%m-%dT%H:%M:%SZ")}
        with fake_imds(instance_id=INSTANCE, asg_name=ASG) as (endpoint, state):
            state.set(SPOT_ACTION_PATH, json.dumps(action))
            outcome = agent_for(endpoint, worker, stub).run()
        assert outcome is not None
        assert "requeue" in outcome.events
        # The instance goes away: nothing it held is released gracefully any more.
        worker.kill()
        worker.wait(10)
        assert all(e["state"] != "SUCCESS" for e in journal.read(client) if e["task_id"] in ids)
        survivor = start_worker(server, "spot-survivor", tmp_path, soft_shutdown=0)
        try:
            deadline = time.monotonic() + long_task_s + 60
            while time.monotonic() < deadline and tally(ids, journal.read(client)).lost:
                time.sleep(0.5)
        finally:
            survivor.stop(timeout=30)
        counted = tally(ids, journal.read(client))
        assert counted.lost == 0, f"{counted}: the running tasks were not requeued before the deadline"
    finally:
        worker.stop(timeout=30)
        app.close()
        client.close()
