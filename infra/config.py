"""The whole stack config as one typed, frozen, validated object. No resources here.

Two ways in, one parser:
- `load_stack_config(stack)` reads `Pulumi.yaml` declared defaults plus `Pulumi.<stack>.yaml` without
  the Pulumi engine (the simulator, the render, docs tooling);
- `config_from_pulumi()` reads the same keys through `pulumi.Config` inside the program.
Both hand a flat `{key: value}` mapping to `parse_config`, so both see the same validation.

Defaults: every scalar key's default lives in `Pulumi.yaml` (none is repeated here). `pools` is a map
of objects that a Pulumi.yaml schema cannot type, so `PoolConfig` holds its schema and defaults.
A bad value raises `ConfigError`, whose lines name each bad key and what it accepts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import pulumi
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.scaling.policy import PoolScaling, Slo, default_pool_scaling
from worker.names import DEAD_LETTER_QUEUE, METRIC_NAMESPACE_PREFIX

PROJECT = "celery-cluster"
ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILE = ROOT / "Pulumi.yaml"
REGION_KEY = "aws:region"
POOLS_KEY = "pools"

# Seconds between SIGTERM's soft-shutdown deadline and the lifecycle hook's timeout: time for the
# worker to requeue what it could not finish, exit, and for the drain agent to complete the hook.
DRAIN_MARGIN_SECONDS = 30
# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922)
# The versions this project's worker is tested against, used when brokerEngineVersion is empty.
ENGINE_VERSIONS: Mapping[str, str] = {"valkey": "8.0", "redis": "7.1", "rabbitmq": "3.13"}

_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\.[a-z0-9]+$")
# Graviton families: a generation digit followed by "g" (t4g, m7g, c7gn, r8gd, ...).
_ARM_FAMILY = re.compile(r"^[a-z]+[0-9]+g[a-z]*$")
_QUEUE = re.compile(r"^[A-Za-z0-9_.:-]+$")
_POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")


class ConfigError(ValueError):
    """The stack config is invalid; each line names a key (`celery-cluster:pools.io.maxSize`) and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True, validate_default=True
    )


class SpotConfig(_Model):
    """Spot capacity of a pool: an on-demand base, then a share of Spot above it."""

    enabled: bool = Field(default=False, description="Use Spot Instances above the on-demand base.")
    on_demand_base_capacity: int = Field(
        default=0, ge=0, description="Instances that are always on-demand (the first ones launched)."
    )
    on_demand_percentage_above_base: int = Field(
        default=0, ge=0, le=100, description="Percent on-demand above the base when Spot is enabled (0-100)."
    )
    allocation_strategy: Literal["price-capacity-optimized", "capacity-optimized", "lowest-price"] = Field(
        default="price-capacity-optimized", description="How Spot capacity is chosen across instance types and AZs."
    )
    expected_discount: float = Field(
        default=0.6, ge=0, lt=1, description="Expected Spot discount off on-demand, for cost estimates only."
    )


class WarmPoolConfig(_Model):
    """Pre-initialised stopped instances that start faster than a cold launch."""

    enabled: bool = Field(default=False, description="Keep a warm pool (not with Spot or several instance types).")
    min_size: int = Field(default=0, ge=0, description="Instances kept in the warm pool.")
    state: Literal["Stopped", "Hibernated", "Running"] = Field(default="Stopped", description="Warm pool state.")


QueueName = Annotated[str, StringConstraints(pattern=_QUEUE.pattern)]


