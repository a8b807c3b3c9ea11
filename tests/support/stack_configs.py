"""Hypothesis strategies for stack configs: the values of a Pulumi.<stack>.yaml, spanning every key's range.

`stack_configs()` draws `(stack name, values)`, values keyed as `read_stack_file` returns them (our keys
without the project prefix, plus `aws:region`). Most draws are configs the validator accepts; some
cross its bounds on purpose (long queue names, many producer ranges, many routes), so that both of
its answers are exercised: a config it accepts must render within every AWS rule, a config AWS cannot
take must be refused. Spanned: 1 to 4 pools of 1 to 8 queues, each broker engine with HA on and off,
every egress and image mode, warm pools, Spot, the scheduler on and off, producer access lists, task
routes, schedules, pool worker settings, and stack names up to the longest the config admits.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from infra.config.stack import LOG_RETENTION_DAYS
from worker.names import DEFAULT_QUEUE

LONGEST_STACK = "a" + "b" * 15
REGIONS = ("us-east-1", "eu-central-1", "ap-southeast-5")
"""The longest region name there is (ap-southeast-5, 14 characters) among them."""
INSTANCE_TYPES = {
    "x86_64": ("m7i.large", "m6i.xlarge", "c7i.large", "t3.small", "m5.large", "r7i.large"),
    "arm64": ("m7g.large", "t4g.small", "c7g.xlarge", "m6g.large", "r7g.large", "t4g.nano"),
}
CACHE_NODE_TYPES = ("cache.t4g.micro", "cache.m7g.large", "cache.r7g.xlarge")
MQ_INSTANCE_TYPES = ("mq.t3.micro", "mq.m5.large", "mq.m7g.large")
LONGEST_POOL = "p" + "q" * 19

_stack_names = st.one_of(st.just(LONGEST_STACK), st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True))
_pool_names = st.one_of(st.just(LONGEST_POOL), st.from_regex(r"[a-z][a-z0-9-]{0,19}", fullmatch=True))
_short_queue_names = st.from_regex(r"[A-Za-z0-9_.:-]{1,40}", fullmatch=True)
# Up to and past 255 characters, what RabbitMQ takes for a queue name.
_long_queue_names = st.one_of(
    st.from_regex(r"[a-z]{100,255}", fullmatch=True), st.from_regex(r"[a-z]{256,300}", fullmatch=True)
)
_large = st.sampled_from([False, False, True])
"""Whether one dimension of a draw is large (many pools, long names, many routes, ...), a third of the time."""
_seconds = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 5.0, 30.0, 60.0, 600.0]), st.floats(0.05, 7200.0))
_latencies = st.one_of(st.sampled_from([10.0, 30.0, 60.0, 300.0, 3600.0]), st.floats(1.0, 86400.0))


@st.composite
def _schedule(draw: st.DrawFn, name: str, max_size: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": name,
        "capacity": draw(st.integers(0, max_size)),
        "durationSeconds": draw(st.integers(60, 86340)),
    }
    if draw(st.booleans()):
        minute, hour = draw(st.integers(0, 59)), draw(st.integers(0, 23))
        item["cron"] = draw(st.sampled_from([f"{minute} {hour} * * *", f"{minute} {hour} * * 1-5", "*/30 * * * *"]))
    else:
        item["rate"] = draw(st.sampled_from(["15 minutes", "1 hours", "6 hours", "30 minutes"]))
    return item


@st.composite
def _pool(draw: st.DrawFn, queues: list[str]) -> dict[str, Any]:
    architecture = draw(st.sampled_from(["x86_64", "arm64"]))
    kinds = draw(st.lists(st.sampled_from(INSTANCE_TYPES[architecture]), min_size=1, max_size=4, unique=True))
    max_size = draw(st.one_of(st.integers(1, 30), st.sampled_from([100, 1000])))
    min_size = draw(st.integers(0, min(max_size, 5)))
    spot = draw(st.booleans())
    warm = not spot and len(kinds) == 1 and draw(st.booleans())
    latency = draw(_latencies)
    pool: dict[str, Any] = {
        "queues": queues,
        "instanceTypes": kinds,
        "architecture": architecture,
        "concurrency": draw(st.one_of(st.integers(1, 16), st.just(256))),
        "minSize": min_size,
        "maxSize": max_size,
        "acceptableLatencySeconds": latency,
        "averageTaskSeconds": draw(_seconds),
        "instanceWarmupSeconds": draw(st.integers(0, 3600)),
        "volumeSizeGb": draw(st.integers(8, 1024)),
    }
    if draw(st.booleans()):
        pool["latencyAlarmSeconds"] = latency * draw(st.floats(1.0, 4.0))
    if draw(st.booleans()):
        pool["desiredSize"] = draw(st.integers(min_size, max_size))
    if spot:
        pool["spot"] = {
            "enabled": True,
            "onDemandBaseCapacity": draw(st.integers(0, min(max_size, 4))),
            "onDemandPercentageAboveBase": draw(st.integers(0, 100)),
            "allocationStrategy": draw(
                st.sampled_from(["price-capacity-optimized", "capacity-optimized", "lowest-price"])
            ),
        }
    if warm:
        pool["warmPool"] = {
            "enabled": True,
            "minSize": draw(st.integers(0, max_size)),
            "state": draw(st.sampled_from(["Stopped", "Hibernated", "Running"])),
        }
    names = draw(st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True), max_size=3, unique=True))
    if names:
        pool["schedules"] = [draw(_schedule(name, max_size)) for name in names]
    if draw(st.booleans()):
        pool["worker"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "pool": st.sampled_from(["prefork", "threads", "solo"]),
                    "prefetchMultiplier": st.integers(1, 8),
                    "taskEvents": st.booleans(),
                    "logLevel": st.sampled_from(["INFO", "WARNING", "DEBUG"]),
                    "annotations": st.just({"webhooks.deliver": {"rate_limit": "10/s", "time_limit": 120}}),
                },
            )
        )
    return pool


@st.composite
def _pools(draw: st.DrawFn, with_default: bool) -> dict[str, dict[str, Any]]:
    many = draw(_large)
    names = draw(st.lists(_pool_names, min_size=4 if many else 1, max_size=8 if many else 3, unique=True))
    counts = [draw(st.integers(8, 8) if draw(_large) else st.integers(1, 3)) for _ in names]
    names_of = _long_queue_names if draw(_large) else _short_queue_names
    queues = draw(st.lists(names_of, min_size=sum(counts), max_size=sum(counts), unique=True))
    if with_default and DEFAULT_QUEUE not in queues:
        queues[0] = DEFAULT_QUEUE
    pools, start = {}, 0
    for name, count in zip(names, counts, strict=True):
        pools[name] = draw(_pool(queues[start : start + count]))
        start += count
    return pools


def _cidr(index: int) -> str:
    return f"10.{100 + index // 256}.{index % 256}.0/24"


@st.composite
def _network(draw: st.DrawFn, region: str) -> dict[str, Any]:
    values: dict[str, Any] = {"egress": draw(st.sampled_from(["nat-single", "nat-per-az", "endpoints"]))}
    zones = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True))
    if draw(st.integers(0, 4)) == 0:
        values["vpcId"] = "vpc-0a1b2c3d4e5f60718"
        values["privateSubnetIds"] = [f"subnet-{index:017x}" for index in range(len(zones))]
    else:
        values["availabilityZones"] = [region + zone for zone in zones]
        values["vpcCidr"] = f"10.{draw(st.integers(0, 15)) * 16}.0.0/{draw(st.integers(16, 20))}"
    groups = draw(st.integers(20, 40) if draw(_large) else st.integers(0, 3))
    ranges = draw(st.integers(20, 40) if draw(_large) else st.integers(0, 3))
    values["brokerClientSecurityGroupIds"] = [f"sg-{index:017x}" for index in range(groups)]
    values["brokerClientCidrs"] = [_cidr(index) for index in range(ranges)]
    return values


@st.composite
def _broker(draw: st.DrawFn, zones: int) -> dict[str, Any]:
    engine = draw(st.sampled_from(["valkey", "redis", "rabbitmq"]))
    ha = zones >= 2 and draw(st.booleans())
    values: dict[str, Any] = {"brokerEngine": engine, "brokerHa": ha}
    if engine == "rabbitmq":
        values["mqInstanceType"] = draw(st.sampled_from(MQ_INSTANCE_TYPES[1:] if ha else MQ_INSTANCE_TYPES))
    else:
        values["cacheNodeType"] = draw(st.sampled_from(CACHE_NODE_TYPES))
        values["cacheNodes"] = draw(st.integers(2 if ha else 1, 6))
        values["brokerSnapshotRetentionDays"] = draw(st.integers(0, 35))
    return values


@st.composite
def _routes(draw: st.DrawFn, queues: list[str]) -> dict[str, str]:
    count = draw(st.integers(100, 400) if draw(_large) else st.integers(0, 4))
    pattern = st.from_regex(r"[a-z]{1,20}\.[a-z_]{1,30}", fullmatch=True)
    patterns = draw(st.lists(pattern, min_size=count, max_size=count, unique=True))
    return {pattern: draw(st.sampled_from(queues)) for pattern in patterns}


@st.composite
def stack_configs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(stack name, the stack file's values) spanning every key's range."""
    stack = draw(_stack_names)
    region = draw(st.sampled_from(REGIONS))
    scheduler = draw(st.booleans())
    values: dict[str, Any] = {"aws:region": region, **draw(_network(region))}
    zones = len(values.get("availabilityZones") or values["privateSubnetIds"])
    values.update(draw(_broker(zones)))
    image_mode = draw(st.sampled_from(["bake", "boot", "ami"]))
    values["imageMode"] = image_mode
    if image_mode == "ami" and draw(st.booleans()):
        values["imageAmiId"] = "ami-0123456789abcdef0"
    values["pools"] = draw(_pools(with_default=scheduler or draw(st.booleans())))
    values["taskRoutes"] = draw(_routes([q for pool in values["pools"].values() for q in pool["queues"]]))
    values["schedulerEnabled"] = scheduler
    if scheduler:
        values["schedulerInstanceType"] = draw(st.sampled_from(["t4g.nano", "t3.micro", "m7g.large"]))
        values["schedulerLeaseSeconds"] = draw(st.integers(5, 300))
    values["drainWindowSeconds"] = draw(st.integers(60, 7200))
    values["alarmEmails"] = [f"oncall{index}@example.com" for index in range(draw(st.integers(0, 3)))]
    values["logRetentionDays"] = draw(st.sampled_from(LOG_RETENTION_DAYS))
    values["publisherSamplesPerMinute"] = draw(st.sampled_from([1, 2, 3, 4, 6, 12]))
    values["publisherMemoryMb"] = draw(st.integers(128, 10240))
    values["publisherReserveConcurrency"] = draw(st.booleans())
    values["kmsDeletionWindowDays"] = draw(st.integers(7, 30))
    values["brokerCpuAlarmPercent"] = draw(st.integers(1, 100))
    values["brokerMemoryAlarmPercent"] = draw(st.integers(1, 100))
    values["brokerConnectionsAlarm"] = draw(st.integers(1, 100000))
    return stack, values
