"""EC2 Auto Scaling: groups (with their warm pool and metrics collection), policies, lifecycle hooks
and scheduled actions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import (
    Builder,
    Call,
    dimensions,
    metric,
    metric_query,
    name_of,
    optional,
    pascal,
    required,
)


def _hook(hook: Mapping[str, Any]) -> dict[str, Any]:
    """A lifecycle hook, in a group's initial hooks and as a hook of its own."""
    return {
        "LifecycleHookName": hook["name"],
        **required(hook, "LifecycleTransition"),
        **optional(hook, "HeartbeatTimeout", "DefaultResult"),
    }


def _group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    group = name_of(i, name)
    lt = i.get("launchTemplate")
    mixed = i.get("mixedInstancesPolicy")
    mixed_params = None
    if mixed:
        spec = mixed["launchTemplate"]["launchTemplateSpecification"]
        mixed_params = {
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateId": spec["launchTemplateId"],
                    "Version": spec["version"],
                },
                "Overrides": [
                    {"InstanceType": o["instanceType"]} for o in mixed["launchTemplate"].get("overrides", [])
                ],
            },
            "InstancesDistribution": pascal(mixed.get("instancesDistribution")),
        }
    hooks = [_hook(h) for h in i.get("initialLifecycleHooks", [])]
    yield (
        "autoscaling",
        "CreateAutoScalingGroup",
        {
            "AutoScalingGroupName": group,
            **required(i, "MinSize", "MaxSize"),
            **optional(
                i,
                "DesiredCapacity",
                "CapacityRebalance",
                "DefaultInstanceWarmup",
                "HealthCheckType",
                "HealthCheckGracePeriod",
            ),
            "VPCZoneIdentifier": ",".join(i.get("vpcZoneIdentifiers", [])),
            "LaunchTemplate": {"LaunchTemplateId": lt["id"], "Version": lt["version"]} if lt else None,
            "MixedInstancesPolicy": mixed_params,
            "LifecycleHookSpecificationList": hooks or None,
            "Tags": [
                {
                    "ResourceId": group,
                    "ResourceType": "auto-scaling-group",
                    **required(t, "Key", "Value"),
                    **optional(t, "PropagateAtLaunch"),
                }
                for t in i.get("tags", [])
            ]
            or None,
        },
    )
    if i.get("enabledMetrics"):
        yield (
            "autoscaling",
            "EnableMetricsCollection",
            {"AutoScalingGroupName": group, "Metrics": i["enabledMetrics"], "Granularity": i.get("metricsGranularity")},
        )
    warm = i.get("warmPool")
    if warm:
        yield (
            "autoscaling",
            "PutWarmPool",
            {
                "AutoScalingGroupName": group,
                **optional(warm, "MaxGroupPreparedCapacity", "MinSize", "PoolState"),
                "InstanceReusePolicy": pascal(warm.get("instanceReusePolicy")),
            },
        )


def _metric_stat(stat: Mapping[str, Any]) -> dict[str, Any]:
    return {"Metric": metric(stat["metric"]), **required(stat, "Stat"), **optional(stat, "Unit", "Period")}


def _bound(step: Mapping[str, Any], key: str) -> float | None:
    return float(step[key]) if key in step else None


def _policy(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    tracking = i.get("targetTrackingConfiguration")
    tracking_params = None
    if tracking:
        custom = tracking.get("customizedMetricSpecification")
        custom_params = None
        if custom:
            custom_params = {
                "Metrics": [
                    metric_query(m, _metric_stat(m["metricStat"]) if m.get("metricStat") else None)
                    for m in custom.get("metrics", [])
                ]
                or None,
                **optional(custom, "MetricName", "Namespace", "Statistic", "Unit", "Period"),
                "Dimensions": dimensions(custom.get("metricDimensions")),
            }
        tracking_params = {
            "CustomizedMetricSpecification": custom_params,
            "PredefinedMetricSpecification": pascal(tracking.get("predefinedMetricSpecification")),
            **required(tracking, "TargetValue"),
            **optional(tracking, "DisableScaleIn"),
        }
    steps = [
        {
            "MetricIntervalLowerBound": _bound(s, "metricIntervalLowerBound"),
            "MetricIntervalUpperBound": _bound(s, "metricIntervalUpperBound"),
            **required(s, "ScalingAdjustment"),
        }
        for s in i.get("stepAdjustments", [])
    ]
    yield (
        "autoscaling",
        "PutScalingPolicy",
        {
            "AutoScalingGroupName": i["autoscalingGroupName"],
            "PolicyName": name_of(i, name),
            **optional(
                i,
                "PolicyType",
                "AdjustmentType",
                "MinAdjustmentMagnitude",
                "ScalingAdjustment",
                "Cooldown",
                "MetricAggregationType",
                "EstimatedInstanceWarmup",
                "Enabled",
            ),
            "StepAdjustments": steps or None,
            "TargetTrackingConfiguration": tracking_params,
        },
    )


def _lifecycle_hook(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "autoscaling",
        "PutLifecycleHook",
        {
            **_hook(i),
            "AutoScalingGroupName": i["autoscalingGroupName"],
            **optional(i, "NotificationMetadata"),
            "NotificationTargetARN": i.get("notificationTargetArn"),
            "RoleARN": i.get("roleArn"),
        },
    )


def _scheduled_action(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    # The provider's -1 means "leave unchanged" and is not sent (aws_autoscaling_schedule docs).
    def sized(key: str) -> Any:
        value = i.get(key)
        return None if value is None or value < 0 else value

    yield (
        "autoscaling",
        "PutScheduledUpdateGroupAction",
        {
            "AutoScalingGroupName": i["autoscalingGroupName"],
            **required(i, "ScheduledActionName"),
            **optional(i, "Recurrence", "TimeZone"),
            "MinSize": sized("minSize"),
            "MaxSize": sized("maxSize"),
            "DesiredCapacity": sized("desiredCapacity"),
        },
    )


BUILDERS: dict[str, Builder] = {
    "aws:autoscaling/group:Group": _group,
    "aws:autoscaling/policy:Policy": _policy,
    "aws:autoscaling/lifecycleHook:LifecycleHook": _lifecycle_hook,
    "aws:autoscaling/schedule:Schedule": _scheduled_action,
}
