"""The production broker path: TLS with credentials on both brokers, as every deployed stack runs it.

Redis serves TLS only and wants AUTH (ElastiCache with transit encryption `required`); RabbitMQ
has an AMQPS listener only and its management API on HTTPS (Amazon MQ). The URLs are the ones
the stack's secrets hold, made by `infra.components.broker.redis_url` / `amqp_url` from
credentials of the stack's password rules (tests/support/tls_brokers.py), and the CA reaches
every client through the system store (SSL_CERT_FILE), as Amazon's does on an instance.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import redis

from celery_cluster_client import client_app as producer_app
from infra.components.broker import MQ_PASSWORD, REDIS_AUTH_TOKEN
from infra.components.producer_access import producer_secret_document
from infra.local.workers import REPO_ROOT, WorkerProcess
from infra.servers.rabbitmq import RabbitMQServer
from infra.servers.redis import RedisServer
from infra.servers.tls import TlsFiles
from tests.support.brokers import Broker
from tests.support.cluster import Cluster
from tests.support.credentials import sample_password
from tests.support.faults import broker_restart_loses_nothing, sigkill_loses_nothing, sigterm_drains_within_the_window
from tests.support.fixtures import ClusterFactory
from tests.support.moto_groups import create_group
from tests.support.moto_metrics import REGION
from tests.support.tls import make_tls_files
from tests.support.tls_brokers import tls_url
from worker.names import METRIC_IN_FLIGHT, METRIC_OLDEST_AGE, METRIC_WAITING
from worker.publisher.handler import Publisher, load_config
from worker.publisher.queues import inspector_for, management_url_for
from worker.publisher.service_metrics import reader_for
from worker.runtime.settings import SETTINGS_EXIT_CODE
from worker.runtime.task_stats import QueueService

NAMESPACE = "CeleryCluster/tls"
# The one task that holds the worker while the test looks at the broker; the observation needs a
# control round trip and a few statistics refreshes of RabbitMQ (1 s on the test node), under load.
HOLD_SECONDS = 12.0
PICK_UP_SECONDS = 30.0
"""How long a started worker may take to begin the held task (its prefetch is already waiting)."""


def _publisher_environment(broker: Broker, pools: list[dict[str, Any]]) -> dict[str, str]:
    """The publisher's environment on AWS: its secret holds the bare broker URL (what `Broker`
    writes to `publisher-url`). Amazon MQ serves the management API on 443, which a test cannot
    bind, so only the port is given (the URL is still `management_url_for`'s)."""
    secrets = boto3.client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name=f"publisher-{uuid.uuid4().hex[:8]}", SecretString=broker.url)["ARN"]
    environ = {"BROKER_SECRET_ARN": arn, "METRIC_NAMESPACE": NAMESPACE, "POOLS_JSON": json.dumps(pools)}
    if isinstance(broker.server, RabbitMQServer):
        environ["RABBITMQ_MANAGEMENT_URL"] = management_url_for(broker.url, port=broker.server.management_port)
    return environ


def _group(name: str) -> None:
    create_group(name, REGION, desired=1, max_size=2)


def _by_name(data: list[dict[str, Any]], queue: str) -> dict[str, float]:
    return {d["MetricName"]: d["Value"] for d in data if {"Name": "Queue", "Value": queue} in d["Dimensions"]}


def _wait_running(cluster: Cluster, worker_name: str, task_id: str) -> dict[str, Any]:
    """The task as the worker reports it running (`inspect active`), within PICK_UP_SECONDS."""
    destination = [f"{worker_name}@{socket.gethostname()}"]
    deadline = time.monotonic() + PICK_UP_SECONDS
    running: list[dict[str, Any]] = []
    while not running:
        assert time.monotonic() < deadline, f"the held task never showed as running\n{cluster.log_tail()}"
        replies = cluster.client.control.inspect(destination=destination, timeout=1.0).active() or {}
        running = [task for tasks in replies.values() for task in tasks if task["id"] == task_id]
    return running[0]


def _wait_task_time(broker_url: str, cluster: Cluster, ended: int) -> QueueService:
    """The queue's measured task time as the publisher reads it, once `ended` tasks have ended."""
    reader = reader_for(broker_url)
    deadline = time.monotonic() + 60
    try:
        while (seen := reader.read([cluster.queue], time.time())[0]).ended < ended:
            assert time.monotonic() < deadline, f"the publisher read {seen}, not {ended} ended\n{cluster.log_tail()}"
            time.sleep(0.2)
    finally:
        reader.close()
    return seen


