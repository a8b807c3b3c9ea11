"""Worker settings, read once from the environment and validated before Celery starts.

Every variable is named `CELERY_<FIELD>`; the README's table lists them. A bad value raises
`SettingsError` whose message is one line that names the variable, so a misconfigured VM
stops at start with a clear reason instead of failing on its first task.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from celery.app.backends import by_url
from celery.exceptions import ImproperlyConfigured
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as _PydanticSettingsError

from celery_cluster_client.routing import QUEUE_NAME, RouteError, parse_routes
from worker import __version__
from worker.names import DEAD_LETTER_QUEUE, DEFAULT_QUEUE

ENV_PREFIX = "CELERY_"
PROCESS_ENV_PREFIX = "WORKER_"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
REDIS_SCHEMES = ("redis", "rediss")
# A bad CELERY_* or WORKER_* value stops the worker with this status (EX_USAGE in sysexits.h), from
# worker.app and from image/bin/start-worker alike, so a supervisor can tell it from a crash (1).
SETTINGS_EXIT_CODE = 64


class SettingsError(ValueError):
    """A worker setting is missing or invalid; the message names the variable."""


class TaskAnnotation(BaseModel):
    """Per-task overrides, given as JSON in CELERY_TASK_ANNOTATIONS."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rate_limit: str | None = Field(default=None, pattern=r"^\d+(\.\d+)?/[smh]$")
    time_limit: PositiveFloat | None = None
    soft_time_limit: PositiveFloat | None = None
    max_retries: int | None = Field(default=None, ge=0)


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    return value


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class WorkerSettings(BaseSettings):
    """The worker's whole configuration. Field `x` is read from `CELERY_X`."""

    # allow_inf_nan=False: `inf` parses as a float, and an infinite shutdown window overflowed
    # Celery's timer at the first SIGTERM instead of being refused at start.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore", allow_inf_nan=False)

    broker_url: str
    result_backend: str | None = None
    # Redis only: a message taken but not acked is redelivered after this many seconds.
    visibility_timeout: PositiveInt = 3600
    # On SIGTERM, running tasks get this long to finish before they are requeued.
    soft_shutdown_timeout: float = Field(default=90.0, ge=0)
    task_time_limit: PositiveInt = 1800
    task_soft_time_limit: PositiveInt = 1740
    prefetch_multiplier: PositiveInt = 1
    # Task events (received/started/succeeded) for `celery events` and Flower: three extra broker
    # messages per task, which more than halved no-op throughput in `make bench` (docs/worker.md).
    task_events: bool = False
    default_queue: str = Field(default=DEFAULT_QUEUE, pattern=QUEUE_NAME.pattern)
    dead_letter_queue: str = Field(default=DEAD_LETTER_QUEUE, pattern=QUEUE_NAME.pattern)
    # RabbitMQ: "quorum" on a multi-node broker (Amazon MQ cluster), "classic" otherwise.
    queue_type: Literal["classic", "quorum"] = "classic"
    # JSON: {"reports.*": "reports", "webhooks.deliver": "io"}; unmatched tasks go to default_queue.
    task_routes: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # JSON: {"webhooks.deliver": {"rate_limit": "10/s", "time_limit": 30}}.
    task_annotations: Annotated[dict[str, TaskAnnotation], NoDecode] = Field(default_factory=dict)
    # Extra task modules to import, comma-separated (an application's own packages).
    imports: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Optional Redis URL of an execution journal (one entry per task run; tests, local cluster).
    journal_url: str | None = None
    # Where workers record which copy of a periodic run started, so a second copy is refused
    # (worker.runtime.periodic_fence): redis://..., or dynamodb://<table> (the scheduler's, on RabbitMQ
    # stacks, set by the stack). Unset: the broker's Redis on Redis stacks; no fence on RabbitMQ.
    periodic_fence_url: str | None = None
    # Directory where each running task leaves a marker file, so the drain agent on the instance
    # sees the worker is busy (worker.runtime.busy); unset: no markers. On a VM: /run/celery-cluster/busy.
    busy_dir: str | None = Field(default=None, min_length=1, pattern=r"^/")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    _parse_annotations = field_validator("task_annotations", mode="before")(_json_object)
    _parse_imports = field_validator("imports", mode="before")(_comma_list)

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in BROKER_SCHEMES:
            allowed = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
            # Only the scheme is echoed: the URL may carry a password.
            raise ValueError(f"must start with one of {allowed} (got scheme {scheme or 'none'!r})")
        if not urlsplit(value).hostname:
            raise ValueError("has no host")
        _check_port(value)
        return value

    @field_validator("result_backend")
    @classmethod
    def _result_backend(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = urlsplit(value).scheme
        try:
            # Celery resolves the URL to a backend class (importing its module) when the worker starts;
            # doing it here turns "No module named 'foo'" deep in the worker into one line.
            by_url(value)
        except (ImportError, ImproperlyConfigured, ValueError):
            # Only the scheme is echoed: the URL may carry a password.
            raise ValueError(
                f"scheme {scheme or 'none'!r} is not a result backend this worker can load "
                "(e.g. redis://, rediss://, rpc://; leave unset to use the broker)"
            ) from None
        _check_port(value)
        return value

    @field_validator("task_routes", mode="before")
    @classmethod
    def _routes(cls, value: Any) -> Any:
        # The producers' rules (celery_cluster_client.routing): one definition of a valid table.
        try:
            return parse_routes(value)
        except RouteError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("journal_url")
    @classmethod
    def _journal_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis:// or rediss:// URL")
        if value is not None:
            _check_port(value)
        return value

    @field_validator("periodic_fence_url")
    @classmethod
    def _fence_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme == "dynamodb" and parts.netloc:
            return value
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis://, rediss:// or dynamodb://<table> URL")
        _check_port(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _limits_consistent(self) -> WorkerSettings:
        if self.task_soft_time_limit >= self.task_time_limit:
            raise _FieldError(
                "task_soft_time_limit",
                f"must be below CELERY_TASK_TIME_LIMIT ({self.task_time_limit} s) so the task can clean up",
            )
        if self.is_redis and self.visibility_timeout <= self.task_time_limit:
            raise _FieldError(
                "visibility_timeout",
                f"must exceed CELERY_TASK_TIME_LIMIT ({self.task_time_limit} s), "
                "or Redis redelivers tasks that are still running",
            )
        if self.default_queue == self.dead_letter_queue:
            raise _FieldError(
                "default_queue",
                f"must not be the dead-letter queue {self.dead_letter_queue!r} (CELERY_DEAD_LETTER_QUEUE)",
            )
        for pattern, queue in self.task_routes.items():
            if queue == self.dead_letter_queue:
                raise _FieldError(
                    "task_routes",
                    f"route {pattern!r} sends tasks to the dead-letter queue {queue!r}; no worker consumes it",
                )
        for task, annotation in self.task_annotations.items():
            self._check_annotation(task, annotation)
        return self

    def _check_annotation(self, task: str, annotation: TaskAnnotation) -> None:
        hard = annotation.time_limit or self.task_time_limit
        if annotation.soft_time_limit is not None and annotation.soft_time_limit >= hard:
            source = "its time_limit" if annotation.time_limit else "CELERY_TASK_TIME_LIMIT"
            raise _FieldError(
                f"task_annotations [{task}]",
                f"soft_time_limit ({annotation.soft_time_limit:g} s) must be below {source} ({hard:g} s)",
            )
        if self.is_redis and annotation.time_limit is not None and annotation.time_limit >= self.visibility_timeout:
            raise _FieldError(
                f"task_annotations [{task}]",
                f"time_limit ({annotation.time_limit:g} s) must be below CELERY_VISIBILITY_TIMEOUT "
                f"({self.visibility_timeout} s), or Redis redelivers the task while it still runs",
            )

    @property
    def is_redis(self) -> bool:
        return urlsplit(self.broker_url).scheme in REDIS_SCHEMES

    @property
    def periodic_fence(self) -> str | None:
        """The fence store in use: the setting, else the broker when it is Redis."""
        return self.periodic_fence_url or (self.broker_url if self.is_redis else None)


class ProcessSettings(BaseSettings):
    """The worker process's shape, read by `image/bin/start-worker` as WORKER_<FIELD> and checked by
    `worker.app` at start, so a value Celery would refuse stops the worker with one line."""

    model_config = SettingsConfigDict(env_prefix=PROCESS_ENV_PREFIX, frozen=True, extra="ignore")

    # prefork: one process per slot, time limits enforced (CPU-bound tasks); threads: one process,
    # many threads, for I/O-bound tasks (no time limits); solo: one task at a time, in the main process.
    # https://docs.celeryq.dev/en/stable/userguide/concurrency/index.html
    pool: Literal["prefork", "threads", "solo"] = "prefork"
    # Processes (prefork) or threads per worker; the pool's scaling math counts the same number.
    concurrency: int = Field(default=2, ge=1, le=256)
    # Which code this worker runs: the `version` of every log line it writes, and so the `Version`
    # dimension of the task outcome metrics that a canary refresh judges (docs/worker.md, "Versions").
    # The Pulumi program sets the build's source digest (the AMI id in imageMode ami); unset, the
    # package version. A metric dimension value: short, printable, no spaces.
    code_version: str = Field(default=__version__, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
    # The pool this worker serves (its `Pool` metric dimension); `local` off AWS.
    pool_name: str = Field(default="local", pattern=r"^[a-z][a-z0-9-]{0,19}$")


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def env_name(field: str, prefix: str = ENV_PREFIX) -> str:
    """`task_annotations [x]` -> `CELERY_TASK_ANNOTATIONS [x]`: the variable, then what in it."""
    head, space, rest = field.partition(" ")
    return f"{prefix}{head.upper()}{space}{rest}"


def _check_port(url: str) -> None:
    try:
        urlsplit(url).port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None


def check_imports(settings: WorkerSettings) -> None:
    """Every CELERY_IMPORTS module can be found (the worker imports them only once it runs, and a
    missing one was a traceback that did not name the variable). Not part of the model: the Pulumi
    program validates a pool's settings on a machine that need not hold the application's packages."""
    for module in settings.imports:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise SettingsError(f"{env_name('imports')}: module {module!r} cannot be imported (is it installed?)")


_Settings = TypeVar("_Settings", WorkerSettings, ProcessSettings)


def _validated(model: type[_Settings], prefix: str, overrides: Mapping[str, Any]) -> _Settings:
    try:
        return model(**overrides)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            raise SettingsError(f"{env_name(ctx_error.field, prefix)}: {ctx_error.message}") from None
        field = ".".join(str(part) for part in error["loc"])
        head, _, rest = field.partition(".")
        name = env_name(head, prefix) + (f" [{rest}]" if rest else "")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        elif error["type"] == "literal_error":  # a choice: no secret in it, and the typo is the clue
            message = f"{message} (got {error['input']!r})"
        raise SettingsError(f"{name}: {message}") from None
    except _PydanticSettingsError as exc:  # e.g. a value that cannot be parsed at all
        raise SettingsError(str(exc).splitlines()[0]) from None


def load_settings(**overrides: Any) -> WorkerSettings:
    """Read and validate the settings; raise SettingsError with a one-line message."""
    return _validated(WorkerSettings, ENV_PREFIX, overrides)


def load_process_settings(**overrides: Any) -> ProcessSettings:
    """Read and validate the WORKER_* variables; SettingsError names the variable."""
    return _validated(ProcessSettings, PROCESS_ENV_PREFIX, overrides)


class _GivenWorkerSettings(WorkerSettings):
    """The same model, reading only the values it is given (never this process's environment)."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class _GivenProcessSettings(ProcessSettings):
    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def check_environment(environ: Mapping[str, str]) -> tuple[WorkerSettings, ProcessSettings]:
    """Validate an environment as a worker started with it would (the Pulumi program renders a pool's
    environment and checks it here, so a value the worker would refuse fails `pulumi up` instead).

    Values are the strings the worker would read; SettingsError names the variable.
    """

    def fields(prefix: str) -> dict[str, str]:
        return {name[len(prefix) :].lower(): value for name, value in environ.items() if name.startswith(prefix)}

    return (
        _validated(_GivenWorkerSettings, ENV_PREFIX, fields(ENV_PREFIX)),
        _validated(_GivenProcessSettings, PROCESS_ENV_PREFIX, fields(PROCESS_ENV_PREFIX)),
    )
