"""A model of EC2 Auto Scaling running our policy objects: target tracking, step scaling, scheduled
capacity, warm-up, min/max, instance boot, termination choice and scale-in protection.

Pure and clock-free: the caller feeds samples and asks for decisions at a time it supplies
(`GroupModel.observe(sample)`, then `GroupModel.decide(now) -> list[ScalingEvent]`), so the simulator
runs it in virtual time and the local twin in (scaled) real time with the same code.

Each rule cites the documentation it follows (abbreviations in `infra.scaling.assumptions`); where the
documentation is silent, the rule is an assumption and lives in `ModelAssumptions`. The alarms are in
`infra.scaling.alarms`, the instances and termination choice in `infra.scaling.group_state`, the
metrics in `infra.scaling.signals`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from infra.scaling.alarms import AlarmState, MetricAlarm
from infra.scaling.assumptions import BOOT_SECONDS, GROUP_METRIC_SECONDS, ImageMode, ModelAssumptions
from infra.scaling.group_state import (
    AVAILABILITY_ZONES,
    GroupView,
    Instance,
    PoolSample,
    ScalingEvent,
    choose_for_termination,
)
from infra.scaling.policy import SCALE_IN_RATIO, PoolScaling, StepScalingPolicy, TargetTrackingPolicy
from infra.scaling.schedules import START_WEEKDAY
from infra.scaling.signals import PUBLISHED, REFERENCE_METRICS, published
from infra.scaling.warm_pool import WarmPool

# The names callers import from here: the model's inputs and outputs.
__all__ = [
    "BOOT_SECONDS",
    "AlarmState",
    "GroupModel",
    "GroupView",
    "ImageMode",
    "Instance",
    "ModelAssumptions",
    "NamedPolicies",
    "PoolSample",
    "ScalingEvent",
]

_Wanted = tuple[int, str, float, str]
"""(capacity a policy asks for, policy name, metric value, reason)."""


class _TargetTracking:
    def __init__(self, name: str, policy: TargetTrackingPolicy, assumptions: ModelAssumptions) -> None:
        self.name = name
        self.policy = policy
        period = float(policy.metric_period_seconds)
        # TT: AWS creates and manages two alarms per policy, a high one for scale-out and a low one
        # for scale-in; the low one fires only under the target less a margin ("more than 10% below").
        self.high = MetricAlarm(
            period,
            assumptions.scale_out_datapoints,
            assumptions.scale_out_datapoints,
            lambda v: v > policy.target_value,
            policy.statistic,
        )
        self.low = MetricAlarm(
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
        self.alarm = MetricAlarm(
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
        warm_pool: WarmPool | None = None,
    ) -> None:
        self.scaling = scaling
        self.warm_pool = warm_pool
        """The group's warm pool (`infra.scaling.warm_pool`): scale-outs take its prepared instances first."""
        self.concurrency = concurrency
        self.assumptions = assumptions
        self.instances: list[Instance] = []
        self._next_id = 0
        self._rng = random.Random(assumptions.termination_seed)
        self.events: list[ScalingEvent] = []
        self.template_version = 1
        """The launch template version the group launches (an instance refresh moves it; TERM prefers the oldest)."""
        tt = [
            ("target-tracking", scaling.target_tracking),
            *(("target-tracking", p) for p in scaling.extra_target_tracking),
        ]
        steps = [(f"step-{name}", policy) for name, policy in scaling.step_policies]
        if not include_pool_policies:
            tt, steps = [], []
        self._tt = [_TargetTracking(n, p, assumptions) for n, p in [*tt, *extra.target_tracking]]
        self._steps = [_StepScaling(n, p) for n, p in [*steps, *extra.step_scaling]]
        read = {t.policy.metric_name for t in self._tt} | {s.policy.metric_name for s in self._steps}
        unknown = sorted(read - PUBLISHED - set(REFERENCE_METRICS))
        if unknown:
            raise ValueError(f"no policy can read {', '.join(unknown)}: neither published nor a reference metric")
        self._references = {name: REFERENCE_METRICS[name] for name in read & set(REFERENCE_METRICS)}
        self._tt_names = {t.name for t in self._tt}
        if not self._tt and not self._steps:
            raise ValueError("GroupModel needs at least one policy")
        # Scheduled capacity is part of the group (its scheduled actions), whichever policy runs.
        self._schedules = scaling.schedules
        start = scaling.min_size if initial is None else initial
        self.desired = min(max(start, self.min_size(now)), scaling.max_size)
        for _ in range(self.desired):
            # Instances present at the start are already in service and warm.
            self._launch(now - assumptions.boot_seconds - 3600, warmup=0.0)
        for alarm in self._alarms():
            alarm.period_end = _next_boundary(now, alarm.period)

    # ------------------------------------------------------------------ views

    def live(self) -> list[Instance]:
        """Instances in the group: Pending or InService, not chosen for termination."""
        return [i for i in self.instances if i.terminated_at is None]

    def min_size(self, now: float) -> int:
        """MinSize now: the group's own, raised by any scheduled action whose window holds `now`."""
        size = self.scaling.min_size
        for schedule in self._schedules:
            if schedule.capacity > size and schedule.active(now, START_WEEKDAY):
                size = schedule.capacity
        return size

    def _in_service_at(self, at: float) -> int:
        return sum(
            1 for i in self.instances if i.in_service_at <= at and (i.terminated_at is None or i.terminated_at > at)
        )

    def view(self, now: float) -> GroupView:
        live = self.live()
        ready = sum(1 for i in live if i.in_service_at <= now and not i.warming(now))
        return GroupView(
            # The capacity rule divides by the publisher's count, read once per sample.
            in_service=self._in_service_at(now - self.assumptions.publisher_lag_seconds),
            ready=ready,
            concurrency=self.concurrency,
            # ASGM: AWS/AutoScaling group metrics are one-minute datapoints: the count at the last minute.
            group_metric_in_service=self._in_service_at(math.floor(now / GROUP_METRIC_SECONDS) * GROUP_METRIC_SECONDS),
        )

    def warming_count(self, now: float) -> int:
        return sum(1 for i in self.live() if i.warming(now))

    def alarm_states(self) -> list[AlarmState]:
        """Every alarm of the group: target tracking's high and low alarms, then each step policy's."""
        states: list[AlarmState] = []
        for tt in self._tt:
            states.append(tt.high.state(f"{tt.name} high"))
            # AWS keeps the low alarm even when the policy does not scale in; its ALARM then does nothing.
            states.append(replace(tt.low.state(f"{tt.name} low"), acts=not tt.policy.disable_scale_in))
        states.extend(step.alarm.state(step.name) for step in self._steps)
        return states

    def _alarms(self) -> list[MetricAlarm]:
        return [a for t in self._tt for a in (t.high, t.low)] + [s.alarm for s in self._steps]

    # ------------------------------------------------------------------ input

    def observe(self, sample: PoolSample) -> None:
        """One sample (every 10 s from our publisher): what the publisher publishes for it (the capacity
        rule, `infra.scaling.signals.published`), and the reference policies' metrics."""
        group = self.view(sample.at)
        values = published(sample, group, self.scaling.signal)
        values.update({name: metric(sample, group) for name, metric in self._references.items()})
        self.observe_published(sample.at, values)

    def observe_published(self, at: float, values: Mapping[str, float | None]) -> None:
        """Datapoints as CloudWatch receives them at `at`, by metric name. Each alarm adds its metric's to
        its current period; a metric absent or None has no datum (a sample the publisher missed, or
        CapacityNeeded at zero in service), and a period without one is missing data."""
        for tt in self._tt:
            value = values.get(tt.policy.metric_name)
            tt.high.add(value, at)
            tt.low.add(value, at)
        for step in self._steps:
            step.alarm.add(values.get(step.policy.metric_name), at)

    # ------------------------------------------------------------------ decisions

    def decide(self, now: float) -> list[ScalingEvent]:
        """Run scheduled actions due by `now`; close every alarm period that ended by `now` less the
        CloudWatch delay, evaluate it, and invoke the actions that are due."""
        events: list[ScalingEvent] = []
        excess = self._terminate_excess(now)
        if excess is not None:
            events.append(excess)
        floor = self.min_size(now)
        if self.desired < floor:
            # Scheduled scaling: a MinSize above the desired capacity raises it at once.
            events.append(self._set_desired(now, floor, "min-size", float(floor), f"MinSize {floor} (scheduled)"))
        horizon = now - self.assumptions.alarm_delay_seconds
        while True:
            due = [a for a in self._alarms() if a.period_end is not None and a.period_end <= horizon]
            if not due:
                break
            boundary = min(a.period_end for a in due if a.period_end is not None)
            out_wanted: list[_Wanted] = []
            in_wanted: list[_Wanted] = []
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
        self, tt: _TargetTracking, value: float | None, now: float, out_wanted: list[_Wanted], in_wanted: list[_Wanted]
    ) -> None:
        if value is None:
            return
        target = tt.policy.target_value
        # WARM: "Amazon EC2 Auto Scaling considers instances that are warming up as part of the
        # current capacity of the group when deciding how many instances to add": the proportional
        # change is computed from the whole desired capacity, warming instances included.
        base = self.desired
        if tt.high.action_due(now):
            tt.high.acted(now)
            # TT: capacity proportional to the metric, rounded up ("scales out proportionally to the
            # metric as fast as it can"). An empty group: `empty_group_counts_as`, an assumption (AWS is
            # silent) that only the reference policies rely on; ours has no datum at zero.
            counted = base if base > 0 else self.assumptions.empty_group_counts_as
            wanted = math.ceil(counted * value / target)
            out_wanted.append((wanted, tt.name, value, f"{tt.policy.metric_name} {value:.3g} > target {target:.3g}"))
        elif tt.low.action_due(now) and not tt.policy.disable_scale_in:
            tt.low.acted(now)
            # TT / API DisableScaleIn; scale-in proportional too, rounded up so it stays conservative.
            wanted = max(math.ceil(max(base, 0) * value / target), 0)
            in_wanted.append(
                (wanted, tt.name, value, f"{tt.policy.metric_name} {value:.3g} < {SCALE_IN_RATIO:.0%} of {target:.3g}")
            )

    def _step(
        self, step: _StepScaling, value: float | None, now: float, out_wanted: list[_Wanted], in_wanted: list[_Wanted]
    ) -> None:
        if value is None or not step.alarm.action_due(now):
            return
        step.alarm.acted(now)
        if now < step.cooldown_until:
            # AAS: a step policy with a cooldown (Application Auto Scaling; EC2 ignores Cooldown on step
            # policies, API) does not act again until it passes.
            return
        # STEP: the step is chosen by the breaching value relative to the threshold.
        adjustment = step.policy.step_for(value)
        if adjustment is None:
            return
        base = self.desired - self.warming_count(now)
        change = adjustment.scaling_adjustment
        kind = step.policy.adjustment_type
        if kind == "ExactCapacity":
            wanted = change
        elif kind == "PercentChangeInCapacity" and self.desired == 0 and not self.assumptions.min_adjustment_at_zero:
            # API: 0 % of an empty group is 0, and rounding is documented only for 0 < |x| < 1; whether
            # MinAdjustmentMagnitude lifts that 0 is not documented (`min_adjustment_at_zero`).
            return
        elif kind == "PercentChangeInCapacity":
            # API (PercentChangeInCapacity): a fraction is rounded towards zero when its magnitude is
            # above 1, away from zero between 0 and 1; MinAdjustmentMagnitude sets a floor.
            raw = base * change / 100
            delta = math.copysign(1, raw) if 0 < abs(raw) < 1 else math.trunc(raw)
            if step.policy.min_adjustment_magnitude is not None and change != 0:
                delta = math.copysign(max(abs(delta), step.policy.min_adjustment_magnitude), change)
            wanted = base + int(delta)
        else:
            # STEP (warm-up): a repeat breach in the same step while instances warm up adds nothing more;
            # a higher step adds only what the warming instances do not already cover.
            wanted = base + change
        unit = " %" if kind == "PercentChangeInCapacity" else " instances"
        step_text = f"set to {change} instances" if kind == "ExactCapacity" else f"step {change:+d}{unit}"
        reason = f"{step.policy.metric_name} {value:.3g} breaches {step.policy.threshold:.3g}: {step_text}"
        if step.policy.scales_in or change < 0:
            in_wanted.append((wanted, step.name, value, reason))
        else:
            out_wanted.append((wanted, step.name, value, reason))

    def _apply(self, now: float, out_wanted: list[_Wanted], in_wanted: list[_Wanted]) -> list[ScalingEvent]:
        lo, hi = self.min_size(now), self.scaling.max_size
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
            for instance in self._choose_for_scale_in(live, len(live) - new, now):
                instance.terminated_at = now  # Terminating:Wait: the drain hook holds it (the caller drains it)
                terminated.append(instance.id)
        for step in self._steps:
            if step.name == policy and step.policy.cooldown_seconds:
                step.cooldown_until = now + step.policy.cooldown_seconds
        return ScalingEvent(now, policy, old, new, value, reason, tuple(launched), tuple(terminated))

    def _choose_for_scale_in(self, live: list[Instance], count: int, now: float) -> list[Instance]:
        # PROT, as our drain agent sets it (worker.drain.protection): an instance is protected from the time
        # one of its tasks has run `protection_after_seconds` until `protection_hold_seconds` after the
        # last such task ends, and AWS picks among the others by TERM. "If all instances ... are
        # protected from scale in, and a scale-in event occurs, its desired capacity is decremented.
        # However, the Auto Scaling group can't terminate the required number of instances until their
        # instance scale-in protection settings are disabled": `decide` terminates the excess as
        # instances lose their protection (`_terminate_excess`).
        hold = self.assumptions.protection_hold_seconds
        agent = self.assumptions.protection == "agent"
        for instance in live:
            instance.protected = agent and instance.protected_by_agent(now, hold)
        return choose_for_termination(live, count, now, self._rng)

    def _terminate_excess(self, now: float) -> ScalingEvent | None:
        """Instances above the desired capacity that were protected when it dropped, once they are not."""
        live = self.live()
        excess = len(live) - self.desired
        if excess <= 0:
            return None
        chosen = self._choose_for_scale_in(live, excess, now)
        if not chosen:
            return None
        for instance in chosen:
            instance.terminated_at = now
        ids = tuple(i.id for i in chosen)
        reason = f"{len(ids)} instance(s) above the desired capacity no longer protected from scale-in"
        return ScalingEvent(now, "protection", self.desired, self.desired, float(len(ids)), reason, (), ids)

    def replace(self, ids: Collection[int], now: float) -> list[Instance]:
        """An instance refresh's batch (the Rolling strategy "terminates instances and launches new ones in
        batches", https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-overview.html):
        these instances leave the group and as many replacements of `template_version` launch; the desired
        capacity is unchanged. The caller drains the terminated instances."""
        for instance in self.instances:
            if instance.id in ids and instance.terminated_at is None:
                instance.terminated_at = now
        return [self._launch(now) for _ in ids]

    def _launch(self, now: float, warmup: float | None = None) -> Instance:
        # WARM: the warm-up counts from InService ("how long after an instance reaches the InService
        # state it waits before contributing usage data"), the longest of the policies' warm-ups.
        boot = self.assumptions.boot_seconds
        if self.warm_pool is not None and warmup is None:  # a scale-out, not an instance present at the start
            boot = self.warm_pool.take(now, boot)
        if warmup is None:
            warmup = max(t.policy.estimated_instance_warmup_seconds for t in self._tt) if self._tt else 0.0
            if self._steps:
                warmup = max(warmup, *(s.policy.estimated_instance_warmup_seconds for s in self._steps))
        in_service = now + boot
        # AWS launches into the AZ with the fewest instances, keeping the group balanced (TERM, "Availability
        # Zone rebalancing"); the model's AZs are numbered.
        zones = [sum(1 for i in self.live() if i.zone == z) for z in range(AVAILABILITY_ZONES)]
        zone = zones.index(min(zones))
        instance = Instance(self._next_id, now, in_service, in_service + warmup, zone, self.template_version)
        self._next_id += 1
        self.instances.append(instance)
        return instance


def _next_boundary(now: float, period: float) -> float:
    return (math.floor(now / period) + 1) * period
