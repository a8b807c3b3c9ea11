"""Scale-in takes the idle instance, not the one running a long task: two real workers on a real
Redis broker, each with its own drain agent (loopback IMDSv2 server per instance), and an Auto
Scaling group on moto, which keeps instances protected from scale in when it lowers the desired
capacity. And a short task (younger than DRAIN_PROTECT_AFTER_SECONDS) does not protect: scale-in
takes its instance, whose drain would wait for it.

moto removes the first unprotected instances of its list, so the busy worker is put on the first
instance: without protection, scale-in would take it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from infra.local.workers import WorkerProcess, wait_for_workers
from infra.servers.redis import RedisServer
from tests.support.cluster import unique
from tests.support.drain import ProcessControl
from tests.support.fake_imds import fake_imds
from tests.support.moto_metrics import REGION, group
from worker.drain.agent import DrainAgent, build_agent
from worker.drain.settings import load_settings
from worker.instance.imds import Imds
from worker.runtime import journal
from worker.runtime.busy import running_task_ages, running_tasks
from worker.sender import sender_app

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]

ASG = "pool-protect"
HOOK = "drain"
IDLE_S = 1.0
AFTER_S = 2.0  # the long task protects once it has run this long
TASK_S = 10.0  # longer than AFTER_S, with room for the scale-in while it still runs
SHORT_TASK_S = 1.0  # the second test keeps the default threshold (30 s): far longer than these
SHORT_TASKS = 4


def protected(client: Any) -> dict[str, bool]:
    (described,) = client.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])["AutoScalingGroups"]
    return {i["InstanceId"]: i["ProtectedFromScaleIn"] for i in described["Instances"]}


def wait_until(what: str, check: Callable[[], bool], timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return time.monotonic()


def wait_for_journal(journal_url: str, ids: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    """The journal entries of `ids` once every one has ended (the worker writes its entry at the end)."""
    client = redis.Redis.from_url(journal_url)
    try:
        wait_until("the tasks to end", lambda: ids <= {e["task_id"] for e in journal.read(client)}, timeout)
        return {e["task_id"]: e for e in journal.read(client) if e["task_id"] in ids}
    finally:
        client.close()


def drain_agent(
    endpoint: str, worker: WorkerProcess, autoscaling: Any, busy_dir: Path, **thresholds: float
) -> DrainAgent:
    """The instance's drain agent as its unit starts it, polling every 0.2 s, against its own IMDS."""
    settings = load_settings(
        lifecycle_hook_name=HOOK, imds_endpoint=endpoint, poll_interval=0.2, busy_dir=str(busy_dir), **thresholds
    )
    return build_agent(settings, worker=ProcessControl(worker), autoscaling=autoscaling, imds=Imds(endpoint=endpoint))


def journal_url_of(server: RedisServer) -> str:
    return server.url.removesuffix("/0") + "/1"


def start_worker(
    server: RedisServer, name: str, busy_dir: Path, log_path: Path, queue: str = "default"
) -> WorkerProcess:
    """One process, so one running task at a time, its busy files where its drain agent looks."""
    env = {"CELERY_BUSY_DIR": str(busy_dir), "CELERY_JOURNAL_URL": journal_url_of(server)}
    return WorkerProcess(
        name=name, queues=[queue], broker_url=server.url, log_path=log_path, concurrency=1, env=env
    ).start()


@contextmanager
def agents_running(*agents: DrainAgent) -> Iterator[None]:
    """Each agent's loop on a thread, as the agent runs beside its worker; stopped and joined on exit."""
    stop = threading.Event()
    threads = [threading.Thread(target=agent.run, args=(stop.is_set,)) for agent in agents]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer(appendonly=False) as srv:
        yield srv


