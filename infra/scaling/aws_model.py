"""A model of EC2 Auto Scaling running our policy objects: alarms, target tracking, step scaling,
warm-up, cooldowns, min/max and instance boot.

Pure and clock-free: the caller feeds samples and asks for decisions at a time it supplies
(`GroupModel.observe(sample)`, then `GroupModel.decide(now) -> list[ScalingEvent]`), so the simulator
runs it in virtual time and the local cluster in (scaled) real time with the same code.

Each rule cites the documentation it follows. Abbreviations:
- TT:   https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-target-tracking.html
- HR:   https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html
- STEP: https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
- WARM: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-default-instance-warmup.html
- API:  https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScalingPolicy.html
- CWA:  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-actions.html
- AAS:  https://docs.aws.amazon.com/autoscaling/application/userguide/step-scaling-policy-overview.html
Where the documentation is silent, the rule is an assumption and lives in `ModelAssumptions`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from infra.scaling.policy import (
    SCALE_IN_RATIO,
    PoolScaling,
    StepScalingPolicy,
    TargetTrackingPolicy,
)
from worker.names import METRIC_BACKLOG_PER_INSTANCE, METRIC_OLDEST_AGE

ImageMode = Literal["ami", "bake", "boot"]

# Metric names of the reference policies (the simulator's comparisons); ours come from worker.names.
METRIC_CPU: Final = "CPUUtilization"
METRIC_VISIBLE: Final = "ApproximateNumberOfMessagesVisible"
METRIC_WAITING_PER_INSTANCE: Final = "WaitingPerInstance"

# Seconds from launch until a new instance's worker consumes tasks, per image mode. ASSUMPTIONS, not
# measurements (no AWS account here): a baked image (bake, or an AMI that already holds the worker)
# boots Amazon Linux 2023 and starts the worker unit; `boot` also installs the worker package at boot.
BOOT_SECONDS: Final[Mapping[ImageMode, float]] = {"bake": 60.0, "ami": 60.0, "boot": 180.0}


@dataclass(frozen=True)
class ModelAssumptions:
    """What the model assumes where AWS documents no number. Every field is a stated assumption."""

    boot_seconds: float = BOOT_SECONDS["bake"]
    """Launch to first task consumed (Pending + worker start); see BOOT_SECONDS per image mode."""

    scale_out_datapoints: int = 3
    """Target tracking's high alarm: this many of as many datapoints at the policy's metric period.
    AWS creates "3 datapoints within 3 minutes" for 1-minute metrics (TT, the alarms it manages);
    for high-resolution periods (HR) we assume the same count at the shorter period, as AWS's
    ECS figures imply (20 s metrics: scale-out trigger in 86 s, not 363 s)."""

    scale_in_datapoints: int = 15
    """Target tracking's low alarm: 15 of 15 datapoints ("15 datapoints within 15 minutes"), at the period."""

    alarm_delay_seconds: float = 0.0
    """Seconds after a period closes before its alarm evaluates (CloudWatch ingestion); 0 = none modelled."""

    scale_in_drain_seconds: float = 0.0
    """Extra seconds a terminated instance is billed after its tasks finish (lifecycle hook, shutdown)."""


@dataclass(frozen=True)
class PoolSample:
    """What the publisher (and EC2) report about the pool at one instant."""

    at: float
    waiting: int
    in_flight: int
    oldest_age: float
    busy_processes_ready: int = 0
    """Busy worker processes on instances past warm-up (the CPU metric AWS aggregates sees only those)."""


@dataclass
class Instance:
    id: int
    launched_at: float
    in_service_at: float
    warm_until: float
    terminated_at: float | None = None

    def in_service(self, now: float) -> bool:
        return self.in_service_at <= now and self.terminated_at is None

    def warming(self, now: float) -> bool:
        return self.terminated_at is None and now < self.warm_until


@dataclass(frozen=True)
class ScalingEvent:
    at: float
    policy: str
    """Which policy acted: "target-tracking", "step-scaling", or a reference policy's name."""
    old_desired: int
    new_desired: int
    metric: float
    reason: str
    launched: tuple[int, ...] = ()
    terminated: tuple[int, ...] = ()

    @property
    def direction(self) -> Literal["out", "in"]:
        return "out" if self.new_desired > self.old_desired else "in"


