"""The validator's size budgets (infra/config/sizes.py) hold: what it leaves for everything that does not
grow with the config is enough at the longest names and ARNs there can be, and a config at the edge of
each budget renders within AWS's limit while one past it is refused with one line naming the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from infra.artefacts.manifest import placeholder_artefacts
from infra.cli.offline_render import render_config
from infra.components.scheduler import scheduler_log_group
from infra.components.worker_pool import DRAIN_HOOK, log_group_name
from infra.config import ConfigError, merged_raw, parse_config, read_stack_file
from infra.config.sizes import (
    LAMBDA_ENVIRONMENT_BYTES,
    LAMBDA_OTHER_BYTES,
    USER_DATA_BYTES,
    USER_DATA_OTHER_BYTES,
    environment_file_bytes,
    pools_json_bytes,
)
from infra.vm.scheduler_data import SchedulerRuntime, render_scheduler_user_data
from infra.vm.user_data import IMAGE_MODES, BootArtefacts, ImageMode, PoolRuntime, render_user_data
from tests.support.aws_limits import limits_by_name
from tests.support.stack_configs import LONGEST_POOL, LONGEST_STACK

REGION = "ap-southeast-5"  # the longest region name
SECRET_ARN = f"arn:aws-iso-b:secretsmanager:{REGION}:123456789012:secret:broker-url-1a2b3c4-AbCdEf"
QUEUE = "q"


def _artefacts() -> BootArtefacts:
    built = placeholder_artefacts()
    wheelhouse = built.wheelhouses["arm64"]
    return BootArtefacts("b" * 63, wheelhouse.key, wheelhouse.sha256, built.image_files.key, built.image_files.sha256)


def _pool(extra_env: dict[str, str] | None = None, queues: tuple[str, ...] = (QUEUE,)) -> PoolRuntime:
    return PoolRuntime(
        stack=LONGEST_STACK,
        pool=LONGEST_POOL,
        region=REGION,
        queues=queues,
        concurrency=256,
        soft_shutdown_timeout=7170,
        drain_window=7200,
        lifecycle_hook_name=DRAIN_HOOK,
        secret_id=SECRET_ARN,
        log_group=log_group_name(LONGEST_STACK, LONGEST_POOL),
        metrics_namespace=f"CeleryCluster/{LONGEST_STACK}",
        spot=True,
        extra_env=extra_env or {},
    )


def _scheduler(routes: dict[str, str] | None = None, queues: tuple[str, ...] = (QUEUE,)) -> SchedulerRuntime:
    return SchedulerRuntime(
        stack=LONGEST_STACK,
        region=REGION,
        secret_id=SECRET_ARN,
        log_group=scheduler_log_group(LONGEST_STACK),
        metrics_namespace=f"CeleryCluster/{LONGEST_STACK}",
        lease_seconds=300,
        queues=queues,
        lease_url=f"dynamodb://celery-cluster-{LONGEST_STACK}-scheduler",
        task_routes=routes or {},
    )


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_what_does_not_grow_with_the_config_fits_its_user_data_budget(mode: ImageMode) -> None:
    artefacts = _artefacts() if mode == "boot" else None
    pool = render_user_data(mode, _pool(), artefacts)
    grows = environment_file_bytes({"WORKER_QUEUES": QUEUE})
    assert len(pool.encode()) - grows <= USER_DATA_OTHER_BYTES
    scheduler = render_scheduler_user_data(mode, _scheduler(), artefacts)
    assert len(scheduler.encode()) - environment_file_bytes({"SCHEDULER_QUEUES": QUEUE}) <= USER_DATA_OTHER_BYTES


def _routes_of(size: int) -> dict[str, str]:
    """Task routes whose environment line takes about `size` bytes of user data."""
    routes: dict[str, str] = {}
    while environment_file_bytes({"CELERY_TASK_ROUTES": json.dumps(routes)}) < size:
        routes[f"app.task_{len(routes):05d}"] = QUEUE
    return routes


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_user_data_at_the_validators_edge_fits_16_kb(mode: ImageMode) -> None:
    """The most the validator lets grow (routes up to the budget) still renders under EC2's 16 KB."""
    room = USER_DATA_BYTES - USER_DATA_OTHER_BYTES
    routes = _routes_of(room - environment_file_bytes({"WORKER_QUEUES": QUEUE}) - 200)
    environment = {"CELERY_TASK_ROUTES": json.dumps(routes, sort_keys=True)}
    assert environment_file_bytes(environment) + environment_file_bytes({"WORKER_QUEUES": QUEUE}) <= room
    artefacts = _artefacts() if mode == "boot" else None
    assert len(render_user_data(mode, _pool(environment), artefacts).encode()) <= USER_DATA_BYTES
    assert len(render_scheduler_user_data(mode, _scheduler(routes), artefacts).encode()) <= USER_DATA_BYTES


def _refusal(values: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config("prod", merged_raw(values))
    (line,) = str(raised.value).splitlines()
    return line


def _queues(pools: int, length: int) -> dict[str, Any]:
    base = read_stack_file("prod")
    template = base["pools"]["reports"]
    return {
        **base,
        "pools": {
            **base["pools"],
            **{
                f"p{i}": {**template, "queues": [f"q{i}{j}".ljust(length, "x") for j in range(8)]} for i in range(pools)
            },
        },
    }


def _accepted(values: dict[str, Any]) -> bool:
    try:
        parse_config("prod", merged_raw(values))
    except ConfigError:
        return False
    return True


def test_pools_json_past_its_budget_is_refused_and_just_under_it_deploys() -> None:
    """The publisher's environment is the first thing more pools and queues fill."""
    room = LAMBDA_ENVIRONMENT_BYTES - LAMBDA_OTHER_BYTES
    longest = max(n for n in range(1, 120) if _accepted(_queues(4, n)))  # the longest names it takes
    under = _queues(4, longest)
    config = parse_config("prod", merged_raw(under))
    assert room - 4 * 8 < pools_json_bytes(config.pools) <= room  # one character more per queue is refused
    assert ": celery-cluster:pools: the metrics publisher's POOLS_JSON would be " in _refusal(_queues(4, longest + 1))
    resources = [r.as_json() for r in render_config(config, under).resources]
    assert limits_by_name()["lambda_functions"].check(resources) == []


def test_every_size_the_validator_bounds_is_refused_with_one_line_naming_its_key() -> None:
    prod = read_stack_file("prod")
    cases = {
        "celery-cluster:taskRoutes: pool ": {
            **prod,
            "taskRoutes": {f"a.t{i:05d}_" + "x" * 30: "default" for i in range(300)},
        },
        "celery-cluster:pools.default.queues.0: ": _with_pool(prod, queues=["x" * 256]),
        "celery-cluster:pools.default.instanceTypes: ": _with_pool(prod, instanceTypes=["m7g.large"] * 41),
        "celery-cluster:pools.default.schedules: ": _with_pool(
            prod,
            schedules=[{"name": f"s{i}", "cron": "0 1 * * *", "capacity": 1, "durationSeconds": 60} for i in range(62)],
        ),
        "celery-cluster:brokerClientCidrs: ": {**prod, "brokerClientCidrs": [f"10.9.{i}.0/24" for i in range(58)]},
    }
    for key, values in cases.items():
        assert key in _refusal(values)


def _with_pool(values: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    changed["pools"]["default"].update(changes)
    return changed
