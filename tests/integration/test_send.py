"""`scripts/send`: a task tried on this machine, as the README's "Adding a task" says, with its outcome."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.cli.send import arguments, task_lines
from infra.config import ROOT

pytestmark = pytest.mark.redis


def _send(*argv: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "send"), *argv, "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
        env=env,
    )


def test_a_task_that_succeeds_prints_its_result_and_its_log_line(tmp_path: Path) -> None:
    done = _send("cluster.canary", "token-7", tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS in " in done.stdout
    assert 'result: "token-7"' in done.stdout
    assert "task.finished" in done.stdout
    assert "outcome=success" in done.stdout
    assert "sent cluster.canary('token-7') to " in done.stdout  # the call as written, not a tuple's repr
    assert "Warm shutdown" not in done.stdout  # Celery's print as the worker stops is not the task's


def test_a_task_that_fails_exits_1_with_its_traceback(tmp_path: Path) -> None:
    done = _send("cluster.sleep", "4000", tmp_path=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILURE in " in done.stdout
    assert "ValueError: seconds must be within [0, 3600], got 4000" in done.stdout
    assert 'File "' in done.stdout  # the traceback's frames, not only its last line


def test_a_worker_that_cannot_import_a_task_module_exits_3_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text("import no_such_package_celery_cluster\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CELERY_IMPORTS": "broken_tasks"}
    done = _send("cluster.ping", tmp_path=tmp_path, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "ModuleNotFoundError: No module named 'no_such_package_celery_cluster'" in done.stdout


def test_arguments_are_json_when_they_parse_and_text_otherwise() -> None:
    assert arguments(["42", "inv-7", '{"n": 1}', "true", "[1, 2]"]) == [42, "inv-7", {"n": 1}, True, [1, 2]]


def test_the_log_lines_of_a_task_keep_their_traceback_and_nothing_else() -> None:
    log = "\n".join(
        [
            "2026-01-01T00:00:00Z [info] other task_id=2f3e",
            "2026-01-01T00:00:01Z [error] Task x[9c1d] raised",
            "Traceback (most recent call last):",
            '  File "t.py", line 1',
            "ValueError: no",
            "2026-01-01T00:00:02Z [info] task.finished task_id=2f3e",
            "2026-01-01T00:00:03Z [info] task.finished task_id=9c1d",
            "",
            "worker: Warm shutdown (MainProcess)",  # Celery's print at the end, after the task's last record
        ]
    )
    assert task_lines(log, "9c1d") == [
        "2026-01-01T00:00:01Z [error] Task x[9c1d] raised",
        "Traceback (most recent call last):",
        '  File "t.py", line 1',
        "ValueError: no",
        "2026-01-01T00:00:03Z [info] task.finished task_id=9c1d",
    ]
    assert json.dumps(task_lines(log, "zz")) == "[]"
