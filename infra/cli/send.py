"""Try a task on this machine: a broker and one worker of the stack's pool, the task sent, its outcome.

Starts a private Redis and one worker exactly as the pool's instances start (`image/bin/start-worker`,
the pool's queues, concurrency and worker settings, the stack's routing table), sends TASK with the
arguments given (each read as JSON, else as text: `42` is a number, `inv-7` a string), and waits until the
worker has run it. Prints the outcome, the result when the task keeps one, and the worker's log lines
for that task; the worker's whole log stays in --log-dir. A task that fails to import stops the worker:
its error is printed. Nothing is left running.

Examples:

\b
  scripts/send cluster.ping
  scripts/send cluster.sleep 2
  scripts/send webhooks.deliver d-1 https://example.com/hook '{"n": 1}'
  scripts/send reports.build nightly --kwargs '{"force": true}'
  scripts/send invoices.send inv-7 --stack prod --pool billing

Exit codes:

\b
  0  the task ran and succeeded
  1  it failed, was dead-lettered (an unknown task name, say) or did not end
     within --timeout
  2  bad input: stack, pool, JSON, or a route to a queue the pool does not
     consume
  3  the worker could not start: the error from its log is printed
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import typer

from infra.cli.entry import run_script
from infra.cli.errors import report
from infra.config import ROOT, ConfigError, StackConfig, load_stack_config
from infra.local.fleet import READY_MARK
from infra.local.workers import WorkerProcess, log_excerpt
from infra.servers.redis import RedisServer, ServerNotInstalledError
from worker.runtime import dead_letters, journal
from worker.sender import sender_app

START_TIMEOUT = 60.0
"""Wall seconds for the worker to log that it is ready (about 1-2 s measured; a busy machine, longer)."""


def arguments(values: list[str]) -> list[Any]:
    """Each argument as JSON when it parses (numbers, true, objects), else as the text given."""
    parsed: list[Any] = []
    for value in values:
        try:
            parsed.append(json.loads(value))
        except json.JSONDecodeError:
            parsed.append(value)
    return parsed


def _wait_ready(worker: WorkerProcess) -> list[str] | None:
    """None once the worker is ready; the lines of its log that say why when it exited first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not worker.running():
            return log_excerpt(worker.log_path)
        if worker.log_path.exists() and READY_MARK in worker.log_path.read_bytes():
            return None
        time.sleep(0.1)
    return [f"not ready after {START_TIMEOUT:.0f} s"]


