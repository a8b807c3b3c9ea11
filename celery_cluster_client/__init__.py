"""The producer client of celery-cluster: send tasks to a stack's pools from your own application.

Installable on its own (`make client` writes `build/dist/celery_cluster_client-*.whl`): it carries no
task code, no Pulumi and no worker settings, only what a producer must agree on with the workers:

- `client_app()`: a Celery app on the stack's broker that applies the stack's routing table
  (`celery-cluster:taskRoutes`), declares each queue exactly as the workers do (so a message sent
  while a pool is at zero instances waits in its queue), and stamps every task with `published_at`
  and the AMQP `timestamp` (queue latency, and so scaling and the latency alarms, read them);
- the producer secret's keys (`contract`, `secret`), the route table's rules (`routing`) and the
  stamp (`stamping`).

`client_app` and friends are imported on first use, so `celery_cluster_client.contract` (which the
worker's names and the metrics publisher read) does not pull in Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery_cluster_client.contract import DEFAULT_QUEUE, PUBLISHED_AT_HEADER

if TYPE_CHECKING:
    from celery_cluster_client.app import BrokerConnectionError, ClientConfigError, client_app, client_config

__all__ = [
    "DEFAULT_QUEUE",
    "PUBLISHED_AT_HEADER",
    "BrokerConnectionError",
    "ClientConfigError",
    "client_app",
    "client_config",
]

_FROM_APP = frozenset({"BrokerConnectionError", "ClientConfigError", "client_app", "client_config"})


def __getattr__(name: str) -> Any:
    if name in _FROM_APP:
        from celery_cluster_client import app  # noqa: PLC0415 - Celery only when the app is wanted

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
