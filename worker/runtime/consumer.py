"""`worker_consumer`: Celery's consumer with dead-lettering (`worker.runtime.dead_letters`) and a refused
broker login ending the worker instead of a retry loop (`worker.runtime.broker_errors`)."""

from __future__ import annotations

from worker.runtime.broker_errors import RefusedCredentialsExit
from worker.runtime.dead_letters import DeadLetteringConsumer


class WorkerConsumer(RefusedCredentialsExit, DeadLetteringConsumer):
    """The consumer every worker of this package runs."""