@pytest.mark.slow
def test_worker_acks_late_returns_results_and_the_publisher_reads_the_queue(
    tls_broker: Broker, cluster_factory: ClusterFactory, aws: None
) -> None:
    cluster = cluster_factory(tls_broker)
    worker = cluster.start_worker(concurrency=1)

    pong = cluster.client.send_task("cluster.ping", queue=cluster.queue).get(timeout=30)
    assert pong["hostname"] == socket.gethostname()
    tokens = [uuid.uuid4().hex for _ in range(3)]
    results = [cluster.client.send_task("cluster.canary", args=[t], queue=cluster.queue) for t in tokens]
    assert [r.get(timeout=30) for r in results] == tokens

    _group("tls-pool")
    pools = [{"name": "tls", "queues": [cluster.queue], "asg": "tls-pool"}]
    config = load_config(_publisher_environment(tls_broker, pools), secrets=boto3.client("secretsmanager"))
    assert config.broker_url == tls_broker.url
    sent_at = time.time()
    (held,) = cluster.send("cluster.sleep", [HOLD_SECONDS])
    waiting = cluster.send("cluster.sleep", [0.1], count=2)

    # Late ack: the running task's message is still unacknowledged on the broker.
    running = _wait_running(cluster, worker.name, held)
    assert running["acknowledged"] is False, running
    deadline = time.monotonic() + HOLD_SECONDS  # it runs at most this much longer

    inspector = inspector_for(config.broker_url, config.management_url)
    try:
        snapshot = inspector.inspect([cluster.queue])
        while (snapshot.waiting, snapshot.in_flight) != (2, 1):
            assert time.monotonic() < deadline, f"publisher saw {snapshot}, not 2 waiting and 1 in flight"
            time.sleep(0.3)
            snapshot = inspector.inspect([cluster.queue])
        publisher = Publisher(config, inspector, boto3.client("cloudwatch"), boto3.client("autoscaling"))
        data = _by_name(publisher.sample(), cluster.queue)
    finally:
        inspector.close()
    assert data[METRIC_WAITING] == 2
    assert data[METRIC_IN_FLIGHT] == 1
    assert 0 <= data[METRIC_OLDEST_AGE] <= time.time() - sent_at + 1  # whole seconds on RabbitMQ

    done = cluster.wait_all([held, *waiting], timeout=HOLD_SECONDS + 30)
    assert done.lost == 0, cluster.log_tail()

    # The workers' measured task time reaches the publisher over TLS too (Redis keys, or RabbitMQ's
    # stats queue): every task of this queue, the ping, the canaries and the sleeps, exactly once.
    seen = _wait_task_time(config.broker_url, cluster, ended=7)
    assert seen.ended == 7
    assert seen.seconds >= HOLD_SECONDS + 2 * 0.1


def test_smoke_passes_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(tls_broker)
    cluster.start_worker(concurrency=2)
    done = subprocess.run(
        [
            str(REPO_ROOT / "scripts" / "smoke"),
            "--broker-url",
            tls_broker.url,
            "--pool",
            f"tls={cluster.queue}",
            "--count",
            "5",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"tls\s*│\s*5\s*│\s*5\s*│.*│\s*ok\s*│", done.stdout), done.stdout


def test_the_producer_client_sends_a_routed_task_over_tls(
    tls_broker: Broker, cluster_factory: ClusterFactory, aws: None
) -> None:
    cluster = cluster_factory(tls_broker)
    cluster.start_worker(concurrency=1)
    # The producer secret as the stack writes it: the same URL, the routing table, the queue type.
    document = producer_secret_document(tls_broker.url, "classic", {"cluster.canary": cluster.queue})
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name=f"producer-{uuid.uuid4().hex[:8]}", SecretString=document)["ARN"]
    app = producer_app(secret_id=arn, secrets_client=secrets, environ={})
    try:
        token = uuid.uuid4().hex
        result = app.send_task("cluster.canary", args=[token])  # no queue given: the route picks it
        assert result.get(timeout=30) == token
    finally:
        app.close()
    # The worker of the routed queue ran it (the journal entry is written after the result).
    assert cluster.wait_all([result.id], timeout=30).completed == 1, cluster.log_tail()


@pytest.mark.slow
def test_sigkill_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    sigkill_loses_nothing(tls_broker, cluster_factory)


