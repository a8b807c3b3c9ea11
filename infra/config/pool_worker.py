"""A pool's worker settings (`pools.<name>.worker`), validated by the worker's own settings model.

Each key here is one worker environment variable; the schema (type, bounds, default) is the one in
`worker/runtime/settings.py` (WorkerSettings, ProcessSettings), never a copy: the stack config only names
which variables a pool may set. The Pulumi program renders them into the pool's environment file,
and `StackConfig` checks the whole rendered environment with `worker.runtime.settings.check_environment`,
so a value the worker would refuse at start fails the render, naming the key.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, Field, model_validator

from infra.config.base import ConfigModel
from worker.runtime.settings import ENV_PREFIX, PROCESS_ENV_PREFIX, ProcessSettings, WorkerSettings, env_name


class PoolWorkerConfig(ConfigModel):
    """Worker settings of one pool: every field is a worker variable, unset keeps the worker's default."""

    # Values stay as given (types come from the worker's model at validation time).
    pool: Any = Field(default=None, description="prefork for CPU-bound tasks, threads for I/O-bound ones, or solo.")
    prefetch_multiplier: Any = Field(
        default=None, description="Messages each process reserves; raise it only for many short, uniform tasks."
    )
    task_events: Any = Field(
        default=None, description="Task events for Flower / `celery events` (three extra broker messages per task)."
    )
    log_level: Any = Field(default=None, description="Worker log level.")
    annotations: Any = Field(
        default=None,
        description="Per task: rate_limit, time_limit, soft_time_limit, max_retries, "
        'e.g. {"webhooks.deliver": {"rate_limit": "10/s"}}.',
    )

    VARIABLES: ClassVar[dict[str, tuple[type[BaseModel], str, str]]] = {
        "pool": (ProcessSettings, PROCESS_ENV_PREFIX, "pool"),
        "prefetch_multiplier": (WorkerSettings, ENV_PREFIX, "prefetch_multiplier"),
        "task_events": (WorkerSettings, ENV_PREFIX, "task_events"),
        "log_level": (WorkerSettings, ENV_PREFIX, "log_level"),
        "annotations": (WorkerSettings, ENV_PREFIX, "task_annotations"),
    }
    """Field -> (the worker's settings model, its variable prefix, its field)."""

    @model_validator(mode="before")
    @classmethod
    def _concurrency_is_the_pools(cls, data: Any) -> Any:
        if isinstance(data, dict) and "concurrency" in data:
            # One key: the scaling math counts the same processes (target backlog per instance).
            raise ValueError("concurrency is set on the pool (pools.<name>.concurrency), not in worker")
        return data

    @classmethod
    def variable(cls, field: str) -> str:
        _, prefix, name = cls.VARIABLES[field]
        return env_name(name, prefix)

    @classmethod
    def key_of(cls, variable: str) -> str | None:
        """The config key (camelCase, relative to the block) that renders `variable`."""
        for field in cls.VARIABLES:
            if cls.variable(field) == variable:
                alias = cls.model_fields[field].alias
                return alias or field
        return None

    def environment(self) -> dict[str, str]:
        """The variables this block sets, as the strings a worker reads from its environment."""
        return {
            self.variable(field): _as_env(value)
            for field in self.VARIABLES
            if (value := getattr(self, field)) is not None
        }


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
