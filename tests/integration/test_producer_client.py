"""A producer outside the repository: `make client` in a fresh clone builds the client wheel without
installing Pulumi; a virtualenv holding only that wheel runs the README's example against real Redis and
RabbitMQ, and the task runs on the pool its route names."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import venv
from pathlib import Path
from typing import Any

import pytest
import redis

from infra.local.workers import WorkerProcess
from tests.support.brokers import Broker
from tests.support.cluster import unique
from worker.runtime import journal
from worker.sender import sender_app as tool_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_example() -> str:
    block = README.split("<!-- producer-example:start -->", 1)[1].split("<!-- producer-example:end -->", 1)[0]
    match = re.search(r"```python\n(.*?)```", block, re.S)
    assert match, "the README's producer example is missing"
    return match.group(1)


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make client` as a newcomer runs it: in a fresh clone (this branch's last commit), whose virtualenv
    it creates; the README's producer section installs what it writes."""
    clone = tmp_path_factory.mktemp("clone") / "celery-cluster"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "client"], cwd=clone, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    installed = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('pulumi'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "None", "make client installed Pulumi"
    (wheel,) = (clone / "build" / "dist").glob("celery_cluster_client-*-py3-none-any.whl")
    assert f"pip install '{wheel}[aws]'" in done.stdout  # what it tells you to run next
    return wheel


@pytest.fixture(scope="module")
def producer_python(client_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the client wheel (and what pip resolves for it) and nothing else."""
    scratch = tmp_path_factory.mktemp("producer")
    wheel = client_wheel
    venv.create(scratch / "venv", with_pip=True)
    python = scratch / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        cwd=scratch,
    )
    return python


def _run(python: Path, code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A clean environment and a directory outside the repository: nothing of ours leaks onto sys.path.
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(python), "-c", code],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_producer_environment_holds_only_the_client(producer_python: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json\n"
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
        "['celery_cluster_client', 'celery', 'worker', 'infra', 'pulumi', 'pydantic', 'structlog']}))"
    )
    done = _run(producer_python, probe, {}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "celery_cluster_client": True,
        "celery": True,
        "worker": False,
        "infra": False,
        "pulumi": False,
        "pydantic": False,
        "structlog": False,
    }


def _start(name: str, queues: list[str], broker: Broker, env: dict[str, str], logs: Path) -> WorkerProcess:
    return WorkerProcess(
        name=name, queues=queues, broker_url=broker.url, log_path=logs / f"{name}.log", concurrency=1, env=env
    ).start()


def _wait_ready(broker: Broker, workers: list[WorkerProcess], timeout: float = 60.0) -> None:
    app = tool_client(broker.url)
    try:
        for worker in workers:
            destination = [f"{worker.name}@{socket.gethostname()}"]
            deadline = time.monotonic() + timeout
            while not app.control.ping(destination=destination, timeout=0.5):
                assert worker.running(), worker.log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{worker.name} not ready: {worker.log_path.read_text()[-3000:]}"
    finally:
        app.close()


def _journal_entry(journal_url: str, task_id: str, timeout: float) -> dict[str, str]:
    client = redis.Redis.from_url(journal_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in journal.read(client) if e["task_id"] == task_id]
            if found:
                return found[0]
            time.sleep(0.2)
    finally:
        client.close()
    raise AssertionError(f"task {task_id} is not in the journal")


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_the_readme_example_runs_on_the_pool_its_route_names(
    producer_python: Path, broker: Broker, journal_url: str, tmp_path: Path, queue_type: str
) -> None:
    if queue_type == "quorum" and broker.is_redis:
        pytest.skip("quorum queues are RabbitMQ's (an HA Amazon MQ stack declares them)")
    # Two pools on one broker: `default` takes unrouted tasks, `ops` takes what the route sends it.
    # Producer and workers declare the queues the same way (RabbitMQ refuses a mismatched redeclare).
    ops_queue = unique("ops")
    routes = json.dumps({"cluster.p*": ops_queue})
    shared: dict[str, Any] = {
        "CELERY_TASK_ROUTES": routes,
        "CELERY_JOURNAL_URL": journal_url,
        "CELERY_QUEUE_TYPE": queue_type,
    }
    # Quorum: a default queue of the test's own, since `default` may already exist as a classic queue.
    default_queue = "default" if queue_type == "classic" else unique("default")
    if default_queue != "default":
        shared["CELERY_DEFAULT_QUEUE"] = default_queue
    default_pool = _start(unique("default"), [default_queue], broker, shared, tmp_path)
    ops_pool = _start(unique("ops"), [ops_queue], broker, shared, tmp_path)
    try:
        _wait_ready(broker, [default_pool, ops_pool])
        sent_before = time.time()
        done = _run(
            producer_python,
            readme_example(),
            {"CELERY_BROKER_URL": broker.url, "CELERY_TASK_ROUTES": routes, "CELERY_QUEUE_TYPE": queue_type},
            tmp_path,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        task_id, answer = done.stdout.split(" ", 1)
        entry = _journal_entry(journal_url, task_id, timeout=30)
        assert entry["queue"] == ops_queue
        assert entry["hostname"].startswith(f"{ops_pool.name}@"), entry
        assert socket.gethostname() in answer
        # Stamped by the client: a publish time from this run, which queue latency is read from.
        assert sent_before <= float(entry["published_at"]) <= float(entry["started_at"])
    finally:
        for worker in (default_pool, ops_pool):
            worker.stop(30)
