"""docs/worker.md lists every worker variable: the settings' CELERY_* and start-worker's WORKER_*."""

from __future__ import annotations

import argparse
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


# --- what the guarantees, the dead-letter command and the broker notes name -------------------------

TESTS_DIR = REPO_ROOT / "tests"
ALL_DOCS = {
    path.relative_to(REPO_ROOT).as_posix(): path.read_text()
    for path in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
}


def _test_functions() -> set[str]:
    return {
        name
        for path in TESTS_DIR.rglob("test_*.py")
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), flags=re.MULTILINE)
    }


def test_every_test_the_worker_docs_name_exists() -> None:
    named = set(re.findall(r"`(test_\w+)", DOC))
    assert named, "docs/worker.md names no test?"
    assert named - _test_functions() == set()


def test_every_deadletter_command_and_option_in_the_docs_exists() -> None:
    from worker.deadletter import cli  # noqa: PLC0415 - imports the command, not the worker app

    parser = cli._parser()  # the parser --help prints
    chooser = next(a for a in parser._actions if a.dest == "command")
    commands: dict[str, argparse.ArgumentParser] = dict(chooser.choices or {})
    top = {o for a in parser._actions for o in a.option_strings}
    missing = []
    for doc, text in ALL_DOCS.items():
        for line in re.findall(r"python -m worker\.deadletter([^`\n#|']*)", text):
            words = line.split()
            sub = words[0] if words and not words[0].startswith("-") else None
            if sub is not None and sub not in commands:
                missing.append(f"{doc}: no command {sub!r}")
                continue
            known = top | ({o for a in commands[sub]._actions for o in a.option_strings} if sub else set())
            unknown = [w for w in words if w.startswith("--") and w not in known]
            missing += [f"{doc}: {sub or '(list)'} has no option {w}" for w in unknown]
    assert missing == []


# Redis commands the docs say the worker uses, and the module that must use them.
REDIS_COMMANDS = {
    "BLMOVE": "worker/runtime/redis_take.py",
    "BRPOP": "worker/runtime/redis_take.py",
    "HDEL": "worker/runtime/redis_take.py",
    "ZREM": "worker/runtime/redis_take.py",
    "LRANGE": "worker/runtime/dead_letter_store.py",
    "LREM": "worker/runtime/dead_letter_store.py",
}


def test_the_redis_commands_the_docs_name_are_the_ones_the_code_sends() -> None:
    for command, module in REDIS_COMMANDS.items():
        assert f"`{command}`" in DOC, command
        source = (REPO_ROOT / module).read_text()
        assert f'"{command}"' in source or f".{command.lower()}(" in source, (command, module)
    # Acks without MULTI: a full Redis refuses every command queued in one.
    assert "pipeline(transaction=False)" in (REPO_ROOT / REDIS_COMMANDS["HDEL"]).read_text()


def test_the_constants_the_broker_notes_name_exist() -> None:
    from infra.config import stack  # noqa: PLC0415
    from worker.runtime import redis_take  # noqa: PLC0415

    named = set(re.findall(r"`((?:FULL_WAIT|MIN_REDIS)_[A-Z_]+)`", DOC))
    assert named == {"FULL_WAIT_FIRST_SECONDS", "FULL_WAIT_MAX_SECONDS", "MIN_REDIS_ENGINE_VERSION"}
    for name in named:
        assert hasattr(redis_take, name) or hasattr(stack, name), name
    oldest = ".".join(map(str, stack.MIN_REDIS_ENGINE_VERSION))
    assert f"Redis {oldest} or later" in DOC
    assert f"Redis {oldest} or later" in ALL_DOCS["README.md"]
