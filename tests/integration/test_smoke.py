"""scripts/smoke against the local cluster: a loopback Redis and a real worker process."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.workers import REPO_ROOT, WorkerProcess, wait_for_workers
from infra.servers.redis import RedisServer
from worker.sender import sender_app

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("smoke-logs")
    with RedisServer(appendonly=False) as server:
        worker = WorkerProcess(
            name="smoke",
            queues=["default", "reports"],
            broker_url=server.url,
            concurrency=2,
            log_path=logs / "worker.log",
            env={"CELERY_SOFT_SHUTDOWN_TIMEOUT": "5"},
        ).start()
        try:
            wait_for_workers(sender_app(server.url), 1, timeout=60)
            yield server.url
        finally:
            worker.stop(timeout=30)


def _smoke(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "smoke"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(REPO_ROOT),
    )


def test_smoke_passes_against_local_cluster(cluster: str) -> None:
    result = _smoke("--broker-url", cluster, "--pool", "default=default", "--pool", "reports=reports", "--count", "15")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(r"(default|reports)\s*│\s*(\d+)\s*│\s*(\d+)\s*│.*│\s*(ok|FAILED)\s*│", result.stdout)
    assert sorted(rows) == [("default", "15", "15", "ok"), ("reports", "15", "15", "ok")], result.stdout


def test_smoke_fails_when_no_worker_consumes_a_pool(cluster: str) -> None:
    result = _smoke("--broker-url", cluster, "--pool", "orphan=nobody-consumes-this", "--count", "3", "--timeout", "3")
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "not every ping and canary came back" in result.stdout


def test_smoke_rejects_a_malformed_pool_argument() -> None:
    result = _smoke("--broker-url", "redis://127.0.0.1:1/0", "--pool", "no-equals-sign")
    assert result.returncode == 2
    assert "NAME=QUEUE" in result.stderr
