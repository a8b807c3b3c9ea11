"""A bad environment stops the worker at start: exit code != 0 and one line naming the variable.

Runs the real command lines (`celery -A worker.app worker`, and the image's start script); no
broker is needed because the worker must stop before it connects.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local.workers import START_WORKER

CELERY = str(Path(sys.executable).parent / "celery")
GOOD_BROKER = "redis://127.0.0.1:1/0"  # never reached: nothing listens on port 1


def _environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **variables}


def _assert_one_line_naming(done: subprocess.CompletedProcess[str], variable: str, fragment: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0]
    assert fragment in lines[0]


@pytest.mark.parametrize(
    ("variables", "named", "fragment"),
    [
        ({"CELERY_BROKER_URL": "http://user:secret@example.com"}, "CELERY_BROKER_URL", "must start with one of"),
        ({}, "CELERY_BROKER_URL", "is required"),
        ({"CELERY_VISIBILITY_TIMEOUT": "ten"}, "CELERY_VISIBILITY_TIMEOUT", "valid integer"),
        ({"CELERY_VISIBILITY_TIMEOUT": "60"}, "CELERY_VISIBILITY_TIMEOUT", "must exceed CELERY_TASK_TIME_LIMIT"),
        ({"CELERY_SOFT_SHUTDOWN_TIMEOUT": "soon"}, "CELERY_SOFT_SHUTDOWN_TIMEOUT", "valid number"),
        ({"CELERY_SOFT_SHUTDOWN_TIMEOUT": "-1"}, "CELERY_SOFT_SHUTDOWN_TIMEOUT", "greater than or equal to 0"),
        ({"CELERY_PREFETCH_MULTIPLIER": "0"}, "CELERY_PREFETCH_MULTIPLIER", "greater than 0"),
    ],
    ids=[
        "broker-scheme",
        "broker-missing",
        "visibility-nan",
        "visibility-short",
        "soft-nan",
        "soft-negative",
        "prefetch",
    ],
)
def test_celery_worker_refuses_a_bad_value(variables: dict[str, str], named: str, fragment: str) -> None:
    env = _environment(**({"CELERY_BROKER_URL": GOOD_BROKER} | variables if variables else {}))
    done = subprocess.run(
        [CELERY, "-A", "worker.app", "worker"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    _assert_one_line_naming(done, named, fragment)
    assert "secret" not in done.stderr


def test_start_script_refuses_a_bad_value_the_same_way() -> None:
    env = _environment(CELERY_BROKER_URL="amqp://", WORKER_QUEUES="default")
    done = subprocess.run([str(START_WORKER)], env=env, capture_output=True, text=True, timeout=60, check=False)
    _assert_one_line_naming(done, "CELERY_BROKER_URL", "has no host")