def _outcome(journal_url: str, broker_url: str, dlq: str, task_id: str, timeout: float) -> dict[str, str] | None:
    """The journal's entry of the task's run, or a dead letter's reason; None when neither came in time."""
    client = redis.Redis.from_url(journal_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            runs = [e for e in journal.read(client) if e["task_id"] == task_id]
            if runs:
                return runs[-1]
            letters = [d for d in dead_letters.read(broker_url, dlq) if d.get("task_id") == task_id]
            if letters:
                return {
                    "state": "DEAD-LETTERED",
                    "reason": str(letters[0].get("reason")),
                    "error": str(letters[0].get("error")),
                }
            time.sleep(0.2)
    finally:
        client.close()
    return None


def main(
    task: str = typer.Argument(..., help="the task's registered name, e.g. invoices.send"),
    args: list[str] = typer.Argument(None, metavar="ARGS", help="its positional arguments, each JSON or text"),
    kwargs: str = typer.Option("{}", help="its keyword arguments, a JSON object"),
    stack: str = typer.Option("dev", help="stack whose Pulumi.<stack>.yaml holds the pool and the routes"),
    pool: str | None = typer.Option(None, help="the pool whose worker runs it (default: the one its route names)"),
    timeout: float = typer.Option(60.0, min=1, help="wall seconds to wait for the task to end"),
    log_dir: Path = typer.Option(ROOT / "build" / "send", help="where the worker's log goes"),
) -> None:
    try:
        config = load_stack_config(stack)
        queue, pool = _route(config, task, pool)
        keywords = json.loads(kwargs)
        if not isinstance(keywords, dict):
            raise ValueError("--kwargs must be a JSON object")
    except (ConfigError, ValueError) as exc:
        report("send", exc)
        raise typer.Exit(2) from None
    queues = list(config.pools[pool].queues)
    environment = {**config.worker_environment(pool), "CELERY_LOG_FORMAT": "console"}
    try:
        with RedisServer() as server:
            raise typer.Exit(
                _run(
                    server.url,
                    _Try(task, arguments(args or []), keywords, queue, pool, queues, environment),
                    timeout,
                    log_dir,
                )
            )
    except ServerNotInstalledError as exc:
        report("send", exc)
        raise typer.Exit(2) from None


def _route(config: StackConfig, task: str, pool: str | None) -> tuple[str, str]:
    """The queue the stack's routing table sends `task` to, and the pool that consumes it (`pool` if given)."""
    routes = json.dumps(dict(config.task_routes))
    # The router only: no connection is made to this URL.
    queue = str(sender_app("redis://127.0.0.1:1/0", task_routes=routes).amqp.router.route({}, task)["queue"].name)
    consuming = [name for name, p in config.pools.items() if queue in p.queues]
    if pool is None and not consuming:
        raise ConfigError(f"{task} routes to queue {queue!r}, which no pool of stack {config.stack} consumes")
    chosen = pool or consuming[0]
    if chosen not in config.pools:
        raise ConfigError(f"stack {config.stack} has no pool {chosen!r}; its pools: {', '.join(config.pools)}")
    if queue not in config.pools[chosen].queues:
        raise ConfigError(f"{task} routes to queue {queue!r}, which pool {chosen} does not consume")
    return queue, chosen


@dataclass(frozen=True)
class _Try:
    """One try: the task, its arguments, where it goes, and the pool worker that runs it."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    pool: str
    queues: list[str]
    environment: dict[str, str]


def _run(broker_url: str, attempt: _Try, timeout: float, log_dir: Path) -> int:
    """Start the pool's worker, send the task, wait for its end, print it; the exit status."""
    task, args, kwargs, queue, pool, queues, environment = (
        attempt.task, attempt.args, attempt.kwargs, attempt.queue, attempt.pool, attempt.queues, attempt.environment
    )  # fmt: skip
    journal_url = broker_url.removesuffix("/0") + "/1"
    app = sender_app(broker_url, task_routes=environment.get("CELERY_TASK_ROUTES", "{}"))
    worker = WorkerProcess(
        name=f"send-{pool}",
        queues=queues,
        broker_url=broker_url,
        log_path=log_dir / f"send-{pool}.log",
        env={**environment, "CELERY_JOURNAL_URL": journal_url},
    )
    worker.log_path.unlink(missing_ok=True)
    worker.start()
    try:
        failed = _wait_ready(worker)
        if failed is not None:
            typer.echo(f"the {pool} worker could not start; {worker.log_path}:")
            typer.echo("\n".join(f"  {line}" for line in failed))
            return 3
        sent = app.send_task(task, args=args, kwargs=kwargs, queue=queue)
        typer.echo(f"sent {task}({', '.join(map(repr, args))}) to {queue} as {sent.id}; a {pool} worker runs it")
        outcome = _outcome(
            journal_url, broker_url, environment.get("CELERY_DEAD_LETTER_QUEUE", "dead_letter"), sent.id, timeout
        )
        # The worker's main process logs a failure after the task's process journalled it: stop the worker
        # (it drains and exits), so that its log holds every line about the task, then read it.
        worker.stop(30)
        _print_outcome(app, sent.id, outcome, worker.log_path, timeout)
        return 0 if outcome is not None and outcome.get("state") == "SUCCESS" else 1
    finally:
        worker.stop(30)  # does nothing when already stopped
        app.close()


_RECORD = re.compile(r"^\d{4}-\d\d-\d\dT")  # a console log record starts with its timestamp
# Celery prints its shutdown ("worker: Warm shutdown (MainProcess)") without a timestamp: not the record's.
_CELERY_PRINT = re.compile(r"^worker: ")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # structlog's console renderer colours its fields


def task_lines(log: str, task_id: str) -> list[str]:
    """The worker's log records that name the task, each with its continuation lines (a traceback)."""
    kept: list[str] = []
    keeping = False
    for line in _COLOUR.sub("", log).splitlines():
        if _RECORD.match(line):
            keeping = task_id in line
        elif _CELERY_PRINT.match(line):
            keeping = False
        if keeping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept


def _print_outcome(app: Any, task_id: str, outcome: dict[str, str] | None, log: Path, timeout: float) -> None:
    if outcome is None:
        typer.echo(f"not done within {timeout:.0f} s (--timeout)")
    elif outcome["state"] == "DEAD-LETTERED":
        typer.echo(f"dead-lettered ({outcome['reason']}): {outcome['error']}")
    else:
        seconds = float(outcome["finished_at"]) - float(outcome["started_at"] or outcome["finished_at"])
        typer.echo(f"{outcome['state']} in {seconds:.2f} s")
        meta = app.backend.get_task_meta(task_id)
        if meta.get("status") == "SUCCESS":
            typer.echo(f"result: {json.dumps(meta.get('result'))}")
    lines = task_lines(log.read_text(errors="replace"), task_id)
    typer.echo(f"the worker's lines for it ({log}):")
    typer.echo("\n".join(f"  {line}" for line in lines) or "  (none)")


if __name__ == "__main__":
    run_script(main, "send", __doc__)
