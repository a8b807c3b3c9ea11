"""A stack's monthly cost, estimated from its render (`make render`) and list prices: the README's
cost tables (`python -m infra.cli.cost_table`), so they follow the resources the program creates.

Estimates, not measurements: no bill was read. Each price is a us-east-1 public list price with the
AWS pricing page it comes from (`PRICES`); the instance prices are the stack config's own
`hourlyUsd` and `spot.expectedDiscount`. What depends on the work a stack does (burst instance-hours,
data through the NAT, logs) is a named assumption per stack (`USAGE`), stated in the table's row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from infra.config import StackConfig
from infra.scaling.warm_pool import GP3_USD_PER_GB_MONTH, HOURS_PER_MONTH
from worker import names

MINUTES_PER_MONTH: Final = HOURS_PER_MONTH * 60


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str


VPC = "https://aws.amazon.com/vpc/pricing/"
ELASTICACHE = "https://aws.amazon.com/elasticache/pricing/"
AMAZON_MQ = "https://aws.amazon.com/amazon-mq/pricing/"
EC2 = "https://aws.amazon.com/ec2/pricing/on-demand/"
EBS = "https://aws.amazon.com/ebs/pricing/"
LAMBDA = "https://aws.amazon.com/lambda/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"
KMS = "https://aws.amazon.com/kms/pricing/"
SECRETS = "https://aws.amazon.com/secrets-manager/pricing/"
PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/"

# us-east-1 list prices as last checked against these pages (verify with the AWS Pricing Calculator).
PRICES: Final[Mapping[str, Price]] = {
    "nat_hour": Price(0.045, "per NAT gateway-hour", VPC),
    "nat_gb": Price(0.045, "per GB processed by a NAT gateway", VPC),
    "ipv4_hour": Price(0.005, "per public IPv4 address-hour", VPC),
    "endpoint_hour": Price(0.01, "per interface endpoint-hour per AZ", PRIVATELINK),
    "cache.t4g.micro": Price(0.016, "per node-hour, Redis OSS", ELASTICACHE),
    "cache.m7g.large": Price(0.158, "per node-hour, Redis OSS", ELASTICACHE),
    "mq.t3.micro": Price(0.027, "per broker-hour, RabbitMQ", AMAZON_MQ),
    "t4g.nano": Price(0.0042, "per instance-hour, Linux on-demand", EC2),
    "gp3_gb_month": Price(GP3_USD_PER_GB_MONTH, "per GB-month of gp3", EBS),
    "lambda_arm_gb_s": Price(0.0000133334, "per GB-second, arm64", LAMBDA),
    "lambda_request": Price(0.20 / 1_000_000, "per request", LAMBDA),
    "metric_month": Price(0.30, "per custom metric-month (first 10,000)", CLOUDWATCH),
    "put_metric_request": Price(0.01 / 1000, "per PutMetricData request", CLOUDWATCH),
    "alarm_metric": Price(0.10, "per standard-resolution alarm metric-month", CLOUDWATCH),
    "alarm_metric_high_res": Price(0.30, "per high-resolution alarm metric-month", CLOUDWATCH),
    "dashboard_month": Price(3.00, "per dashboard-month (3 free per account)", CLOUDWATCH),
    "log_gb": Price(0.50, "per GB of logs ingested", CLOUDWATCH),
    "kms_key_month": Price(1.00, "per customer managed key-month", KMS),
    "secret_month": Price(0.40, "per secret-month", SECRETS),
    "secret_call": Price(0.05 / 10_000, "per API call", SECRETS),
    "cross_az_gb": Price(0.02, "per GB across AZs ($0.01 each direction)", EC2),
}

VALKEY_DISCOUNT: Final = 0.2
"""ElastiCache for Valkey node-hours are priced 20 % under Redis OSS on the same node type (ELASTICACHE)."""


@dataclass(frozen=True)
class Usage:
    """Named assumptions about a stack's work, per month: what its render cannot say."""

    burst_instance_hours: Mapping[str, float]
    """Per pool: instance-hours above minSize (Spot when the pool's spot is enabled)."""
    nat_gb: float
    log_gb: float
    cross_az_gb: float
    smoke_runs: int = 30
    """scripts/smoke --stack invocations of the smoke function (each assumed to run a minute)."""


