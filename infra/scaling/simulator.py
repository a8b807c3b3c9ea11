"""The simulator: a trace through a pool of worker instances scaled by `GroupModel`, in virtual time.

Time advances in fixed steps of the publisher's sample interval (10 s). Within a step, tasks start
exactly, by the multi-server FIFO recursion: each task starts at max(its arrival, the earliest time a
worker process is free), on a heap of process free-times. A launched instance adds `concurrency`
processes that become free when it is in service; a terminated one gives up its soonest-free
processes and is billed until its running tasks finish (soft shutdown: no task is lost).

What it does not model: prefetch beyond one task per process (docs/architecture.md: prefetch 1), broker
latency, task failures and retries, instance launch failures, Spot interruptions, and which instance
a busy process sits on (busy processes are spread over in-service instances in proportion, for the
CPU metric of the reference policy).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from infra.scaling.aws_model import (
    BOOT_SECONDS,
    METRIC_CPU,
    METRIC_VISIBLE,
    METRIC_WAITING_PER_INSTANCE,
    GroupModel,
    ImageMode,
    ModelAssumptions,
    NamedPolicies,
    PoolSample,
    ScalingEvent,
)
from infra.scaling.policy import PoolScaling, StepAdjustment, StepScalingPolicy, TargetTrackingPolicy
from infra.scaling.traces import FloatArray, Trace

SAMPLE_SECONDS: Final = 10.0
# After the trace ends, keep going until every task has started, for at most this long.
DRAIN_LIMIT_SECONDS: Final = 4 * 3600.0


@dataclass(frozen=True)
class PoolSpec:
    """What the simulator needs to know about one pool (built from the stack config by `infra.scaling.stack`)."""

    name: str
    concurrency: int
    min_size: int
    max_size: int
    acceptable_latency_seconds: float
    average_task_seconds: float
    slo_seconds: float
    """Queue wait that breaches the SLO (the latency alarm threshold)."""
    hourly_usd: float
    """Blended price of one instance-hour."""
    image_mode: ImageMode
    scaling: PoolScaling
    """Our policy for this pool, as the Pulumi program renders it."""

    @property
    def capacity_per_second(self) -> float:
        return self.max_size * self.concurrency / self.average_task_seconds


# ----------------------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class Contender:
    """A policy to run: ours from the config, or a reference policy built from the same pool."""

    name: str
    description: str
    build: Callable[[PoolSpec, ModelAssumptions], GroupModel]


def ours(label: str = "ours") -> Contender:
    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        return GroupModel(spec.scaling, spec.concurrency, assumptions)

    return Contender(label, "target tracking on backlog per instance (10 s) + step scaling on queue latency", build)


def _warmup(spec: PoolSpec) -> int:
    return spec.scaling.target_tracking.estimated_instance_warmup_seconds


def _reference_model(spec: PoolSpec, assumptions: ModelAssumptions, policies: NamedPolicies) -> GroupModel:
    """A group that runs only a reference policy (none of the pool's own) under the same model."""
    return GroupModel(spec.scaling, spec.concurrency, assumptions, extra=policies, include_pool_policies=False)


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
    instances runs `concurrency` tasks at once)."""

    def build(spec: PoolSpec, assumptions: ModelAssumptions) -> GroupModel:
        policy = TargetTrackingPolicy(
            target_value=spec.scaling.target_tracking.target_value,
            metric_name=METRIC_WAITING_PER_INSTANCE,
            metric_period_seconds=60,
            estimated_instance_warmup_seconds=_warmup(spec),
        )
        return _reference_model(spec, assumptions, NamedPolicies(target_tracking=(("copilot", policy),)))

    return Contender("copilot-1m", "Copilot backlog per task: visible messages / instances, 60 s periods", build)


def reference_contenders() -> list[Contender]:
    return [cpu_target_tracking(), cdk_queue_processing(), copilot_backlog_per_task()]


# ----------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Timeline:
    """One row per sample step, for the plot."""

    t: FloatArray
    arrivals_per_second: FloatArray
    backlog: FloatArray
    oldest_age: FloatArray
    in_service: FloatArray
    desired: FloatArray


@dataclass(frozen=True)
class SimulationResult:
    policy: str
    trace: str
    tasks: int
    p50_wait: float
    p95_wait: float
    p99_wait: float
    max_wait: float
    max_backlog: int
    minutes_over_slo: float
    scale_outs: int
    scale_ins: int
    instance_hours: float
    cost_usd: float
    peak_instances: int
    first_scale_out_after_burst: float | None
    """Seconds from the trace's burst start to the first scale-out decision; None without a burst or decision."""
    simulated_seconds: float
    wall_seconds: float
    events: tuple[ScalingEvent, ...]
    timeline: Timeline = field(repr=False)
    slo_seconds: float = 0.0

    @property
    def meets_slo(self) -> bool:
        return self.p95_wait <= self.slo_seconds

    @property
    def speed(self) -> float:
        """Simulated seconds per wall-clock second."""
        return self.simulated_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf


def perfect_foresight_instance_hours(spec: PoolSpec, trace: Trace, bucket_seconds: float = 60.0) -> float:
    """The perfect-foresight lower bound on instance-hours: each minute, exactly the (fractional)
    instances that the minute's arriving work needs, started and stopped instantly and for free,
    never fewer than min_size. A policy can only beat it by holding work for longer than a minute."""
    buckets = math.ceil(trace.duration / bucket_seconds)
    index = np.minimum((trace.arrivals // bucket_seconds).astype(np.int64), buckets - 1)
    work = np.bincount(index, weights=trace.task_seconds, minlength=buckets)
    instances = np.maximum(work / (spec.concurrency * bucket_seconds), spec.min_size)
    return float(instances.sum() * bucket_seconds / 3600)


# ----------------------------------------------------------------------------------------- the loop


def simulate(
    spec: PoolSpec,
    trace: Trace,
    contender: Contender,
    assumptions: ModelAssumptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run one policy over one trace. `progress`, if given, is called with the fraction done."""
    started_wall = time.perf_counter()
    if assumptions is None:
        assumptions = ModelAssumptions(boot_seconds=BOOT_SECONDS[spec.image_mode])
    model = contender.build(spec, assumptions)
    concurrency = spec.concurrency

    arrivals = trace.arrivals.tolist()
    service = trace.task_seconds.tolist()
    n = len(arrivals)
    waits = np.empty(n, dtype=np.float64)

    # Process free-times. Instances at the start are in service: their processes are free now.
    free_at: list[float] = [0.0] * (model.desired * concurrency)
    heapq.heapify(free_at)
    billed_from: dict[int, float] = {i.id: 0.0 for i in model.live()}
    billed_until: dict[int, float] = {}

    head = 0  # next task to start (FIFO): tasks head..arrived-1 are waiting
    arrived = 0
    step = SAMPLE_SECONDS
    end_limit = trace.duration + DRAIN_LIMIT_SECONDS
    rows: list[tuple[float, float, float, float, float, float]] = []
    t = 0.0
    peak = model.desired
    heappush, heapreplace, heappop = heapq.heappush, heapq.heapreplace, heapq.heappop
    next_progress = 0.0

    while t < trace.duration or (head < n and t < end_limit):
        t_end = t + step
        # Start every task that can start before t_end, in FIFO order.
        while head < n and free_at:
            arrival = arrivals[head]
            if arrival >= t_end:
                break
            slot = free_at[0]
            start = arrival if arrival > slot else slot
            if start >= t_end:
                break
            heapreplace(free_at, start + service[head])
            waits[head] = start - arrival
            head += 1
        step_arrivals = arrived
        while arrived < n and arrivals[arrived] < t_end:
            arrived += 1
        step_arrivals = arrived - step_arrivals

        # What the publisher sees at t_end.
        waiting = arrived - head
        in_flight = 0
        for value in free_at:
            if value > t_end:
                in_flight += 1
        oldest = t_end - arrivals[head] if waiting > 0 else 0.0
        group = model.view(t_end)
        busy_ready = round(in_flight * group.ready / group.in_service) if group.in_service else 0
        model.observe(PoolSample(t_end, waiting, in_flight, oldest, busy_ready))
        for event in model.decide(t_end):
            for instance_id in event.launched:
                instance = next(i for i in model.instances if i.id == instance_id)
                billed_from[instance_id] = t_end
                for _ in range(concurrency):
                    heappush(free_at, instance.in_service_at)
            for instance_id in event.terminated:
                # Soft shutdown: the instance stops taking tasks, finishes what it runs, then goes.
                drained_at = t_end
                for _ in range(min(concurrency, len(free_at))):
                    drained_at = max(drained_at, heappop(free_at))
                billed_until[instance_id] = drained_at + assumptions.scale_in_drain_seconds

        backlog = waiting + in_flight
        peak = max(peak, len(model.live()))
        rows.append((t_end, step_arrivals / step, backlog, oldest, group.in_service, model.desired))
        t = t_end
        if progress is not None and t >= next_progress:
            progress(min(t / trace.duration, 1.0))
            next_progress = t + 3600

    sim_end = t
    instance_hours = 0.0
    for instance in model.instances:
        start = billed_from.get(instance.id, instance.launched_at)
        stop = billed_until.get(instance.id, sim_end)
        instance_hours += max(0.0, min(stop, sim_end) - max(start, 0.0)) / 3600
    started_waits = waits[:head]
    if head < n:  # tasks that never started within the drain limit: their waits are at least this long
        started_waits = np.concatenate([started_waits, sim_end - np.asarray(arrivals[head:])])
    return summarise_run(
        policy=contender.name,
        spec=spec,
        trace=trace,
        model=model,
        waits=started_waits,
        rows=rows,
        instance_hours=instance_hours,
        peak=peak,
        simulated_seconds=sim_end,
        wall_seconds=time.perf_counter() - started_wall,
    )


def summarise_run(
    *,
    policy: str,
    spec: PoolSpec,
    trace: Trace,
    model: GroupModel,
    waits: np.ndarray,
    rows: list[tuple[float, float, float, float, float, float]],
    instance_hours: float,
    peak: int,
    simulated_seconds: float,
    wall_seconds: float,
) -> SimulationResult:
    """One run's result from its task waits and its 10 s samples (time, arrivals/s, backlog, oldest
    age, in service, desired): shared by the simulator and the local twin so both report alike."""
    percentiles = np.percentile(waits, [50, 95, 99]) if waits.size else np.zeros(3)
    columns = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    outs = [e for e in model.events if e.direction == "out"]
    first_after_burst = None
    if trace.burst_start is not None:
        after = [e.at for e in outs if e.at >= trace.burst_start]
        first_after_burst = after[0] - trace.burst_start if after else None
    return SimulationResult(
        policy=policy,
        trace=trace.name,
        tasks=trace.count,
        p50_wait=float(percentiles[0]),
        p95_wait=float(percentiles[1]),
        p99_wait=float(percentiles[2]),
        max_wait=float(waits.max()) if waits.size else 0.0,
        max_backlog=int(columns[:, 2].max()) if rows else 0,
        minutes_over_slo=int(np.count_nonzero(columns[:, 3] > spec.slo_seconds)) * SAMPLE_SECONDS / 60,
        scale_outs=len(outs),
        scale_ins=len(model.events) - len(outs),
        instance_hours=instance_hours,
        cost_usd=instance_hours * spec.hourly_usd,
        peak_instances=peak,
        first_scale_out_after_burst=first_after_burst,
        simulated_seconds=simulated_seconds,
        wall_seconds=wall_seconds,
        events=tuple(model.events),
        timeline=Timeline(*(columns[:, i].copy() for i in range(6))),
        slo_seconds=spec.slo_seconds,
    )