def test_busy_instance_is_protected_and_scale_in_takes_the_idle_one(
    aws: None,
    server: RedisServer,
    tmp_path: Path,
) -> None:
    group(ASG, instances=2)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    busy_id, idle_id = list(protected(autoscaling))
    app = sender_app(server.url)
    workers: dict[str, WorkerProcess] = {}
    busy_dirs = {instance: tmp_path / f"busy-{instance}" for instance in (busy_id, idle_id)}
    try:
        # Both workers are up before the long task is sent, and only the busy instance's consumes its
        # queue: a worker start-up after the task (20 s under load) outlasted the task before.
        for instance, queue in ((busy_id, "default"), (idle_id, unique("idle"))):
            log_path = tmp_path / f"{instance}.log"
            workers[instance] = start_worker(server, f"w-{instance}", busy_dirs[instance], log_path, queue)
        wait_for_workers(app, 2, timeout=60)
        task_id = app.send_task("cluster.sleep", args=[TASK_S]).id
        wait_until("the task to start", lambda: running_tasks(busy_dirs[busy_id]) == 1)
        with (
            fake_imds(instance_id=busy_id, asg_name=ASG) as (busy_imds, _),
            fake_imds(instance_id=idle_id, asg_name=ASG) as (idle_imds, _),
        ):
            thresholds = {"protect_idle_seconds": IDLE_S, "protect_after_seconds": AFTER_S}
            agents = {
                instance: drain_agent(endpoint, workers[instance], autoscaling, busy_dirs[instance], **thresholds)
                for instance, endpoint in ((busy_id, busy_imds), (idle_id, idle_imds))
            }
            busy_agent, idle_agent = agents[busy_id].protection, agents[idle_id].protection
            assert busy_agent is not None
            assert idle_agent is not None
            with agents_running(*agents.values()):
                wait_until("the busy instance to be protected", lambda: protected(autoscaling)[busy_id])
                (age,) = running_task_ages(busy_dirs[busy_id], time.time())
                assert age >= AFTER_S, f"protected after {age:.1f} s, before the {AFTER_S} s threshold"
                wait_until("the idle agent to clear protection", lambda: idle_agent.protected is False)
                assert protected(autoscaling) == {busy_id: True, idle_id: False}

                # Scale in by one: the group may not take the busy instance.
                autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=1)
                assert list(protected(autoscaling)) == [busy_id]
                assert running_tasks(busy_dirs[busy_id]) == 1, "the task ended before the scale-in: nothing shown"

                # Once its task ends and the hysteresis passes, the busy instance is released.
                entry = wait_for_journal(journal_url_of(server), {task_id})[task_id]
                assert entry["state"] == "SUCCESS"
                released = wait_until("protection to be cleared", lambda: not protected(autoscaling)[busy_id])
            ended = float(entry["finished_at"]) - (time.time() - time.monotonic())
            # The agent may start before the task has run AFTER_S: unprotected first, then once on and off.
            assert busy_agent.changes in ([True, False], [False, True, False]), (
                f"protection toggled more than once for one task: {busy_agent.changes}"
            )
            print(f"protection cleared {released - ended:.2f} s after the task ended (hysteresis {IDLE_S} s)")
    finally:
        for worker in workers.values():
            worker.stop(timeout=30)
        app.close()


def test_a_short_task_does_not_protect_its_instance(
    aws: None,
    server: RedisServer,
    tmp_path: Path,
) -> None:
    """Short tasks back to back on one instance, its agent polling every 0.2 s with the default
    threshold: the agent sees them run and never protects the instance, so scale-in takes it."""
    group(ASG, instances=2)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    busy_id, _other = list(protected(autoscaling))
    busy_dir = tmp_path / "busy"
    app = sender_app(server.url)
    worker = start_worker(server, "w-short", busy_dir, tmp_path / "worker.log")
    try:
        wait_for_workers(app, 1, timeout=60)
        with fake_imds(instance_id=busy_id, asg_name=ASG) as (endpoint, _):
            agent = drain_agent(endpoint, worker, autoscaling, busy_dir, protect_idle_seconds=IDLE_S)
            assert agent.settings.protect_after_seconds > SHORT_TASK_S * 10
            protection = agent.protection
            assert protection is not None
            seen_busy: list[int] = []
            sleep = agent.sleep

            def poll_then_sleep(seconds: float) -> None:
                # Called right after each protection update: what that update saw.
                seen_busy.append(running_tasks(busy_dir))
                sleep(seconds)

            agent.sleep = poll_then_sleep
            with agents_running(agent):
                ids = {app.send_task("cluster.sleep", args=[SHORT_TASK_S]).id for _ in range(SHORT_TASKS)}
                wait_for_journal(journal_url_of(server), ids, timeout=60 + SHORT_TASKS * SHORT_TASK_S)
                polls_while_busy = sum(1 for n in seen_busy if n > 0)
                assert polls_while_busy >= SHORT_TASKS, f"the agent saw a task running at {polls_while_busy} polls"
                # The agent clears whatever an earlier agent left once nothing long has run for IDLE_S.
                wait_until("the agent to settle", lambda: protection.protected is False)
                assert protection.changes == [False], f"protection set for a short task: {protection.changes}"
                assert protected(autoscaling)[busy_id] is False
                autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=1)
                assert busy_id not in protected(autoscaling), "scale-in did not take the instance of short tasks"
    finally:
        worker.stop(timeout=30)
        app.close()
