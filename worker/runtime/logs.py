"""Structured logs: one JSON object per line, and one line per task run with its outcome.

Celery's own log records go through the same formatter, so CloudWatch Logs Insights can query
every line by field (task_id, task, queue, duration_s, outcome). Every line also carries the
process's `version` and `pool` (WORKER_CODE_VERSION, WORKER_POOL_NAME): the pool's metric filters
(infra.components.canary) count task outcomes per code version from these lines, so a canary
refresh judges the new version's tasks alone, not the pool's average diluted by old instances.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun, task_retry
from celery.worker.consumer import consumer as celery_consumer

from worker.names import EVENT_TASK_FINISHED, EVENT_TASK_RETRY
from worker.runtime.broker_errors import RefusedCredentialsFilter
from worker.runtime.settings import ProcessSettings, WorkerSettings

log = structlog.get_logger("worker.tasks")

_started: dict[str, float] = {}

_PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

# What Celery's consumer logs as it drops a message it cannot run ("The message has been ignored and
# discarded", "Received and deleted unknown message", "Can't decode message body"). The worker's consumer
# (worker.runtime.dead_letters.DeadLetteringConsumer) dead-letters each such message before Celery's
# handler runs, and logs "dead-lettered <task id> as <dead-letter id>"; Celery's line would say the
# opposite of what happened. Celery's handler runs only after the dead letter was published.
_DISCARDED = frozenset(
    {
        celery_consumer.UNKNOWN_TASK_ERROR,
        celery_consumer.INVALID_TASK_ERROR,
        celery_consumer.MESSAGE_DECODE_ERROR,
        celery_consumer.UNKNOWN_FORMAT,
    }
)


class DeadLetteredFilter(logging.Filter):
    """Drops Celery's "discarded" lines for messages the worker dead-lettered (see `_DISCARDED`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == celery_consumer.logger.name and record.msg in _DISCARDED)


def identity(process: ProcessSettings) -> dict[str, str]:
    """The fields every line of this process carries: which code it runs, for which pool."""
    return {"version": process.code_version, "pool": process.pool_name}


def _stamper(fields: Mapping[str, str]) -> Callable[[Any, str, Any], Any]:
    def stamp(_: Any, __: str, event: Any) -> Any:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return stamp


def configure(level: str, fmt: str, broker_url: str | None = None, fields: Mapping[str, str] | None = None) -> None:
    shared: list[Any] = [
        _stamper(fields or {}),
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    if broker_url is not None:
        handler.addFilter(RefusedCredentialsFilter(broker_url))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Celery logs "received" and "succeeded" for every task at INFO; our one `task.finished` line
    # carries the same fields, so at INFO those two are dropped (measured: ~0.2 ms CPU per task).
    # Failures and retries are still logged by Celery at WARNING and above; DEBUG keeps everything.
    quiet = logging.WARNING if logging.getLevelName(level) == logging.INFO else logging.NOTSET
    for name in _PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def _queue(task: Task) -> str:
    return str((task.request.delivery_info or {}).get("routing_key") or "")


def _on_prerun(task_id: str = "", task: Task | None = None, **_: Any) -> None:
    _started[task_id] = time.monotonic()
    if task is not None:
        structlog.contextvars.bind_contextvars(task_id=task_id, task=task.name, queue=_queue(task))


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    log.info(EVENT_TASK_RETRY, reason=str(reason), retries=getattr(request, "retries", None))


def _on_postrun(task_id: str = "", task: Task | None = None, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    duration = round(time.monotonic() - started, 4) if started is not None else None
    outcome = (state or "UNKNOWN").lower()
    log.info(
        EVENT_TASK_FINISHED,
        duration_s=duration,
        outcome=outcome,
        retries=task.request.retries if task is not None else None,
    )
    structlog.contextvars.clear_contextvars()


def _on_setup_logging(**_: Any) -> None:
    # Connecting to setup_logging stops Celery from installing its own handlers.
    pass


def install(settings: WorkerSettings, process: ProcessSettings) -> None:
    configure(settings.log_level, settings.log_format, settings.broker_url, identity(process))
    for handler in logging.getLogger().handlers:  # the worker's: its consumer dead-letters what Celery drops
        handler.addFilter(DeadLetteredFilter())
    setup_logging.connect(_on_setup_logging, weak=False, dispatch_uid="celery-cluster-logs")
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="celery-cluster-logs-pre")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="celery-cluster-logs-post")
    task_retry.connect(_on_retry, weak=False, dispatch_uid="celery-cluster-logs-retry")
