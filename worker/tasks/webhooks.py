"""Example application task: deliver a webhook, with declarative retries and backoff.

Transient failures (connection errors, 5xx, 429) are retried with exponential backoff and
jitter; a delivery that still fails after `max_retries` ends in the dead-letter queue with
reason `retries_exhausted`. A 4xx other than 429 is the receiver refusing the payload, which
retrying cannot fix, so it fails at once. The delivery id goes in a header so the receiver
can drop duplicates (at-least-once delivery).
"""

from __future__ import annotations

import httpx

from worker.app import app


class TransientDeliveryError(Exception):
    """The receiver may accept this delivery later."""


def deliver_once(url: str, delivery_id: str, payload: dict[str, object], timeout: float = 10.0) -> int:
    try:
        response = httpx.post(url, json=payload, headers={"Idempotency-Key": delivery_id}, timeout=timeout)
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientDeliveryError(f"HTTP {response.status_code}")
    response.raise_for_status()
    return response.status_code


@app.task(
    name="webhooks.deliver",
    autoretry_for=(TransientDeliveryError,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def deliver(delivery_id: str, url: str, payload: dict[str, object]) -> int:
    return deliver_once(url, delivery_id, payload)
