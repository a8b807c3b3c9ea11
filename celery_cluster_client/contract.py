"""What producers and workers must agree on: header, queue and producer-secret names.

`worker.names` re-exports the first two, so each is spelt in one place.
"""

from typing import Final

# Header stamped on every published task (seconds since the epoch, float). Queue latency is the
# age of the oldest waiting message, computed from this header (or from the AMQP timestamp).
PUBLISHED_AT_HEADER: Final = "published_at"

# Header naming the code version of whoever sent the task: CELERY_CLUSTER_SENDER_VERSION (a producer's
# release), else the worker's WORKER_CODE_VERSION (tasks workers send), else the client's package
# version. A dead letter carries it beside its reason, so an unknown task name tells which side of a
# deploy sent it. Kept when present (a retry keeps its first sender's version).
SENDER_VERSION_HEADER: Final = "sender_version"
ENV_SENDER_VERSION: Final = "CELERY_CLUSTER_SENDER_VERSION"
ENV_WORKER_CODE_VERSION: Final = "WORKER_CODE_VERSION"

# Where a task with no route goes (the workers' CELERY_DEFAULT_QUEUE default).
DEFAULT_QUEUE: Final = "default"

# Keys of the producer secret (a JSON object of strings, like the workers' environment secret).
KEY_BROKER_URL: Final = "CELERY_BROKER_URL"
KEY_TASK_ROUTES: Final = "CELERY_TASK_ROUTES"
KEY_QUEUE_TYPE: Final = "CELERY_QUEUE_TYPE"

# Environment variables `client_app()` reads when it is given neither a URL nor a secret.
ENV_SECRET_ID: Final = "CELERY_CLUSTER_PRODUCER_SECRET"  # noqa: S105 - a variable name
ENV_BROKER_URL: Final = "CELERY_BROKER_URL"
ENV_TASK_ROUTES: Final = "CELERY_TASK_ROUTES"
ENV_QUEUE_TYPE: Final = "CELERY_QUEUE_TYPE"
