"""The producer secret: a JSON object of strings in Secrets Manager, written by the stack.

`{"CELERY_BROKER_URL": "rediss://...", "CELERY_TASK_ROUTES": "{\"invoices.*\": \"billing\"}",
"CELERY_QUEUE_TYPE": "classic"}`: the broker URL, the stack's routing table and the queue type the
workers declare. Reading it needs `GetSecretValue` on that one secret (the stack's producer policy
grants exactly that) and boto3 (`pip install 'celery-cluster-client[aws]'`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from celery_cluster_client.contract import KEY_BROKER_URL, KEY_QUEUE_TYPE, KEY_TASK_ROUTES


class SecretError(ValueError):
    """The producer secret cannot be read or has the wrong shape; the message names the secret."""


@dataclass(frozen=True)
class ProducerSecret:
    broker_url: str
    routes: str
    queue_type: str


def json_object(text: str | None) -> dict[str, Any] | None:
    """A secret's SecretString as a JSON object, None when it is not one (the worker's environment secret
    has the same shape: worker.instance.fetchenv)."""
    try:
        data = json.loads(text or "")
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse(secret_id: str, text: str | None) -> ProducerSecret:
    data = json_object(text)
    if data is None:
        raise SecretError(f"producer secret {secret_id}: SecretString must be a JSON object")
    url = data.get(KEY_BROKER_URL)
    if not isinstance(url, str) or not url:
        raise SecretError(f"producer secret {secret_id}: has no {KEY_BROKER_URL}")
    routes = data.get(KEY_TASK_ROUTES, "")
    return ProducerSecret(
        broker_url=url,
        routes=routes if isinstance(routes, str) else json.dumps(routes),
        queue_type=str(data.get(KEY_QUEUE_TYPE) or "classic"),
    )


def read(secret_id: str, client: Any = None) -> ProducerSecret:
    """GetSecretValue on `secret_id` (an ARN or name) with `client`, or a default boto3 client."""
    if client is None:
        try:
            import boto3  # noqa: PLC0415 - optional: only producers that read the secret need it
        except ImportError:
            raise SecretError(
                "reading the producer secret needs boto3: pip install 'celery-cluster-client[aws]'"
            ) from None
        client = boto3.client("secretsmanager")
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore's ClientError and friends, without importing botocore here
        raise SecretError(f"producer secret {secret_id}: {exc}") from None
    return parse(secret_id, response.get("SecretString"))
