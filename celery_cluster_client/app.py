"""`client_app()`: a producer-side Celery app for a celery-cluster stack.

Where the broker comes from, first match wins:
1. `broker_url=` (local use and tests), with `routes=` / `queue_type=` or CELERY_TASK_ROUTES /
   CELERY_QUEUE_TYPE from the environment;
2. `secret_id=`, or CELERY_CLUSTER_PRODUCER_SECRET: the stack's producer secret (output
   `producerSecretArn`), which holds the URL, the routing table and the queue type;
3. CELERY_BROKER_URL from the environment.

Settings follow the Celery docs (https://docs.celeryq.dev/en/stable/userguide/configuration.html,
CONF below) and match what the workers expect: JSON only, queues declared as the workers declare
them, publishes retried through a broker blip and confirmed by RabbitMQ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from amqp.exceptions import AccessRefused
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from celery_cluster_client import routing, secret, stamping
from celery_cluster_client.contract import (
    DEFAULT_QUEUE,
    ENV_BROKER_URL,
    ENV_QUEUE_TYPE,
    ENV_SECRET_ID,
    ENV_TASK_ROUTES,
    KEY_TASK_ROUTES,
)

BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")


class ClientConfigError(ValueError):
    """The client cannot be configured; one line naming the argument, variable or secret."""


class BrokerConnectionError(ConnectionError):
    """The broker cannot be reached (or refused the credentials); one line naming its host and where its URL
    came from, instead of Celery's retry traceback."""


# A publish during a broker blip retries with backoff instead of raising (CONF#task-publish-retry-policy);
# the result store on the same Redis retries as long, not Celery's 20 times (about 20 s), so that a broker
# that is down is reported in seconds, however the task was sent.
RETRY_POLICY = {"max_retries": 10, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3}
# Before a send that keeps a result: is the broker there? About 2 s of retries (a publish alone retries for
# about 6 s under RETRY_POLICY, measured against a closed port), then one line instead of the result store's
# 20 retries.
CHECK_POLICY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}
# What a broker that is down, unknown or refusing us raises: kombu wraps the client's error in its own,
# except where the client library (py-amqp's refused login, redis-py's) or the socket raises first.
_UNREACHABLE = (OperationalError, AccessRefused, ConnectionError, OSError)


class ClusterClient(Celery):  # type: ignore[misc]
    """Celery's app, whose `send_task` reports a broker it cannot use as one `BrokerConnectionError`."""

    broker_source = "broker_url"
    """Where the broker URL came from (an argument, a variable or the producer secret), for the message."""

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> AsyncResult:
        try:
            if not options.get("ignore_result"):
                # A result is kept: Celery subscribes on the result store before it publishes, and that store
                # retries on its own and then raises a bare RuntimeError; find out about the broker first.
                with self.connection_for_write() as connection:
                    connection.ensure_connection(**CHECK_POLICY)
            return super().send_task(name, args, kwargs, **options)
        except _UNREACHABLE as exc:
            parts = urlsplit(self.conf.broker_url)
            where = f"{parts.hostname}:{parts.port or 'default port'}"
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BrokerConnectionError(
                f"cannot use the broker at {where} ({self.broker_source}) to send {name}: {reason}"
            ) from None


def default_result_backend(broker_url: str) -> str:
    """Where results of the few tasks that keep one go: the same Redis, or back as messages (rpc://)."""
    return broker_url if urlsplit(broker_url).scheme in ("redis", "rediss") else "rpc://"


def broker_use_ssl(broker_url: str) -> dict[str, Any] | bool:
    """TLS options for the broker connection (CONF#broker-use-ssl): on amqps://, check the server's
    name as well as its certificate chain.

    An amqps:// URL alone gives py-amqp `ssl=True`, which verifies the chain against the system
    store but not the host name: it checks the name only when given a server_hostname
    (amqp/transport.py, `SSLTransport._wrap_socket_sni`). `{"server_hostname": None}` makes kombu
    pass the URL's host (kombu/transport/pyamqp.py, "Using TLS"). The URL cannot carry it: kombu
    hands `ssl_*` query keys to py-amqp under names it does not take. A rediss:// URL needs nothing
    here: its `ssl_cert_reqs=required` makes redis-py check the chain and the name."""
    return {"server_hostname": None} if urlsplit(broker_url).scheme == "amqps" else False


