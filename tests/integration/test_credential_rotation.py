"""The broker password rotated under a busy worker and the scheduler, as docs/worker.md's "Rotating the
broker password" does it on AWS: make the new credential valid beside the old one, switch the secret,
wait for every process to move, then remove the old one. Nothing lost, every process on the new secret
within a minute, the periodic runs continue.

Each broker is ours: a redis-server of its own (ElastiCache's AUTH ROTATE/SET stand in as
`ACL SETUSER default >new` / `<old`: two valid passwords, then one), and on the shared RabbitMQ node a
vhost and two users of its own (Amazon MQ's second user, switched to and the first deleted through the
management API). The secret is a file (WORKER_SECRET_FILE), since Secrets Manager on moto lives only in
the test's process; the processes read it as they would read Secrets Manager
(`worker.instance.secret_watch`), and `tests.support.rotation.Supervisor` restarts them as systemd
does, with the secret as it is when they start.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from infra.local.workers import WorkerProcess
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from tests.support.brokers import Broker, BrokerKind
from tests.support.cluster import Cluster, unique
from tests.support.faults import Producer
from tests.support.fixtures import ClusterFactory
from tests.support.periodic import ENTRY, runs, wait_runs
from tests.support.rotation import SecretFile, Supervisor, own_ports
from tests.support.scheduler_faults import holder_pid, start_scheduler
from worker.instance.secret_watch import SECRET_CHANGED_EXIT_CODE

pytestmark = pytest.mark.slow

CHECK_S = 2.0  # WORKER_SECRET_CHECK_SECONDS here (30 s by default)
# A lease longer than a restart under load: the scheduler releases it as it exits, and its successor's
# slots missed meanwhile are each sent late rather than folded into one catch-up run.
LEASE_S = 20.0
BOUND_S = 60.0  # every process on the new secret within a minute of the switch


@dataclass
class Rotation:
    """One broker's rotation steps and how to see who is connected."""

    kind: BrokerKind
    old_url: str
    new_url: str
    lease_url: str | None
    add_new: Callable[[], None]
    remove_old: Callable[[], None]
    stale_connections: Callable[[float], list[str]]
    """Connections that may still use the old credential, given seconds since the last old user left."""
    server: Any


@contextmanager
def redis_rotation() -> Iterator[Rotation]:
    old, new = secrets.token_hex(24), secrets.token_hex(24)
    with RedisServer(appendonly=False, password=old) as server:
        old_url = f"redis://:{old}@127.0.0.1:{server.port}/0"
        new_url = f"redis://:{new}@127.0.0.1:{server.port}/0"

        def admin() -> redis.Redis:
            return redis.Redis.from_url(new_url)

        def add_new() -> None:
            with redis.Redis.from_url(old_url) as client:
                client.execute_command("ACL", "SETUSER", "default", f">{new}")  # ROTATE: both valid

        def remove_old() -> None:
            with admin() as client:
                client.execute_command("ACL", "SETUSER", "default", f"<{old}")  # SET: the new one only

        def stale(since_last_old: float) -> list[str]:
            # Redis cannot say which password a connection used: every connection must have been opened
            # after the last process with the old password exited (age in whole seconds, so +1).
            with admin() as client:
                me = client.client_id()
                return [
                    f"id={c['id']} age={c['age']} cmd={c['cmd']} addr={c['addr']}"
                    for c in client.client_list()
                    if int(c["id"]) != me
                    and int(c["age"]) > since_last_old + 1
                    and int(c["addr"].rsplit(":", 1)[1]) not in own_ports()
                ]

        yield Rotation("redis", old_url, new_url, None, add_new, remove_old, stale, server)


@contextmanager
def rabbitmq_rotation(server: RabbitMQServer) -> Iterator[Rotation]:
    vhost, old_user, new_user = unique("rot"), unique("celery-a"), unique("celery-b")
    old, new = secrets.token_hex(20), secrets.token_hex(20)
    api = f"http://127.0.0.1:{server.management_port}/api"
    auth = ("guest", "guest")

    def call(method: str, path: str, body: dict[str, str] | None = None) -> Any:
        response = requests.request(method, f"{api}/{path}", json=body, auth=auth, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def create(user: str, password: str) -> None:
        # As Amazon MQ documents for RabbitMQ users (the management API; Amazon MQ's own Users API does not
        # hold them): https://docs.aws.amazon.com/amazon-mq/latest/developer-guide/rabbitmq-basic-elements-user.html
        call("PUT", f"users/{user}", {"password": password, "tags": ""})
        call("PUT", f"permissions/{vhost}/{user}", {"configure": ".*", "write": ".*", "read": ".*"})

    call("PUT", f"vhosts/{vhost}")
    create(old_user, old)
    lease = RedisServer(appendonly=False).start()  # RabbitMQ stacks keep the lease elsewhere (DynamoDB)

    def stale(_: float) -> list[str]:
        found = call("GET", f"vhosts/{vhost}/connections") or []
        mine = own_ports()
        return [
            f"{c['name']} user={c['user']}"
            for c in found
            if c.get("user") != new_user and c.get("peer_port") not in mine
        ]

    try:
        yield Rotation(
            "rabbitmq",
            f"amqp://{old_user}:{old}@127.0.0.1:{server.port}/{vhost}",
            f"amqp://{new_user}:{new}@127.0.0.1:{server.port}/{vhost}",
            lease.url,
            lambda: create(new_user, new),
            lambda: call("DELETE", f"users/{old_user}"),
            stale,
            server,
        )
    finally:
        lease.close()
        for user in (old_user, new_user):
            requests.delete(f"{api}/users/{user}", auth=auth, timeout=10)
        requests.delete(f"{api}/vhosts/{vhost}", auth=auth, timeout=10)


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.redis), pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
)
def rotation(request: pytest.FixtureRequest) -> Iterator[Rotation]:
    if request.param == "redis":
        with redis_rotation() as found:
            yield found
    else:
        with rabbitmq_rotation(request.getfixturevalue("rabbitmq_server")) as found:
            yield found


