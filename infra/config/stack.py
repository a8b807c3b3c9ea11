"""The stack's config schema: network, broker, image, alarms, publisher and the pools."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from infra.config.aws_types import (
    ENGINE_VERSION,
    architecture_of,
    availability_zone_pattern,
    cache_node_types,
    ec2_instance_types,
)
from infra.config.base import ConfigModel
from infra.config.errors import KeyRuleError
from infra.config.pool import PoolConfig
from infra.config.pool_worker import PoolWorkerConfig
from infra.config.producers import (
    TASK_ROUTES_KEY,
    check_cidrs,
    check_client_count,
    check_routes,
    check_routes_reach_pools,
    check_security_group_ids,
)
from infra.config.refresh import CHECKPOINT_DELAY_MAX, check_checkpoints, check_judgement
from infra.config.sizes import (
    LAMBDA_ENVIRONMENT_BYTES,
    LAMBDA_OTHER_BYTES,
    USER_DATA_BYTES,
    USER_DATA_OTHER_BYTES,
    environment_file_bytes,
    pools_json_bytes,
)
from worker.names import METRIC_NAMESPACE_PREFIX
from worker.runtime.settings import ENV_PREFIX, SettingsError, check_environment

REGION_KEY = "aws:region"
# Seconds between SIGTERM's soft-shutdown deadline and the lifecycle hook's timeout: time for the
# worker to requeue what it could not finish, exit, and for the drain agent to complete the hook.
DRAIN_MARGIN_SECONDS = 30
# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922)
# The versions this project's worker is tested against, used when brokerEngineVersion is empty.
ENGINE_VERSIONS: Mapping[str, str] = {"valkey": "8.0", "redis": "7.1", "rabbitmq": "3.13"}
# The oldest Redis-protocol engine the workers run on: worker.runtime.redis_take waits with BLMOVE,
# "Available since 6.2.0" (https://redis.io/docs/latest/commands/blmove/). Every ElastiCache Valkey
# version (7.2 and later) has it (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/engine-versions.html).
MIN_REDIS_ENGINE_VERSION = (6, 2)

_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


def _version(text: str) -> tuple[int, ...]:
    """A version as numbers ("6.2" is (6, 2), "7.0.7" is (7, 0, 7)), so that 10.0 sorts after 9.0."""
    return tuple(int(part) for part in text.split("."))


class StackConfig(ConfigModel):
    """Everything a stack is configured with. Field `x_y` is config key `celery-cluster:xY`."""

    stack: str = Field(pattern=r"^[a-z][a-z0-9-]{0,15}$")
    region: str = Field(alias=REGION_KEY, pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    vpc_id: str
    private_subnet_ids: tuple[str, ...]
    vpc_cidr: str
    availability_zones: tuple[str, ...]
    egress: Literal["nat-single", "nat-per-az", "endpoints"]
    broker_engine: Literal["valkey", "redis", "rabbitmq"]
    broker_ha: bool
    broker_engine_version: str
    cache_node_type: str = Field(pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    cache_nodes: int = Field(ge=1, le=6)
    mq_instance_type: str = Field(pattern=r"^mq\.[a-z0-9]+\.[a-z0-9]+$")
    broker_snapshot_retention_days: int = Field(ge=0, le=35)
    drain_window_seconds: int = Field(ge=DRAIN_MARGIN_SECONDS + 30, le=7200)
    image_mode: Literal["ami", "bake", "boot"]
    image_ami_id: str
    image_ssm_parameter: str
    alarm_emails: tuple[str, ...]
    log_retention_days: int
    publisher_samples_per_minute: Literal[1, 2, 3, 4, 6, 12]
    publisher_memory_mb: int = Field(ge=128, le=10240)
    publisher_reserve_concurrency: bool
    publisher_bundle: str
    kms_deletion_window_days: int = Field(ge=7, le=30)
    broker_cpu_alarm_percent: int = Field(ge=1, le=100)
    broker_memory_alarm_percent: int = Field(ge=1, le=100)
    broker_connections_alarm: int = Field(ge=1)
    pools: Mapping[str, PoolConfig] = Field(min_length=1)
    # Producers (infra/config/producers.py): the two access lists are declared in Pulumi.yaml;
    # taskRoutes is a map, which a Pulumi.yaml schema cannot type, so its default is here.
    broker_client_security_group_ids: tuple[str, ...]
    broker_client_cidrs: tuple[str, ...]
    task_routes: Mapping[str, str] = Field(default_factory=dict)

    _client_groups = field_validator("broker_client_security_group_ids")(check_security_group_ids)
    _client_cidrs = field_validator("broker_client_cidrs")(check_cidrs)
    _routes = field_validator("task_routes")(check_routes)
    scheduler_enabled: bool
    scheduler_instance_type: str
    scheduler_lease_seconds: int = Field(ge=5, le=300)
    # The canary refresh (infra/config/refresh.py, infra.components.canary, infra.cli.canary_rollout).
    refresh_checkpoint_percentages: tuple[int, ...]
    refresh_checkpoint_delay_seconds: int = Field(ge=0, le=CHECKPOINT_DELAY_MAX)
    refresh_auto_rollback: bool
    refresh_failure_percent: int = Field(ge=1, le=100)
    refresh_retry_percent: int = Field(ge=1, le=100)
    refresh_dead_letters: int = Field(ge=1)

    _checkpoints = field_validator("refresh_checkpoint_percentages")(check_checkpoints)

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            raise ValueError(f"must be an IPv4 CIDR from /16 to /20, e.g. 10.40.0.0/16 (got {value!r})") from None
        if "/" not in value or not 16 <= network.prefixlen <= 20:
            raise ValueError(f"must be an IPv4 CIDR from /16 to /20, e.g. 10.40.0.0/16 (got {value!r})")
        if str(network) != value:
            # EC2's CreateVpc would take the network address; the subnets are carved from the text.
            raise ValueError(f"{value!r} has host bits set; the network is {network}")
        return value

    @field_validator("scheduler_instance_type")
    @classmethod
    def _scheduler_instance_type(cls, value: str) -> str:
        if value not in ec2_instance_types():
            raise ValueError(f"{value!r} is not an EC2 instance type (family.size, e.g. t4g.small)")
        return value

    @field_validator("cache_node_type")
    @classmethod
    def _cache_node_type(cls, value: str) -> str:
        if value not in cache_node_types():
            raise ValueError(f"{value!r} is not an ElastiCache node type (e.g. cache.t4g.micro, cache.m7g.large)")
        return value

    @field_validator("broker_engine_version")
    @classmethod
    def _engine_version(cls, value: str, info: ValidationInfo) -> str:
        if value and not ENGINE_VERSION.match(value):
            raise ValueError(f"must be empty (the tested version) or a version number like 8.0 (got {value!r})")
        engine = info.data.get("broker_engine")
        if value and engine in ("valkey", "redis") and _version(value) < MIN_REDIS_ENGINE_VERSION:
            oldest = ".".join(map(str, MIN_REDIS_ENGINE_VERSION))
            raise ValueError(
                f"{engine} {value} is too old: the workers need {oldest} or later (they wait with BLMOVE, "
                f"new in Redis {oldest}); use {oldest} or later, or leave it empty for {ENGINE_VERSIONS[engine]}"
            )
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} (got {value})")
        return value

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", item):
                raise ValueError(f"{item!r} is not an e-mail address")
        return value

    @field_validator("image_ami_id")
    @classmethod
    def _ami(cls, value: str) -> str:
        if value and not re.fullmatch(r"ami-[0-9a-f]{8,17}", value):
            raise ValueError(f"must be empty or an AMI id like ami-0123456789abcdef0 (got {value!r})")
        return value

    @field_validator("pools")
    @classmethod
    def _pool_names(cls, value: Mapping[str, PoolConfig]) -> Mapping[str, PoolConfig]:
        owner: dict[str, str] = {}
        for name, pool in value.items():
            if not _POOL_NAME.match(name):
                raise ValueError(f"pool name {name!r} must be lowercase letters, digits and '-', at most 20")
            for queue in pool.queues:
                if queue in owner:
                    raise ValueError(f"queue {queue!r} is consumed by pools {owner[queue]!r} and {name!r}")
                owner[queue] = name
        return value

    @model_validator(mode="after")
    def _routes_reach_pools(self) -> StackConfig:
        check_routes_reach_pools(self.task_routes, (q for pool in self.pools.values() for q in pool.queues))
        check_client_count(self.broker_client_security_group_ids, self.broker_client_cidrs)
        return self

    @model_validator(mode="after")
    def _pool_workers(self) -> StackConfig:
        """Each pool's rendered environment, checked as its workers will check it at start."""
        placeholder = "rediss://render.invalid:6379/0" if self.is_redis else "amqps://render.invalid:5671//"
        for name, pool in self.pools.items():
            environment = {**self.worker_environment(name), "CELERY_BROKER_URL": placeholder}
            environment["WORKER_CONCURRENCY"] = str(pool.concurrency)
            try:
                check_environment(environment)
            except SettingsError as exc:
                variable, _, problem = str(exc).partition(": ")
                head = variable.split(" ", 1)[0]
                block_key = PoolWorkerConfig.key_of(head)
                key = (
                    f"pools.{name}.worker.{block_key}"
                    if block_key
                    else "taskRoutes"
                    if head == "CELERY_TASK_ROUTES"
                    else f"pools.{name}.concurrency"
                )
                detail = variable.removeprefix(head).strip()
                raise KeyRuleError(key, f"{problem}{f' {detail}' if detail else ''} (the worker's {head})") from None
        return self

    @model_validator(mode="after")
    def _sizes(self) -> StackConfig:
        """What grows with the config fits what AWS takes (infra.config.sizes)."""
        room = LAMBDA_ENVIRONMENT_BYTES - LAMBDA_OTHER_BYTES
        size = pools_json_bytes(self.pools)
        if size > room:
            raise KeyRuleError(
                "pools",
                f"the metrics publisher's POOLS_JSON would be {size} bytes; Lambda holds {LAMBDA_ENVIRONMENT_BYTES} "
                f"bytes of environment per function, {room} of them for it: fewer pools or queues, or shorter names",
            )
        routes = {"CELERY_TASK_ROUTES": json.dumps(dict(self.task_routes))} if self.task_routes else {}
        for name, pool in self.pools.items():
            _fit_user_data(
                f"pool {name}",
                {
                    TASK_ROUTES_KEY: environment_file_bytes(routes),
                    f"pools.{name}.worker": environment_file_bytes(pool.worker.environment()),
                    "schedulerEnabled": environment_file_bytes(self.fence_environment()),
                    f"pools.{name}.queues": environment_file_bytes({"WORKER_QUEUES": ",".join(pool.queues)}),
                },
            )
        if self.scheduler_enabled:
            queues = ",".join(sorted({q for pool in self.pools.values() for q in pool.queues}))
            _fit_user_data(
                "the scheduler",
                {
                    TASK_ROUTES_KEY: environment_file_bytes(routes),
                    "pools": environment_file_bytes({"SCHEDULER_QUEUES": queues}),
                },
            )
        return self

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        if self.vpc_id:
            self._check_existing_vpc(self.vpc_id)
        else:
            self._check_own_vpc()
        if self.broker_ha and self.zone_count < 2:
            key = "privateSubnetIds" if self.vpc_id else "availabilityZones"
            raise KeyRuleError(key, f"needs at least two AZs when brokerHa is true (got {self.zone_count})")
        if self.broker_ha and self.is_redis and self.cache_nodes < 2:
            raise KeyRuleError("cacheNodes", f"must be >= 2 when brokerHa is true (got {self.cache_nodes})")
        if self.broker_ha and not self.is_redis and self.mq_instance_type.startswith("mq.t3."):
            raise KeyRuleError(
                "mqInstanceType", f"{self.mq_instance_type} cannot run a cluster; use mq.m5.large or larger"
            )
        check_judgement(self.refresh_checkpoint_percentages, self.refresh_checkpoint_delay_seconds)
        uses_parameter = self.image_mode != "ami" or not self.image_ami_id
        if uses_parameter and "{arch}" not in self.image_ssm_parameter:
            raise KeyRuleError("imageSsmParameter", "must contain {arch} (pools choose x86_64 or arm64)")
        return self

    def _check_existing_vpc(self, vpc_id: str) -> None:
        if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", vpc_id):
            raise KeyRuleError("vpcId", f"must be empty or a VPC id like vpc-0123abcd (got {vpc_id!r})")
        if not self.private_subnet_ids:
            raise KeyRuleError("privateSubnetIds", "must list the VPC's private subnets when vpcId is set")
        bad = [s for s in self.private_subnet_ids if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s)]
        if bad:
            raise KeyRuleError("privateSubnetIds", f"{bad[0]!r} is not a subnet id (subnet-...)")

    def _check_own_vpc(self) -> None:
        if self.private_subnet_ids:
            raise KeyRuleError("privateSubnetIds", "is only used with vpcId (set vpcId, or remove this key)")
        if not self.availability_zones:
            raise KeyRuleError("availabilityZones", "must list at least one AZ when the stack creates its VPC")
        zone = availability_zone_pattern(self.region)
        bad = [az for az in self.availability_zones if not zone.match(az)]
        if bad:
            raise KeyRuleError(
                "availabilityZones", f"{bad[0]!r} is not an AZ of {self.region} (an AZ is e.g. {self.region}a)"
            )
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise KeyRuleError("availabilityZones", "lists an AZ twice")

    @property
    def scheduler_architecture(self) -> Literal["x86_64", "arm64"]:
        return "arm64" if architecture_of(self.scheduler_instance_type) == "arm64" else "x86_64"

    @property
    def scheduler_table(self) -> str | None:
        """The scheduler's DynamoDB table (its lease and state on RabbitMQ stacks, where Amazon MQ has no
        lease primitive; the workers' periodic fence too), or None: Redis holds both."""
        return f"celery-cluster-{self.stack}-scheduler" if self.scheduler_enabled and not self.is_redis else None

    def fence_environment(self) -> dict[str, str]:
        """Where workers refuse a second copy of a periodic run (worker.runtime.periodic_fence): on Redis
        stacks the broker (the default, nothing to set), on RabbitMQ stacks the scheduler's table."""
        if self.scheduler_table is None:
            return {}
        return {f"{ENV_PREFIX}PERIODIC_FENCE_URL": f"dynamodb://{self.scheduler_table}"}

    @property
    def is_redis(self) -> bool:
        """ElastiCache (valkey or redis) rather than Amazon MQ."""
        return self.broker_engine != "rabbitmq"

    @property
    def zone_count(self) -> int:
        return len(self.private_subnet_ids) if self.vpc_id else len(self.availability_zones)

    @property
    def engine_version(self) -> str:
        return self.broker_engine_version or ENGINE_VERSIONS[self.broker_engine]

    @property
    def soft_shutdown_seconds(self) -> int:
        """CELERY_SOFT_SHUTDOWN_TIMEOUT on the workers: the drain window less the margin."""
        return self.drain_window_seconds - DRAIN_MARGIN_SECONDS

    def worker_environment(self, pool: str) -> dict[str, str]:
        """What a pool's workers get in their environment from config beyond queues and concurrency:
        the pool's worker settings and the stack's routing table."""
        environment = {**self.pools[pool].worker.environment(), **self.fence_environment()}
        if self.task_routes:
            environment["CELERY_TASK_ROUTES"] = json.dumps(dict(self.task_routes), sort_keys=True)
        return environment

    @property
    def metric_namespace(self) -> str:
        return f"{METRIC_NAMESPACE_PREFIX}/{self.stack}"


def _fit_user_data(instance: str, parts: Mapping[str, int]) -> None:
    """The variables an instance's user data carries fit EC2's 16 KB; else blame the largest part's key."""
    room = USER_DATA_BYTES - USER_DATA_OTHER_BYTES
    if sum(parts.values()) > room:
        raise KeyRuleError(
            max(parts, key=lambda key: parts[key]),
            f"{instance}'s user data would carry {sum(parts.values())} bytes of queues, worker settings and task "
            f"routes; EC2 takes {USER_DATA_BYTES} bytes of user data, {room} of them for these",
        )
