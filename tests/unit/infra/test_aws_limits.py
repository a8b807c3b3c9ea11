"""AWS limits that span fields or resources (tests/support/aws_limits/, each with its source), on the
three stacks; `test_generated_stacks.py` checks them on generated configs. Each check is shown to catch
the value it exists for, so none passes by looking at nothing."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.support.aws_limits import LIMITS, Limit, limits_by_name
from tests.support.rendered import STACKS, rendered


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("item", LIMITS, ids=lambda item: item.name)
def test_the_stacks_are_within_the_limit(stack: str, item: Limit) -> None:
    assert item.check(rendered(stack).document["resources"]) == []


def _resource(type_: str, logical: str, **inputs: Any) -> dict[str, Any]:
    return {"type": f"aws:{type_}", "name": logical, "parent": None, "inputs": inputs}


def _violations(limit: str, *resources: dict[str, Any]) -> list[str]:
    return limits_by_name()[limit].check(list(resources))


def _read(index: int) -> dict[str, Any]:
    metric = {"namespace": "n", "metricName": f"m{index}", "dimensions": {}, "stat": "Maximum", "period": 10}
    return {"id": f"r{index}", "metric": metric, "returnData": False}


def test_metric_queries_catch_the_old_target_tracking_math() -> None:
    """The render of 3b0063c: 5 reads and 13 expressions per policy; 4 queues made it 11 reads."""
    expressions = [{"id": f"e{i}", "expression": "r0", "returnData": i == 12} for i in range(13)]
    alarm = _resource(
        "cloudwatch/metricAlarm:MetricAlarm", "a", metricQueries=[_read(i) for i in range(11)] + expressions
    )
    found = _violations("metric_queries", alarm)
    assert len(found) == 3  # 24 queries, 11 reads, 13 expressions
    spec = {"customizedMetricSpecification": {"metrics": [_read(0), *expressions]}}
    policy = _resource("autoscaling/policy:Policy", "p", targetTrackingConfiguration=spec)
    assert _violations("metric_queries", policy) == ["p: 13 expressions (at most 10)"]


def test_alarm_evaluation_catches_periods_and_windows() -> None:
    good = {"evaluationPeriods": 3, "datapointsToAlarm": 3, "period": 10, "alarmActions": ["x"]}
    assert _violations("alarm_evaluation", _resource("cloudwatch/metricAlarm:MetricAlarm", "a", **good)) == []
    for bad in ({"period": 45}, {"period": 60, "evaluationPeriods": 1441}, {"datapointsToAlarm": 4}):
        alarm = _resource("cloudwatch/metricAlarm:MetricAlarm", "a", **{**good, **bad})
        assert _violations("alarm_evaluation", alarm), bad


def test_step_adjustments_catch_too_many_and_gaps() -> None:
    steps = [
        {"metricIntervalLowerBound": str(i), "metricIntervalUpperBound": str(i + 1), "scalingAdjustment": 1}
        for i in range(21)
    ]
    assert _violations("step_adjustments", _resource("autoscaling/policy:Policy", "p", stepAdjustments=steps)) == [
        "p: 21 step adjustments (at most 20)"
    ]
    gap = [steps[0], steps[2]]
    assert _violations("step_adjustments", _resource("autoscaling/policy:Policy", "p", stepAdjustments=gap))


def test_iam_sizes_count_without_whitespace_and_with_the_longest_arns() -> None:
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/" + "k" * 80}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement] * 60}, indent=4)
    policy = _resource("iam/policy:Policy", "big", policy=document)
    (problem,) = _violations("iam_sizes", policy)
    assert "managed policy of" in problem
    # Two inline policies of one role that fit as rendered, and not once their ARNs are as long as AWS's.
    half = json.dumps({"Version": "2012-10-17", "Statement": [statement] * 32}, separators=(",", ":"))
    assert 2 * len(half) <= 10240
    inline = [_resource("iam/rolePolicy:RolePolicy", f"p{i}", role="r-id", policy=half) for i in range(2)]
    (problem,) = _violations("iam_sizes", *inline)
    assert problem.startswith("r-id: inline policies of")


def test_lambda_environment_counts_the_group_auto_names() -> None:
    pools = json.dumps([{"name": f"p{i}", "queues": ["q" * 40], "asg": f"pool-p{i}-asg"} for i in range(50)])
    function = _resource("lambda/function:Function", "f", name="f", environment={"variables": {"POOLS_JSON": pools}})
    (problem,) = _violations("lambda_functions", function)
    assert problem.startswith("f: environment of ")


def test_user_data_is_measured_before_base64() -> None:
    encoded = base64.b64encode(b"x" * 16000).decode()  # 21,336 characters encoded, under 16 KB raw
    template = _resource("ec2/launchTemplate:LaunchTemplate", "lt", userData=encoded)
    assert _violations("user_data", template) == []
    bigger = _resource("ec2/launchTemplate:LaunchTemplate", "lt", userData=base64.b64encode(b"x" * 16385).decode())
    assert _violations("user_data", bigger) == ["lt: user data of 16385 bytes (at most 16,384)"]


def test_names_count_pulumis_auto_name_suffix() -> None:
    """A role auto-named from a 57-character logical name is 65 characters: one too many for IAM."""
    assert _violations("names", _resource("iam/role:Role", "r" * 56)) == []
    (problem,) = _violations("names", _resource("iam/role:Role", "r" * 57))
    assert "(at most 64)" in problem
    broker = _resource("mq/broker:Broker", "b", brokerName="celery-cluster-" + "x" * 36)
    assert _violations("names", broker)


def test_security_group_rules_dashboards_and_subnets() -> None:
    rules = [
        _resource("vpc/securityGroupIngressRule:SecurityGroupIngressRule", f"in{i}", securityGroupId="sg")
        for i in range(61)
    ]
    assert _violations("security_group_rules", *rules) == ["sg: 61 inbound rules (at most 60)"]
    widgets = [{"type": "metric", "width": 25, "height": 6, "properties": {"metrics": [["n", "m"]] * 501}}]
    dashboard = _resource("cloudwatch/dashboard:Dashboard", "d", dashboardBody=json.dumps({"widgets": widgets}))
    assert len(_violations("dashboards", dashboard)) == 2
    vpc = _resource("ec2/vpc:Vpc", "v", cidrBlock="10.0.0.0/20")
    inside = _resource("ec2/subnet:Subnet", "a", cidrBlock="10.0.0.0/22")
    overlapping = _resource("ec2/subnet:Subnet", "b", cidrBlock="10.0.2.0/24")
    outside = _resource("ec2/subnet:Subnet", "c", cidrBlock="10.0.16.0/24")
    assert _violations("subnets", vpc, inside, overlapping, outside) == [
        "c: 10.0.16.0/24 is outside the VPC",
        "a and b overlap",
    ]


def test_group_counts_settings_and_warm_pools() -> None:
    schedules = [
        _resource("autoscaling/schedule:Schedule", f"s{i}", autoscalingGroupName="g", scheduledActionName=f"s{i}")
        for i in range(126)
    ]
    assert _violations("per_group_counts", *schedules) == ["g: 126 Schedule (at most 125)"]
    hook = _resource("autoscaling/lifecycleHook:LifecycleHook", "h", heartbeatTimeout=7201)
    refresh = {"preferences": {"minHealthyPercentage": 0, "maxHealthyPercentage": 200}}
    group = _resource("autoscaling/group:Group", "g", instanceRefresh=refresh)
    assert len(_violations("group_settings", hook, group)) == 2
    mixed = {"instancesDistribution": {"onDemandPercentageAboveBaseCapacity": 0}, "launchTemplate": {"overrides": []}}
    warm = _resource("autoscaling/group:Group", "g", warmPool={"minSize": 1}, mixedInstancesPolicy=mixed)
    assert _violations("warm_pools", warm) == ["g: warm pool with Spot above the base"]


def test_key_policy_tracking_period_tags_and_vended_logs() -> None:
    key = _resource("kms/key:Key", "k", policy="x" * 32769)
    assert _violations("kms_key_policy", key)
    spec = {"customizedMetricSpecification": {"metricName": "m", "period": 20}}
    policy = _resource("autoscaling/policy:Policy", "p", targetTrackingConfiguration=spec)
    assert _violations("target_tracking_period", policy) == ["p: period 20 s"]
    tagged = _resource("sns/topic:Topic", "t", tags={f"k{i}": "v" for i in range(51)} | {"aws:x": "v"})
    assert len(_violations("tags", tagged)) == 2
    delivery = {"destinationType": "cloudwatch-logs", "destination": "/celery-cluster/x/slow", "logType": "slow-log"}
    group = _resource("elasticache/replicationGroup:ReplicationGroup", "c", logDeliveryConfigurations=[delivery])
    assert _violations("vended_log_groups", group) == ["c: delivers slow-log to /celery-cluster/x/slow"]


def test_every_limit_has_a_source_and_a_test_here() -> None:
    here = open(__file__).read()  # noqa: SIM115 - this file's own text
    for item in LIMITS:
        assert "http" in item.source or "NAMES" in item.source, item.name
        assert f'"{item.name}"' in here, f"no test shows that {item.name} catches what it exists for"
