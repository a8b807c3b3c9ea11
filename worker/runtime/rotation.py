"""A rotated broker password reaches a running worker: when its secret names another CELERY_BROKER_URL
(`worker.instance.secret_watch`), the worker stops as a scale-in stops it, and exits for systemd to
restart it with the new secret.

The stop is Celery's warm shutdown, started the way SIGTERM starts it (celery/apps/worker.py,
`_shutdown_handler`: the `worker_shutting_down` signal, then `state.should_stop`, which the consumer's
event loop checks at least once a second): consuming stops, running tasks finish and are acknowledged
on the connections the worker already holds (a rotation keeps the old password valid until every
process has moved), and `worker.runtime.shutdown` requeues what still runs after
CELERY_SOFT_SHUTDOWN_TIMEOUT. The exit status is SECRET_CHANGED_EXIT_CODE (75), which
celery-worker.service restarts; fetch-env then writes the new secret into the unit's environment.
"""

from __future__ import annotations

import sys
from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from celery.worker import state
from pydantic import ValidationError

from worker.instance import secret_watch
from worker.runtime.settings import SETTINGS_EXIT_CODE

_hostname = ""


def _restart() -> None:
    """Called on the watch's thread: the same two steps as Celery's SIGTERM handler, with our status."""
    code = secret_watch.SECRET_CHANGED_EXIT_CODE
    worker_shutting_down.send(sender=_hostname, sig="secret-changed", how="Warm", exitcode=code)
    state.should_stop = code


def _on_ready(sender: Any = None, **_: Any) -> None:
    global _hostname  # noqa: PLW0603 - one worker per process
    _hostname = str(getattr(sender, "hostname", "") or "")
    url = str(sender.app.conf.broker_url) if sender is not None else ""
    secret_watch.start(url, _restart)


def install() -> None:
    """Watch the secret once the worker consumes (the main process only: `worker_ready`)."""
    try:
        secret_watch.WatchSettings()
    except ValidationError as exc:  # one line naming the variable, as worker.app says a bad setting
        error = exc.errors(include_url=False)[0]
        variable = f"WORKER_{str(error['loc'][0]).upper()}"
        sys.stderr.write(f"celery-cluster worker: invalid setting {variable}: {error['msg']}\n")
        raise SystemExit(SETTINGS_EXIT_CODE) from None
    worker_ready.connect(_on_ready, weak=False, dispatch_uid="celery-cluster-secret-watch")
