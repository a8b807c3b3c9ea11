"""A soft shutdown that ends as soon as the worker is idle.

Celery's own soft shutdown (`worker_soft_shutdown_timeout` with SIGTERM remapped to SIGQUIT)
sleeps its whole window inside the signal handler whenever a task is running at the signal, even
if that task ends a second later (celery/worker/worker.py `WorkController.wait_for_soft_shutdown`,
Celery 5.7: `sleep(app.conf.worker_soft_shutdown_timeout)`); the sleep also blocks the main
process's event loop, so results of tasks that end meanwhile are not even read. A scale-in drain
therefore held every instance for the whole window.

Here SIGTERM is Celery's warm shutdown (stop consuming, let running tasks finish, exit once none
runs) and this module bounds it: when the warm shutdown starts, a timer is armed that, after
CELERY_SOFT_SHUTDOWN_TIMEOUT seconds, sends SIGQUIT to the worker's own main process. SIGQUIT is
Celery's cold shutdown, which with `worker_soft_shutdown_timeout = 0` cancels the tasks still
running at once; they are late-acked, so they go back to the queue (requeued, never lost). A
worker whose tasks end early exits early.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from celery.signals import worker_shutting_down

_timer: threading.Timer | None = None
_window: float = 0.0


def _requeue_running_tasks() -> None:
    # Cold shutdown: Celery cancels the running late-ack tasks, which requeues them.
    os.kill(os.getpid(), signal.SIGQUIT)


def _on_shutting_down(how: str = "", **_: Any) -> None:
    global _timer  # noqa: PLW0603 - one timer per worker main process
    if how != "Warm" or _timer is not None:
        return
    _timer = threading.Timer(_window, _requeue_running_tasks)
    _timer.daemon = True  # it must never keep an exiting worker alive
    _timer.start()


def install(window: float) -> None:
    """Bound every warm shutdown of this worker to `window` seconds."""
    global _window  # noqa: PLW0603 - set once at import, read by the signal receiver
    _window = window
    worker_shutting_down.connect(_on_shutting_down, weak=False, dispatch_uid="celery-cluster-soft-shutdown")
