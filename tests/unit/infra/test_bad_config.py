"""Bad stack config stops the Pulumi program before it registers anything: one line per bad key.

Each case runs `infra/__main__.py` (what `pulumi up` runs) under the SDK's mocks with the engine's
view of a stack (namespaced keys, string values, exactly what `pulumi up` hands the program) and
counts the resources the mock monitor saw: none. `tests/integration/test_bad_stack_files.py` runs
the same classes, and the file-level ones, through `scripts/render` and `make render`.
"""

from __future__ import annotations

import copy
import runpy
import warnings
from typing import Any

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.cli.offline_render import install_mocks
from infra.config import ConfigError, config_from_pulumi, load_stack_config, read_stack_file
from infra.config.aws_types import architecture_of
from infra.config.loading import known_keys
from infra.config.messages import closest

Values = dict[str, Any]


def _dev() -> Values:
    return copy.deepcopy(read_stack_file("dev"))


def _with_pool(**changes: Any) -> Values:
    values = _dev()
    values["pools"]["default"].update(changes)
    return values


def _run_main() -> None:
    def program() -> None:
        runpy.run_module("infra.__main__", run_name="__main__")

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\.|$)")
        _sync_await(run_pulumi_func(program))


# (id, the stack's values, the key named, a fragment of the message)
BAD: list[tuple[str, Values, str, str]] = [
    (
        "latency .inf",
        _with_pool(acceptableLatencySeconds=float("inf")),
        "pools.default.acceptableLatencySeconds",
        "finite",
    ),
    ("task .nan", _with_pool(averageTaskSeconds=float("nan")), "pools.default.averageTaskSeconds", "finite"),
    ("cidr host bits", {**_dev(), "vpcCidr": "10.40.0.1/16"}, "celery-cluster:vpcCidr", "host bits set"),
    (
        "instance type",
        _with_pool(instanceTypes=["t4g.huge"]),
        "pools.default.instanceTypes",
        "'t4g.huge' is not an EC2",
    ),
    ("scheduler type", {**_dev(), "schedulerInstanceType": "t4g.huge"}, "schedulerInstanceType", "not an EC2"),
    ("cache node type", {**_dev(), "cacheNodeType": "cache.t4g.gigantic"}, "cacheNodeType", "not an ElastiCache node"),
    ("engine version", {**_dev(), "brokerEngineVersion": "latest"}, "brokerEngineVersion", "a version number"),
    (
        "redis before 6.2",
        {**_dev(), "brokerEngine": "redis", "brokerEngineVersion": "6.0"},
        "celery-cluster:brokerEngineVersion",
        "redis 6.0 is too old",
    ),
    ("AZ is a region", {**_dev(), "availabilityZones": ["us-east-1"]}, "availabilityZones", "'us-east-1' is not an AZ"),
    (
        "a1 is arm64",
        _with_pool(instanceTypes=["a1.large"], architecture="x86_64"),
        "instanceTypes",
        "a1.large is arm64",
    ),
    ("foreign namespace", {**_dev(), "alerts:emails": ["a@b.co"]}, "alerts:emails", "celery-cluster:alarmEmails?"),
    ("misspelt namespace", {**_dev(), "celery-clsuter:logRetentionDays": 7}, "celery-clsuter:", "logRetentionDays?"),
    ("other namespace", {**_dev(), "image:amiId": "ami-0123abcd"}, "image:amiId", "celery-cluster:imageAmiId?"),
    ("misspelt key", {**_dev(), "brokerHA": True}, "celery-cluster:brokerHA", "celery-cluster:brokerHa?"),
    ("misspelt pool key", _with_pool(maxsize=3), "pools.default.maxsize", "pools.default.maxSize?"),
    ("markup in a value", _with_pool(queues=["jobs[/]"]), "pools.default.queues", "'jobs[/]'"),
]


@pytest.mark.parametrize(("values", "key", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_program_refuses_bad_config_before_registering_anything(values: Values, key: str, fragment: str) -> None:
    render = install_mocks("dev", values)
    with pytest.raises(pulumi.RunError) as caught:
        _run_main()
    (line,) = str(caught.value).splitlines()
    assert key in line
    assert fragment in line
    assert render.resources == []


def test_two_bad_keys_are_two_lines_and_nothing_is_registered() -> None:
    render = install_mocks("dev", {**_dev(), "vpcCidr": "10.40.0.1/16", "cacheNodeType": "cache.t4g.gigantic"})
    with pytest.raises(pulumi.RunError) as caught:
        _run_main()
    lines = str(caught.value).splitlines()
    assert len(lines) == 2, lines
    assert ["cacheNodeType" in lines[0], "vpcCidr" in lines[1]] == [True, True]
    assert render.resources == []


def test_a_number_written_as_a_string_is_the_number_on_both_paths() -> None:
    # `pulumi config set publisherSamplesPerMinute 12` writes "12"; render and `pulumi up` agree.
    values = {**_dev(), "publisherSamplesPerMinute": "12"}
    install_mocks("dev", values)
    assert config_from_pulumi().publisher_samples_per_minute == 12


def test_a1_and_graviton_types_are_arm64_and_others_x86_64() -> None:
    assert [architecture_of(t) for t in ("a1.large", "t4g.small", "c7gn.xlarge", "m7i.large", "mac1.metal")] == [
        "arm64",
        "arm64",
        "arm64",
        "x86_64",
        "x86_64",
    ]
    install_mocks("dev", _with_pool(instanceTypes=["a1.large"], hourlyUsd={}))
    assert config_from_pulumi().pools["default"].instance_types == ("a1.large",)


def test_closest_key_names_the_real_key() -> None:
    keys = known_keys()
    assert closest("alerts:emails", keys) == "celery-cluster:alarmEmails"
    assert closest("image:mode", keys) == "celery-cluster:imageMode"
    assert closest("celery-clsuter:logRetentionDays", keys) == "celery-cluster:logRetentionDays"
    assert closest("zzz:qqq", keys) is None


def test_every_stack_file_still_loads() -> None:
    for stack in ("dev", "staging", "prod"):
        assert load_stack_config(stack).stack == stack
    with pytest.raises(ConfigError):
        load_stack_config("no-such-stack")
