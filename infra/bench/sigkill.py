"""SIGKILL a worker running 10 ms tasks, again and again, and count every task (the execution journal).

A worker running short tasks spends much of its time taking messages, so a kill at a random moment
often lands between kombu's BRPOP and its record of the message as unacknowledged: the message was in
no queue and in no hash, lost (celery/kombu#305). `worker.runtime.redis_take` takes atomically; this is
the measurement behind that, run by `make bench --only sigkill` (100 kills) and, with fewer kills, by
tests/integration/test_worker_faults.py.

Each cycle: a fresh worker starts beside the one about to die and answers a ping; a batch of tasks is
sent; once the victim has run some of them (the journal says so, so the kill lands while it is taking
and running, not idle), its process group is SIGKILLed. The fresh one is the next victim. At the end
one worker drains everything, including what the killed ones held (back after the visibility timeout).
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis
from rich.table import Table

from infra.local.accounting import JournalTracker
from infra.local.workers import WorkerProcess
from infra.servers.redis import RedisServer
from worker.sender import sender_app

TASK_SECONDS = 0.01
# Tasks sent per cycle, and how many of them the victim must have run before the kill: the rest are
# still queued or being taken when it dies.
BATCH = 200
RUN_BEFORE_KILL = 20
BENCH_KILLS = 100
# The settings insist that the visibility timeout exceeds the hard limit, which exceeds the soft one.
FAST_REDELIVERY = {
    "CELERY_VISIBILITY_TIMEOUT": "6",
    "CELERY_TASK_TIME_LIMIT": "5",
    "CELERY_TASK_SOFT_TIME_LIMIT": "4",
}


@dataclass(frozen=True)
class KillCount:
    kills: int
    sent: int
    executed: int  # distinct tasks that ran to the end at least once
    lost: int
    duplicated: int  # runs beyond the first
    seconds: float

    def line(self, broker: str) -> str:
        return (
            f"sigkill x{self.kills} with {TASK_SECONDS * 1000:.0f} ms tasks on {broker}: sent {self.sent}, "
            f"executed {self.executed}, lost {self.lost}, duplicated {self.duplicated} ({self.seconds:.0f} s)"
        )


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"sigkill: {what} within {timeout:.0f} s")
        time.sleep(0.02)


def _reached(ran: Callable[[WorkerProcess], int], worker: WorkerProcess, count: int) -> bool:
    return ran(worker) >= count


def kill_cycles(
    kills: int,
    start_worker: Callable[[], WorkerProcess],
    send: Callable[[int], list[str]],
    journal: JournalTracker,
    drain_timeout: float = 120.0,
) -> KillCount:
    """`kills` SIGKILLs of a busy worker; `start_worker` returns a worker that answers a ping."""
    started = time.monotonic()
    sent: list[str] = []
    runs: Counter[str] = Counter()  # journal entries per worker name
    counted = 0

    def ran(worker: WorkerProcess) -> int:
        nonlocal counted
        journal.update()
        runs.update(entry["hostname"].split("@", 1)[0] for entry in journal.entries[counted:])
        counted = len(journal.entries)
        return runs[worker.name]

    victim = start_worker()
    for _ in range(kills):
        fresh = start_worker()
        before = ran(victim)
        sent += send(BATCH)
        _wait(partial(_reached, ran, victim, before + RUN_BEFORE_KILL), 60, f"{RUN_BEFORE_KILL} runs by {victim.name}")
        victim.kill()
        victim.wait(10)
        victim = fresh
    deadline = time.monotonic() + drain_timeout
    while (tally := journal.tally(sent)).lost and time.monotonic() < deadline:
        time.sleep(0.2)
        journal.update()
    return KillCount(kills, tally.sent, tally.completed, tally.lost, tally.duplicates, time.monotonic() - started)


def measure(kills: int = BENCH_KILLS) -> KillCount:
    """On a loopback Redis of our own (AOF, as the tests run it), with a journal on a second server."""
    with RedisServer() as broker, RedisServer(appendonly=False) as journal_server:
        scratch = Path(tempfile.mkdtemp(prefix="sigkill-bench-"))
        app = sender_app(broker.url, default_queue="sigkill")
        client = redis.Redis.from_url(journal_server.url)
        workers: list[WorkerProcess] = []

        def start() -> WorkerProcess:
            name = f"sigkill{len(workers) + 1}"
            env = {**FAST_REDELIVERY, "CELERY_JOURNAL_URL": journal_server.url, "CELERY_LOG_LEVEL": "WARNING"}
            worker = WorkerProcess(name, ["sigkill"], broker.url, scratch / f"{name}.log", env=env).start()
            workers.append(worker)
            destination = [f"{name}@{socket.gethostname()}"]
            _wait(lambda: bool(app.control.ping(destination=destination, timeout=0.5)), 120, f"{name} up")
            return worker

        def send(count: int) -> list[str]:
            return [app.send_task("cluster.sleep", args=[TASK_SECONDS], queue="sigkill").id for _ in range(count)]

        try:
            return kill_cycles(kills, start, send, JournalTracker(client))
        finally:
            for worker in workers:
                worker.stop(10)
            client.close()
            app.close()


def run() -> Table:
    count = measure()
    table = Table(title=f"SIGKILL of a worker running {TASK_SECONDS * 1000:.0f} ms tasks, Redis (journal counts)")
    for column in ("kills", "sent", "executed", "lost", "duplicated", "s per kill"):
        table.add_column(column, justify="right")
    table.add_row(
        str(count.kills),
        str(count.sent),
        str(count.executed),
        str(count.lost),
        str(count.duplicated),
        f"{count.seconds / max(1, count.kills):.1f}",
    )
    return table
