"""Worker settings, read once from the environment and validated before Celery starts.

Every variable is named `CELERY_<FIELD>`; the README's table lists them. A bad value raises
`SettingsError` whose message is one line that names the variable, so a misconfigured VM
stops at start with a clear reason instead of failing on its first task.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as _PydanticSettingsError

from worker.names import DEAD_LETTER_QUEUE, DEFAULT_QUEUE

ENV_PREFIX = "CELERY_"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
REDIS_SCHEMES = ("redis", "rediss")


class SettingsError(ValueError):
    """A worker setting is missing or invalid; the message names the variable."""


class TaskAnnotation(BaseModel):
    """Per-task overrides, given as JSON in CELERY_TASK_ANNOTATIONS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

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
    default_queue: str = Field(default=DEFAULT_QUEUE, pattern=r"^[A-Za-z0-9_.:-]+$")
    dead_letter_queue: str = Field(default=DEAD_LETTER_QUEUE, pattern=r"^[A-Za-z0-9_.:-]+$")
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    _parse_routes = field_validator("task_routes", "task_annotations", mode="before")(_json_object)
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
        return value

    @field_validator("journal_url")
    @classmethod
    def _journal_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in REDIS_SCHEMES:
            raise ValueError("must be a redis:// or rediss:// URL")
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
        return self

    @property
    def is_redis(self) -> bool:
        return urlsplit(self.broker_url).scheme in REDIS_SCHEMES


class _FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: Any) -> WorkerSettings:
    """Read and validate the settings; raise SettingsError with a one-line message."""
    try:
        return WorkerSettings(**overrides)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _FieldError):
            raise SettingsError(f"{env_name(ctx_error.field)}: {ctx_error.message}") from None
        field = ".".join(str(part) for part in error["loc"])
        head, _, rest = field.partition(".")
        name = env_name(head) + (f" [{rest}]" if rest else "")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required but not set"
        raise SettingsError(f"{name}: {message}") from None
    except _PydanticSettingsError as exc:  # e.g. a value that cannot be parsed at all
        raise SettingsError(str(exc).splitlines()[0]) from None
