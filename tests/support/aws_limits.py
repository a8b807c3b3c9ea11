"""AWS limits that span fields or resources, checked on a rendered stack; each with its source.

botocore's models (tests/support/aws_requests) check one request member at a time. The limits here
count across members or resources (metric queries per alarm, policy sizes per role, rules per security
group, resources per group), or are written only in AWS's documentation (name lengths the models type
as plain strings). Every check takes the render's resources (`{"type", "name", "inputs"}`, as
`make render` writes them) and returns its violations, one line each; `check_all` runs every one.

Outputs AWS computes are mocked in a render, so sizes are taken at their worst: each ARN as long as
AWS can make it (partition `aws-iso-b`, a 14-character region, an auto-name suffix) and each
auto-named resource with Pulumi's suffix ("-" and 7 hex digits).
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.support.aws_requests import AUTONAME_SUFFIX

Resources = list[dict[str, Any]]
Check = Callable[[Resources], list[str]]

ARN_GROWTH = len("aws-iso-b") - len("aws") + len("ap-southeast-5") - len("us-east-1") + len(AUTONAME_SUFFIX)
"""How much longer a rendered (mocked) ARN can be in a real account."""

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
POLICY = "aws:autoscaling/policy:Policy"
GROUP = "aws:autoscaling/group:Group"
FUNCTION = "aws:lambda/function:Function"


@dataclass(frozen=True)
class Limit:
    name: str
    source: str
    check: Check


LIMITS: list[Limit] = []


def limit(source: str) -> Callable[[Check], Check]:
    """Register a check with the document that states its limit."""

    def register(check: Check) -> Check:
        LIMITS.append(Limit(check.__name__, source, check))
        return check

    return register


def check_all(resources: Resources) -> list[str]:
    """Every limit's violations, each line prefixed with the limit's name."""
    return [f"{item.name}: {problem}" for item in LIMITS for problem in item.check(resources)]


def of_type(resources: Resources, type_: str) -> Iterator[dict[str, Any]]:
    return (r for r in resources if r["type"] == type_)


def worst_case_length(text: str) -> int:
    """Characters of `text` once every mocked ARN in it is as long as AWS can make it."""
    return len(text) + text.count("arn:aws:") * ARN_GROWTH


def _compact(document: Any) -> str:
    """A policy document as IAM counts it: whitespace is not counted."""
    text = document if isinstance(document, str) else json.dumps(document)
    return json.dumps(json.loads(text), separators=(",", ":"))


# --- CloudWatch alarms and target tracking ------------------------------------------------------------


def _query_counts(queries: list[dict[str, Any]]) -> tuple[int, int, int]:
    reads = sum(1 for q in queries if "metric" in q or "metricStat" in q)
    expressions = sum(1 for q in queries if "expression" in q)
    returned = sum(1 for q in queries if q.get("returnData") is True)
    return reads, expressions, returned


def _query_problems(where: str, queries: list[dict[str, Any]]) -> list[str]:
    reads, expressions, returned = _query_counts(queries)
    problems = []
    if len(queries) > 20:
        problems.append(f"{where}: {len(queries)} metric queries (at most 20)")
    if reads > 10:
        problems.append(f"{where}: {reads} metric reads (at most 10)")
    if expressions > 10:
        problems.append(f"{where}: {expressions} expressions (at most 10)")
    if returned != 1:
        problems.append(f"{where}: {returned} queries return data (exactly one must)")
    return problems


@limit(
    "PutMetricAlarm takes at most 20 MetricDataQuery structures, at most 10 reading a metric and at most "
    "10 expressions, one of them returning data: "
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html ; target "
    "tracking builds its alarms from the same queries: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-target-tracking-metric-math.html"
)
def metric_queries(resources: Resources) -> list[str]:
    problems = []
    for alarm in of_type(resources, ALARM):
        queries = alarm["inputs"].get("metricQueries")
        if queries:
            problems += _query_problems(alarm["name"], queries)
    for policy in of_type(resources, POLICY):
        tracking = policy["inputs"].get("targetTrackingConfiguration") or {}
        queries = (tracking.get("customizedMetricSpecification") or {}).get("metrics")
        if queries:
            problems += _query_problems(policy["name"], queries)
    return problems


def _alarm_periods(inputs: dict[str, Any]) -> list[int]:
    if "period" in inputs:
        return [int(inputs["period"])]
    return [int(q["metric"]["period"]) for q in inputs.get("metricQueries", []) if "metric" in q]


@limit(
    "PutMetricAlarm Period: 10, 20, 30 or a multiple of 60; Period x EvaluationPeriods at most 86,400 s "
    "(604,800 s for periods of an hour or more); DatapointsToAlarm at most EvaluationPeriods; at most 5 "
    "actions per state: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"
    " , https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
)
def alarm_evaluation(resources: Resources) -> list[str]:
    problems = []
    for alarm in of_type(resources, ALARM):
        inputs, name = alarm["inputs"], alarm["name"]
        periods = inputs["evaluationPeriods"]
        for period in _alarm_periods(inputs):
            if not (period in (10, 20, 30) or (period % 60 == 0 and 60 <= period <= 86400)):
                problems.append(f"{name}: period {period} s")
            longest = 604800 if period >= 3600 else 86400
            if period * periods > longest:
                problems.append(f"{name}: {periods} periods of {period} s exceed {longest} s")
        if inputs.get("datapointsToAlarm", periods) > periods:
            problems.append(f"{name}: datapointsToAlarm over evaluationPeriods")
        for key in ("alarmActions", "okActions", "insufficientDataActions"):
            if len(inputs.get(key, [])) > 5:
                problems.append(f"{name}: {len(inputs[key])} {key} (at most 5)")
    return problems


@limit(
    "A target-tracking customized metric's period is 10, 30 or 60 s: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html"
)
def target_tracking_period(resources: Resources) -> list[str]:
    problems = []
    for policy in of_type(resources, POLICY):
        spec = (policy["inputs"].get("targetTrackingConfiguration") or {}).get("customizedMetricSpecification")
        if spec is None:
            continue
        periods = [spec.get("period", 60)] + [
            q["metricStat"].get("period", 60) for q in spec.get("metrics", []) if "metricStat" in q
        ]
        problems += [f"{policy['name']}: period {p} s" for p in periods if p not in (10, 30, 60)]
    return problems


# --- EC2 Auto Scaling ---------------------------------------------------------------------------------


def _low(bound: float | None) -> float:
    return -math.inf if bound is None else bound


@limit(
    "At most 20 step adjustments per step policy (https://docs.aws.amazon.com/autoscaling/ec2/userguide/"
    "ec2-auto-scaling-quotas.html); intervals neither overlap nor leave a gap, at most one without a lower "
    "and one without an upper bound (https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html)"
)
def step_adjustments(resources: Resources) -> list[str]:
    problems = []
    for policy in of_type(resources, POLICY):
        steps = policy["inputs"].get("stepAdjustments") or []
        if not steps:
            continue
        name = policy["name"]
        if len(steps) > 20:
            problems.append(f"{name}: {len(steps)} step adjustments (at most 20)")
        lows = [float(s["metricIntervalLowerBound"]) if "metricIntervalLowerBound" in s else None for s in steps]
        highs = [float(s["metricIntervalUpperBound"]) if "metricIntervalUpperBound" in s else None for s in steps]
        if lows.count(None) > 1 or highs.count(None) > 1:
            problems.append(f"{name}: more than one open-ended step on a side")
        order = sorted(range(len(steps)), key=lambda i: _low(lows[i]))
        for before, after in itertools.pairwise(order):
            if highs[before] is None or lows[after] is None or highs[before] != lows[after]:
                problems.append(f"{name}: steps {highs[before]} / {lows[after]} leave a gap or overlap")
        for low, high in zip(lows, highs, strict=True):
            if low is not None and high is not None and not low < high:
                problems.append(f"{name}: empty interval [{low}, {high})")
    return problems


@limit(
    "Per Auto Scaling group: at most 50 scaling policies, 125 scheduled actions and 50 lifecycle hooks: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-quotas.html"
)
def per_group_counts(resources: Resources) -> list[str]:
    problems = []
    for type_, most in (
        (POLICY, 50),
        ("aws:autoscaling/schedule:Schedule", 125),
        ("aws:autoscaling/lifecycleHook:LifecycleHook", 50),
    ):
        counts = Counter(r["inputs"]["autoscalingGroupName"] for r in of_type(resources, type_))
        problems += [
            f"{group}: {n} {type_.rsplit(':', 1)[-1]} (at most {most})" for group, n in counts.items() if n > most
        ]
    return problems


@limit(
    "Lifecycle hook HeartbeatTimeout: 30 to 7,200 s "
    "(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html); instance refresh "
    "MaxHealthyPercentage - MinHealthyPercentage at most 100 "
    "(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html)"
)
def group_settings(resources: Resources) -> list[str]:
    problems = []
    for hook in of_type(resources, "aws:autoscaling/lifecycleHook:LifecycleHook"):
        timeout = hook["inputs"].get("heartbeatTimeout", 3600)
        if not 30 <= timeout <= 7200:
            problems.append(f"{hook['name']}: heartbeat timeout {timeout} s")
    for group in of_type(resources, GROUP):
        preferences = (group["inputs"].get("instanceRefresh") or {}).get("preferences") or {}
        low, high = preferences.get("minHealthyPercentage", 90), preferences.get("maxHealthyPercentage", 100)
        if high - low > 100:
            problems.append(f"{group['name']}: healthy percentage range {low}..{high} wider than 100")
    return problems


@limit(
    "A warm pool cannot hold Spot Instances or weighted instance types "
    "(https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html#warm-pools-limitations)"
)
def warm_pools(resources: Resources) -> list[str]:
    problems = []
    for group in of_type(resources, GROUP):
        inputs = group["inputs"]
        mixed = inputs.get("mixedInstancesPolicy")
        if "warmPool" not in inputs or mixed is None:
            continue
        distribution = mixed.get("instancesDistribution") or {}
        if distribution.get("onDemandPercentageAboveBaseCapacity", 100) < 100:
            problems.append(f"{group['name']}: warm pool with Spot above the base")
        if any("weightedCapacity" in o for o in mixed["launchTemplate"].get("overrides", [])):
            problems.append(f"{group['name']}: warm pool with weighted instance types")
    return problems


# --- IAM, KMS, Lambda, EC2 sizes ----------------------------------------------------------------------


@limit(
    "IAM character quotas, whitespace not counted: a managed policy 6,144; all inline policies of a role "
    "together 10,240; a role trust policy 2,048; at most 10 managed policies attached to a role: "
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"
)
def iam_sizes(resources: Resources) -> list[str]:
    problems = []
    for policy in of_type(resources, "aws:iam/policy:Policy"):
        size = worst_case_length(_compact(policy["inputs"]["policy"]))
        if size > 6144:
            problems.append(f"{policy['name']}: managed policy of {size} characters (at most 6,144)")
    inline: dict[str, int] = defaultdict(int)
    for policy in of_type(resources, "aws:iam/rolePolicy:RolePolicy"):
        inline[str(policy["inputs"]["role"])] += worst_case_length(_compact(policy["inputs"]["policy"]))
    problems += [
        f"{role}: inline policies of {n} characters (at most 10,240)" for role, n in inline.items() if n > 10240
    ]
    for role in of_type(resources, "aws:iam/role:Role"):
        size = worst_case_length(_compact(role["inputs"]["assumeRolePolicy"]))
        if size > 2048:
            problems.append(f"{role['name']}: trust policy of {size} characters (at most 2,048)")
    attached = Counter(
        str(a["inputs"]["role"]) for a in of_type(resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )
    problems += [f"{role}: {n} managed policies attached (at most 10)" for role, n in attached.items() if n > 10]
    return problems


@limit(
    "A KMS key policy is at most 32,768 bytes "
    "(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html)"
)
def kms_key_policy(resources: Resources) -> list[str]:
    problems = []
    for key in of_type(resources, "aws:kms/key:Key"):
        size = worst_case_length(key["inputs"].get("policy", ""))
        if size > 32768:
            problems.append(f"{key['name']}: key policy of {size} bytes (at most 32,768)")
    return problems


def _environment_size(variables: dict[str, str]) -> int:
    size = 0
    for key, value in variables.items():
        size += len(key.encode()) + worst_case_length(str(value))
        if key == "POOLS_JSON":  # the groups' names in it are auto-names
            size += len(json.loads(value)) * len(AUTONAME_SUFFIX)
    return size


@limit(
    "Lambda: environment variables at most 4 KB in all, a function name at most 64 characters, a timeout "
    "at most 900 s: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html , "
    "https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html"
)
def lambda_functions(resources: Resources) -> list[str]:
    problems = []
    for function in of_type(resources, FUNCTION):
        inputs, name = function["inputs"], function["name"]
        size = _environment_size((inputs.get("environment") or {}).get("variables") or {})
        if size > 4096:
            problems.append(f"{name}: environment of {size} bytes (at most 4,096)")
        if len(inputs.get("name") or name + AUTONAME_SUFFIX) > 64:
            problems.append(f"{name}: function name over 64 characters")
        if inputs.get("timeout", 3) > 900:
            problems.append(f"{name}: timeout {inputs['timeout']} s")
    return problems


@limit(
    "EC2 user data is at most 16 KB before base64 encoding "
    "(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html)"
)
def user_data(resources: Resources) -> list[str]:
    problems = []
    for template in of_type(resources, "aws:ec2/launchTemplate:LaunchTemplate"):
        raw = base64.b64decode(template["inputs"].get("userData", ""))
        size = worst_case_length(raw.decode(errors="replace"))
        if size > 16384:
            problems.append(f"{template['name']}: user data of {size} bytes (at most 16,384)")
    return problems


def _tags(inputs: dict[str, Any]) -> dict[str, str]:
    tags = inputs.get("tags")
    if isinstance(tags, list):  # an Auto Scaling group's tags: [{key, value, propagateAtLaunch}]
        return {t["key"]: t["value"] for t in tags}
    return dict(tags or {})


@limit(
    "At most 50 user tags per resource, keys at most 128 characters, values 256, no key starting aws: "
    "(https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html); an Image Builder build "
    "instance's resourceTags at most 30 (CreateInfrastructureConfiguration: "
    "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateInfrastructureConfiguration.html)"
)
def tags(resources: Resources) -> list[str]:
    problems = []
    for resource in resources:
        found = _tags(resource["inputs"])
        if len(found) > 50:
            problems.append(f"{resource['name']}: {len(found)} tags (at most 50)")
        for key, value in found.items():
            if len(key) > 128 or len(str(value)) > 256 or key.lower().startswith("aws:"):
                problems.append(f"{resource['name']}: tag {key!r}")
        build_tags = resource["inputs"].get("resourceTags") or {}
        if len(build_tags) > 30:
            problems.append(f"{resource['name']}: {len(build_tags)} build instance tags (at most 30)")
    return problems


# --- Names --------------------------------------------------------------------------------------------

_IMAGE_BUILDER_NAME = r"[-_A-Za-z0-9][-_A-Za-z0-9 ]{1,126}[-_A-Za-z0-9]"
NAMES: dict[str, tuple[str, int, str | None, str]] = {
    "aws:iam/role:Role": (
        "name",
        64,
        r"[\w+=,.@-]+",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html",
    ),
    "aws:iam/instanceProfile:InstanceProfile": ("name", 128, r"[\w+=,.@-]+", "IAM quotas (above)"),
    "aws:iam/policy:Policy": ("name", 128, r"[\w+=,.@-]+", "IAM quotas (above)"),
    "aws:iam/rolePolicy:RolePolicy": ("name", 128, r"[\w+=,.@-]+", "IAM quotas (above)"),
    "aws:autoscaling/group:Group": (
        "name",
        255,
        r"[^:]+",
        "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CreateAutoScalingGroup.html",
    ),
    "aws:autoscaling/policy:Policy": (
        "name",
        255,
        None,
        "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScalingPolicy.html",
    ),
    "aws:autoscaling/schedule:Schedule": (
        "scheduledActionName",
        255,
        None,
        "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScheduledUpdateGroupAction.html",
    ),
    "aws:autoscaling/lifecycleHook:LifecycleHook": (
        "name",
        255,
        r"[A-Za-z0-9\-_/]+",
        "https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "name",
        128,
        r"[a-zA-Z0-9().\-/_]{3,}",
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateLaunchTemplate.html",
    ),
    "aws:ec2/securityGroup:SecurityGroup": (
        "name",
        255,
        None,
        "https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html",
    ),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "replicationGroupId",
        40,
        r"[a-z](?!.*--)[a-z0-9-]*[a-z0-9]",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/API_CreateReplicationGroup.html",
    ),
    "aws:elasticache/subnetGroup:SubnetGroup": (
        "name",
        255,
        r"[a-z0-9-]+",
        "https://docs.aws.amazon.com/AmazonElastiCache/latest/APIReference/API_CreateCacheSubnetGroup.html",
    ),
    "aws:mq/broker:Broker": (
        "brokerName",
        50,
        r"[A-Za-z0-9_-]+",
        "https://docs.aws.amazon.com/amazon-mq/latest/api-reference/brokers.html",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "name",
        255,
        None,
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html",
    ),
    "aws:cloudwatch/dashboard:Dashboard": (
        "dashboardName",
        255,
        r"[A-Za-z0-9_-]+",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html",
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        "name",
        512,
        r"[\.\-_/#A-Za-z0-9]+",
        "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html",
    ),
    "aws:cloudwatch/eventRule:EventRule": (
        "name",
        64,
        r"[\.\-_A-Za-z0-9]+",
        "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html",
    ),
    "aws:cloudwatch/eventTarget:EventTarget": (
        "targetId",
        64,
        r"[\.\-_A-Za-z0-9]+",
        "https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_Target.html",
    ),
    "aws:lambda/function:Function": (
        "name",
        64,
        r"[a-zA-Z0-9-_]+",
        "https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html",
    ),
    "aws:lambda/permission:Permission": (
        "statementId",
        100,
        r"[a-zA-Z0-9-_]+",
        "https://docs.aws.amazon.com/lambda/latest/api/API_AddPermission.html",
    ),
    "aws:sns/topic:Topic": (
        "name",
        256,
        r"[A-Za-z0-9_-]+",
        "https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html",
    ),
    "aws:sqs/queue:Queue": (
        "name",
        80,
        r"[A-Za-z0-9_-]+",
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html",
    ),
    "aws:secretsmanager/secret:Secret": (
        "name",
        512,
        None,
        "https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html",
    ),
    "aws:kms/alias:Alias": (
        "name",
        256,
        r"alias/(?!aws/)[a-zA-Z0-9:/_-]+",
        "https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html",
    ),
    "aws:dynamodb/table:Table": (
        "name",
        255,
        r"[a-zA-Z0-9_.-]{3,}",
        "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_CreateTable.html",
    ),
    "aws:imagebuilder/component:Component": (
        "name",
        128,
        _IMAGE_BUILDER_NAME,
        "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateComponent.html",
    ),
    "aws:imagebuilder/imageRecipe:ImageRecipe": (
        "name",
        128,
        _IMAGE_BUILDER_NAME,
        "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateImageRecipe.html",
    ),
    "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration": (
        "name",
        128,
        _IMAGE_BUILDER_NAME,
        "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateInfrastructureConfiguration.html",
    ),
    "aws:imagebuilder/distributionConfiguration:DistributionConfiguration": (
        "name",
        128,
        _IMAGE_BUILDER_NAME,
        "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateDistributionConfiguration.html",
    ),
    "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy": (
        "name",
        128,
        _IMAGE_BUILDER_NAME,
        "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateLifecyclePolicy.html",
    ),
}
"""Resource type -> (the input that names it, AWS's longest name, its pattern, the source). A resource
without that input gets Pulumi's auto-name: its logical name, "-" and 7 hex digits (the pulumi-aws
bridge fails a logical name too long for that, but only at `pulumi up`, never under mocks)."""


@limit("Name lengths and characters per resource type, each from its API reference (NAMES)")
def names(resources: Resources) -> list[str]:
    problems = []
    for resource in resources:
        rule = NAMES.get(resource["type"])
        if rule is None:
            continue
        key, longest, pattern, _ = rule
        given = resource["inputs"].get(key)
        name = str(given) if given else resource["name"] + AUTONAME_SUFFIX
        if resource["type"] == "aws:elasticache/replicationGroup:ReplicationGroup":
            name = name.lower()  # the provider lowercases it
        if len(name) > longest:
            problems.append(f"{resource['name']}: {key} {name!r} is {len(name)} characters (at most {longest})")
        if pattern is not None and not re.fullmatch(pattern, name):
            problems.append(f"{resource['name']}: {key} {name!r} does not match {pattern}")
    return problems


# --- Networks, dashboards, logs -----------------------------------------------------------------------


@limit(
    "At most 60 inbound and 60 outbound rules per security group "
    "(https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups)"
)
def security_group_rules(resources: Resources) -> list[str]:
    problems = []
    for type_, direction in (
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "inbound"),
        ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "outbound"),
    ):
        counts = Counter(r["inputs"]["securityGroupId"] for r in of_type(resources, type_))
        problems += [f"{group}: {n} {direction} rules (at most 60)" for group, n in counts.items() if n > 60]
    return problems


@limit(
    "A subnet's CIDR lies within its VPC's and overlaps no other subnet's; a subnet is /16 to /28 "
    "(https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html)"
)
def subnets(resources: Resources) -> list[str]:
    vpcs = [ipaddress.IPv4Network(v["inputs"]["cidrBlock"]) for v in of_type(resources, "aws:ec2/vpc:Vpc")]
    found = [
        (s["name"], ipaddress.IPv4Network(s["inputs"]["cidrBlock"]))
        for s in of_type(resources, "aws:ec2/subnet:Subnet")
    ]
    problems = []
    for name, network in found:
        if not 16 <= network.prefixlen <= 28:
            problems.append(f"{name}: {network} is not /16 to /28")
        if vpcs and not any(network.subnet_of(vpc) for vpc in vpcs):
            problems.append(f"{name}: {network} is outside the VPC")
    for index, (name, network) in enumerate(found):
        for other, second in found[index + 1 :]:
            if network.overlaps(second):
                problems.append(f"{name} and {other} overlap")
    return problems


def _widget_metrics(widget: dict[str, Any]) -> int:
    return len((widget.get("properties") or {}).get("metrics") or [])


@limit(
    "A dashboard has at most 500 widgets, widths 1 to 24 and heights 1 to 1,000 "
    "(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html);"
    " at most 500 metrics per widget and 2,500 per dashboard "
    "(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html)"
)
def dashboards(resources: Resources) -> list[str]:
    problems = []
    for dashboard in of_type(resources, "aws:cloudwatch/dashboard:Dashboard"):
        widgets = json.loads(dashboard["inputs"]["dashboardBody"]).get("widgets", [])
        name = dashboard["name"]
        if len(widgets) > 500:
            problems.append(f"{name}: {len(widgets)} widgets")
        for widget in widgets:
            if not (1 <= widget.get("width", 6) <= 24 and 1 <= widget.get("height", 6) <= 1000):
                problems.append(f"{name}: widget of {widget.get('width')} x {widget.get('height')}")
            if _widget_metrics(widget) > 500:
                problems.append(f"{name}: a widget with {_widget_metrics(widget)} metrics")
        total = sum(_widget_metrics(w) for w in widgets)
        if total > 2500:
            problems.append(f"{name}: {total} metrics")
    return problems


@limit(
    "Logs that AWS services deliver to CloudWatch Logs go to log groups under /aws/vendedlogs/, so the "
    "account-wide resource policy (5,120 characters) does not grow with each stack: "
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-and-resource-policy.html"
)
def vended_log_groups(resources: Resources) -> list[str]:
    problems = []
    for group in of_type(resources, "aws:elasticache/replicationGroup:ReplicationGroup"):
        for delivery in group["inputs"].get("logDeliveryConfigurations") or []:
            if delivery.get("destinationType") != "cloudwatch-logs":
                continue
            destination = str(delivery.get("destination"))
            if not destination.startswith("/aws/vendedlogs/"):
                problems.append(f"{group['name']}: delivers {delivery.get('logType')} to {destination}")
    return problems


def limits_by_name() -> dict[str, Limit]:
    return {item.name: item for item in LIMITS}


def sources(items: Iterable[Limit] = LIMITS) -> list[str]:
    """One line per limit: its name and its source (for reports)."""
    return [f"{item.name}: {item.source}" for item in items]