def _supervise(
    cluster: Cluster, rotation: Rotation, secret: SecretFile, log_dir: Path
) -> tuple[Supervisor, Supervisor, str]:
    name, prefix = f"w1-{cluster.queue}", unique("rot-lease")

    def start_worker(url: str) -> WorkerProcess:
        worker = WorkerProcess(
            name=name,
            queues=[cluster.queue],
            broker_url=url,
            log_path=log_dir / f"{name}.log",
            concurrency=2,
            env=cluster.env,
        ).start()
        cluster.workers.append(worker)
        return worker

    def start(url: str) -> Any:
        return start_scheduler(
            cluster, "scheduler", prefix, log_dir, "EVERY_SECOND", LEASE_S, broker_url=url, lease_url=rotation.lease_url
        )

    return Supervisor("worker", secret, start_worker).run(), Supervisor("scheduler", secret, start).run(), prefix


def _wait(check: Callable[[], object], timeout: float, describe: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        time.sleep(0.2)


def test_a_rotated_password_reaches_a_busy_worker_and_the_scheduler_with_nothing_lost(  # noqa: PLR0915 - one rotation, its steps in order
    rotation: Rotation, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    secret = SecretFile(tmp_path / "worker-secret.json", rotation.old_url)
    cluster = cluster_factory(
        Broker(rotation.kind, rotation.old_url, rotation.server),
        WORKER_SECRET_FILE=str(secret.path),
        WORKER_SECRET_CHECK_SECONDS=str(CHECK_S),
        CELERY_LOG_FORMAT="json",
    )
    log_dir = tmp_path / "processes"
    worker, scheduler, prefix = _supervise(cluster, rotation, secret, log_dir)
    lease_url = rotation.lease_url or rotation.new_url
    producer = Producer(cluster, seconds=0.5, every=0.3)

    def scheduler_log() -> str:  # the scheduler running now (each restart is another process)
        return str(scheduler.current.process.log_tail())

    try:
        cluster.wait_ready(worker.current.process)
        producer.start()
        # Busy: tasks running, and the scheduler's runs executing.
        cluster.wait_inspect("active", bool, timeout=60)
        wait_runs(cluster, 0.0, timeout=60, describe=scheduler_log)

        rotation.add_new()  # old and new both valid
        switched = time.monotonic()
        secret.write(rotation.new_url)

        def moved() -> bool:
            if worker.on(rotation.new_url) is None or scheduler.on(rotation.new_url) is None:
                return False
            if holder_pid(lease_url, prefix) != scheduler.current.process.pid:
                return False
            try:
                cluster.wait_ready(worker.current.process, timeout=1)
            except AssertionError:
                return False
            return True

        _wait(moved, 2 * BOUND_S, lambda: f"not every process moved\n{cluster.log_tail()}")
        moved_after = time.monotonic() - switched
        # The producer (an application reading its own secret) moves too, before the old credential goes.
        sent = producer.stop()
        if cluster._client is not None:
            cluster._client.close()
        cluster._client = None
        cluster.broker = Broker(rotation.kind, rotation.new_url, rotation.server)
        producer = Producer(cluster, seconds=0.5, every=0.3)
        producer.start()
        last_old = max(t for t in (worker.old_gone_at(rotation.old_url), scheduler.old_gone_at(rotation.old_url)) if t)
        rotation.remove_old()
        removed_at = time.time()
        stale = rotation.stale_connections(time.monotonic() - last_old)
        _wait(
            lambda: not rotation.stale_connections(time.monotonic() - last_old), 30, lambda: f"old connections: {stale}"
        )

        # Work continues on the new credential only.
        wait_runs(cluster, removed_at + 3, timeout=60, describe=scheduler_log)
        sent += producer.stop()
        done = cluster.wait_all(sent, timeout=180)
    finally:
        producer.stopping.set()
        worker.stop()
        scheduler.stop()
        scheduler.current.process.stop()

    found = runs(cluster, ENTRY)
    slots = Counter(slot for slot, _ in found)
    first, last = min(slots), max(slots)
    periodic = {"runs": int(last - first) + 1, "executed": sum(slots.values())}
    periodic["lost"] = periodic["runs"] - len(slots)
    periodic["duplicated"] = sum(1 for n in slots.values() if n > 1)
    print(
        f"{rotation.kind}: tasks sent {done.sent}, executed {done.completed}, lost {done.lost}, duplicated "
        f"{done.duplicates}; periodic {periodic}; every process on the new secret {moved_after:.1f} s after the "
        f"switch; restarts for the secret: worker {len(worker.restarted_for_secret())}, scheduler "
        f"{len(scheduler.restarted_for_secret())}"
    )
    assert done.lost == 0, cluster.missing(sent)
    assert done.duplicates == 0, done
    assert moved_after <= BOUND_S, moved_after
    # Each process left once, with the secret-changed status, and never with the old password refused.
    assert [g.exit_code for g in worker.generations[:-1]] == [SECRET_CHANGED_EXIT_CODE], cluster.log_tail()
    assert [g.exit_code for g in scheduler.generations[:-1]] == [SECRET_CHANGED_EXIT_CODE]
    assert periodic["lost"] == 0, periodic
    assert periodic["duplicated"] == 0, periodic
    text = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.log"))
    assert "refused the credentials" not in text
    assert text.count('"secret.changed"') == 2