USAGE: Final[Mapping[str, Usage]] = {
    "dev": Usage(burst_instance_hours={"default": 240}, nat_gb=5, log_gb=1, cross_az_gb=0),
    "staging": Usage(burst_instance_hours={"default": 120}, nat_gb=5, log_gb=2, cross_az_gb=10),
    "prod": Usage(burst_instance_hours={"default": 480, "reports": 240}, nat_gb=50, log_gb=10, cross_az_gb=100),
}

PUBLISHER_SECONDS: Final = 60.0
"""Assumption: a publisher run lasts its minute (it samples every 10 s until the next run starts)."""
PUBLISHER_PUTS_PER_MINUTE: Final = 6
"""One PutMetricData call per 10-second sample (a pool's data fit in one call's 1,000 datums)."""


@dataclass(frozen=True)
class Line:
    item: str
    arithmetic: str
    usd: float


def _of_type(document: Mapping[str, Any], type_: str) -> list[Mapping[str, Any]]:
    return [r for r in document["resources"] if r["type"] == type_]


def _inputs(document: Mapping[str, Any], type_: str) -> list[Mapping[str, Any]]:
    return [r["inputs"] for r in _of_type(document, type_)]


def per_month_metrics(config: StackConfig, entries: int) -> dict[str, int]:
    """Custom metrics (name + dimensions) the stack's writers keep alive, by metric name.

    Per queue (Pool, Queue): waiting, in flight, oldest age, unstamped (worker.publisher).
    Per pool (Pool): backlog, backlog per instance, oldest age, heartbeat, queues without age, task
    seconds, busy processes, in-service instances (worker.publisher.service_metrics), and the capacity rule's
    three signals (worker.publisher.capacity). The scheduler: its heartbeat,
    and one lateness per periodic entry (worker.scheduler.beat). Per pool and code version (Pool,
    Version), from the pool's log metric filters (infra.components.canary): runs, failures, retries,
    dead letters, unknown task names, unhealthy workers; plus unknown task names per pool alone. One
    version a month is counted: a deploy's old and new versions overlap for hours, and CloudWatch
    prorates a metric by the hour; a metric whose event never happens (no failure) is never created."""
    queues = sum(len(pool.queues) for pool in config.pools.values())
    pools = len(config.pools)
    counts = {
        names.METRIC_WAITING: queues,
        names.METRIC_IN_FLIGHT: queues,
        names.METRIC_UNSTAMPED: queues,
        names.METRIC_OLDEST_AGE: queues + pools,
        names.METRIC_BACKLOG: pools,
        names.METRIC_BACKLOG_PER_INSTANCE: pools,
        names.METRIC_PUBLISHER_HEARTBEAT: pools,
        names.METRIC_QUEUES_WITHOUT_AGE: pools,
        names.METRIC_TASK_SECONDS: pools,
        names.METRIC_BUSY_PROCESSES: pools,
        names.METRIC_IN_SERVICE: pools,
        names.METRIC_CAPACITY_NEEDED: pools,
        names.METRIC_LOAD_WITH_ONE_FEWER: pools,
        names.METRIC_NEEDED_AT_ZERO: pools,
        names.METRIC_TASKS_FINISHED: pools,
        names.METRIC_TASK_FAILURES: pools,
        names.METRIC_TASK_RETRIES: pools,
        names.METRIC_DEAD_LETTERS: pools,
        names.METRIC_UNKNOWN_TASK_LETTERS: 2 * pools,
        names.METRIC_WORKERS_UNHEALTHY: pools,
        names.METRIC_SCHEDULER_HEARTBEAT: 0,
        names.METRIC_ENTRY_LATENESS: 0,
    }
    if config.scheduler_enabled:
        counts[names.METRIC_SCHEDULER_HEARTBEAT] = 1
        counts[names.METRIC_ENTRY_LATENESS] = entries
    return counts