class PoolConfig(_Model):
    """One pool of worker VMs: the queues it consumes, its shape, its SLO and its capacity."""

    queues: tuple[QueueName, ...] = Field(min_length=1, description="Queues the pool consumes (required).")
    instance_types: tuple[str, ...] = Field(
        min_length=1, description="Instance types, most preferred first (required)."
    )
    architecture: Literal["x86_64", "arm64"] = Field(
        default="x86_64", description="CPU architecture; must match every instance type."
    )
    concurrency: int = Field(default=2, ge=1, le=256, description="Worker processes per instance.")
    min_size: int = Field(default=0, ge=0, description="Fewest instances; 0 lets an idle pool cost nothing.")
    max_size: int = Field(default=4, ge=1, le=1000, description="Most instances.")
    desired_size: int | None = Field(default=None, ge=0, description="Instances at creation (default minSize).")
    acceptable_latency_seconds: float = Field(default=60.0, description="SLO: queue wait a task may see; must be > 0.")
    average_task_seconds: float = Field(default=5.0, description="Mean task run time in seconds; must be > 0.")
    latency_alarm_seconds: float | None = Field(
        default=None,
        description="Oldest-message age that breaches the SLO: step scaling and the SLO alarm fire. "
        "Default 2 x acceptableLatencySeconds (target tracking holds about 1x).",
    )
    instance_warmup_seconds: int = Field(
        default=120, ge=0, le=3600, description="Boot plus worker start: new instances are excluded from metrics."
    )
    volume_size_gb: int = Field(default=20, ge=8, le=1024, description="Encrypted gp3 root volume size.")
    spot: SpotConfig = Field(default_factory=SpotConfig, description="Spot settings.")
    warm_pool: WarmPoolConfig = Field(default_factory=WarmPoolConfig, description="Warm pool settings.")
    hourly_usd: Mapping[str, float] = Field(
        default_factory=dict,
        description="On-demand hourly price per instance type (cost estimates and the simulator).",
    )

    @field_validator("acceptable_latency_seconds", "average_task_seconds", "latency_alarm_seconds")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"must be a number > 0 (got {value})")
        return value

    @field_validator("queues")
    @classmethod
    def _queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if DEAD_LETTER_QUEUE in value:
            raise ValueError(f"must not include the dead-letter queue {DEAD_LETTER_QUEUE!r}")
        if len(set(value)) != len(value):
            raise ValueError("lists a queue twice")
        return value

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not _INSTANCE_TYPE.match(item):
                raise ValueError(f"{item!r} is not an EC2 instance type (family.size, e.g. m7g.large)")
        if len(set(value)) != len(value):
            raise ValueError("lists an instance type twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PoolConfig:
        if self.min_size > self.max_size:
            raise _KeyError("minSize", f"must be <= maxSize ({self.max_size}), got {self.min_size}")
        if self.desired_size is not None and not self.min_size <= self.desired_size <= self.max_size:
            raise _KeyError(
                "desiredSize",
                f"must be within minSize..maxSize ({self.min_size}..{self.max_size}), got {self.desired_size}",
            )
        for item in self.instance_types:
            arch = "arm64" if _ARM_FAMILY.match(item.split(".")[0]) else "x86_64"
            if arch != self.architecture:
                raise _KeyError("instanceTypes", f"{item} is {arch} but architecture is {self.architecture}")
        unknown = sorted(set(self.hourly_usd) - set(self.instance_types))
        if unknown:
            raise _KeyError("hourlyUsd", f"prices types the pool does not use: {', '.join(unknown)}")
        if any(price <= 0 for price in self.hourly_usd.values()):
            raise _KeyError("hourlyUsd", "prices must be > 0")
        if self.warm_pool.enabled and (self.spot.enabled or len(self.instance_types) > 1):
            raise _KeyError(
                "warmPool.enabled",
                "needs spot.enabled=false and one instance type (EC2 Auto Scaling has no warm pools "
                "for mixed instances groups)",
            )
        if self.warm_pool.min_size > self.max_size:
            raise _KeyError("warmPool.minSize", f"must be <= maxSize ({self.max_size})")
        if self.spot.on_demand_base_capacity > self.max_size:
            raise _KeyError("spot.onDemandBaseCapacity", f"must be <= maxSize ({self.max_size})")
        return self

    @property
    def initial_size(self) -> int:
        return self.min_size if self.desired_size is None else self.desired_size

    @property
    def latency_slo_seconds(self) -> float:
        """Where the latency alarm and the step-scaling safety net fire."""
        if self.latency_alarm_seconds is not None:
            return self.latency_alarm_seconds
        return 2 * self.acceptable_latency_seconds

    @property
    def slo(self) -> Slo:
        return Slo(
            acceptable_latency_seconds=self.acceptable_latency_seconds,
            average_task_seconds=self.average_task_seconds,
            concurrency_per_instance=self.concurrency,
            latency_alarm_seconds=self.latency_slo_seconds,
        )

    def scaling(self, name: str) -> PoolScaling:
        """The pool's scaling policies (what the program renders and the simulator runs)."""
        return default_pool_scaling(
            name, self.slo, self.min_size, self.max_size, warmup_seconds=self.instance_warmup_seconds
        )

    @property
    def on_demand_percentage_above_base(self) -> int:
        """Percent on-demand above the base: 100 when Spot is off."""
        return self.spot.on_demand_percentage_above_base if self.spot.enabled else 100


class StackConfig(_Model):
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
    publisher_bundle: str
    kms_deletion_window_days: int = Field(ge=7, le=30)
    broker_cpu_alarm_percent: int = Field(ge=1, le=100)
    broker_memory_alarm_percent: int = Field(ge=1, le=100)
    broker_connections_alarm: int = Field(ge=1)
    pools: Mapping[str, PoolConfig] = Field(min_length=1)

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})", value)
        if not match or any(int(p) > 255 for p in match.groups()[:4]) or not 16 <= int(match.group(5)) <= 20:
            raise ValueError(f"must be an IPv4 CIDR from /16 to /20, e.g. 10.40.0.0/16 (got {value!r})")
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
    def _consistent(self) -> StackConfig:
        if self.vpc_id:
            if not re.fullmatch(r"vpc-[0-9a-f]{8,17}", self.vpc_id):
                raise _KeyError("vpcId", f"must be empty or a VPC id like vpc-0123abcd (got {self.vpc_id!r})")
            if not self.private_subnet_ids:
                raise _KeyError("privateSubnetIds", "must list the VPC's private subnets when vpcId is set")
            bad = [s for s in self.private_subnet_ids if not re.fullmatch(r"subnet-[0-9a-f]{8,17}", s)]
            if bad:
                raise _KeyError("privateSubnetIds", f"{bad[0]!r} is not a subnet id (subnet-...)")
        else:
            if self.private_subnet_ids:
                raise _KeyError("privateSubnetIds", "is only used with vpcId (set vpcId, or remove this key)")
            if not self.availability_zones:
                raise _KeyError("availabilityZones", "must list at least one AZ when the stack creates its VPC")
            bad = [az for az in self.availability_zones if not az.startswith(self.region)]
            if bad:
                raise _KeyError("availabilityZones", f"{bad[0]!r} is not an AZ of {self.region}")
            if len(set(self.availability_zones)) != len(self.availability_zones):
                raise _KeyError("availabilityZones", "lists an AZ twice")
        if self.broker_ha and self.zone_count < 2:
            key = "privateSubnetIds" if self.vpc_id else "availabilityZones"
            raise _KeyError(key, f"needs at least two AZs when brokerHa is true (got {self.zone_count})")
        if self.broker_ha and self.is_redis and self.cache_nodes < 2:
            raise _KeyError("cacheNodes", f"must be >= 2 when brokerHa is true (got {self.cache_nodes})")
        if self.broker_ha and not self.is_redis and self.mq_instance_type.startswith("mq.t3."):
            raise _KeyError(
                "mqInstanceType", f"{self.mq_instance_type} cannot run a cluster; use mq.m5.large or larger"
            )
        uses_parameter = self.image_mode != "ami" or not self.image_ami_id
        if uses_parameter and "{arch}" not in self.image_ssm_parameter:
            raise _KeyError("imageSsmParameter", "must contain {arch} (pools choose x86_64 or arm64)")
        return self

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

    @property
    def metric_namespace(self) -> str:
        return f"{METRIC_NAMESPACE_PREFIX}/{self.stack}"


