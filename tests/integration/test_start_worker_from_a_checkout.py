"""`image/bin/start-worker` runs from a fresh checkout as the docs say: it finds the repository's
virtualenv without anything on PATH, and says what to do when there is none."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from infra.servers.redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "image" / "bin" / "start-worker"
BARE_PATH = "/usr/bin:/bin"  # no virtualenv, no celery


@pytest.mark.redis
def test_start_worker_finds_the_checkouts_virtualenv(tmp_path: Path, redis_server: RedisServer) -> None:
    log = tmp_path / "worker.log"
    env = {
        "PATH": BARE_PATH,
        "HOME": str(tmp_path),
        "CELERY_BROKER_URL": redis_server.url,
        "WORKER_QUEUES": f"start-worker-{uuid.uuid4().hex[:8]}",
        "WORKER_CONCURRENCY": "1",
    }
    with log.open("wb") as out:
        worker = subprocess.Popen([str(SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in log.read_bytes():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert "celery: not found" not in log.read_text()


def test_start_worker_outside_a_checkout_says_what_to_install(tmp_path: Path) -> None:
    copy = tmp_path / "image" / "bin" / "start-worker"
    copy.parent.mkdir(parents=True)
    shutil.copy(SCRIPT, copy)
    done = subprocess.run(
        [str(copy)],
        env={"PATH": BARE_PATH, "WORKER_QUEUES": "default"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 69, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"start-worker: celery is not installed: run 'make venv' in {tmp_path}, "
        "or activate the virtualenv that holds the worker"
    ]
