"""Every published task carries `published_at` and the AMQP timestamp: the producer client's stamp.

The stamp lives in `celery_cluster_client.stamping` (producers install that package alone); the
worker installs the same receiver, so tasks that workers publish (retries, chains) are stamped too.
"""

from celery_cluster_client.stamping import install, stamp

__all__ = ["install", "stamp"]
