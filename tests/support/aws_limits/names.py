"""Name lengths and characters per resource type, each from its API reference (NAMES)."""

from __future__ import annotations

import re

from tests.support.aws_limits.registry import Resources, limit
from tests.support.aws_requests import AUTONAME_SUFFIX

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
