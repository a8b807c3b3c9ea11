"""The bench's no-op task on this package's app (loaded by the bench with CELERY_IMPORTS)."""

from __future__ import annotations

import time

from worker.app import app


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.io")
def io_wait() -> None:
    """Stands in for an I/O-bound task (an HTTP call, a query): 10 ms of waiting, no CPU."""
    time.sleep(0.01)