class _KeyError(ValueError):
    """A cross-field rule broke; `key` is the config key (relative to the model) to blame."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


# ---------------------------------------------------------------------------------------------- parsing


@cache
def declared_keys() -> Mapping[str, Mapping[str, Any]]:
    """`config:` of Pulumi.yaml: key -> {type, default, description, items}."""
    project = yaml.safe_load(PROJECT_FILE.read_text())
    declared: dict[str, Mapping[str, Any]] = project["config"]
    return declared


def _key_name(loc: tuple[int | str, ...], base: tuple[str, ...] = ()) -> str:
    parts = [str(p) for p in (*loc, *base)]
    if not parts:
        return PROJECT
    if ":" in parts[0]:
        return ".".join(parts)
    return f"{PROJECT}:" + ".".join(parts)


def _format(error: Mapping[str, Any]) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    ctx_error = (error.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _KeyError):
        # A model validator names the key relative to the model it checks (the pool, or the stack).
        return f"{_key_name(loc, tuple(ctx_error.key.split('.')))}: {ctx_error.message}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required but not set"
    elif error["type"] == "extra_forbidden":
        message = "is not a known key (check the spelling against docs/infra.md)"
    elif error["type"] == "literal_error":
        message = f"{message} (got {error['input']!r})"
    elif error["type"] == "string_pattern_mismatch":
        message = f"{error['input']!r} is not valid: {message}"
    if loc == ("stack",):
        return f"stack name {error['input']!r}: must be lowercase letters, digits and '-', at most 16"
    return f"{_key_name(loc)}: {message}"


def parse_config(stack: str, raw: Mapping[str, Any]) -> StackConfig:
    """Validate a flat `{key: value}` mapping (keys without the project prefix, plus `aws:region`)."""
    try:
        return StackConfig.model_validate({"stack": stack, **raw})
    except ValidationError as exc:
        lines = sorted({_format(e) for e in exc.errors(include_url=False)})
        raise ConfigError(f"invalid config for stack {stack!r}:\n  " + "\n  ".join(lines)) from None


def _strip_project(key: str) -> str:
    return key.removeprefix(f"{PROJECT}:")


def read_stack_file(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """The `config:` of Pulumi.<stack>.yaml, keys without the project prefix."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        stacks = sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))
        raise ConfigError(f"no stack file {path.name}; stacks here: {', '.join(stacks) or 'none'}")
    document = yaml.safe_load(path.read_text()) or {}
    values: dict[str, Any] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            raise ConfigError(f"{path.name}: {key} is an encrypted secret; this stack's config must hold none")
        if key.startswith(f"{PROJECT}:") or key == REGION_KEY:
            values[_strip_project(key)] = value
    return values


