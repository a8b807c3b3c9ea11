"""A pool's scaling as Auto Scaling resources: target tracking and step policies, each reading one metric
the publisher writes for the pool, and scheduled actions. The policy objects come from
`infra.scaling.default_policy` (the same objects the simulator runs).

No policy or alarm evaluates metric math: the publisher computes the capacity rule in Python every
sample (`worker.publisher.capacity`) and publishes its result, so every alarm and target-tracking policy
reads one metric whatever the number of queues (PutMetricAlarm: at most 10 metrics and 10 expressions,
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.metrics import DIMENSION_POOL
from infra.config import PoolConfig, StackConfig
from infra.scaling.policy import PoolScaling, StepScalingPolicy

_TT_SPEC = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs
_TT_DIM = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricDimensionArgs


def bound(value: float) -> str:
    """A step bound as the API's decimal string: no exponent, no float noise, no "-0"."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def create_target_tracking(
    name: str,
    pool_name: str,
    config: StackConfig,
    pool: PoolConfig,
    group: aws.autoscaling.Group,
    scaling: PoolScaling,
    opts: pulumi.ResourceOptions,
) -> aws.autoscaling.Policy:
    """The pool's target-tracking policy on one published metric (dimension Pool), at the policy's
    period: 10 s reads the publisher's high-resolution datapoints (TargetTrackingMetricStat.Period
    accepts 10, 30 and 60, https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html)."""
    policy = scaling.target_tracking
    return aws.autoscaling.Policy(
        f"{name}-backlog",
        aws.autoscaling.PolicyArgs(
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=policy.estimated_instance_warmup_seconds,
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=policy.target_value,
                disable_scale_in=policy.disable_scale_in,
                customized_metric_specification=_TT_SPEC(
                    namespace=config.metric_namespace,
                    metric_name=policy.metric_name,
                    metric_dimensions=[_TT_DIM(name=DIMENSION_POOL, value=pool_name)],
                    statistic=policy.statistic,
                    period=policy.metric_period_seconds,
                ),
            ),
        ),
        opts=opts,
    )


def create_step_policy(
    name: str,
    pool_name: str,
    config: StackConfig,
    pool: PoolConfig,
    group: aws.autoscaling.Group,
    scaling: PoolScaling,
    suffix: str,
    policy: StepScalingPolicy,
    why: str,
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.MetricAlarm:
    """A step policy and the alarm that drives it, on one published metric (dimension Pool)."""
    step = aws.autoscaling.Policy(
        f"{name}-{suffix}",
        aws.autoscaling.PolicyArgs(
            autoscaling_group_name=group.name,
            policy_type="StepScaling",
            adjustment_type=policy.adjustment_type,
            metric_aggregation_type=policy.statistic,
            estimated_instance_warmup=policy.estimated_instance_warmup_seconds,
            min_adjustment_magnitude=policy.min_adjustment_magnitude,
            step_adjustments=[
                aws.autoscaling.PolicyStepAdjustmentArgs(
                    scaling_adjustment=s.scaling_adjustment,
                    metric_interval_lower_bound=None if s.lower_bound is None else bound(s.lower_bound),
                    metric_interval_upper_bound=None if s.upper_bound is None else bound(s.upper_bound),
                )
                for s in policy.steps
            ],
        ),
        opts=opts,
    )
    description = f"Pool {pool_name}: {policy.metric_name} {policy.comparison} {policy.threshold:g}; {why}"
    return aws.cloudwatch.MetricAlarm(
        f"{name}-{suffix}",
        aws.cloudwatch.MetricAlarmArgs(
            alarm_description=description,
            namespace=config.metric_namespace,
            metric_name=policy.metric_name,
            dimensions={DIMENSION_POOL: pool_name},
            statistic=policy.statistic,
            period=policy.metric_period_seconds,
            comparison_operator=policy.comparison,
            threshold=policy.threshold,
            evaluation_periods=policy.evaluation_periods,
            datapoints_to_alarm=policy.datapoints_to_alarm,
            # No datapoint (the publisher missed a sample, or CapacityNeeded at zero in service) never
            # moves capacity; the publisher-stale alarm reports a publisher that is down.
            treat_missing_data="notBreaching",
            alarm_actions=[step.arn],
        ),
        opts=opts,
    )


def create_schedules(
    name: str, pool_name: str, pool: PoolConfig, group: aws.autoscaling.Group, opts: pulumi.ResourceOptions
) -> list[aws.autoscaling.Schedule]:
    """Each schedule as two scheduled actions: MinSize = capacity when it starts, the pool's own MinSize
    when it ends (infra.scaling.schedules says why MinSize). DesiredCapacity and MaxSize are -1: the
    provider's "don't change" (both default to 0, which would empty the group)."""
    actions: list[aws.autoscaling.Schedule] = []
    for item in pool.schedules:
        schedule = item.schedule
        for phase, recurrence, min_size in (
            ("start", schedule.cron.text, schedule.capacity),
            ("end", schedule.end, pool.min_size),
        ):
            actions.append(
                aws.autoscaling.Schedule(
                    f"{name}-{item.name}-{phase}",
                    aws.autoscaling.ScheduleArgs(
                        autoscaling_group_name=group.name,
                        scheduled_action_name=f"{pool_name}-{item.name}-{phase}",
                        recurrence=recurrence,
                        min_size=min_size,
                        max_size=-1,
                        desired_capacity=-1,
                    ),
                    opts=opts,
                )
            )
    return actions
