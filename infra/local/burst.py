"""`make local`: a Redis broker, a pool of worker processes, a burst of tasks, a summary.

Everything runs on this machine from the installed package, started the way a VM starts it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.local.accounting import Tally, tally
from infra.local.redis_server import RedisServer
from infra.local.workers import WorkerProcess
from worker import journal
from worker.client import client_app
from worker.names import DEFAULT_QUEUE


@dataclass(frozen=True)
class BurstPlan:
    workers: int = 2
    concurrency: int = 2
    sleep_tasks: int = 60
    sleep_seconds: float = 0.5
    canaries: int = 20
    timeout: float = 120.0
    log_dir: Path = Path("build/local")


@dataclass(frozen=True)
class BurstResult:
    tally: Tally
    canaries_returned: int
    canaries_sent: int
    elapsed: float


def wait_for_workers(app: Celery, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise TimeoutError(f"{count} workers did not answer a ping within {timeout:.0f} s; see the logs in build/local")


def run_burst(plan: BurstPlan, console: Console) -> BurstResult:
    with ExitStack() as stack:
        console.print("[bold]Starting[/] redis-server (AOF on, noeviction) on a free port")
        server = stack.enter_context(RedisServer())
        journal_url = server.url.removesuffix("/0") + "/1"
        workers = [
            WorkerProcess(
                name=f"local-{index + 1}",
                queues=[DEFAULT_QUEUE],
                broker_url=server.url,
                concurrency=plan.concurrency,
                log_path=plan.log_dir / f"worker-{index + 1}.log",
                env={"CELERY_JOURNAL_URL": journal_url, "CELERY_SOFT_SHUTDOWN_TIMEOUT": "10"},
            ).start()
            for index in range(plan.workers)
        ]
        stack.callback(lambda: [w.stop(timeout=30) for w in workers])
        app = client_app(server.url)
        console.print(
            f"[bold]Starting[/] {plan.workers} workers x {plan.concurrency} processes "
            f"with image/bin/start-worker (logs in {plan.log_dir})"
        )
        wait_for_workers(app, plan.workers, timeout=60)

        started = time.monotonic()
        sent: list[str] = []
        for _ in range(plan.sleep_tasks):
            sent.append(app.send_task("cluster.sleep", args=[plan.sleep_seconds], queue=DEFAULT_QUEUE).id)
        canary_results = []
        for _ in range(plan.canaries):
            token = uuid.uuid4().hex
            canary_results.append((token, app.send_task("cluster.canary", args=[token], queue=DEFAULT_QUEUE)))
            sent.append(canary_results[-1][1].id)
        console.print(
            f"[bold]Sent[/] {plan.sleep_tasks} cluster.sleep({plan.sleep_seconds}) "
            f"and {plan.canaries} cluster.canary tasks"
        )

        journal_client = redis.Redis.from_url(journal_url)
        current = _drain(sent, journal_client, plan.timeout, console)
        returned = sum(1 for token, result in canary_results if result.get(timeout=10) == token)
        return BurstResult(current, returned, plan.canaries, time.monotonic() - started)


def _drain(sent: list[str], client: redis.Redis, timeout: float, console: Console) -> Tally:
    deadline = time.monotonic() + timeout
    read: Callable[[], Tally] = lambda: tally(sent, journal.read(client))  # noqa: E731
    current = read()
    if console.is_terminal:
        columns = (TextColumn("draining"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("drain", total=current.sent)
            while current.completed < current.sent and time.monotonic() < deadline:
                time.sleep(0.2)
                current = read()
                progress.update(bar, completed=current.completed)
    else:  # headless (CI, a pipe): a plain line every 2 s
        last = 0.0
        while current.completed < current.sent and time.monotonic() < deadline:
            if time.monotonic() - last >= 2:
                console.print(f"draining: {current.completed}/{current.sent} completed")
                last = time.monotonic()
            time.sleep(0.2)
            current = read()
    return current


def summary_table(result: BurstResult) -> Table:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f} s"

    t = result.tally
    table = Table(title="make local: summary", show_header=False)
    for label, value in [
        ("sent", str(t.sent)),
        ("completed", str(t.completed)),
        ("lost", str(t.lost)),
        ("duplicates", str(t.duplicates)),
        ("canaries returned", f"{result.canaries_returned}/{result.canaries_sent}"),
        ("p50 queue wait", seconds(t.p50_wait)),
        ("p95 queue wait", seconds(t.p95_wait)),
        ("wall time", f"{result.elapsed:.1f} s"),
    ]:
        table.add_row(label, value)
    return table
