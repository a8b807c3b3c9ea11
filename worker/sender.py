"""The repository's own producer-side Celery app: sends tasks by name with the worker's settings.

Scripts, the local cluster and tests use it instead of importing `worker.app`, which reads its
broker from the environment at import time. It stamps the publish time like any producer must.
Applications outside the repository use `celery_cluster_client.client_app` (installable alone);
both declare queues and stamp through the same code (`celery_cluster_client.routing`, `.stamping`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from worker.runtime import stamping
from worker.runtime.celeryconfig import build_config
from worker.runtime.settings import load_settings


def sender_app(broker_url: str, **settings: Any) -> Celery:
    app = Celery("celery-cluster-client", set_as_current=False)
    app.config_from_object(build_config(load_settings(broker_url=broker_url, **settings)))
    stamping.install()
    return app