def _alarm_metrics(inputs: Mapping[str, Any]) -> tuple[int, bool]:
    """(metrics billed, high resolution): an alarm is billed per metric it reads, a metric-math
    alarm for each metric in its expression, at the high-resolution price under a 60 s period."""
    queries = [q for q in inputs.get("metricQueries") or [] if q.get("metric")]
    if not queries:
        return 1, int(inputs.get("period", 60)) < 60
    return len(queries), any(int(q["metric"].get("period", 60)) < 60 for q in queries)


def _target_tracking_metrics(inputs: Mapping[str, Any]) -> tuple[int, bool]:
    """A target-tracking policy makes AWS create two alarms (high and low) on its metrics."""
    spec = inputs["targetTrackingConfiguration"]["customizedMetricSpecification"]
    stats = [m["metricStat"] for m in spec.get("metrics", []) if m.get("metricStat")]
    return 2 * len(stats), any(int(s.get("period", 60)) < 60 for s in stats)


def _cache_line(inputs: Mapping[str, Any]) -> Line:
    node, nodes, engine = inputs["nodeType"], int(inputs["numCacheClusters"]), inputs["engine"]
    hourly = PRICES[node].usd * (1 - VALKEY_DISCOUNT if engine == "valkey" else 1)
    note = f" (Valkey: Redis OSS's ${PRICES[node].usd} less {VALKEY_DISCOUNT:.0%})" if engine == "valkey" else ""
    return Line(
        f"{engine.capitalize()} {node} x{nodes}",
        f"{nodes} x 730 h x ${hourly:.4f}{note}",
        nodes * HOURS_PER_MONTH * hourly,
    )


def _pool_lines(config: StackConfig, document: Mapping[str, Any], usage: Usage) -> Iterable[Line]:
    groups = {r["name"]: r["inputs"] for r in _of_type(document, "aws:autoscaling/group:Group")}
    templates = {r["name"]: r["inputs"] for r in _of_type(document, "aws:ec2/launchTemplate:LaunchTemplate")}
    gb_month = PRICES["gp3_gb_month"].usd
    for name, pool in config.pools.items():
        group = groups[f"pool-{name}-asg"]
        template = templates[f"pool-{name}-lt"]
        kind = template["instanceType"]
        on_demand = pool.hourly_usd[kind]
        volume = sum(int(b["ebs"]["volumeSize"]) for b in template.get("blockDeviceMappings", []))
        base = int(group["minSize"])
        distribution = (group.get("mixedInstancesPolicy") or {}).get("instancesDistribution")
        spot = 1 - pool.spot.expected_discount
        if base:
            base_on_demand = min(base, int(distribution["onDemandBaseCapacity"])) if distribution else base
            base_spot = base - base_on_demand
            hourly = base_on_demand * on_demand + base_spot * on_demand * spot
            spot_part = f" + {base_spot} x 730 h x ${on_demand} x {spot:.0%} (Spot)" if base_spot else ""
            yield Line(
                f"`{name}` pool base",
                f"{base_on_demand} x 730 h x ${on_demand} ({kind} on-demand){spot_part}",
                HOURS_PER_MONTH * hourly,
            )
            yield Line(f"`{name}` base EBS", f"{base} x {volume} GB x ${gb_month}", base * volume * gb_month)
        warm = int((group.get("warmPool") or {}).get("minSize", 0))
        if warm:
            # A stopped warm-pool instance costs its volumes only (EC2: no instance charge while stopped).
            yield Line(f"`{name}` warm pool", f"{warm} stopped x {volume} GB x ${gb_month}", warm * volume * gb_month)
        hours = usage.burst_instance_hours.get(name, 0.0)
        if hours:
            share = 1.0 if not distribution else int(distribution["onDemandPercentageAboveBaseCapacity"]) / 100
            hourly = share * on_demand + (1 - share) * on_demand * spot
            mix = (
                f"{share:.0%} on-demand ${on_demand}, the rest Spot at {spot:.0%} of it"
                if distribution
                else f"on-demand ${on_demand}"
            )
            yield Line(f"`{name}` burst", f"assumed {hours:g} instance-h {kind}: {mix}", hours * hourly)
            yield Line(
                f"`{name}` burst EBS",
                f"{volume} GB x ${gb_month} x {hours:g}/730",
                volume * gb_month * hours / HOURS_PER_MONTH,
            )


