"""A broker that refuses the worker's credentials is a configuration error, not a bug: one log line
naming CELERY_BROKER_URL (password masked) and the broker's reason, without a traceback.

How each broker refuses: RabbitMQ with AMQP `ACCESS_REFUSED` (py-amqp raises
`amqp.exceptions.AccessRefused`, which kombu does not retry); Redis with `WRONGPASS invalid
username-password pair` or `NOAUTH` (redis-py raises `redis.exceptions.AuthenticationError`, a
`ConnectionError`, so kombu retries it with Celery's backoff for ever, always with the password the
process started with: the secret is read only by fetch-env, when systemd starts the unit).

What the worker does about it (`RefusedCredentialsExit`, a consumer mixin):
- refused on its first connection: the credential it was started with is wrong. It logs the one line
  and exits SETTINGS_EXIT_CODE (64), like a bad setting: celery-worker.service does not restart on 64
  (a restart would read the same secret), so the unit fails and OnFailure= marks the instance
  unhealthy.
- refused after it had connected: the credential changed under a running worker (a rotation). It
  exits 1 (Celery's "Unrecoverable error", rewritten to the same one line by
  `RefusedCredentialsFilter`), and systemd restarts it after RestartSec, which fetches the current
  secret; if that one is refused too, the restarted worker exits 64 as above.
"""

from __future__ import annotations

import logging
from typing import Any

from amqp.exceptions import AccessRefused
from kombu.connection import Connection
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import AuthenticationError

from worker.instance import secret_watch
from worker.runtime.settings import SETTINGS_EXIT_CODE

REFUSED_MESSAGE = "the broker refused the credentials in CELERY_BROKER_URL (%s): %s"
WORKER_LOGGER = "celery.worker"
"""Where Celery's WorkController logs the "Unrecoverable error" that ends a worker (celery/worker/worker.py)."""

log = logging.getLogger(__name__)


def refusal_reason(exc: BaseException | None, *, redis: bool = True) -> str | None:
    """The broker's words if `exc` is a refused login on either broker, else None. kombu re-raises
    the client's error as its own `OperationalError` from it (`Connection._reraise_as_library_errors`),
    so the chain of causes is searched."""
    seen = 0
    while exc is not None and seen < 10:  # bounded: a cause chain can in principle loop
        if isinstance(exc, AccessRefused):
            return str(exc.reply_text)
        if redis and isinstance(exc, AuthenticationError):
            return str(exc)
        exc = exc.__cause__
        seen += 1
    return None


class RefusedCredentialsFilter(logging.Filter):
    """Rewrites a record whose exception is a refused login into one line without the traceback."""

    def __init__(self, broker_url: str) -> None:
        super().__init__()
        self._where = maybe_sanitize_url(broker_url)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        reason = refusal_reason(exc)
        if reason is not None:
            # Refused anywhere (an ack, a publish, a reconnect): the password may have been rotated, so
            # the secret is read now rather than at the next check (worker.instance.secret_watch).
            secret_watch.nudge()
        # A Redis refusal elsewhere may be the result backend's (CELERY_RESULT_BACKEND can name another
        # server); only the worker's own "Unrecoverable error" (WORKER_LOGGER) is the broker's for sure.
        if reason is not None and (record.name == WORKER_LOGGER or refusal_reason(exc, redis=False)):
            record.msg = REFUSED_MESSAGE
            record.args = (self._where, reason)
            record.exc_info = None
            record.exc_text = None
        return True


class RefusedCredentialsExit:
    """Mixin for Celery's consumer (`worker_consumer`): a refused login stops the worker instead of
    being retried with the same password (see the module docstring for the exit status)."""

    app: Any
    _has_connected = False

    def ensure_connected(self, conn: Connection) -> Connection:
        retry = conn.ensure_connection

        def ensure_connection(errback: Any = None, *args: Any, **kwargs: Any) -> Connection:
            def on_error(exc: BaseException, interval: float) -> None:
                if refusal_reason(exc) is not None:
                    raise exc  # out of kombu's retry loop, to the handler below
                if errback is not None:
                    errback(exc, interval)

            result: Connection = retry(on_error, *args, **kwargs)
            return result

        # Celery's ensure_connected hands its logging errback to this connection's ensure_connection.
        conn.ensure_connection = ensure_connection  # type: ignore[method-assign]
        try:
            connected: Connection = super().ensure_connected(conn)  # type: ignore[misc]
        except Exception as exc:
            reason = refusal_reason(exc)
            if reason is None or self._has_connected:
                raise
            log.critical(REFUSED_MESSAGE, maybe_sanitize_url(self.app.conf.broker_url), reason)
            raise SystemExit(SETTINGS_EXIT_CODE) from None
        self._has_connected = True
        return connected
