"""scripts/check-task-names as the pull-request job runs it, and its static scan against the real app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra.cli.task_name_changes import declared, sources_here

ROOT = Path(__file__).resolve().parents[2]


def test_the_static_scan_finds_exactly_the_tasks_the_worker_registers() -> None:
    """The check reads both revisions without running them; here it must agree with the real app."""
    script = (
        "import json; from worker.app import app; app.loader.import_default_modules(); "
        "print(json.dumps(sorted(n for n in app.tasks if not n.startswith('celery.'))))"
    )
    env = {**os.environ, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert sorted(declared(sources_here(ROOT))) == json.loads(done.stdout)


def test_the_command_passes_on_an_unchanged_tree() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "check-task-names"), "--base", "HEAD"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "None: every task name of the base is still declared." in done.stdout
