"""Stack config: declared once in Pulumi.yaml, read into one frozen object, bad values named by key."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from infra.cli.offline_render import install_mocks
from infra.config import (
    POOLS_KEY,
    REGION_KEY,
    ConfigError,
    PoolConfig,
    StackConfig,
    config_from_pulumi,
    declared_keys,
    load_stack_config,
    merged_raw,
    parse_config,
    read_stack_file,
    stack_names,
)
from infra.config.producers import TASK_ROUTES_KEY

Raw = dict[str, Any]


def _prod() -> Raw:
    return copy.deepcopy(merged_raw(read_stack_file("prod")))


def test_every_stack_file_loads() -> None:
    assert {"dev", "prod"} <= set(stack_names())
    for stack in stack_names():
        config = load_stack_config(stack)
        assert config.stack == stack
        assert config.pools


def test_every_key_is_declared_with_type_default_and_description() -> None:
    python_types = {"string": str, "integer": int, "boolean": bool, "array": list}
    for key, spec in declared_keys().items():
        assert set(spec) >= {"type", "default", "description"}, key
        assert isinstance(spec["default"], python_types[spec["type"]]), key
        assert spec["description"].strip(), key


def test_declared_keys_are_the_config_fields_and_defaults_live_only_in_pulumi_yaml() -> None:
    fields = StackConfig.model_fields
    aliases = {field.alias or name for name, field in fields.items()}
    # Maps (pools, taskRoutes) cannot be declared in Pulumi.yaml; taskRoutes' default ({}) is its field's.
    assert aliases - {"stack", REGION_KEY, POOLS_KEY, TASK_ROUTES_KEY} == set(declared_keys())
    for name, field in fields.items():
        if field.alias != TASK_ROUTES_KEY:
            assert field.is_required(), f"{name} has a default in config.py; it belongs in Pulumi.yaml"


def test_config_is_frozen() -> None:
    config = load_stack_config("dev")
    with pytest.raises(ValidationError):
        config.broker_ha = True  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.pools["default"].max_size = 99  # type: ignore[misc]


def test_pulumi_config_path_reads_the_same_object() -> None:
    for stack in stack_names():
        install_mocks(stack, read_stack_file(stack))
        assert config_from_pulumi() == load_stack_config(stack)


def test_pulumi_config_path_names_a_bad_key() -> None:
    values = read_stack_file("dev")
    values["brokerEngine"] = "memcached"
    install_mocks("dev", values)
    with pytest.raises(ConfigError, match=r"celery-cluster:brokerEngine: .*'valkey', 'redis' or 'rabbitmq'"):
        config_from_pulumi()


def _pool(raw: Raw, name: str = "default") -> Raw:
    pool: Raw = raw[POOLS_KEY][name]
    return pool


def _set(key: str, value: Any) -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        raw[key] = value

    return mutate


def _set_pool(key: str, value: Any, pool: str = "default") -> Callable[[Raw], None]:
    def mutate(raw: Raw) -> None:
        _pool(raw, pool)[key] = value

    return mutate


def _add_pool(raw: Raw) -> None:
    raw[POOLS_KEY]["io"] = {"queues": ["default"], "instanceTypes": ["t3.small"]}


def _spot_base_over_max(raw: Raw) -> None:
    _pool(raw)["spot"]["onDemandBaseCapacity"] = 50


def _warm_pool_with_spot(raw: Raw) -> None:
    _pool(raw)["warmPool"] = {"enabled": True, "minSize": 1}


def _drop_region(raw: Raw) -> None:
    del raw[REGION_KEY]


def _no_pools(raw: Raw) -> None:
    raw[POOLS_KEY] = {}


INVALID: list[tuple[str, Callable[[Raw], None], str]] = [
    ("engine", _set("brokerEngine", "memcached"), r"celery-cluster:brokerEngine: .*valkey.*redis.*rabbitmq"),
    ("min>max", _set_pool("minSize", 30), r"celery-cluster:pools\.default\.minSize: must be <= maxSize \(20\)"),
    ("desired>max", _set_pool("desiredSize", 21), r"pools\.default\.desiredSize: must be within minSize\.\.maxSize"),
    ("desired<min", _set_pool("desiredSize", 1), r"pools\.default\.desiredSize: must be within minSize\.\.maxSize"),
    ("latency 0", _set_pool("acceptableLatencySeconds", 0), r"pools\.default\.acceptableLatencySeconds: must be .*> 0"),
    ("latency<0", _set_pool("acceptableLatencySeconds", -5), r"pools\.default\.acceptableLatencySeconds: must be"),
    ("task 0", _set_pool("averageTaskSeconds", 0), r"pools\.default\.averageTaskSeconds: must be a number > 0"),
    ("type", _set_pool("instanceTypes", ["m7g_large"]), r"pools\.default\.instanceTypes: 'm7g_large' is not an EC2"),
    ("arch", _set_pool("instanceTypes", ["m7i.large"]), r"pools\.default\.instanceTypes: m7i\.large is x86_64 but"),
    (
        "one AZ with HA",
        _set("availabilityZones", ["us-east-1a"]),
        r"celery-cluster:availabilityZones: needs at least two",
    ),
    ("foreign AZ", _set("availabilityZones", ["eu-west-1a", "eu-west-1b"]), r"availabilityZones: 'eu-west-1a' is not"),
    ("HA one node", _set("cacheNodes", 1), r"celery-cluster:cacheNodes: must be >= 2 when brokerHa"),
    ("egress", _set("egress", "internet"), r"celery-cluster:egress: .*nat-single"),
    ("retention", _set("logRetentionDays", 10), r"celery-cluster:logRetentionDays: must be one of 1, 3, 5"),
    ("typo", _set_pool("maxsize", 3), r"celery-cluster:pools\.default\.maxsize: is not a known key"),
    ("unknown key", _set("brokerHA", True), r"celery-cluster:brokerHA: is not a known key"),
    ("queue twice", _add_pool, r"celery-cluster:pools: .*queue 'default' is consumed by pools 'default' and 'io'"),
    ("dead letter", _set_pool("queues", ["dead_letter"]), r"pools\.default\.queues: must not include the dead-letter"),
    ("no queues", _set_pool("queues", []), r"pools\.default\.queues: .*at least 1 item"),
    ("no pools", _no_pools, r"celery-cluster:pools: .*at least 1 item"),
    ("spot base", _spot_base_over_max, r"pools\.default\.spot\.onDemandBaseCapacity: must be <= maxSize"),
    ("warm+spot", _warm_pool_with_spot, r"pools\.default\.warmPool\.enabled: needs spot\.enabled=false"),
    ("share 0", _set_pool("targetWaitShare", 0), r"pools\.default\.targetWaitShare: .*greater than 0"),
    ("share>1", _set_pool("targetWaitShare", 1.5), r"pools\.default\.targetWaitShare: .*less than or equal to 1"),
    ("price", _set_pool("hourlyUsd", {"x1.large": 1.0}), r"pools\.default\.hourlyUsd: prices types the pool"),
    ("drain", _set("drainWindowSeconds", 30), r"celery-cluster:drainWindowSeconds: .*greater than or equal to 60"),
    ("cidr", _set("vpcCidr", "10.0.0.0/8"), r"celery-cluster:vpcCidr: must be an IPv4 CIDR from /16 to /20"),
    ("email", _set("alarmEmails", ["oncall"]), r"celery-cluster:alarmEmails: 'oncall' is not an e-mail"),
    ("region", _drop_region, r"aws:region: is required but not set"),
    ("ami", _set("imageAmiId", "ubuntu"), r"celery-cluster:imageAmiId: must be empty or an AMI id"),
    ("subnets w/o vpc", _set("privateSubnetIds", ["subnet-0123abcd"]), r"privateSubnetIds: is only used with vpcId"),
    ("samples", _set("publisherSamplesPerMinute", 5), r"celery-cluster:publisherSamplesPerMinute: .*6"),
    ("node type", _set("cacheNodeType", "m7g.large"), r"celery-cluster:cacheNodeType: 'm7g.large' is not valid"),
    ("bool", _set("brokerHa", "sometimes"), r"celery-cluster:brokerHa: Input should be a valid boolean"),
]


@pytest.mark.parametrize(("mutate", "pattern"), [(m, p) for _, m, p in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_config_is_rejected_naming_the_key(mutate: Callable[[Raw], None], pattern: str) -> None:
    raw = _prod()
    mutate(raw)
    with pytest.raises(ConfigError, match=pattern) as caught:
        parse_config("prod", raw)
    assert str(caught.value).startswith("invalid config for stack 'prod':")
    assert "Traceback" not in str(caught.value)


def test_existing_vpc_needs_its_subnets() -> None:
    raw = _prod()
    raw["vpcId"] = "vpc-0123abcd"
    raw["availabilityZones"] = []
    with pytest.raises(ConfigError, match=r"celery-cluster:privateSubnetIds: must list the VPC's private subnets"):
        parse_config("prod", raw)
    raw["privateSubnetIds"] = ["subnet-0123abcd", "subnet-0456abcd"]
    config = parse_config("prod", raw)
    assert config.zone_count == 2


def test_bad_stack_name_is_named_as_a_stack_name() -> None:
    with pytest.raises(ConfigError, match=r"stack name 'Prod_EU': must be lowercase"):
        parse_config("Prod_EU", _prod())


def test_missing_stack_file_lists_the_stacks() -> None:
    with pytest.raises(ConfigError, match=r"no stack file Pulumi\.qa\.yaml; stacks here: .*dev.*prod"):
        load_stack_config("qa")


def test_pool_defaults_and_derived_values() -> None:
    pool = PoolConfig.model_validate({"queues": ["q"], "instanceTypes": ["t3.small"]})
    assert (pool.min_size, pool.max_size, pool.concurrency) == (0, 4, 2)
    assert pool.alarm_threshold_seconds == 2 * pool.acceptable_latency_seconds
    assert pool.on_demand_percentage_above_base == 100  # Spot off: all on-demand
    prod = load_stack_config("prod")
    assert prod.soft_shutdown_seconds == prod.drain_window_seconds - 30
    default = prod.pools["default"]
    signal = default.scaling("default").signal
    assert (signal.acceptable_latency_seconds, signal.average_task_seconds, signal.concurrency) == (
        default.acceptable_latency_seconds,
        default.average_task_seconds,
        default.concurrency,
    )


@pytest.mark.parametrize(
    ("engine", "version"),
    [("redis", "6.0"), ("redis", "5.0.6"), ("redis", "4.0.10"), ("valkey", "6.0"), ("redis", "6.1")],
)
def test_a_redis_engine_older_than_6_2_is_refused_in_one_line_naming_key_and_value(engine: str, version: str) -> None:
    # The workers wait with BLMOVE (worker.runtime.redis_take), which Redis has since 6.2.0.
    raw = {**_prod(), "brokerEngine": engine, "brokerEngineVersion": version}
    with pytest.raises(ConfigError) as caught:
        parse_config("prod", raw)
    (line,) = [line for line in str(caught.value).splitlines() if "brokerEngineVersion" in line]
    assert f"celery-cluster:brokerEngineVersion: {engine} {version} is too old" in line
    assert "BLMOVE" in line
    assert "6.2 or later" in line


@pytest.mark.parametrize(
    ("engine", "version"),
    # ElastiCache's Valkey versions (7.2, 8.0, 8.1, 8.2, 9.0) and Redis OSS from 6.2; numbers, not text
    # (10.0 is after 6.2); any RabbitMQ version (the rule is BLMOVE's, a Redis command).
    [
        ("valkey", "7.2"),
        ("valkey", "8.0"),
        ("valkey", "8.1"),
        ("valkey", "8.2"),
        ("valkey", "9.0"),
        ("valkey", "10.0"),
        ("redis", "6.2"),
        ("redis", "6.2.6"),
        ("redis", "7.0"),
        ("redis", "7.1"),
        ("redis", ""),
        ("rabbitmq", "3.13"),
    ],
)
def test_redis_engines_from_6_2_and_every_valkey_are_accepted(engine: str, version: str) -> None:
    raw = {**_prod(), "brokerEngine": engine, "brokerEngineVersion": version}
    if engine == "rabbitmq":
        raw["brokerHa"] = False
    config = parse_config("prod", raw)
    assert config.engine_version == (version or "7.1")
