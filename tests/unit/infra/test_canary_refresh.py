"""The canary refresh as rendered: each rule of EC2 Auto Scaling it depends on, with its source.

The deploy step passes each pool's preferences (output `poolRefresh`) to StartInstanceRefresh
unchanged, so the render is what AWS receives: checked here against the API reference's rules and
botocore's service model, over every stack.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from infra.canary.rules import LOG_METRICS, MAX_REFRESH_ALARMS
from infra.cli.canary_rollout import start_request
from infra.components.canary import DIMENSION_VERSION
from infra.components.metrics import DIMENSION_POOL
from infra.components.worker_pool import VERSION_PATHS, log_group_name
from infra.config import ConfigError, merged_raw, parse_config, read_stack_file
from infra.config.refresh import ALARM_WINDOW_SECONDS, JUDGEMENT_SECONDS
from infra.outputs import POOL_REFRESH
from tests.support.aws_requests import Request, validate
from tests.support.rendered import Rendered

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
GROUP = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"


def _plans(stack: Rendered) -> dict[str, dict[str, Any]]:
    plans: dict[str, dict[str, Any]] = stack.document["outputs"][POOL_REFRESH]
    assert sorted(plans) == sorted(stack.config.pools)
    return plans


def _alarms_by_name(stack: Rendered) -> dict[str, dict[str, Any]]:
    """Rendered alarms by the name AWS knows them by (the mock names them after the resource)."""
    return stack.named(ALARM)


def _pool_env(stack: Rendered, pool: str) -> dict[str, str]:
    text = base64.b64decode(stack.one(LT, f"pool-{pool}-lt")["userData"]).decode()
    (content,) = [f["content"] for f in yaml.safe_load(text)["write_files"] if f["path"].endswith("pool.env")]
    return dict(line.split("=", 1) for line in content.splitlines() if line and not line.startswith("#"))


def test_prod_canaries_every_pool_with_checkpoints_auto_rollback_and_alarms(prod: Rendered) -> None:
    """Prod's pools replace a first share, wait while the alarms judge it, then the rest; a failed
    refresh or an alarm in ALARM rolls the pool back (AutoRollback, AlarmSpecification: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html)."""
    for pool, plan in _plans(prod).items():
        preferences = plan["preferences"]
        checkpoints = preferences["CheckpointPercentages"]
        assert checkpoints[0] < 100, f"{pool}: the first step must be a canary, not the whole pool"
        assert checkpoints[-1] == 100, f"{pool}: the last checkpoint must be 100 or old instances stay"
        assert preferences["CheckpointDelay"] >= JUDGEMENT_SECONDS
        assert preferences["AutoRollback"] is True
        assert preferences["AlarmSpecification"]["Alarms"], pool


def test_dev_goes_straight_through_and_still_rolls_back_a_failed_refresh(dev: Rendered) -> None:
    """ "If you specify a value for CheckpointPercentages and not for CheckpointDelay, the CheckpointDelay
    defaults to 3600": dev sends neither, so its refresh never stops to wait (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html)."""
    assert dev.config.refresh_checkpoint_percentages == ()
    for plan in _plans(dev).values():
        preferences = plan["preferences"]
        assert "CheckpointPercentages" not in preferences
        assert "CheckpointDelay" not in preferences
        assert preferences["AutoRollback"] is dev.config.refresh_auto_rollback is True


def test_every_stack_follows_its_config(stack: Rendered) -> None:
    config = stack.config
    for plan in _plans(stack).values():
        preferences = plan["preferences"]
        assert preferences.get("CheckpointPercentages", []) == list(config.refresh_checkpoint_percentages)
        if config.refresh_checkpoint_percentages:
            assert preferences["CheckpointDelay"] == config.refresh_checkpoint_delay_seconds
        assert preferences["AutoRollback"] is config.refresh_auto_rollback


def test_alarm_specification_names_existing_alarms_that_judge_the_new_version(stack: Rendered) -> None:
    """ "You can specify up to 10 alarms" (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AlarmSpecification.html).
    Each named alarm exists in the stack; the canary alarms read the `Version` the pool's instances run
    (WORKER_CODE_VERSION in their environment), so old instances cannot dilute them, and none looks
    further back than the checkpoint delay allows for."""
    alarms = _alarms_by_name(stack)
    for pool, plan in _plans(stack).items():
        names = plan["preferences"]["AlarmSpecification"]["Alarms"]
        assert 1 <= len(names) <= MAX_REFRESH_ALARMS
        assert len(set(names)) == len(names)
        version = _pool_env(stack, pool)["WORKER_CODE_VERSION"]
        kinds = set()
        for name in names:
            assert name in alarms, f"{pool}: {name} is not an alarm of the stack"
            args = alarms[name]
            metrics = [args] if "metricName" in args else [q["metric"] for q in args["metricQueries"] if "metric" in q]
            for metric in metrics:
                dimensions = metric["dimensions"]
                assert dimensions[DIMENSION_POOL] == pool
                if name.removeprefix(f"monitoring-{pool}-").startswith("canary-"):
                    assert dimensions[DIMENSION_VERSION] == version, name
                window = metric["period"] * args["evaluationPeriods"]
                assert window <= ALARM_WINDOW_SECONDS, f"{name}: judges {window} s"
            kinds.add(name.removeprefix(f"monitoring-{pool}-"))
        # What the issue asks the canary to judge: failures, retries, dead letters, workers that cannot
        # start, latency over the SLO, and task names the new workers do not know.
        assert kinds == {
            "canary-failures",
            "canary-retries",
            "canary-dead-letters",
            "canary-unhealthy",
            "canary-unknown-tasks",
            "latency-slo",
        }, pool
        assert f"monitoring-{pool}-unknown-tasks" in alarms, "on-call's version-skew alarm"
        assert f"monitoring-{pool}-unknown-tasks" not in names, "old workers fire it; a fix must deploy"


