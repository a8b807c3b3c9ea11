"""A pool's `worker` settings, from stack config to a running worker: render a stack whose pool sets
them, take the environment file its user data writes, start a worker from it exactly as the
instance's unit does (image/bin/start-worker), and ask the worker what it runs with."""

from __future__ import annotations

import base64
import copy
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli.offline_render import render_config
from infra.config import merged_raw, parse_config, read_stack_file
from infra.local.workers import WorkerProcess
from infra.servers.redis import RedisServer
from infra.vm import files
from tests.support.cluster import unique
from tests.support.units import systemd_unquote
from worker.sender import sender_app

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

WORKER_BLOCK = {
    "pool": "threads",
    "prefetchMultiplier": 3,
    "taskEvents": True,
    "logLevel": "WARNING",
    "annotations": {"cluster.sleep": {"rate_limit": "100/s"}},
}
CONCURRENCY = 5


def rendered_pool_env() -> dict[str, str]:
    values = copy.deepcopy(read_stack_file("dev"))
    values["pools"]["default"]["worker"] = WORKER_BLOCK
    values["pools"]["default"]["concurrency"] = CONCURRENCY
    values["taskRoutes"] = {"reports.*": "default"}
    render = render_config(parse_config("dev", merged_raw(values)), values)
    (template,) = [r for r in render.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "pool-default-lt"]
    cloud_config = yaml.safe_load(base64.b64decode(template.inputs["userData"]).decode())
    (entry,) = [f for f in cloud_config["write_files"] if f["path"] == files.POOL_ENV]
    return dict(systemd_unquote(line) for line in str(entry["content"]).splitlines() if "=" in line)


def test_the_rendered_environment_carries_the_pool_settings() -> None:
    env = rendered_pool_env()
    assert {
        k: env[k] for k in ("WORKER_POOL", "CELERY_PREFETCH_MULTIPLIER", "CELERY_TASK_EVENTS", "CELERY_LOG_LEVEL")
    } == {
        "WORKER_POOL": "threads",
        "CELERY_PREFETCH_MULTIPLIER": "3",
        "CELERY_TASK_EVENTS": "true",
        "CELERY_LOG_LEVEL": "WARNING",
    }
    assert json.loads(env["CELERY_TASK_ANNOTATIONS"]) == WORKER_BLOCK["annotations"]
    assert json.loads(env["CELERY_TASK_ROUTES"]) == {"reports.*": "default"}
    assert env["WORKER_CONCURRENCY"] == str(CONCURRENCY)


def test_a_worker_started_from_the_rendered_environment_applies_them(redis_server: RedisServer, tmp_path: Path) -> None:
    env = rendered_pool_env()
    # Only the instance's identity changes: its queue (shared broker) and name; the secret's URL is added.
    name, queue = unique("tuned"), unique("q")
    env |= {"WORKER_QUEUES": queue, "WORKER_NAME": name}
    worker = WorkerProcess(
        name=name,
        queues=[queue],
        broker_url=redis_server.url,
        log_path=tmp_path / "worker.log",
        concurrency=CONCURRENCY,
        env=env,
    ).start()
    app = sender_app(redis_server.url)
    node = f"{name}@{socket.gethostname()}"
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node], timeout=0.5):
            assert worker.running(), worker.log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, worker.log_path.read_text()[-3000:]
        inspect = app.control.inspect(destination=[node], timeout=5)
        stats: dict[str, Any] = inspect.stats()[node]
        conf: dict[str, Any] = inspect.conf()[node]
        registered: list[str] = inspect.registered("rate_limit")[node]
        assert "thread" in stats["pool"]["implementation"]
        assert stats["pool"]["max-concurrency"] == CONCURRENCY
        assert stats["prefetch_count"] == 3 * CONCURRENCY
        assert conf["worker_prefetch_multiplier"] == 3
        assert conf["worker_send_task_events"] is True
        assert "cluster.sleep [rate_limit=100/s]" in registered
        # WARNING: the worker's start-up lines (INFO: connected, ready) are not logged.
        levels = [json.loads(line).get("level") for line in worker.log_path.read_text().splitlines() if line[:1] == "{"]
        assert not {"debug", "info"} & set(levels), levels
    finally:
        app.close()
        worker.stop(30)