def _check_url(url: str, source: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in BROKER_SCHEMES:
        # Only the scheme is echoed: the URL carries a password.
        allowed = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
        raise ClientConfigError(f"{source}: must start with one of {allowed} (got scheme {scheme or 'none'!r})")
    if not urlsplit(url).hostname:
        raise ClientConfigError(f"{source}: has no host")
    return url


def client_config(
    broker_url: str,
    routes: Mapping[str, str],
    queue_type: str = "classic",
    default_queue: str = DEFAULT_QUEUE,
    queues: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The Celery configuration of a producer (pure: tests and the workers' config read it)."""
    kind: routing.QueueType
    if queue_type == "quorum":
        kind = "quorum"
    elif queue_type == "classic":
        kind = "classic"
    else:
        raise ClientConfigError(f"queue type must be one of {', '.join(routing.QUEUE_TYPES)} (got {queue_type!r})")
    is_redis = urlsplit(broker_url).scheme in ("redis", "rediss")
    names = routing.queues_for(default_queue, routes, queues)
    return {
        "broker_url": broker_url,
        "broker_use_ssl": broker_use_ssl(broker_url),
        "result_backend": default_result_backend(broker_url),
        # JSON only: the workers refuse anything else (pickle would let a publisher run code). CONF#accept-content
        "accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "result_accept_content": ["json"],
        # Unrouted tasks go to the default queue, through its own direct exchange. CONF#task-default-queue
        "task_default_queue": default_queue,
        "task_default_exchange": default_queue,
        "task_default_routing_key": default_queue,
        # Declared on publish exactly as the workers declare them (routing.py says why). CONF#task-queues
        "task_queues": [routing.declare(name, kind, is_redis=is_redis) for name in names],
        "task_routes": routing.celery_routes(routes),
        "task_create_missing_queues": True,
        "task_default_queue_type": kind,
        "task_create_missing_queue_type": kind,
        # A publish during a broker blip retries with backoff instead of raising. CONF#task-publish-retry-policy
        "task_publish_retry": True,
        "task_publish_retry_policy": RETRY_POLICY,
        # RabbitMQ confirms each publish (a message is on the broker when send_task returns); Redis:
        # detect a half-open connection (e.g. after a failover) within ~30 s. CONF#broker-transport-options
        "broker_transport_options": (
            {"health_check_interval": 25, "socket_keepalive": True, "retry_on_timeout": True}
            if is_redis
            else {"confirm_publish": True}
        ),
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
    }


def client_app(
    broker_url: str | None = None,
    *,
    secret_id: str | None = None,
    routes: Mapping[str, str] | str | None = None,
    queue_type: str | None = None,
    default_queue: str = DEFAULT_QUEUE,
    queues: tuple[str, ...] = (),
    secrets_client: Any = None,
    environ: Mapping[str, str] | None = None,
) -> Celery:
    """A Celery app that sends tasks to the stack: routes applied, queues declared, every task stamped.

    `app.send_task("invoices.send", args=[invoice_id])` goes to the queue the stack routes
    `invoices.*` to; a task with no route goes to `default_queue`. `queues` adds queues to declare
    beyond the routed ones (for `send_task(..., queue=...)`).
    """
    env = os.environ if environ is None else environ
    secret_id = secret_id or (None if broker_url else env.get(ENV_SECRET_ID) or None)
    if broker_url is not None:
        source = "broker_url"
        url = _check_url(broker_url, source)
        table = _routes(routes, "routes", env)
        kind = queue_type or env.get(ENV_QUEUE_TYPE) or "classic"
    elif secret_id:
        source = f"producer secret {secret_id}"
        try:
            found = secret.read(secret_id, secrets_client)
        except secret.SecretError as exc:
            raise ClientConfigError(str(exc)) from None
        url = _check_url(found.broker_url, source)
        table = _routes(routes if routes is not None else found.routes, f"{source}, {KEY_TASK_ROUTES}", env)
        kind = queue_type or found.queue_type
    elif env.get(ENV_BROKER_URL):
        source = ENV_BROKER_URL
        url = _check_url(env[ENV_BROKER_URL], source)
        table = _routes(routes, "routes", env)
        kind = queue_type or env.get(ENV_QUEUE_TYPE) or "classic"
    else:
        raise ClientConfigError(
            f"no broker: pass broker_url= or secret_id=, or set {ENV_SECRET_ID} or {ENV_BROKER_URL}"
        )
    app = ClusterClient("celery-cluster-client", set_as_current=False)
    app.broker_source = source
    app.config_from_object(client_config(url, table, kind, default_queue, queues))
    # The Redis result store retries as a publish does (see RETRY_POLICY); a producer's only, not in
    # client_config, which the workers' config builds on. CONF#result-backend-transport-options
    app.conf.result_backend_transport_options = {"retry_policy": RETRY_POLICY}
    stamping.install()
    return app


def _routes(value: Mapping[str, str] | str | None, name: str, env: Mapping[str, str]) -> dict[str, str]:
    """The route table, from `value` or else CELERY_TASK_ROUTES; a bad one is named: the argument, the
    variable or the secret's key."""
    if value is None:
        value, name = env.get(ENV_TASK_ROUTES), ENV_TASK_ROUTES
    try:
        return routing.parse_routes(value)
    except routing.RouteError as exc:
        raise ClientConfigError(f"{name}: {exc}") from None
