"""Scheduler processes for the fault tests (tests/integration/test_scheduler_faults.py): started as the
instance starts them, with JSON logs the tests read, and the counts the issue asks for per fault.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from infra.local.scheduler import SchedulerProcess
from infra.local.workers import REPO_ROOT
from tests.support.cluster import Cluster
from tests.support.periodic import executions, run_prefix, slot_of

# A directory whose sitecustomize shifts time.time() by CELERY_CLUSTER_TEST_CLOCK_OFFSET_S.
SKEWED_CLOCK = Path(__file__).resolve().parent / "skewed_clock"


def start_scheduler(
    cluster: Cluster,
    name: str,
    prefix: str,
    log_dir: Path,
    schedule: str,
    lease: float,
    *,
    broker_url: str | None = None,
    lease_url: str | None = None,
    clock_offset: float = 0.0,
) -> SchedulerProcess:
    env = {
        **cluster.env,
        "SCHEDULER_SCHEDULE": f"tests.support.periodic_entries:{schedule}",
        "SCHEDULER_LEASE_SECONDS": str(lease),
        "SCHEDULER_KEY_PREFIX": prefix,
        "CELERY_LOG_FORMAT": "json",
    }
    if lease_url is not None:
        env["SCHEDULER_LEASE_URL"] = lease_url
    if clock_offset:
        paths = [str(SKEWED_CLOCK), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["CELERY_CLUSTER_TEST_CLOCK_OFFSET_S"] = str(clock_offset)
    return SchedulerProcess(
        name=name, broker_url=broker_url or cluster.broker.url, log_path=log_dir / f"{name}.log", env=env
    ).start()


def events(scheduler: SchedulerProcess, event: str) -> list[dict[str, object]]:
    """The scheduler's JSON log lines for `event`."""
    if not scheduler.log_path.exists():
        return []
    found = []
    for line in scheduler.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found


def holder_pid(url: str, prefix: str) -> int | None:
    """The pid of the scheduler holding the lease (holder ids are host:pid), or None."""
    client = redis.Redis.from_url(url)
    try:
        raw = client.get(f"{prefix}:lease")
    finally:
        client.close()
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return int(text.rsplit(":", 1)[1])


def wait_for(check: Callable[[], object], timeout: float, describe: Callable[[], str]) -> None:
    """Until `check()` is true; `describe()` says why not in the failure."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        time.sleep(0.05)


def pause(scheduler: SchedulerProcess) -> None:
    os.killpg(scheduler.pid, signal.SIGSTOP)


def resume(scheduler: SchedulerProcess) -> None:
    os.killpg(scheduler.pid, signal.SIGCONT)


@dataclass(frozen=True)
class Counts:
    """Per fault, what the issue asks for: runs (slots due in the window), sent (publishes the
    schedulers logged), executed (journal), lost (due slots never executed), duplicated (slots
    executed more than once)."""

    runs: int
    sent: int
    executed: int
    lost: int
    duplicated: int
    refused: int  # copies the workers refused because another copy of the run had started

    def line(self, fault: str) -> str:
        return (
            f"{fault}: runs {self.runs}, sent {self.sent}, executed {self.executed}, lost {self.lost}, "
            f"duplicated {self.duplicated} (copies refused by the workers: {self.refused})"
        )


def count(
    cluster: Cluster, schedulers: list[SchedulerProcess], entry: str, interval: float, first: float, last: float
) -> Counts:
    """Counts for the slots first..last (inclusive) of an interval entry."""
    prefix = run_prefix(entry)
    due = round((last - first) / interval) + 1
    ran = Counter(slot_of(i["task_id"]) for i in executions(cluster, entry) if first <= slot_of(i["task_id"]) <= last)
    sent = [
        e
        for s in schedulers
        for e in events(s, "scheduler.sent")
        if str(e["task_id"]).startswith(prefix) and first <= slot_of(str(e["task_id"])) <= last
    ]
    refused = 0
    for worker in cluster.workers:
        text = worker.log_path.read_text(errors="replace") if worker.log_path.exists() else ""
        refused += sum(1 for line in text.splitlines() if "periodic.copy_refused" in line and prefix in line)
    return Counts(
        runs=due,
        sent=len(sent),
        executed=sum(ran.values()),
        lost=due - len(ran),
        duplicated=sum(1 for n in ran.values() if n > 1),
        refused=refused,
    )
