"""The drain agent's settings (`celery-cluster-drain`, worker/drain/agent.py): one pydantic-settings model read
from `DRAIN_*` variables (the pool's environment file), each field with its reason and bound, and a bad
value reported as one line naming the variable. The stack's model of AWS reads the protection defaults
from here too, so the agent and the simulator cannot disagree."""

from __future__ import annotations

from typing import Any, Final, Literal

import httpx
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX: Final = "DRAIN_"
# A Spot interruption notice comes two minutes before the interruption:
# https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
SPOT_NOTICE_S: Final = 120.0
DEFAULT_WORKER_UNIT: Final = "celery-worker.service"


class DrainSettingsError(ValueError):
    """A DRAIN_* setting is missing or invalid; the message names the variable."""


class DrainSettings(BaseSettings):
    """The drain agent's configuration. Field `x` is read from `DRAIN_X`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    # Name of the pool's termination lifecycle hook (rendered into the env file by the stack).
    lifecycle_hook_name: str = Field(min_length=1, max_length=255)
    # The Auto Scaling group; when unset, read from the instance's `aws:autoscaling:groupName` tag.
    asg_name: str | None = Field(default=None, min_length=1, max_length=255)
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    imds_endpoint: str = "http://169.254.169.254"
    # IMDSv2 allows 1 s to 6 h.
    imds_token_ttl: int = Field(default=21600, ge=1, le=21600)
    # AWS asks for a Spot check every 5 s.
    poll_interval: float = Field(default=5.0, gt=0, le=60)
    # Well under the hook's heartbeat timeout, so one lost heartbeat does not end the wait.
    heartbeat_interval: float = Field(default=30.0, gt=0)
    # Longest wait for the worker to stop on scale-in: the worker unit's TimeoutStopSec.
    timeout: float = Field(default=300.0, gt=0)
    # On a Spot notice, be done this long before the interruption time.
    spot_margin: float = Field(default=10.0, ge=0, lt=SPOT_NOTICE_S)
    worker_unit: str = Field(default=DEFAULT_WORKER_UNIT, pattern=r"^[A-Za-z0-9@_.:-]+\.service$")
    # The worker's busy markers (its CELERY_BUSY_DIR); unset: no scale-in protection.
    busy_dir: str | None = Field(default=None, min_length=1, pattern=r"^/")
    # Hysteresis: protection is removed once the instance has been idle this long, not per task.
    protect_idle_seconds: float = Field(default=60.0, ge=0, le=3600)
    # Only a task that has run this long protects the instance: a shorter one finishes within a
    # drain anyway, and protecting for every task keeps a short-task pool from ever scaling in.
    protect_after_seconds: float = Field(default=30.0, ge=0, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("imds_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parsed = httpx.URL(value)
        if parsed.scheme != "http" or not parsed.host:
            raise ValueError("must be an http:// URL with a host")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


def load_settings(**overrides: Any) -> DrainSettings:
    """Read and validate the settings; raise DrainSettingsError with a one-line message."""
    try:
        return DrainSettings(**overrides)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = ENV_PREFIX + str(error["loc"][0]).upper()
        message = "is required but not set" if error["type"] == "missing" else error["msg"]
        raise DrainSettingsError(f"{name}: {message.removeprefix('Value error, ')}") from None