def merged_raw(stack_values: Mapping[str, Any]) -> dict[str, Any]:
    """Pulumi.yaml defaults overlaid with a stack's values, as the Pulumi engine merges them."""
    raw = {key: spec["default"] for key, spec in declared_keys().items() if "default" in spec}
    raw.update(stack_values)
    return raw


def load_stack_config(stack: str, root: Path = ROOT) -> StackConfig:
    """Stack config without the Pulumi engine: Pulumi.yaml defaults plus Pulumi.<stack>.yaml."""
    return parse_config(stack, merged_raw(read_stack_file(stack, root)))


def stack_names(root: Path = ROOT) -> list[str]:
    """Every stack that has a Pulumi.<stack>.yaml."""
    return sorted(p.name.split(".")[1] for p in root.glob("Pulumi.*.yaml"))


def to_pulumi_config(stack_values: Mapping[str, Any]) -> dict[str, str]:
    """Stack values as the engine hands them to a program: namespaced keys, strings or JSON."""
    out: dict[str, str] = {}
    for key, value in merged_raw(stack_values).items():
        name = key if ":" in key else f"{PROJECT}:{key}"
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def config_from_pulumi() -> StackConfig:
    """Read the stack config inside the Pulumi program (the engine has merged Pulumi.yaml defaults)."""
    cfg = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key, spec in declared_keys().items():
        text = cfg.get(key)
        if text is None:
            continue
        raw[key] = text if spec.get("type") == "string" else _decode(key, text)
    pools = cfg.get(POOLS_KEY)
    if pools is not None:
        raw[POOLS_KEY] = _decode(POOLS_KEY, pools)
    region = pulumi.Config("aws").get("region")
    if region is not None:
        raw[REGION_KEY] = region
    return parse_config(pulumi.get_stack(), merged_raw(raw))


def _decode(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{PROJECT}:{key}: {text!r} is not a valid value for this key") from None
