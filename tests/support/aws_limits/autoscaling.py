"""EC2 Auto Scaling limits on a rendered stack: step adjustments, counts per group, lifecycle hook
and instance refresh settings, warm pools."""

from __future__ import annotations

import itertools
import math
from collections import Counter

from tests.support.aws_limits.registry import GROUP, POLICY, Resources, limit, of_type


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
