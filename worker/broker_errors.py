"""A broker that refuses the worker's credentials is a configuration error, not a bug: one log line
naming CELERY_BROKER_URL (password masked) and the broker's reason, without a traceback.

RabbitMQ refuses a login with AMQP `ACCESS_REFUSED` (py-amqp raises `amqp.exceptions.AccessRefused`,
which kombu does not retry); Celery then logs "Unrecoverable error" with the traceback at CRITICAL and
exits 1 (`celery/worker/worker.py`, `WorkController.start`), and systemd starts it again after
`RestartSec` (image/systemd/celery-worker.service), which also fetches a rotated password. Redis
refuses with `invalid username-password pair`, which Celery's consumer retries with backoff and
logs as one line already; connection errors (TLS, refused, reset) take the same retry path.
"""

from __future__ import annotations

import logging

from amqp.exceptions import AccessRefused
from kombu.utils.url import maybe_sanitize_url


class RefusedCredentialsFilter(logging.Filter):
    """Rewrites a record whose exception is a refused login into one line without the traceback."""

    def __init__(self, broker_url: str) -> None:
        super().__init__()
        self._where = maybe_sanitize_url(broker_url)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, AccessRefused):
            record.msg = "the broker refused the credentials in CELERY_BROKER_URL (%s): %s"
            record.args = (self._where, exc.reply_text)
            record.exc_info = None
            record.exc_text = None
        return True