def _scheduler_lines(config: StackConfig, document: Mapping[str, Any]) -> Iterable[Line]:
    templates = {r["name"]: r["inputs"] for r in _of_type(document, "aws:ec2/launchTemplate:LaunchTemplate")}
    template = templates.get("scheduler-lt")
    if template is None:
        return
    kind = template["instanceType"]
    hourly = PRICES[kind].usd
    volume = sum(int(b["ebs"]["volumeSize"]) for b in template.get("blockDeviceMappings", []))
    yield Line(f"Scheduler {kind} x1", f"730 h x ${hourly}", HOURS_PER_MONTH * hourly)
    gb_month = PRICES["gp3_gb_month"].usd
    yield Line("Scheduler EBS", f"{volume} GB x ${gb_month}", volume * gb_month)
    puts = MINUTES_PER_MONTH * 60 / (config.scheduler_lease_seconds / 3)
    yield Line(
        "Scheduler PutMetricData",
        f"a call per renewal (lease {config.scheduler_lease_seconds} s / 3): {puts:,.0f} x $0.01/1000",
        puts * PRICES["put_metric_request"].usd,
    )


def _lambda_lines(document: Mapping[str, Any], usage: Usage) -> Iterable[Line]:
    functions = {r["name"]: r["inputs"] for r in _of_type(document, "aws:lambda/function:Function")}
    gb_s, request = PRICES["lambda_arm_gb_s"].usd, PRICES["lambda_request"].usd
    publisher = functions["publisher-fn"]
    gb = int(publisher["memorySize"]) / 1024
    runs = MINUTES_PER_MONTH
    yield Line(
        "Publisher Lambda",
        f"{runs:,.0f} runs x {PUBLISHER_SECONDS:g} s x {gb:g} GB x ${gb_s:.10f}".rstrip("0") + " (arm64) + requests",
        runs * (PUBLISHER_SECONDS * gb * gb_s + request),
    )
    smoke = functions.get("publisher-smoke")
    if smoke is not None:
        gb = int(smoke["memorySize"]) / 1024
        yield Line(
            "Smoke Lambda",
            f"assumed {usage.smoke_runs} runs x 60 s x {gb:g} GB x ${gb_s:.10f}".rstrip("0"),
            usage.smoke_runs * (60 * gb * gb_s + request),
        )


def estimate(config: StackConfig, document: Mapping[str, Any]) -> list[Line]:
    """The stack's monthly line items, from its render and config."""
    usage = USAGE[config.stack]
    return [
        *_network_lines(config, document, usage),
        *_broker_lines(document),
        *_pool_lines(config, document, usage),
        *_scheduler_lines(config, document),
        *_lambda_lines(document, usage),
        *_monitoring_lines(config, document),
        *_account_lines(document, usage),
    ]


def _count(document: Mapping[str, Any], type_: str) -> int:
    return len(_of_type(document, type_))


def _network_lines(config: StackConfig, document: Mapping[str, Any], usage: Usage) -> Iterator[Line]:
    nat = _count(document, "aws:ec2/natGateway:NatGateway")
    if nat:
        yield Line(f"NAT gateway x{nat}", f"{nat} x 730 h x $0.045", nat * HOURS_PER_MONTH * PRICES["nat_hour"].usd)
        yield Line("NAT data processing", f"assumed {usage.nat_gb:g} GB x $0.045", usage.nat_gb * PRICES["nat_gb"].usd)
    ips = _count(document, "aws:ec2/eip:Eip")
    if ips:
        usd = ips * HOURS_PER_MONTH * PRICES["ipv4_hour"].usd
        yield Line(f"Public IPv4 x{ips} (NAT)", f"{ips} x 730 h x $0.005", usd)
    interface = [e for e in _inputs(document, "aws:ec2/vpcEndpoint:VpcEndpoint") if e["vpcEndpointType"] == "Interface"]
    if interface:
        azs = len(config.availability_zones)
        yield Line(
            f"Interface endpoints x{len(interface)}",
            f"{len(interface)} x {azs} AZ x 730 h x $0.01",
            len(interface) * azs * HOURS_PER_MONTH * PRICES["endpoint_hour"].usd,
        )


