"""Celery configuration built from `WorkerSettings`.

Each setting carries the reason for its value and a link to its entry in the Celery docs
(https://docs.celeryq.dev/en/stable/userguide/configuration.html, abbreviated CONF below).
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Queue

from celery_cluster_client import routing
from celery_cluster_client.app import client_config, default_result_backend
from worker.runtime import redis_take
from worker.runtime.settings import WorkerSettings

CONF = "https://docs.celeryq.dev/en/stable/userguide/configuration.html"


def result_backend_for(settings: WorkerSettings) -> str:
    """Results are off for most tasks; the few that keep one (ping, canary) need somewhere to go.

    Redis brokers store them in the same Redis; AMQP brokers send them back as messages (rpc://),
    so no second service is needed in either case.
    """
    return settings.result_backend or default_result_backend(settings.broker_url)


def queue(name: str, settings: WorkerSettings) -> Queue:
    """Declared as producers declare it (`celery_cluster_client.routing`): durable, so it survives a
    RabbitMQ restart (at-least-once delivery)."""
    return routing.declare(name, settings.queue_type, is_redis=settings.is_redis)


def build_config(settings: WorkerSettings) -> dict[str, Any]:
    """The producers' configuration (`celery_cluster_client.app.client_config`: serializers, queues, routes,
    publish retries, connection health) with what only a worker needs on top, so the two cannot drift."""
    shared = client_config(settings.broker_url, settings.task_routes, settings.queue_type, settings.default_queue)
    annotations = {
        task: annotation.model_dump(exclude_none=True) for task, annotation in settings.task_annotations.items()
    }
    return {
        **shared,
        "result_backend": result_backend_for(settings),
        # Ack after the task ran, so a worker that dies mid-task leaves it to be redelivered
        # (at-least-once). Tasks must be idempotent. CONF#task-acks-late
        "task_acks_late": True,
        # A child killed by OOM or SIGKILL requeues its task instead of acking it. CONF#task-reject-on-worker-lost
        "task_reject_on_worker_lost": True,
        # Each process holds one message: nothing waits behind a long task on a busy worker, and
        # the queue length is an honest scaling signal. CONF#worker-prefetch-multiplier
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        # Reconnect forever with backoff; systemd restarts only a crashed worker.
        # CONF#broker-connection-max-retries
        "broker_connection_max_retries": None,
        # With late acks, a task still running when the connection drops will be redelivered;
        # cancelling it avoids running it twice at once. CONF#worker-cancel-long-running-tasks-on-connection-loss
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # SIGTERM is Celery's warm shutdown: consuming stops and the worker exits as soon as its
        # running tasks end. worker.runtime.shutdown bounds it: after CELERY_SOFT_SHUTDOWN_TIMEOUT it sends
        # SIGQUIT, the cold shutdown, which with this 0 cancels the tasks still running at once, so
        # they are requeued (late acks). Celery's own soft shutdown (a value above 0 here, SIGTERM
        # remapped to SIGQUIT) sleeps the whole window whenever a task runs at the signal, even one
        # that ends a second later. CONF#worker-soft-shutdown-timeout
        "worker_soft_shutdown_timeout": 0,
        "worker_enable_soft_shutdown_on_idle": False,
        # Redis: kombu's transport with an atomic take (pop and record as unacknowledged in one script), so
        # a worker killed or a connection dropped as it takes a message loses nothing
        # (worker/runtime/redis_take.py). RabbitMQ: kombu's own. CONF#broker-transport
        "broker_transport": redis_take.TRANSPORT if settings.is_redis else None,
        # Redis redelivers an unacked message after this many seconds; it must exceed the
        # longest task, or a running task is delivered twice. CONF#broker-transport-options
        "broker_transport_options": {**shared["broker_transport_options"], **_transport_options(settings)},
        # Hard and soft limits: a stuck task cannot hold a process forever. CONF#task-time-limit
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "result_expires": 3600,
        # Per-task rate and time limits from config. CONF#task-annotations
        "task_annotations": annotations,
        # Events let `celery events` and Flower watch tasks, at three messages per task; off by
        # default (Celery's default too), CELERY_TASK_EVENTS=true turns them on. CONF#worker-send-task-events
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        # Celery must not replace our JSON log handlers. CONF#worker-hijack-root-logger
        "worker_hijack_root_logger": False,
        "imports": settings.imports,
    }


def _transport_options(settings: WorkerSettings) -> dict[str, Any]:
    """What a consuming worker adds to the producers' transport options (redelivery of unacked Redis messages)."""
    if settings.is_redis:
        return {
            "visibility_timeout": settings.visibility_timeout,
            # kombu sweeps for expired unacked messages only every interval x throttle seconds
            # (10 x 10 by default), so a killed worker's tasks came back up to 100 s after the
            # visibility timeout (found by tests/integration/test_worker_faults.py). Sweep every
            # tenth of the timeout (1-60 s): one ZRANGE under a mutex per worker per sweep.
            "unacked_restore_interval": restore_interval(settings.visibility_timeout),
            "unacked_restore_throttle": 1,
            # Each sweep takes a Redis lock, `unacked_mutex`, that kombu expires after 300 s. A broker
            # stopped during a sweep keeps the lock in its AOF with no holder left to release it, and no
            # worker sweeps until it expires, so the tasks held at the restart come back minutes later (the
            # likely cause of 2 of 52 tasks missing after the 60 s wait of a CI run of
            # test_broker_restart_under_load_loses_nothing; tests/integration/test_redis_sweep_lock.py
            # reproduces it). Expiring it with the visibility timeout bounds that delay by one timeout. A
            # sweep that outlives the lock only lets a second one run beside it (at worst a duplicate).
            "unacked_mutex_expire": mutex_expire(settings.visibility_timeout),
        }
    return {}  # RabbitMQ: the producers' options (publisher confirms) are the workers' too


def restore_interval(visibility_timeout: int) -> int:
    """Seconds between sweeps that put expired unacked Redis messages back on their queue."""
    return max(1, min(60, visibility_timeout // 10))


KOMBU_MUTEX_EXPIRE_S = 300
"""kombu's own expiry of the sweep's lock (`Channel.unacked_mutex_expire` in kombu/transport/redis.py)."""


def mutex_expire(visibility_timeout: int) -> int:
    """Seconds before the lock of a sweep whose holder vanished lets the next sweep run: the visibility
    timeout, at most kombu's default (long timeouts keep kombu's behaviour)."""
    return min(visibility_timeout, KOMBU_MUTEX_EXPIRE_S)
