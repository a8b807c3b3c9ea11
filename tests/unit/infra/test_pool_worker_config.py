"""`pools.<name>.worker`: checked by the worker's own settings model at render time, one line naming
the key for a value the worker would refuse, and rendered into the pool's environment."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import ConfigError, merged_raw, parse_config, read_stack_file


def _config(block: dict[str, Any], **stack: Any) -> Any:
    values = copy.deepcopy(read_stack_file("dev"))
    values["pools"]["default"]["worker"] = block
    values.update(stack)
    return parse_config("dev", merged_raw(values))


def test_the_block_renders_the_worker_variables_and_the_routes() -> None:
    config = _config(
        {
            "pool": "threads",
            "prefetchMultiplier": 4,
            "taskEvents": True,
            "logLevel": "WARNING",
            "annotations": {"webhooks.deliver": {"rate_limit": "10/s"}},
        },
        taskRoutes={"webhooks.*": "default"},
    )
    assert config.worker_environment("default") == {
        "WORKER_POOL": "threads",
        "CELERY_PREFETCH_MULTIPLIER": "4",
        "CELERY_TASK_EVENTS": "true",
        "CELERY_LOG_LEVEL": "WARNING",
        "CELERY_TASK_ANNOTATIONS": '{"webhooks.deliver": {"rate_limit": "10/s"}}',
        "CELERY_TASK_ROUTES": '{"webhooks.*": "default"}',
    }


def test_an_empty_block_leaves_the_worker_defaults() -> None:
    assert _config({}).worker_environment("default") == {}


@pytest.mark.parametrize(
    ("block", "key", "fragment"),
    [
        ({"pool": "gevent"}, "pools.default.worker.pool", "'prefork', 'threads' or 'solo'"),
        ({"prefetchMultiplier": 0}, "pools.default.worker.prefetchMultiplier", "greater than 0"),
        ({"taskEvents": "sometimes"}, "pools.default.worker.taskEvents", "valid boolean"),
        ({"logLevel": "LOUD"}, "pools.default.worker.logLevel", "'DEBUG'"),
        ({"annotations": {"x": {"rate_limit": "fast"}}}, "pools.default.worker.annotations", "pattern"),
        ({"annotations": {"x": {"retries": 3}}}, "pools.default.worker.annotations", "Extra inputs"),
        ({"concurrency": 8}, "pools.default.worker", "set on the pool (pools.<name>.concurrency)"),
    ],
)
def test_a_value_the_worker_would_refuse_is_one_line_naming_the_key(
    block: dict[str, Any], key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(block)
    lines = [line for line in str(raised.value).splitlines() if "celery-cluster:" in line]
    assert len(lines) == 1, lines
    assert f"celery-cluster:{key}:" in lines[0]
    assert fragment in lines[0]
