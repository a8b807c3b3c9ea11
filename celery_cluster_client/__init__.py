"""The producer client of celery-cluster: send tasks to a stack's pools from your own application.

Installable on its own (`make build` writes `build/dist/celery_cluster_client-*.whl`): it carries no
task code, no Pulumi and no worker settings, only what a producer must agree on with the workers:

- `client_app()`: a Celery app on the stack's broker that applies the stack's routing table
  (`celery-cluster:taskRoutes`), declares each queue exactly as the workers do (so a message sent
  while a pool is at zero instances waits in its queue), and stamps every task with `published_at`
  and the AMQP `timestamp` (queue latency, and so scaling and the latency alarms, read them);
- the producer secret's keys (`secret`), the route table's rules (`routing`) and the stamp (`stamping`).
"""

from celery_cluster_client.app import ClientConfigError, client_app, client_config
from celery_cluster_client.contract import DEFAULT_QUEUE, PUBLISHED_AT_HEADER

__all__ = ["DEFAULT_QUEUE", "PUBLISHED_AT_HEADER", "ClientConfigError", "client_app", "client_config"]
