"""The worker as it was before `worker.runtime.shutdown`: Celery's own soft shutdown, for `make bench --only drain`.

`worker.app` with `worker_soft_shutdown_timeout` = CELERY_SOFT_SHUTDOWN_TIMEOUT and our bounded warm
shutdown disconnected; started with REMAP_SIGTERM=SIGQUIT, as `image/bin/start-worker` used to.
"""

from __future__ import annotations

from celery.signals import worker_shutting_down

from worker.app import app, settings

app.conf.worker_soft_shutdown_timeout = settings.soft_shutdown_timeout
worker_shutting_down.disconnect(dispatch_uid="celery-cluster-soft-shutdown")

__all__ = ["app"]
