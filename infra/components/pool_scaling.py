"""A pool's scaling policies as Auto Scaling resources: target tracking on backlog per instance, and
step policies with the CloudWatch alarms that drive them. The policy objects come from
`infra.scaling.policy` (the same objects the simulator runs)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.metrics import (
    ASG_DIMENSION,
    ASG_IN_SERVICE,
    ASG_NAMESPACE,
    DIMENSION_POOL,
    DIMENSION_QUEUE,
    backlog_per_instance_expression,
    queue_ids,
)
from infra.config import PoolConfig, StackConfig
from infra.scaling.policy import StepScalingPolicy, TargetTrackingPolicy
from worker.names import METRIC_IN_FLIGHT, METRIC_WAITING

_TT = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricArgs
_TT_STAT = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatArgs
_TT_METRIC = aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs
_TT_DIM = (
    aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationMetricMetricStatMetricDimensionArgs
)


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
    policy: TargetTrackingPolicy,
    opts: pulumi.ResourceOptions,
) -> aws.autoscaling.Policy:
    """The pool's target-tracking policy on backlog per instance (metric math over the published queues)."""
    period = policy.metric_period_seconds
    namespace = config.metric_namespace

    def queue_metric(metric_id: str, metric_name: str, queue: str) -> _TT:
        return _TT(
            id=metric_id,
            return_data=False,
            metric_stat=_TT_STAT(
                stat=policy.statistic,
                period=period,
                metric=_TT_METRIC(
                    namespace=namespace,
                    metric_name=metric_name,
                    dimensions=[
                        _TT_DIM(name=DIMENSION_POOL, value=pool_name),
                        _TT_DIM(name=DIMENSION_QUEUE, value=queue),
                    ],
                ),
            ),
        )

    waiting = queue_ids("w", pool.queues)
    in_flight = queue_ids("f", pool.queues)
    metrics = [queue_metric(i, METRIC_WAITING, q) for i, q in waiting]
    metrics += [queue_metric(i, METRIC_IN_FLIGHT, q) for i, q in in_flight]
    metrics.append(
        _TT(
            id="ins",
            return_data=False,
            metric_stat=_TT_STAT(
                stat="Average",
                period=period,
                metric=_TT_METRIC(
                    namespace=ASG_NAMESPACE,
                    metric_name=ASG_IN_SERVICE,
                    dimensions=[_TT_DIM(name=ASG_DIMENSION, value=group.name)],
                ),
            ),
        )
    )
    metrics.append(
        _TT(
            id="backlog_per_instance",
            label="Backlog per instance",
            return_data=True,
            expression=backlog_per_instance_expression([i for i, _ in waiting], [i for i, _ in in_flight], "ins"),
        )
    )
    return aws.autoscaling.Policy(
        f"{name}-backlog",
        aws.autoscaling.PolicyArgs(
            autoscaling_group_name=group.name,
            policy_type="TargetTrackingScaling",
            estimated_instance_warmup=policy.estimated_instance_warmup_seconds,
            target_tracking_configuration=aws.autoscaling.PolicyTargetTrackingConfigurationArgs(
                target_value=policy.target_value,
                disable_scale_in=policy.disable_scale_in,
                customized_metric_specification=aws.autoscaling.PolicyTargetTrackingConfigurationCustomizedMetricSpecificationArgs(
                    metrics=metrics
                ),
            ),
        ),
        opts=opts,
    )


def create_step_policy(
    name: str,
    pool_name: str,
    config: StackConfig,
    group: aws.autoscaling.Group,
    suffix: str,
    policy: StepScalingPolicy,
    why: str,
    opts: pulumi.ResourceOptions,
) -> aws.cloudwatch.MetricAlarm:
    """A step policy and the alarm that drives it, on the pool's published metric (dimension Pool)."""
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
    return aws.cloudwatch.MetricAlarm(
        f"{name}-{suffix}",
        aws.cloudwatch.MetricAlarmArgs(
            alarm_description=f"Pool {pool_name}: {policy.metric_name} {policy.comparison} {policy.threshold:g}; {why}",
            namespace=config.metric_namespace,
            metric_name=policy.metric_name,
            dimensions={DIMENSION_POOL: pool_name},
            statistic=policy.statistic,
            period=policy.metric_period_seconds,
            comparison_operator=policy.comparison,
            threshold=policy.threshold,
            evaluation_periods=policy.evaluation_periods,
            datapoints_to_alarm=policy.datapoints_to_alarm,
            # No datapoints (publisher down, or an idle queue) never moves capacity.
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
