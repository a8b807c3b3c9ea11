"""Watching the broker secret while a process runs, so a rotated password reaches it without downtime.

fetch-env reads the secret only when systemd starts a unit, and a broker keeps the connections a
process already opened when its password changes (Redis `ACL SETUSER`/`CONFIG SET requirepass`,
RabbitMQ `change_password`, ElastiCache's AUTH rotation); only a reconnect is refused, with the old
password, for ever. So each long-running process (the worker, the scheduler) reads its secret again
every WORKER_SECRET_CHECK_SECONDS, and at once when the broker refuses a login: when the secret's
CELERY_BROKER_URL is no longer the one the process runs with, it stops the way a scale-in stops it
(the worker drains, the scheduler releases its lease) and exits SECRET_CHANGED_EXIT_CODE, and systemd
restarts the unit, whose ExecStartPre fetch-env reads the new secret (docs/worker.md, "Rotating the
broker password").

Where the secret is read from: WORKER_SECRET_ID (Secrets Manager, as fetch-env reads it), or
WORKER_SECRET_FILE, a file holding the same JSON object (a stand-in for Secrets Manager where there
is none: the tests). Neither set: nothing is watched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import structlog
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from celery_cluster_client.secret import json_object
from worker.instance.fetchenv import FetchError, FetchSettings, fetch

log = structlog.get_logger("worker.instance.secret_watch")

# EX_TEMPFAIL (sysexits.h): "try again later". Not in any unit's RestartPreventExitStatus=, so systemd
# restarts the unit (Restart=on-failure restarts on an unclean exit code, systemd.service(5)).
SECRET_CHANGED_EXIT_CODE: Final = 75
BROKER_URL_VARIABLE: Final = "CELERY_BROKER_URL"


class WatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORKER_", frozen=True, extra="ignore")

    secret_id: str | None = Field(default=None, min_length=1)
    # A file with the secret's JSON object instead of Secrets Manager (tests, machines without AWS).
    secret_file: Path | None = None
    # How often a running process reads its secret again. The rotation procedure waits this long plus
    # a drain before it removes the old password. Each read is one GetSecretValue per process: 2,880 a
    # day at 30 s, far under Secrets Manager's read quota (10,000 a second per Region,
    # https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html).
    secret_check_seconds: float = Field(default=30.0, ge=0.5, le=3600.0)


class SecretReadError(RuntimeError):
    """The secret could not be read; the message names the secret or file."""


def read_broker_url(settings: WatchSettings, secrets: Any = None) -> str | None:
    """The secret's CELERY_BROKER_URL now, or None when no secret is configured (or it holds none)."""
    if settings.secret_file is not None:
        try:
            data = json_object(settings.secret_file.read_text())
        except OSError as exc:
            raise SecretReadError(f"WORKER_SECRET_FILE {settings.secret_file}: {exc.strerror}") from None
        if data is None:
            raise SecretReadError(f"WORKER_SECRET_FILE {settings.secret_file}: not a JSON object")
        url = data.get(BROKER_URL_VARIABLE)
        return url if isinstance(url, str) and url else None
    if settings.secret_id is None:
        return None
    try:
        variables = fetch(FetchSettings(secret_id=settings.secret_id), secrets=secrets)
    except FetchError as exc:
        raise SecretReadError(str(exc)) from None
    return variables.get(BROKER_URL_VARIABLE) or None


class SecretWatch:
    """A daemon thread that calls `on_change` once, when the secret's broker URL is no longer `current`."""

    def __init__(
        self, current: str, read: Callable[[], str | None], interval: float, on_change: Callable[[], None]
    ) -> None:
        self._current = current
        self._read = read
        self._interval = interval
        self._on_change = on_change
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self.changed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)

    def start(self) -> SecretWatch:
        self._thread.start()
        return self

    def nudge(self) -> None:
        """Read the secret now (the broker refused a login: the password may have been rotated)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def check(self) -> bool:
        """Read the secret once; True (and `on_change` called) when its broker URL changed."""
        try:
            url = self._read()
        except Exception as exc:  # a read that fails is retried at the next check, logged each time
            log.warning("secret.unreadable", error=str(exc))
            return False
        if url is None or url == self._current:
            return False
        log.warning("secret.changed", action="restart with the new broker credentials")
        self.changed.set()
        self._on_change()
        return True

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped.is_set() or self.check():
                return


_active: SecretWatch | None = None


def start(current: str, on_change: Callable[[], None]) -> SecretWatch | None:
    """Watch this process's secret (settings from the environment); None when none is configured."""
    global _active  # noqa: PLW0603 - one watch per process, nudged from log filters
    try:
        settings = WatchSettings()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise SecretReadError(f"WORKER_{str(error['loc'][0]).upper()}: {error['msg']}") from None
    if settings.secret_file is None and settings.secret_id is None:
        return None
    _active = SecretWatch(current, lambda: read_broker_url(settings), settings.secret_check_seconds, on_change)
    return _active.start()


def nudge() -> None:
    """The broker refused a login somewhere in this process: read the secret now, if it is watched."""
    if _active is not None:
        _active.nudge()
