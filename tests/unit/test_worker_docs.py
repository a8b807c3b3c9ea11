"""docs/worker.md lists every worker variable: the settings' CELERY_* and start-worker's WORKER_*."""

from __future__ import annotations

import re

from infra.local.workers import REPO_ROOT, START_WORKER
from worker.instance.secret_watch import WatchSettings
from worker.runtime.settings import PROCESS_ENV_PREFIX, ProcessSettings, WorkerSettings, env_name

DOC = (REPO_ROOT / "docs" / "worker.md").read_text()
TABLE_NAMES = set(re.findall(r"^\| `((?:CELERY|WORKER)_[A-Z_]+)` \|", DOC, flags=re.MULTILINE))


def _settings() -> set[str]:
    names = {env_name(field) for field in WorkerSettings.model_fields}
    names |= {env_name(field, PROCESS_ENV_PREFIX) for field in ProcessSettings.model_fields}
    # The secret the worker reads again while it runs (worker.instance.secret_watch).
    return names | {env_name(field, PROCESS_ENV_PREFIX) for field in WatchSettings.model_fields}


def test_every_setting_is_in_the_table() -> None:
    assert _settings() - TABLE_NAMES == set()


def test_every_start_script_variable_is_in_the_table() -> None:
    script = START_WORKER.read_text()
    used = set(re.findall(r"\$\{(WORKER_[A-Z_]+)", script))
    assert used, "start-worker reads no WORKER_* variable?"
    assert used - TABLE_NAMES == set()


def test_the_table_names_no_variable_that_does_not_exist() -> None:
    known = _settings()
    known |= set(re.findall(r"\$\{(WORKER_[A-Z_]+)", START_WORKER.read_text()))
    assert TABLE_NAMES - known == set()
