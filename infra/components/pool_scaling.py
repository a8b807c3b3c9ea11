"""A pool's scaling as Auto Scaling resources: target tracking on our metric-math signal, step policies
with the CloudWatch alarms that drive them, and scheduled actions. The policy objects come from
`infra.scaling.default_policy` (the same objects the simulator runs)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components.metrics import DIMENSION_POOL
from infra.components.scaling_math import MATH_SIGNALS, Query, signal_queries
from infra.config import PoolConfig, StackConfig
from infra.scaling.policy import PoolScaling, StepScalingPolicy

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


def _tt_query(query: Query) -> _TT:
    if query.stat is None:
        return _TT(id=query.id, expression=query.expression, label=query.label, return_data=query.return_data)
    stat = query.stat
    return _TT(
        id=query.id,
        return_data=False,
        metric_stat=_TT_STAT(
            stat=stat.stat,
            period=stat.period,
            metric=_TT_METRIC(
                namespace=stat.namespace,
                metric_name=stat.metric_name,
                dimensions=[_TT_DIM(name=k, value=v) for k, v in stat.dimensions],
            ),
        ),
    )


def _alarm_query(query: Query) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    if query.stat is None:
        return aws.cloudwatch.MetricAlarmMetricQueryArgs(
            id=query.id, expression=query.expression, label=query.label, return_data=query.return_data
        )
    stat = query.stat
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=query.id,
        return_data=False,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=stat.namespace,
            metric_name=stat.metric_name,
            dimensions=dict(stat.dimensions),
            stat=stat.stat,
            period=stat.period,
        ),
    )


def create_target_tracking(
    name: str,
    pool_name: str,
    config: StackConfig,
    pool: PoolConfig,
    group: aws.autoscaling.Group,
    scaling: PoolScaling,
    opts: pulumi.ResourceOptions,
) -> aws.autoscaling.Policy:
    """The pool's target-tracking policy on its metric-math signal (infra.components.scaling_math)."""
    policy = scaling.target_tracking
    queries = signal_queries(
        policy.metric_name,
        config.metric_namespace,
        pool_name,
        pool.queues,
        scaling.signal,
        policy.statistic,
        policy.metric_period_seconds,
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
                    metrics=[_tt_query(q) for q in queries]
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
    """A step policy and the alarm that drives it: on a published metric (dimension Pool), or on one of
    our metric-math signals."""
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
    common = {
        "alarm_description": description,
        "comparison_operator": policy.comparison,
        "threshold": policy.threshold,
        "evaluation_periods": policy.evaluation_periods,
        "datapoints_to_alarm": policy.datapoints_to_alarm,
        # No datapoints (publisher down, or an idle queue) never moves capacity.
        "treat_missing_data": "notBreaching",
        "alarm_actions": [step.arn],
    }
    if policy.metric_name in MATH_SIGNALS:
        queries = signal_queries(
            policy.metric_name,
            config.metric_namespace,
            pool_name,
            pool.queues,
            scaling.signal,
            policy.statistic,
            policy.metric_period_seconds,
        )
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{suffix}",
            aws.cloudwatch.MetricAlarmArgs(metric_queries=[_alarm_query(q) for q in queries], **common),  # type: ignore[arg-type]
            opts=opts,
        )
    return aws.cloudwatch.MetricAlarm(
        f"{name}-{suffix}",
        aws.cloudwatch.MetricAlarmArgs(
            namespace=config.metric_namespace,
            metric_name=policy.metric_name,
            dimensions={DIMENSION_POOL: pool_name},
            statistic=policy.statistic,
            period=policy.metric_period_seconds,
            **common,  # type: ignore[arg-type]
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
