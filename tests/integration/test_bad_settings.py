"""A bad environment stops the worker at start: exit 64 and one stderr line naming the variable.

Every case runs through both command lines a user runs: `celery -A worker.app worker` and the
image's `image/bin/start-worker` (what systemd and `make local` run). No broker is needed: the worker
must stop before it connects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.workers import START_WORKER
from infra.servers.redis import RedisServer
from worker.runtime.settings import SETTINGS_EXIT_CODE

CELERY = str(Path(sys.executable).parent / "celery")
GOOD_BROKER = "redis://127.0.0.1:1/0"  # never reached: nothing listens on port 1
ENTRY_POINTS = {
    "celery": [CELERY, "-A", "worker.app", "worker"],
    "start-worker": [str(START_WORKER)],
}


def _environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WORKER_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "WORKER_QUEUES": "default", **variables}


def _assert_one_line_naming(done: subprocess.CompletedProcess[str], variable: str, fragment: str) -> None:
    assert done.returncode == SETTINGS_EXIT_CODE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert fragment in lines[0]


ANNOTATIONS = "CELERY_TASK_ANNOTATIONS"
# (id, the environment's bad variables, the variable named, a fragment of the line)
CASES: list[tuple[str, dict[str, str], str, str]] = [
    ("broker scheme", {"CELERY_BROKER_URL": "http://user:secret@example.com"}, "CELERY_BROKER_URL", "must start with"),
    ("broker missing", {"CELERY_BROKER_URL": ""}, "CELERY_BROKER_URL", "is required but not set"),
    ("broker no host", {"CELERY_BROKER_URL": "amqp://"}, "CELERY_BROKER_URL", "has no host"),
    ("broker port word", {"CELERY_BROKER_URL": "redis://:secret@h:notaport/0"}, "CELERY_BROKER_URL", "port"),
    ("broker port range", {"CELERY_BROKER_URL": "redis://h:99999/0"}, "CELERY_BROKER_URL", "1 to 65535"),
    ("result backend", {"CELERY_RESULT_BACKEND": "foo://user:secret@x"}, "CELERY_RESULT_BACKEND", "'foo' is not"),
    ("imports", {"CELERY_IMPORTS": "nonexistent.module"}, "CELERY_IMPORTS", "'nonexistent.module' cannot be"),
    ("visibility word", {"CELERY_VISIBILITY_TIMEOUT": "ten"}, "CELERY_VISIBILITY_TIMEOUT", "valid integer"),
    ("visibility short", {"CELERY_VISIBILITY_TIMEOUT": "60"}, "CELERY_VISIBILITY_TIMEOUT", "must exceed"),
    ("shutdown word", {"CELERY_SOFT_SHUTDOWN_TIMEOUT": "soon"}, "CELERY_SOFT_SHUTDOWN_TIMEOUT", "valid number"),
    ("shutdown negative", {"CELERY_SOFT_SHUTDOWN_TIMEOUT": "-1"}, "CELERY_SOFT_SHUTDOWN_TIMEOUT", "or equal to 0"),
    ("shutdown inf", {"CELERY_SOFT_SHUTDOWN_TIMEOUT": "inf"}, "CELERY_SOFT_SHUTDOWN_TIMEOUT", "finite number"),
    ("prefetch", {"CELERY_PREFETCH_MULTIPLIER": "0"}, "CELERY_PREFETCH_MULTIPLIER", "greater than 0"),
    ("default is dead letter", {"CELERY_DEFAULT_QUEUE": "dead_letter"}, "CELERY_DEFAULT_QUEUE", "dead-letter queue"),
    ("route to dead letter", {"CELERY_TASK_ROUTES": '{"a.*": "dead_letter"}'}, "CELERY_TASK_ROUTES", "dead-letter"),
    ("route to a bad name", {"CELERY_TASK_ROUTES": '{"a.*": "jobs[/]"}'}, "CELERY_TASK_ROUTES", "'jobs[/]'"),
    ("soft over hard", {ANNOTATIONS: '{"a": {"soft_time_limit": 40, "time_limit": 30}}'}, ANNOTATIONS, "[a]"),
    ("soft over global", {ANNOTATIONS: '{"a": {"soft_time_limit": 2000}}'}, ANNOTATIONS, "CELERY_TASK_TIME_LIMIT"),
    ("limit over visibility", {ANNOTATIONS: '{"a": {"time_limit": 7200}}'}, ANNOTATIONS, "CELERY_VISIBILITY_TIMEOUT"),
    ("concurrency word", {"WORKER_CONCURRENCY": "two"}, "WORKER_CONCURRENCY", "valid integer"),
    ("concurrency 0", {"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY", "greater than or equal to 1"),
    ("pool thread", {"WORKER_POOL": "thread"}, "WORKER_POOL", "'thread'"),
    ("pool gevent", {"WORKER_POOL": "gevent"}, "WORKER_POOL", "'gevent'"),
]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(("variables", "named", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_worker_refuses_a_bad_value(entry: str, variables: dict[str, str], named: str, fragment: str) -> None:
    env = _environment(**{"CELERY_BROKER_URL": GOOD_BROKER, **variables})
    if not env["CELERY_BROKER_URL"]:
        del env["CELERY_BROKER_URL"]
    done = subprocess.run(ENTRY_POINTS[entry], env=env, capture_output=True, text=True, timeout=60, check=False)
    _assert_one_line_naming(done, named, fragment)
    assert "secret" not in done.stderr


@pytest.mark.parametrize(
    ("queues", "fragment"), [("", "WORKER_QUEUES is required"), ("default,dead_letter", "dead-letter")]
)
def test_start_script_refuses_bad_queues(queues: str, fragment: str) -> None:
    env = _environment(CELERY_BROKER_URL=GOOD_BROKER, WORKER_QUEUES=queues)
    done = subprocess.run([str(START_WORKER)], env=env, capture_output=True, text=True, timeout=60, check=False)
    _assert_one_line_naming(done, "WORKER_QUEUES", fragment)


def test_start_script_runs_the_pool_and_concurrency_it_is_given(redis_server: RedisServer) -> None:
    env = _environment(
        CELERY_BROKER_URL=redis_server.url,
        WORKER_QUEUES="start-worker-shape",
        WORKER_POOL="threads",
        WORKER_CONCURRENCY="3",
    )
    worker = subprocess.Popen([str(START_WORKER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        # Celery's start-up banner names the pool it runs; read until it does (or the worker exits).
        banner = next((line for line in worker.stdout if "concurrency:" in line), "")
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    assert "concurrency: 3 (thread)" in banner