@dataclass(frozen=True)
class AlarmState:
    """One alarm as a live view shows it (the local cluster's terminal view)."""

    name: str
    in_alarm: bool
    last_value: float | None
    """The statistic of the last closed period; None when that period had no sample."""


@dataclass(frozen=True)
class GroupView:
    """The group as the metric functions see it at one instant."""

    in_service: int
    ready: int
    concurrency: int


MetricFunction = Callable[[PoolSample, GroupView], float | None]


def _backlog_per_instance(s: PoolSample, g: GroupView) -> float:
    # docs/architecture.md: (waiting + in-flight) / max(in-service, 1); worker.publisher publishes exactly this.
    return (s.waiting + s.in_flight) / max(g.in_service, 1)


def _cpu(s: PoolSample, g: GroupView) -> float | None:
    # ASGAverageCPUUtilization: the group's average, from instances past warm-up only (WARM:
    # "how long after an instance reaches the InService state it waits before contributing usage
    # data to the aggregated metrics"). With none, there is no datapoint. Tasks are CPU-bound here.
    if g.ready == 0:
        return None
    return 100.0 * s.busy_processes_ready / (g.ready * g.concurrency)


METRICS: Final[Mapping[str, MetricFunction]] = {
    METRIC_BACKLOG_PER_INSTANCE: _backlog_per_instance,
    METRIC_OLDEST_AGE: lambda s, g: s.oldest_age,
    METRIC_CPU: _cpu,
    METRIC_VISIBLE: lambda s, g: float(s.waiting),
    METRIC_WAITING_PER_INSTANCE: lambda s, g: s.waiting / max(g.in_service, 1),
}


@dataclass
class _Alarm:
    """A CloudWatch metric alarm: M of the last N period datapoints breach -> ALARM.

    Datapoints are the period's statistic over the samples published in it; a period with no
    sample is missing and counts as not breaching.
    """

    period: float
    evaluation_periods: int
    datapoints_to_alarm: int
    breaches: Callable[[float], bool]
    statistic: str
    values: deque[float | None] = field(default_factory=deque)
    buckets: dict[float, list[float]] = field(default_factory=dict)
    """Samples by the end of the period they fall in; a period is (end - period, end]."""
    period_end: float | None = None
    in_alarm: bool = False

    def add(self, value: float | None, at: float) -> None:
        if value is not None:
            end = math.ceil(at / self.period) * self.period
            self.buckets.setdefault(end, []).append(value)

    def close_period(self) -> float | None:
        assert self.period_end is not None
        samples = self.buckets.pop(self.period_end, [])
        for stale in [end for end in self.buckets if end < self.period_end]:
            del self.buckets[stale]  # a period that closed before this alarm existed
        if not samples:
            value: float | None = None
        elif self.statistic == "Maximum":
            value = max(samples)
        elif self.statistic == "Minimum":
            value = min(samples)
        elif self.statistic == "Sum":
            value = sum(samples)
        else:
            value = sum(samples) / len(samples)
        self.values.append(value)
        while len(self.values) > self.evaluation_periods:
            self.values.popleft()
        breaching = sum(1 for v in self.values if v is not None and self.breaches(v))
        self.in_alarm = breaching >= self.datapoints_to_alarm
        return value


class _TargetTracking:
    def __init__(self, name: str, policy: TargetTrackingPolicy, assumptions: ModelAssumptions) -> None:
        self.name = name
        self.policy = policy
        self.metric = METRICS[policy.metric_name]
        period = float(policy.metric_period_seconds)
        # TT: AWS creates and manages two alarms per policy, a high one for scale-out and a low one
        # for scale-in; the low one fires only under the target less a margin ("more than 10% below").
        self.high = _Alarm(
            period,
            assumptions.scale_out_datapoints,
            assumptions.scale_out_datapoints,
            lambda v: v > policy.target_value,
            policy.statistic,
        )
        self.low = _Alarm(
            period,
            assumptions.scale_in_datapoints,
            assumptions.scale_in_datapoints,
            lambda v: v < policy.target_value * SCALE_IN_RATIO,
            policy.statistic,
        )

    @property
    def period(self) -> float:
        return self.high.period