def _broker_lines(document: Mapping[str, Any]) -> Iterator[Line]:
    for cache in _inputs(document, "aws:elasticache/replicationGroup:ReplicationGroup"):
        yield _cache_line(cache)
    for broker in _inputs(document, "aws:mq/broker:Broker"):
        kind = broker["hostInstanceType"]
        nodes = 3 if broker["deploymentMode"] == "CLUSTER_MULTI_AZ" else 1
        hourly = PRICES[kind].usd
        yield Line(f"Amazon MQ {kind} x{nodes}", f"{nodes} x 730 h x ${hourly}", nodes * HOURS_PER_MONTH * hourly)


def _monitoring_lines(config: StackConfig, document: Mapping[str, Any]) -> Iterator[Line]:
    alarms = _inputs(document, "aws:cloudwatch/metricAlarm:MetricAlarm")
    entries = sum(1 for a in alarms if a.get("metricName") == names.METRIC_ENTRY_LATENESS)
    metrics = sum(per_month_metrics(config, entries).values())
    yield Line("Custom metrics", f"{metrics} x $0.30", metrics * PRICES["metric_month"].usd)
    puts = PUBLISHER_PUTS_PER_MINUTE * MINUTES_PER_MONTH
    yield Line(
        "Publisher PutMetricData",
        f"{PUBLISHER_PUTS_PER_MINUTE}/min x {MINUTES_PER_MONTH:,.0f} min x $0.01/1000",
        puts * PRICES["put_metric_request"].usd,
    )
    ours = [_alarm_metrics(a) for a in alarms]
    tracking = [
        _target_tracking_metrics(p)
        for p in _inputs(document, "aws:autoscaling/policy:Policy")
        if p.get("policyType") == "TargetTrackingScaling"
    ]
    for label, billed in ((f"Our alarms ({len(ours)})", ours), ("Target-tracking alarms AWS creates", tracking)):
        if not billed:
            continue
        high = sum(n for n, fast in billed if fast)
        standard = sum(n for n, fast in billed if not fast)
        usd = high * PRICES["alarm_metric_high_res"].usd + standard * PRICES["alarm_metric"].usd
        yield Line(label, f"{high} high-res metrics x $0.30 + {standard} standard x $0.10", usd)
    dashboards = _count(document, "aws:cloudwatch/dashboard:Dashboard")
    yield Line("Dashboard", f"{dashboards} x $3", dashboards * PRICES["dashboard_month"].usd)


def _account_lines(document: Mapping[str, Any], usage: Usage) -> Iterator[Line]:
    keys = _count(document, "aws:kms/key:Key")
    yield Line("KMS key", f"{keys} x $1", keys * PRICES["kms_key_month"].usd)
    secrets = _count(document, "aws:secretsmanager/secret:Secret")
    reads = MINUTES_PER_MONTH  # assumed: the publisher reads its secret once a run
    yield Line(
        "Secrets Manager",
        f"{secrets} secrets x $0.40 + assumed {reads:,.0f} reads x $0.05/10k",
        secrets * PRICES["secret_month"].usd + reads * PRICES["secret_call"].usd,
    )
    yield Line("Logs", f"assumed {usage.log_gb:g} GB ingested x $0.50", usage.log_gb * PRICES["log_gb"].usd)
    if usage.cross_az_gb:
        usd = usage.cross_az_gb * PRICES["cross_az_gb"].usd
        yield Line("Cross-AZ traffic", f"assumed {usage.cross_az_gb:g} GB x $0.02", usd)


def total(lines: Iterable[Line]) -> float:
    return round(sum(round(line.usd, 2) for line in lines), 2)


def table(stack: str, lines: list[Line]) -> str:
    rows = [
        f"#### {stack} (`Pulumi.{stack}.yaml`) - about ${round(total(lines), -1):,.0f} a month",
        "",
        "| item | arithmetic | USD |",
        "| --- | --- | ---: |",
        *(f"| {line.item} | {line.arithmetic} | {line.usd:,.2f} |" for line in lines),
        f"| **total** | | **{total(lines):,.2f}** |",
    ]
    return "\n".join(rows)
