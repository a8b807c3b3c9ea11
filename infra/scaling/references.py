"""The policies the simulator compares ours with: where most teams start (CPU target tracking), CDK's
QueueProcessingService defaults and Copilot's backlog per task, each built from the same pool and run
under the same model of AWS (including the pool's scheduled capacity, which belongs to the group)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from infra.scaling.aws_model import GroupModel, ModelAssumptions, NamedPolicies
from infra.scaling.default_policy import target_backlog_per_instance
from infra.scaling.policy import StepAdjustment, StepScalingPolicy, TargetTrackingPolicy
from infra.scaling.pool_spec import PoolSpec
from infra.scaling.signals import METRIC_CPU, METRIC_VISIBLE, METRIC_WAITING_PER_INSTANCE
from infra.scaling.warm_pool import warm_pool_for


@dataclass(frozen=True)
class Contender:
    """A policy to run: ours from the config, or a reference policy built from the same pool."""

    name: str
    description: str
    build: Callable[[PoolSpec, ModelAssumptions], GroupModel]


def ours(label: str = "ours") -> Contender:
    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        return GroupModel(
            spec.scaling, spec.concurrency, assumptions, warm_pool=warm_pool_for(spec.warm_pool, assumptions)
        )

    return Contender(
        label,
        "target tracking on capacity needed (measured task time) + burst step + latency net + scale-in with hysteresis",
        build,
    )


def _warmup(spec: PoolSpec) -> int:
    return spec.scaling.target_tracking.estimated_instance_warmup_seconds


def _reference_model(spec: PoolSpec, assumptions: ModelAssumptions, policies: NamedPolicies) -> GroupModel:
    """A group that runs only a reference policy (none of the pool's own) under the same model, with the
    pool's warm pool (it belongs to the group, as its schedules do)."""
    return GroupModel(
        spec.scaling,
        spec.concurrency,
        assumptions,
        extra=policies,
        include_pool_policies=False,
        warm_pool=warm_pool_for(spec.warm_pool, assumptions),
    )


def cpu_target_tracking(target_percent: float = 50.0) -> Contender:
    """CPU-utilisation target tracking, where most teams start (ASGAverageCPUUtilization, 1-minute
    detailed monitoring). Tasks are taken as CPU-bound: a busy process is a busy core."""

    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        policy = TargetTrackingPolicy(
            target_value=target_percent,
            metric_name=METRIC_CPU,
            metric_period_seconds=60,
            estimated_instance_warmup_seconds=_warmup(spec),
        )
        return _reference_model(spec, assumptions, NamedPolicies(target_tracking=(("cpu", policy),)))

    return Contender("cpu-50", f"target tracking on average CPU at {target_percent:.0f}% (60 s)", build)


# CDK aws-ecs-patterns QueueProcessingServiceBase: defaultScalingSteps =
# [{upper: 0, change: -1}, {lower: 100, change: +1}, {lower: 500, change: +5}] on the queue's
# ApproximateNumberOfMessagesVisible (CDK's SQS metric default: Maximum over 5 minutes), plus CPU
# target tracking at cpuTargetUtilizationPercent = 50. Adapted: one ECS task = one instance here.
# The scale-out and scale-in alarms are the two that CDK's scaleOnMetric creates (1 evaluation period).
# Cooldown: Application Auto Scaling's step-scaling default, 300 s (an assumption for ECS services).
CDK_COOLDOWN_SECONDS: Final = 300


def cdk_queue_processing() -> Contender:
    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        warmup = _warmup(spec)
        upper = StepScalingPolicy(
            threshold=100,
            steps=(StepAdjustment(1, 0.0, 400.0), StepAdjustment(5, 400.0, None)),
            metric_name=METRIC_VISIBLE,
            statistic="Maximum",
            metric_period_seconds=300,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            estimated_instance_warmup_seconds=warmup,
            cooldown_seconds=CDK_COOLDOWN_SECONDS,
        )
        lower = StepScalingPolicy(
            threshold=0,
            steps=(StepAdjustment(-1, None, 0.0),),
            metric_name=METRIC_VISIBLE,
            statistic="Maximum",
            metric_period_seconds=300,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison="LessThanOrEqualToThreshold",
            estimated_instance_warmup_seconds=warmup,
            cooldown_seconds=CDK_COOLDOWN_SECONDS,
        )
        cpu = TargetTrackingPolicy(
            target_value=50, metric_name=METRIC_CPU, metric_period_seconds=60, estimated_instance_warmup_seconds=warmup
        )
        return _reference_model(
            spec,
            assumptions,
            NamedPolicies(
                target_tracking=(("cdk-cpu", cpu),),
                step_scaling=(("cdk-steps-out", upper), ("cdk-steps-in", lower)),
            ),
        )

    return Contender("cdk-steps", "CDK QueueProcessingService defaults: visible-message steps (5 min) + CPU 50%", build)


def copilot_backlog_per_task() -> Contender:
    """Copilot's worker-service method: target tracking on visible messages per running task, computed
    once a minute, target = acceptable latency / message processing time (x concurrency: one of our
    instances runs `concurrency` tasks at once), with the configured task time (Copilot measures none)."""

    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        policy = TargetTrackingPolicy(
            target_value=target_backlog_per_instance(
                spec.acceptable_latency_seconds, spec.average_task_seconds, spec.concurrency
            ),
            metric_name=METRIC_WAITING_PER_INSTANCE,
            metric_period_seconds=60,
            estimated_instance_warmup_seconds=_warmup(spec),
        )
        return _reference_model(spec, assumptions, NamedPolicies(target_tracking=(("copilot", policy),)))

    return Contender("copilot-1m", "Copilot backlog per task: visible messages / instances, 60 s periods", build)


def reference_contenders() -> list[Contender]:
    return [cpu_target_tracking(), cdk_queue_processing(), copilot_backlog_per_task()]
