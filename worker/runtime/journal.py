"""An optional execution journal: one Redis stream entry per task run.

Enabled by CELERY_JOURNAL_URL. Load tests, fault tests and the local cluster read it to count
every execution (lost = sent - journalled ids, duplicates = ids journalled twice) and to measure
queue wait. It lives outside the broker on purpose, so a broker restart cannot erase the count.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import redis
from celery import Task
from celery.signals import task_postrun, task_prerun

from worker.names import PUBLISHED_AT_HEADER

JOURNAL_STREAM = "celery-cluster:journal"

_client: redis.Redis | None = None
_started: dict[str, float] = {}
_version: str = ""


def _on_prerun(task_id: str = "", **_: Any) -> None:
    _started[task_id] = time.time()


def _on_postrun(task_id: str = "", task: Task | None = None, state: str | None = None, **_: Any) -> None:
    if _client is None or task is None:
        return
    request = task.request
    published_at = (request.get("headers") or {}).get(PUBLISHED_AT_HEADER) or getattr(
        request, PUBLISHED_AT_HEADER, None
    )
    entry = {
        "task_id": task_id,
        "task": task.name,
        "queue": (request.delivery_info or {}).get("routing_key") or "",
        "hostname": request.hostname or socket.gethostname(),
        "state": state or "",
        "published_at": str(published_at or ""),
        "started_at": str(_started.pop(task_id, "")),
        "finished_at": str(time.time()),
        "redelivered": str(bool((request.delivery_info or {}).get("redelivered"))),
        # Which code ran it (WORKER_CODE_VERSION): an upgrade test tells the old workers' runs from the new.
        "version": _version,
    }
    _client.xadd(JOURNAL_STREAM, entry)  # type: ignore[arg-type]


def install(url: str | None, version: str = "") -> None:
    global _client, _version  # noqa: PLW0603 - one connection per process, set once at import
    if url is None:
        return
    _version = version
    _client = redis.Redis.from_url(url, socket_timeout=5, health_check_interval=30)
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="celery-cluster-journal-pre")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="celery-cluster-journal-post")


def read(client: redis.Redis) -> list[dict[str, str]]:
    """Every journal entry, oldest first, as plain dicts."""
    return read_after(client, None)[0]


def read_after(client: redis.Redis, last_id: str | None) -> tuple[list[dict[str, str]], str | None]:
    """Entries after stream id `last_id` (all when None), and the id to pass next time."""
    start = "-" if last_id is None else f"({last_id}"
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(JOURNAL_STREAM, min=start)  # type: ignore[assignment]
    decoded = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return decoded, entries[-1][0].decode() if entries else last_id
