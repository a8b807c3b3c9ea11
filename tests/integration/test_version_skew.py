"""Version skew loses nothing (docs/worker.md, "Versions"): a producer deployed before the workers sends
a task name the running workers do not know. On both brokers, with real worker processes:

- the old worker dead-letters it (never drops it) with its reason and the sender's version, and writes
  the `task.dead_lettered` line that the pool's unknown-task metric filter counts;
- once the old worker is gone and a worker that knows the name runs, `python -m worker.deadletter
  replay` puts the original message back, and the journal shows it ran exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_cluster_client.contract import ENV_SENDER_VERSION
from celery_cluster_client.stamping import sender_version
from infra.canary.rules import LOG_METRICS
from tests.support.cluster import Cluster
from tests.support.skew_names import NEW_TASK

ROOT = Path(__file__).resolve().parents[2]
PRODUCER_VERSION = "producer-2.0.0"
NEW_WORKER_VERSION = "src-new000000000"


@pytest.fixture
def newer_producer(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process sends as a producer release that is ahead of the workers."""
    monkeypatch.setenv(ENV_SENDER_VERSION, PRODUCER_VERSION)
    sender_version.cache_clear()
    yield PRODUCER_VERSION
    sender_version.cache_clear()


def _replay(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "CELERY_BROKER_URL": cluster.broker.url,
        "CELERY_DEAD_LETTER_QUEUE": cluster.dead_letter_queue,
        "CELERY_DEFAULT_QUEUE": cluster.queue,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker.deadletter", "replay", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _runs(cluster: Cluster, task_id: str) -> list[dict[str, str]]:
    return [e for e in cluster.journal() if e["task_id"] == task_id]


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_an_unknown_task_is_dead_lettered_with_its_senders_version_and_replayed_once_a_worker_knows_it(
    cluster: Cluster, newer_producer: str
) -> None:
    old = cluster.start_worker(env={"WORKER_CODE_VERSION": "src-old000000000", "WORKER_POOL_NAME": "default"})
    task_id = cluster.client.send_task(NEW_TASK, args=["inv-7"], queue=cluster.queue).id
    behind = cluster.send("cluster.canary", ["behind"], count=3)

    # The old worker keeps flowing and keeps the message: a dead letter with reason and sender.
    assert cluster.wait_all(behind, timeout=30).lost == 0, cluster.log_tail(old)
    _wait(lambda: len(cluster.dead_letters(remove=False)) == 1, 30, "the dead letter")
    (letter,) = cluster.dead_letters(remove=False)
    assert (letter["task_id"], letter["task"], letter["reason"]) == (task_id, NEW_TASK, "unknown_task")
    assert letter["sender_version"] == newer_producer
    assert _runs(cluster, task_id) == []
    # The line the pool's unknown-task metric filters count (per version, and per pool alone).
    lines = [json.loads(raw) for raw in old.log_path.read_text().splitlines() if raw.startswith("{")]
    for metric in (m for m in LOG_METRICS if m.key.startswith("unknown-tasks")):
        conditions = {"event": metric.event, **metric.fields}
        (counted,) = [line for line in lines if all(line.get(k) == v for k, v in conditions.items())]
        assert (counted["task_id"], counted["sender_version"]) == (task_id, newer_producer)
        assert all(counted[field] for field in metric.dimensions)

    # The deploy: the old worker drains away, a worker that knows the name takes its place.
    assert old.stop(timeout=60) == 0
    new = cluster.start_worker(
        env={
            "CELERY_IMPORTS": "tests.support.skew_tasks",
            "PYTHONPATH": str(ROOT),
            "WORKER_CODE_VERSION": NEW_WORKER_VERSION,
            "WORKER_POOL_NAME": "default",
        }
    )
    replayed = _replay(cluster, letter["dead_letter_id"])
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 dead letter(s)" in replayed.stdout

    _wait(lambda: any(e.get("state") == "SUCCESS" for e in _runs(cluster, task_id)), 30, "the replayed task")
    cluster.wait_quiet(timeout=30)
    (run,) = _runs(cluster, task_id)
    assert (run["task"], run["state"], run["version"]) == (NEW_TASK, "SUCCESS", NEW_WORKER_VERSION), cluster.log_tail(
        new
    )
    assert cluster.dead_letters(remove=False) == []
