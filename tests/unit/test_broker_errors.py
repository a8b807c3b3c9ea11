"""The one-line rewrite of a refused login: real exceptions as kombu raises them (the client's error as
the cause of kombu's OperationalError), real log records through the filter."""

from __future__ import annotations

import logging

from amqp.exceptions import AccessRefused
from kombu.exceptions import OperationalError
from redis.exceptions import AuthenticationError

from worker.runtime.broker_errors import REFUSED_MESSAGE, WORKER_LOGGER, RefusedCredentialsFilter, refusal_reason

URL = "rediss://:s3cretpassword@broker.example:6379/0?ssl_cert_reqs=required"


def _raised(exc: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        raise exc from cause
    except BaseException as caught:
        return caught


def _record(logger: str, exc: BaseException) -> logging.LogRecord:
    return logging.LogRecord(
        logger, logging.CRITICAL, __file__, 1, "Unrecoverable error: %r", (exc,), (type(exc), exc, exc.__traceback__)
    )


def test_a_refusal_is_found_through_kombus_wrapper() -> None:
    refused = AuthenticationError("invalid username-password pair or user is disabled.")
    wrapped = _raised(OperationalError(str(refused)), _raised(refused))
    assert refusal_reason(wrapped) == "invalid username-password pair or user is disabled."
    assert refusal_reason(_raised(OperationalError("Connection reset by peer"))) is None


def test_the_workers_unrecoverable_error_becomes_one_line_without_the_password() -> None:
    refused = _raised(OperationalError("x"), AuthenticationError("invalid username-password pair"))
    record = _record(WORKER_LOGGER, refused)
    assert RefusedCredentialsFilter(URL).filter(record)
    line = record.getMessage()
    assert record.msg == REFUSED_MESSAGE
    assert "invalid username-password pair" in line
    assert "s3cretpassword" not in line
    assert record.exc_info is None


def test_a_redis_refusal_logged_elsewhere_is_not_blamed_on_the_broker_url() -> None:
    """The result backend may be another Redis with its own password."""
    record = _record("celery.backends.redis", AuthenticationError("invalid username-password pair"))
    RefusedCredentialsFilter(URL).filter(record)
    assert record.msg != REFUSED_MESSAGE
    assert record.exc_info is not None


def test_an_amqp_refusal_is_the_brokers_wherever_it_is_logged() -> None:
    record = _record("celery.worker.consumer", AccessRefused("ACCESS_REFUSED - Login was refused"))
    RefusedCredentialsFilter("amqps://celery:pw@mq.example:5671//").filter(record)
    assert record.msg == REFUSED_MESSAGE