class _StepScaling:
    def __init__(self, name: str, policy: StepScalingPolicy) -> None:
        self.name = name
        self.policy = policy
        self.metric = METRICS[policy.metric_name]
        self.alarm = _Alarm(
            float(policy.metric_period_seconds),
            policy.evaluation_periods,
            policy.datapoints_to_alarm,
            policy.breaches,
            policy.statistic,
        )
        self.cooldown_until = -math.inf

    @property
    def period(self) -> float:
        return self.alarm.period


@dataclass(frozen=True)
class NamedPolicies:
    """Policies beyond a PoolScaling (the reference policies): extra target-tracking and step policies."""

    target_tracking: tuple[tuple[str, TargetTrackingPolicy], ...] = ()
    step_scaling: tuple[tuple[str, StepScalingPolicy], ...] = ()


class GroupModel:
    """One Auto Scaling group and its policies. Feed `observe` every sample; call `decide` after."""

    def __init__(
        self,
        scaling: PoolScaling,
        concurrency: int,
        assumptions: ModelAssumptions,
        now: float = 0.0,
        initial: int | None = None,
        extra: NamedPolicies = NamedPolicies(),
        include_pool_policies: bool = True,
    ) -> None:
        self.scaling = scaling
        self.concurrency = concurrency
        self.assumptions = assumptions
        self.instances: list[Instance] = []
        self._next_id = 0
        self.events: list[ScalingEvent] = []
        tt = [
            ("target-tracking", scaling.target_tracking),
            *(("target-tracking", p) for p in scaling.extra_target_tracking),
        ]
        steps = [(f"step-{name}", policy) for name, policy in scaling.step_policies]
        if not include_pool_policies:
            tt, steps = [], []
        self._tt = [_TargetTracking(n, p, assumptions) for n, p in [*tt, *extra.target_tracking]]
        self._steps = [_StepScaling(n, p) for n, p in [*steps, *extra.step_scaling]]
        self._tt_names = {t.name for t in self._tt}
        if not self._tt and not self._steps:
            raise ValueError("GroupModel needs at least one policy")
        start = scaling.min_size if initial is None else initial
        self.desired = min(max(start, scaling.min_size), scaling.max_size)
        for _ in range(self.desired):
            # Instances present at the start are already in service and warm.
            self._launch(now - assumptions.boot_seconds - 3600, warmup=0.0)
        for alarm in self._alarms():
            alarm.period_end = _next_boundary(now, alarm.period)

    # ------------------------------------------------------------------ views

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i.terminated_at is None]

    def view(self, now: float) -> GroupView:
        live = self.live()
        in_service = sum(1 for i in live if i.in_service_at <= now)
        ready = sum(1 for i in live if i.in_service_at <= now and not i.warming(now))
        return GroupView(in_service=in_service, ready=ready, concurrency=self.concurrency)

    def warming_count(self, now: float) -> int:
        return sum(1 for i in self.live() if i.warming(now))

    def alarm_states(self) -> list[AlarmState]:
        """Every alarm of the group: target tracking's high and low alarms, then each step policy's."""
        states: list[AlarmState] = []
        for tt in self._tt:
            for label, alarm in (("high", tt.high), ("low", tt.low)):
                last = alarm.values[-1] if alarm.values else None
                states.append(AlarmState(f"{tt.name} {label}", alarm.in_alarm, last))
        for step in self._steps:
            last = step.alarm.values[-1] if step.alarm.values else None
            states.append(AlarmState(step.name, step.alarm.in_alarm, last))
        return states

    def _alarms(self) -> list[_Alarm]:
        return [a for t in self._tt for a in (t.high, t.low)] + [s.alarm for s in self._steps]

    # ------------------------------------------------------------------ input

    def observe(self, sample: PoolSample) -> None:
        """One published sample (every 10 s from our publisher). Each alarm adds it to its current period."""
        group = self.view(sample.at)
        for tt in self._tt:
            value = tt.metric(sample, group)
            tt.high.add(value, sample.at)
            tt.low.add(value, sample.at)
        for step in self._steps:
            step.alarm.add(step.metric(sample, group), sample.at)

    # ------------------------------------------------------------------ decisions

    def decide(self, now: float) -> list[ScalingEvent]:
        """Close every alarm period that ended by `now` (less the alarm delay), evaluate, and act."""
        events: list[ScalingEvent] = []
        horizon = now - self.assumptions.alarm_delay_seconds
        while True:
            due = [a for a in self._alarms() if a.period_end is not None and a.period_end <= horizon]
            if not due:
                break
            boundary = min(a.period_end for a in due if a.period_end is not None)
            out_wanted: list[tuple[int, str, float, str]] = []
            in_wanted: list[tuple[int, str, float, str]] = []
            for tt in self._tt:
                if tt.high.period_end != boundary:
                    continue
                value = tt.high.close_period()
                tt.low.close_period()
                tt.high.period_end = tt.low.period_end = boundary + tt.period
                self._target_tracking(tt, value, now, out_wanted, in_wanted)
            for step in self._steps:
                if step.alarm.period_end != boundary:
                    continue
                value = step.alarm.close_period()
                step.alarm.period_end = boundary + step.period
                self._step(step, value, now, out_wanted, in_wanted)
            events.extend(self._apply(now, out_wanted, in_wanted))
        self.events.extend(events)
        return events

    def _target_tracking(
        self,
        tt: _TargetTracking,
        value: float | None,
        now: float,
        out_wanted: list[tuple[int, str, float, str]],
        in_wanted: list[tuple[int, str, float, str]],
    ) -> None:
        if value is None:
            return
        target = tt.policy.target_value
        warming = self.warming_count(now)
        # WARM: "Amazon EC2 Auto Scaling considers instances that are warming up as part of the
        # current capacity of the group when deciding how many instances to add": capacity changes
        # are computed from instances past warm-up, and the group grows only to what that implies.
        base = self.desired - warming
        if tt.high.in_alarm:
            # TT: capacity proportional to the metric, rounded up ("scales out proportionally to the
            # metric as fast as it can"). A pool at zero has a metric that already is the whole backlog
            # (divided by max(in-service, 1)), so it counts as one instance: an assumption, AWS is silent.
            wanted = math.ceil(max(base, 1) * value / target)
            # CWA: an alarm with Auto Scaling actions invokes them again while it stays in ALARM.
            out_wanted.append((wanted, tt.name, value, f"{tt.policy.metric_name} {value:.3g} > target {target:.3g}"))
        elif tt.low.in_alarm and not tt.policy.disable_scale_in:
            # TT / API DisableScaleIn; scale-in proportional too, rounded up so it stays conservative.
            wanted = max(math.ceil(max(base, 0) * value / target), 0)
            in_wanted.append(
                (wanted, tt.name, value, f"{tt.policy.metric_name} {value:.3g} < {SCALE_IN_RATIO:.0%} of {target:.3g}")
            )

    def _step(
        self,
        step: _StepScaling,
        value: float | None,
        now: float,
        out_wanted: list[tuple[int, str, float, str]],
        in_wanted: list[tuple[int, str, float, str]],
    ) -> None:
        if value is None or not step.alarm.in_alarm or now < step.cooldown_until:
            # AAS: a step policy with a cooldown (Application Auto Scaling; EC2 ignores Cooldown on step
            # policies, API) does not act again until it passes.
            return
        # STEP: the step is chosen by the breaching value relative to the threshold.
        adjustment = step.policy.step_for(value)
        if adjustment is None:
            return
        warming = self.warming_count(now)
        base = self.desired - warming
        change = adjustment.scaling_adjustment
        kind = step.policy.adjustment_type
        if kind == "ExactCapacity":
            wanted = change
        elif kind == "PercentChangeInCapacity":
            # API (PercentChangeInCapacity): a fraction is rounded towards zero when its magnitude is
            # above 1, away from zero between 0 and 1; MinAdjustmentMagnitude sets a floor.
            raw = base * change / 100
            delta = math.copysign(1, raw) if 0 < abs(raw) < 1 else math.trunc(raw)
            if step.policy.min_adjustment_magnitude is not None and delta != 0:
                delta = math.copysign(max(abs(delta), step.policy.min_adjustment_magnitude), delta)
            wanted = base + int(delta)
        else:
            # STEP (warm-up): a repeat breach in the same step while instances warm up adds nothing more;
            # a higher step adds only what the warming instances do not already cover.
            wanted = base + change
        reason = f"{step.policy.metric_name} {value:.3g} breaches {step.policy.threshold:.3g}: step {change:+d}"
        if step.policy.scales_in or change < 0:
            in_wanted.append((wanted, step.name, value, reason))
        else:
            out_wanted.append((wanted, step.name, value, reason))

    def _apply(
        self,
        now: float,
        out_wanted: list[tuple[int, str, float, str]],
        in_wanted: list[tuple[int, str, float, str]],
    ) -> list[ScalingEvent]:
        lo, hi = self.scaling.min_size, self.scaling.max_size
        if out_wanted:
            # TT (multiple policies): "if any of the target tracking policies are ready to scale out, it
            # scales out"; with several wanting to, the largest capacity wins (availability first).
            wanted, name, value, reason = max(out_wanted)
            new = min(max(wanted, lo), hi)  # API: no policy goes past MinSize/MaxSize
            if new > self.desired:
                return [self._set_desired(now, new, name, value, reason)]
            return []
        if self.warming_count(now) > 0:
            # WARM: while instances warm up, dynamic scale-in is blocked.
            return []
        # TT (multiple policies): target tracking scales in only when every target-tracking policy with
        # scale-in enabled is ready to; step policies act on their own alarms.
        tt_ready = all(t.low.in_alarm for t in self._tt if not t.policy.disable_scale_in)
        real = [w for w in in_wanted if w[1] not in self._tt_names or tt_ready]
        if not real:
            return []
        wanted, name, value, reason = max(real)  # the most conservative scale-in
        new = min(max(wanted, lo), hi)
        if new < self.desired:
            for step in self._steps:
                if step.name == name and step.policy.cooldown_seconds:
                    step.cooldown_until = now + step.policy.cooldown_seconds
            return [self._set_desired(now, new, name, value, reason)]
        return []

    def _set_desired(self, now: float, new: int, policy: str, value: float, reason: str) -> ScalingEvent:
        old = self.desired
        self.desired = new
        launched: list[int] = []
        terminated: list[int] = []
        live = self.live()
        if new > len(live):
            for _ in range(new - len(live)):
                launched.append(self._launch(now).id)
        elif new < len(live):
            # Default termination policy, simplified: the oldest instance goes first (per-second billing
            # makes "closest to the next billing hour" moot). It drains: see the simulator's billing.
            for instance in sorted(live, key=lambda i: i.launched_at)[: len(live) - new]:
                instance.terminated_at = now
                terminated.append(instance.id)
        for step in self._steps:
            if step.name == policy and step.policy.cooldown_seconds:
                step.cooldown_until = now + step.policy.cooldown_seconds
        return ScalingEvent(now, policy, old, new, value, reason, tuple(launched), tuple(terminated))

    def _launch(self, now: float, warmup: float | None = None) -> Instance:
        # API EstimatedInstanceWarmup: "the estimated time, in seconds, until a newly launched instance
        # can contribute to the CloudWatch metrics", counted here from launch.
        if warmup is None:
            warmup = max(t.policy.estimated_instance_warmup_seconds for t in self._tt) if self._tt else 0.0
            if self._steps:
                warmup = max(warmup, *(s.policy.estimated_instance_warmup_seconds for s in self._steps))
        instance = Instance(self._next_id, now, now + self.assumptions.boot_seconds, now + warmup)
        self._next_id += 1
        self.instances.append(instance)
        return instance


def _next_boundary(now: float, period: float) -> float:
    return (math.floor(now / period) + 1) * period
