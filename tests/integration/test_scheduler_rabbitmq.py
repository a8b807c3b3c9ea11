"""Exactly one scheduler sends on a RabbitMQ stack: the lease in DynamoDB (as the stack creates it).

As far as this machine allows: a real RabbitMQ node, a real worker and the execution journal, two
`LeasedScheduler`s with their own broker connections and lease clients, and DynamoDB on moto. moto
mocks AWS inside one process, so the two schedulers are threads of one process of their own
(`tests/support/dynamo_schedulers.py`); "killing" the holder stops its thread without the clean
stop that releases the lease, so the successor must wait for the lease to lapse, as after an
instance loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.servers.rabbitmq import RabbitMQServer
from tests.support.brokers import Broker
from tests.support.fixtures import ClusterFactory
from tests.support.periodic import check_runs, runs, wait_runs, wait_span

# Longer than the Redis test's 3 s: here both schedulers are threads of one process whose DynamoDB
# calls go through moto one at a time, and under coverage on a loaded machine one holder's tick can
# stall past a 3 s lease, which (rightly) folds the slots it missed into one catch-up run. The
# guarantees under test do not depend on the lease's length.
LEASE_S = 6.0
OBSERVE_S = 30.0
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def test_two_schedulers_on_rabbitmq_send_each_run_once_and_survive_losing_the_holder(
    rabbitmq_server: RabbitMQServer, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(Broker("rabbitmq", rabbitmq_server.url, rabbitmq_server))
    cluster.start_worker(concurrency=2)
    control = tmp_path / "control"
    control.mkdir()
    log = tmp_path / "schedulers.log"
    env = {
        **os.environ,
        **cluster.env,
        "CELERY_BROKER_URL": cluster.broker.url,
        "SCHEDULER_LEASE_SECONDS": str(LEASE_S),
        "SCHEDULER_SCHEDULE": "tests.support.periodic_entries:EVERY_SECOND",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CELERY_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.dynamo_schedulers", str(control)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )

    def describe() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-30:])

    try:
        # 30 s of one-second slots from the first run (not from here: under load start-up took over 20 s).
        wait_span(cluster, OBSERVE_S, timeout=10 * LEASE_S + 30, describe=describe)
        assert process.poll() is None, describe()
        (control / "kill").touch()
        deadline = time.monotonic() + 10 * LEASE_S
        while not (control / "killed").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        killed_at = float(json.loads((control / "killed").read_text())["at"])
        wait_runs(cluster, killed_at + 2 * LEASE_S + 3, timeout=10 * LEASE_S, describe=describe)
        found = runs(cluster)
    finally:
        (control / "stop").touch()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    assert found[-1][0] - found[0][0] >= OBSERVE_S
    takeover = check_runs(found, killed_at, LEASE_S)
    print(f"takeover on RabbitMQ + DynamoDB lease: {takeover:.2f} s after the holder stopped (lease {LEASE_S} s)")