def test_auto_rollback_has_a_numbered_version_and_an_ami_id_to_return_to(stack: Rendered) -> None:
    """ "A rollback is not supported ... [when] the Auto Scaling group has a launch template that uses an
    AWS Systems Manager parameter instead of an AMI ID for the ImageId property [or] uses the launch
    template's $Latest or $Default version" (AutoRollback,
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html)."""
    for pool, plan in _plans(stack).items():
        template = stack.one(LT, f"pool-{pool}-lt")
        assert template["imageId"].startswith("ami-"), "a resolved AMI id, never resolve:ssm:"
        assert plan["launchTemplateVersion"].isdigit()


def test_pulumi_never_moves_a_group_to_a_new_version(stack: Rendered) -> None:
    """The provider's instance_refresh updates the group to the new version and then starts the refresh,
    so AutoRollback would restore the new version (terraform-provider-aws #34189, open). The groups carry
    no instance_refresh, and ignore the version after creation: the deploy's refresh moves it, and AWS
    saves it on the group only once the refresh succeeds."""
    groups = {r.name: r for r in stack.render.resources if r.type == GROUP}
    for pool in stack.config.pools:
        group = groups[f"pool-{pool}-asg"]
        assert "instanceRefresh" not in group.inputs
        assert set(VERSION_PATHS) <= set(group.ignore_changes)


def test_the_refresh_request_is_one_the_service_model_accepts(stack: Rendered) -> None:
    """StartInstanceRefresh as the deploy sends it, for the group as DescribeAutoScalingGroups returns
    it, checked against botocore's model (types, enums, ranges: CheckpointDelay 0-172800...)."""
    for pool, plan in _plans(stack).items():
        config = stack.config.pools[pool]
        spec = {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateName": "x", "Version": "1"}
        group: dict[str, Any] = (
            {"LaunchTemplate": spec}
            if config.warm_pool.enabled
            else {
                "MixedInstancesPolicy": {
                    "LaunchTemplate": {
                        "LaunchTemplateSpecification": spec,
                        "Overrides": [{"InstanceType": t} for t in config.instance_types],
                    }
                }
            }
        )
        params = start_request(group, {**plan, "launchTemplateId": "lt-0123456789abcdef0"})
        assert validate(Request("autoscaling", "StartInstanceRefresh", params, pool)) == []
        desired = params["DesiredConfiguration"]
        spec_sent = (
            desired.get("LaunchTemplate")
            or desired["MixedInstancesPolicy"]["LaunchTemplate"]["LaunchTemplateSpecification"]
        )
        # "specify either a LaunchTemplateId or a LaunchTemplateName", never both.
        assert spec_sent == {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": plan["launchTemplateVersion"]}


def test_each_pool_counts_its_task_outcomes_per_version(stack: Rendered) -> None:
    """A metric filter per counted event on the pool's log group; "One metric filter can include as many
    as three dimensions" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntaxForMetricFilters.html)."""
    filters = stack.named(FILTER)
    for pool in stack.config.pools:
        for metric in LOG_METRICS:
            found = filters[f"pool-{pool}-{metric.key}"]
            assert found["logGroupName"] == log_group_name(stack.config.stack, pool)
            transformation = found["metricTransformation"]
            assert transformation["namespace"] == stack.config.metric_namespace
            assert len(transformation["dimensions"]) <= 3
            assert transformation["dimensions"][DIMENSION_POOL] == "$.pool"


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"refreshCheckpointPercentages": [100, 10]}, "refreshCheckpointPercentages", "ascending"),
        ({"refreshCheckpointPercentages": [10, 10, 100]}, "refreshCheckpointPercentages", "ascending"),
        ({"refreshCheckpointPercentages": [10, 50]}, "refreshCheckpointPercentages", "must end at 100"),
        ({"refreshCheckpointPercentages": [0, 100]}, "refreshCheckpointPercentages", "within 1..100"),
        ({"refreshCheckpointDelaySeconds": 60}, "refreshCheckpointDelaySeconds", f">= {JUDGEMENT_SECONDS}"),
        ({"refreshCheckpointDelaySeconds": 172801}, "refreshCheckpointDelaySeconds", "172800"),
    ],
)
def test_refresh_keys_aws_would_refuse_or_that_would_let_bad_code_through_are_refused(
    values: dict[str, Any], key: str, message: str
) -> None:
    """CheckpointPercentages ascending and unique, to 100; CheckpointDelay 0-172800 (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html);
    a checkpoint shorter than the alarms' judgement (infra/config/refresh.py) lets a bad version through."""
    raw = merged_raw({**read_stack_file("prod"), **values})
    with pytest.raises(ConfigError) as caught:
        parse_config("prod", raw)
    (line,) = str(caught.value).splitlines()
    assert f"celery-cluster:{key}" in line
    assert message in line


def test_straight_through_needs_no_judgement_delay() -> None:
    raw = merged_raw(
        {**read_stack_file("prod"), "refreshCheckpointPercentages": [], "refreshCheckpointDelaySeconds": 0}
    )
    assert parse_config("prod", raw).refresh_checkpoint_percentages == ()
