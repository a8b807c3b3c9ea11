"""What the model of AWS assumes where AWS publishes no number, and the documented constants it follows.

Every field of `ModelAssumptions` is a named assumption with its default; `make bench` shows how the
result moves with the two that matter most (launch-to-ready and the CloudWatch delay).

Sources (cited by abbreviation here and in the modules of `infra.scaling`):
- TT:   https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-target-tracking.html
- HR:   https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html
- STEP: https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-simple-step.html
- WARM: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-default-instance-warmup.html
- API:  https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScalingPolicy.html
- CWA:  https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-actions.html
- AAS:  https://docs.aws.amazon.com/autoscaling/application/userguide/step-scaling-policy-overview.html
- TERM: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-termination-policies.html
- PROT: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-protection.html
- HOOK: https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html
- LIFE: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html
- ASGM: https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-metrics.html
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

ImageMode = Literal["ami", "bake", "boot"]
ProtectionRule = Literal["agent", "none"]

# Seconds from launch until a new instance's worker consumes tasks, per image mode. ASSUMPTIONS, not
# measurements (no AWS account here): a baked image (bake, or an AMI that already holds the worker)
# boots Amazon Linux 2023 and starts the worker unit; `boot` also installs the worker package at boot.
BOOT_SECONDS: Final[Mapping[ImageMode, float]] = {"bake": 60.0, "ami": 60.0, "boot": 180.0}

ACTION_REPEAT_SECONDS: Final = 60.0
"""CWA: "an alarm invokes an Auto Scaling action once each minute when the alarm remains in a new
state, regardless of the configured time period". Documented, so a constant, not an assumption."""

GROUP_METRIC_SECONDS: Final = 60.0
"""ASGM: Auto Scaling group metrics (GroupInServiceInstances, ...) have one-minute granularity."""

DEFAULT_ALARM_DELAY_SECONDS: Final = 20.0
"""The default CloudWatch ingestion + evaluation delay. AWS's own figure for ECS with 20 s metrics
is a scale-out trigger 86 s after the load (HR), which is 3 periods (60 s) plus about 26 s."""

SENSITIVITY_BOOT_SECONDS: Final = (60.0, 90.0, 120.0, 180.0)
SENSITIVITY_DELAY_SECONDS: Final = (0.0, 10.0, 20.0)
SENSITIVITY_WARM_SECONDS: Final = (10.0, 20.0, 30.0, 45.0, 60.0)
"""Launch-to-ready of a warm-pool instance the bench tries (`warm_launch_seconds`)."""


@dataclass(frozen=True)
class ModelAssumptions:
    """What the model assumes where AWS documents no number. Every field is a stated assumption."""

    boot_seconds: float = BOOT_SECONDS["bake"]
    """Launch to ready (first task consumed: Pending, InService, worker start); BOOT_SECONDS per image
    mode. Warm-up counts from InService (WARM: "how long after an instance reaches the InService state"),
    which this model puts at the same instant as ready."""

    alarm_delay_seconds: float = DEFAULT_ALARM_DELAY_SECONDS
    """Seconds after a period closes before its alarm evaluates it (CloudWatch ingestion and evaluation)."""

    warm_launch_seconds: float | None = None
    """Launch-to-ready of an instance a scale-out takes from the pool's warm pool; None =
    `infra.scaling.warm_pool.WARM_LAUNCH_SECONDS` for the warm pool's state (an assumption with its source there)."""

    scale_out_datapoints: int = 3
    """Target tracking's high alarm: this many of as many datapoints at the policy's metric period.
    AWS creates "3 datapoints within 3 minutes" for 1-minute metrics (TT, the alarms it manages);
    for high-resolution periods (HR) we assume the same count at the shorter period, as AWS's
    ECS figures imply (20 s metrics: scale-out trigger in 86 s, not 363 s)."""

    scale_in_datapoints: int = 15
    """Target tracking's low alarm: 15 of 15 datapoints ("15 datapoints within 15 minutes"), at the period."""

    publisher_lag_seconds: float = 10.0
    """Age of the in-service count in a published sample: the publisher reads the group once per
    10 s sample, so the count it divides by is up to one sample old."""

    protection: ProtectionRule = "agent"
    """How instances are protected from scale-in. "agent" (worker.drain.protection, the drain agent): an
    instance is protected from the moment one of its tasks has run `protection_after_seconds` until
    `protection_hold_seconds` after the last such task ends; with every instance protected, the
    desired capacity drops but nothing is terminated until one loses its protection (PROT). "none":
    never protected (the drain still waits for the tasks). `make bench --only protection` shows both,
    and the agent's rule with a threshold of 0 (every task protects: the rule before)."""

    protection_after_seconds: float = 30.0
    """The agent protects only for a task that has run this long (DRAIN_PROTECT_AFTER_SECONDS,
    worker.drain.settings; a test holds the two equal): a shorter one finishes within a drain anyway."""

    protection_hold_seconds: float = 60.0
    """Scale-in protection's hysteresis: the agent clears the protection once no task past the
    threshold has run for this many seconds (DRAIN_PROTECT_IDLE_SECONDS, worker.drain.settings; a test
    holds the two equal)."""

    empty_group_counts_as: int = 1
    """Target tracking sets the capacity in proportion to the metric (TT); with zero capacity AWS
    documents nothing. The model counts an empty group as this many instances (0: target tracking
    never leaves zero). Our policy does not depend on it: CapacityNeeded has no datum at zero in
    service, and the from-zero step (ChangeInCapacity) takes the pool off zero. The reference
    policies do (Copilot's target tracking from zero)."""

    min_adjustment_at_zero: bool = False
    """Whether MinAdjustmentMagnitude lifts a PercentChangeInCapacity step of an empty group (0 % of 0
    instances is 0; API documents rounding only for 0 < |x| < 1, and MinAdjustmentMagnitude with an
    example at 4 instances). False: no change, so our latency net and burst step never leave zero by
    themselves; the from-zero step does."""

    termination_seed: int = 11
    """TERM ends with "terminate one of these instances at random": the model's random choice is seeded."""


def default_assumptions(image_mode: ImageMode, boot_seconds: float | None = None) -> ModelAssumptions:
    """What the model assumes for a pool booting from `image_mode`: its launch-to-ready (BOOT_SECONDS),
    or `boot_seconds` where the operator overrides it, and every other default. One definition for
    scripts/simulate, the local twin, `make bench` and the CI test of the promise, so none of them
    judges the policy under an easier model than the others."""
    return ModelAssumptions(boot_seconds=BOOT_SECONDS[image_mode] if boot_seconds is None else boot_seconds)
