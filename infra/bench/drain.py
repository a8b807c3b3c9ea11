"""How long a draining worker stays after its last task ends: ours (Celery's warm shutdown bounded by
`worker.runtime.shutdown`) against Celery's own soft shutdown (what the worker did before).

A real worker (2 processes) on a loopback Redis runs two 3-second tasks; SIGTERM comes while both
run, with a 20-second window. Measured from the execution journal (when each task ended) and the
worker process (when it exited). Reported: median over runs, seconds.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from rich.table import Table

from infra.bench.table import bench_table
from infra.local.workers import WorkerProcess
from infra.servers.redis import RedisServer
from worker.runtime import journal
from worker.runtime.busy import running_tasks
from worker.sender import sender_app

RUNS = 3
TASK_S = 3.0
WINDOW_S = 20
CELERY = str(Path(sys.executable).parent / "celery")


def _start(variant: str, broker_url: str, journal_url: str, busy_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        "CELERY_JOURNAL_URL": journal_url,
        "CELERY_SOFT_SHUTDOWN_TIMEOUT": str(WINDOW_S),
        "CELERY_BUSY_DIR": str(busy_dir),
        "CELERY_LOG_LEVEL": "WARNING",
    }
    if variant == "ours":
        worker = WorkerProcess("drain-bench", ["default"], broker_url, log, concurrency=2, env=env).start()
        assert worker.process is not None
        return worker.process
    with log.open("ab") as out:
        return subprocess.Popen(
            [CELERY, "--app", "infra.bench.celery_soft_shutdown_app", "worker", "--queues", "default",
             "--concurrency", "2", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
            env={**os.environ, **env, "CELERY_BROKER_URL": broker_url, "REMAP_SIGTERM": "SIGQUIT"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain bench: {what} within {timeout:.0f} s")
        time.sleep(0.05)


def _one(variant: str, server: RedisServer, scratch: Path, run: int) -> tuple[float, float]:
    """(seconds from SIGTERM to exit, seconds from the last task's end to exit)."""
    journal_url = server.url.removesuffix("/0") + "/1"
    busy_dir = scratch / f"busy-{variant}-{run}"
    process = _start(variant, server.url, journal_url, busy_dir, scratch / f"{variant}-{run}.log")
    app = sender_app(server.url)
    client = redis.Redis.from_url(journal_url)
    try:
        ids = [app.send_task("cluster.sleep", args=[TASK_S]).id for _ in range(2)]
        _wait(lambda: running_tasks(busy_dir) == 2, 120, "two tasks running")
        signalled = time.time()
        process.send_signal(signal.SIGTERM)
        process.wait(WINDOW_S + 60)
        exited = time.time()
        ended = [float(e["finished_at"]) for e in journal.read(client) if e["task_id"] in ids]
        if len(ended) != len(ids):
            raise RuntimeError(f"drain bench: {variant}: {len(ended)} of {len(ids)} tasks finished before exit")
        return exited - signalled, exited - max(ended)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        client.flushdb()
        client.close()
        app.close()


def measure() -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    with RedisServer(appendonly=False) as server, tempfile.TemporaryDirectory(prefix="drain-bench-") as scratch:
        for variant in ("celery", "ours"):
            runs = [_one(variant, server, Path(scratch), run) for run in range(RUNS)]
            results[variant] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    return results


def run() -> Table:
    results = measure()
    out = bench_table(
        f"Drain: SIGTERM with two {TASK_S:.0f} s tasks running, {WINDOW_S} s window (median of {RUNS})",
        ("shutdown", "exit after SIGTERM", "exit after last task", "ratio to Celery"),
        caption="after last task: how long the instance is held once its work is done",
    )
    base = results["celery"][1]
    names = {"celery": "Celery soft shutdown (before)", "ours": "warm, bounded (worker.runtime.shutdown)"}
    for variant, (after_signal, after_last) in results.items():
        out.add_row(names[variant], f"{after_signal:.1f} s", f"{after_last:.1f} s", f"{after_last / base:.2f}")
    return out
