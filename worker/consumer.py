"""`worker_consumer`: Celery's consumer with dead-lettering (`worker.deadletter`) and a refused
broker login ending the worker instead of a retry loop (`worker.broker_errors`)."""

from __future__ import annotations

from worker.broker_errors import RefusedCredentialsExit
from worker.deadletter import DeadLetteringConsumer


class WorkerConsumer(RefusedCredentialsExit, DeadLetteringConsumer):
    """The consumer every worker of this package runs."""