@pytest.mark.slow
def test_sigterm_drain_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    sigterm_drains_within_the_window(tls_broker, cluster_factory)


@pytest.mark.slow
def test_broker_restart_over_tls(tls_broker: Broker, cluster_factory: ClusterFactory) -> None:
    broker_restart_loses_nothing(tls_broker, cluster_factory)


def _bad_url(
    case: str, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> str:
    """The broker's URL gone wrong in one way (`case`, a key of FAILURES)."""
    assert broker.server is not None
    if case == "wrong-password":
        rule = REDIS_AUTH_TOKEN if broker.is_redis else MQ_PASSWORD
        return tls_url(broker.server, password=sample_password(rule)[::-1])
    if case == "untrusted-certificate":
        # The system store holds another CA: the server's certificate chains to nothing trusted.
        monkeypatch.setenv("SSL_CERT_FILE", str(make_tls_files(tmp_path / "other-ca").ca))
        return broker.url
    if case == "name-mismatch":
        # The same kind of server with a certificate from the trusted CA for another name.
        return tls_url(request.getfixturevalue(f"misnamed_{broker.kind}_server"))
    # redis:// or amqp:// to the TLS-only port, without the TLS query parameters.
    parts = urlsplit(broker.url)
    return urlunsplit(parts._replace(scheme=parts.scheme.removesuffix("s"), query=""))


# (case, what the line must say on Redis, on RabbitMQ)
FAILURES = {
    "wrong-password": ("refused the credentials in CELERY_BROKER_URL", "refused the credentials in CELERY_BROKER_URL"),
    "untrusted-certificate": ("CERTIFICATE_VERIFY_FAILED", "CERTIFICATE_VERIFY_FAILED"),
    "name-mismatch": ("mismatch, certificate is not valid for", "mismatch, certificate is not valid for"),
    "plain-to-tls-port": ("Connection reset by peer", "Connection reset by peer"),
}
# The broker's own words, after the worker's (the smoke run prints only these).
REFUSED_REASON = ("invalid username-password pair", "ACCESS_REFUSED")
# Celery's consumer retries a failed connection after 2, 4, 6 ... s (CONF#broker-connection-retry);
# a retry sooner than this after the previous one would be a spin.
MIN_RETRY_GAP = 1.5


def _events(log: Path) -> list[dict[str, Any]]:
    events = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def _failures(log: Path) -> list[dict[str, Any]]:
    return [e for e in _events(log) if e.get("level") in ("error", "critical")]


def _settled(worker: WorkerProcess) -> bool:
    """The worker gave up (exit) or failed twice (a retry), whichever the broker's client does."""
    return not worker.running() or len(_failures(worker.log_path)) >= 2


def test_a_bad_credential_or_certificate_is_one_clear_line_and_no_spin(
    tls_broker: Broker,
    cluster_factory: ClusterFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # One worker per case, all started at once: each then waits on its own backoff.
    started: dict[str, tuple[str, WorkerProcess]] = {}
    for case in sorted(FAILURES):
        with monkeypatch.context() as scoped:  # the environment this worker starts with
            url = _bad_url(case, tls_broker, tmp_path / case, scoped, request)
            cluster = cluster_factory(Broker(tls_broker.kind, url, tls_broker.server))
            started[case] = (url, cluster.start_worker(concurrency=1, wait=False))

    deadline = time.monotonic() + 60
    while not all(_settled(worker) for _, worker in started.values()):
        unsettled = {case: w.log_path.read_text(errors="replace")[-2000:] for case, (_, w) in started.items()}
        assert time.monotonic() < deadline, f"no connection failure logged: {unsettled}"
        time.sleep(0.2)

    exited = {case: not worker.running() for case, (_, worker) in started.items()}
    for _, worker in started.values():
        worker.kill()  # none ever connected: nothing to drain (the cluster's close would wait for it)
        worker.wait(10)

    for case, (url, worker) in started.items():
        failures = _failures(worker.log_path)
        if not exited[case]:
            stamps = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in failures[:2]]
            assert stamps[1] - stamps[0] >= MIN_RETRY_GAP, (case, failures)
        else:
            # An exit is paced by systemd (Restart=on-failure, RestartSec=5), not a spin.
            assert worker.wait(10) != 0, case
            failures = _failures(worker.log_path)
        if case == "wrong-password":
            # A refused login at start is a configuration error on both brokers: exit 64, which
            # celery-worker.service does not restart (the same secret would be refused again).
            assert exited[case], failures
            assert worker.wait(10) == SETTINGS_EXIT_CODE, failures
            assert len(failures) == 1, failures
            assert REFUSED_REASON[0 if tls_broker.is_redis else 1] in failures[0]["event"], failures
        text = worker.log_path.read_text(errors="replace")
        expected = FAILURES[case][0 if tls_broker.is_redis else 1]
        assert failures, (case, text)
        assert all(expected in e["event"] for e in failures), (case, failures)
        assert "Traceback" not in text, case
        assert not any("exception" in e for e in failures), (case, failures)
        password = urlsplit(url).password
        assert password
        assert password not in text, case


def test_smoke_says_in_one_line_why_it_cannot_use_the_broker(
    tls_broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    running: dict[str, tuple[str, subprocess.Popen[str]]] = {}
    for case in sorted(FAILURES):
        with monkeypatch.context() as scoped:  # the environment this smoke run starts with
            url = _bad_url(case, tls_broker, tmp_path / case, scoped, request)
            command = [str(REPO_ROOT / "scripts" / "smoke"), "--broker-url", url, "--pool", "p=q", "--count", "1"]
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            running[case] = (url, process)
    for case, (url, process) in running.items():
        output, _ = process.communicate(timeout=120)
        lines = output.strip().splitlines()
        assert process.returncode == 2, (case, lines)
        assert len(lines) == 1, (case, lines)
        assert "cannot connect to the broker" in lines[0], (case, lines)
        # The refused AMQP login reads ACCESS_REFUSED here (the worker's own line words it differently).
        redis_fragment, rabbitmq_fragment = FAILURES[case]
        expected = redis_fragment if tls_broker.is_redis else rabbitmq_fragment
        if case == "wrong-password":
            expected = REFUSED_REASON[0 if tls_broker.is_redis else 1]
        assert expected in lines[0], (case, lines)
        password = urlsplit(url).password
        assert password
        assert password not in lines[0], case


def test_a_password_changed_under_a_running_worker_ends_it_for_a_restart_with_the_new_secret(
    tls_files: TlsFiles, cluster_factory: ClusterFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rotation that revokes the old Redis password: the running worker keeps its authenticated
    connections until they drop, then reconnects with the password it started with. It exits 1, not 64:
    systemd restarts it (Restart=on-failure) and fetch-env reads the current secret, which a worker
    started with the new password shows working."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    old = sample_password(REDIS_AUTH_TOKEN)
    new = old[::-1]  # the rotated secret: another password of the same rule
    assert new != old
    with RedisServer(appendonly=False, tls=tls_files, password=old) as server:
        cluster = cluster_factory(Broker("redis", tls_url(server), server))
        worker = cluster.start_worker(concurrency=1)
        (first,) = cluster.send("cluster.canary", ["before"])
        assert cluster.wait_all([first], timeout=60).completed == 1, cluster.log_tail(worker)

        admin = redis.Redis.from_url(tls_url(server))
        admin.config_set("requirepass", new)
        # Redis keeps connections authenticated after requirepass changes; dropping them is what a
        # rotation that revokes the old password amounts to for a running client.
        rotated_admin = redis.Redis.from_url(tls_url(server, password=new))
        for kind in ("normal", "pubsub"):  # the consumer's BRPOP and its broadcast (pidbox) channel
            rotated_admin.client_kill_filter(_type=kind, skipme=True)
        deadline = time.monotonic() + 120
        while worker.running():
            assert time.monotonic() < deadline, f"the worker kept running\n{cluster.log_tail(worker)}"
            time.sleep(0.2)
        code = worker.wait(10)
        failures = _failures(worker.log_path)
        assert code == 1, cluster.log_tail(worker)
        assert code != SETTINGS_EXIT_CODE
        assert [e["event"] for e in failures if "refused the credentials" in e["event"]], failures
        text = worker.log_path.read_text(errors="replace")
        assert "Traceback" not in text
        assert old not in text
        assert new not in text

        # What the restarted unit runs with: the secret as it is now.
        rotated = cluster_factory(Broker("redis", tls_url(server, password=new), server))
        rotated.queue = cluster.queue
        rotated.start_worker(concurrency=1)
        (second,) = rotated.send("cluster.canary", ["after"])
        assert rotated.wait_all([second], timeout=60).completed == 1
