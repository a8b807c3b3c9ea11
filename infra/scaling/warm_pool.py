"""A warm pool beside the group, as the model runs it: instances prepared ahead, that a scale-out
starts instead of launching cold ones.

What EC2 Auto Scaling documents, and the model follows (WP, WPL, WPA below):
- "Whenever your application needs to scale out, the Auto Scaling group can draw on the warm pool to
  meet its new desired capacity ... As instances leave the warm pool, they count toward the desired
  capacity of the group" (WP). The model takes a prepared instance for each instance a scale-out
  adds, while one is there; the rest launch cold (`ModelAssumptions.boot_seconds`).
- "When your Auto Scaling group scales out and the size of the warm pool shrinks, Amazon EC2 Auto
  Scaling launches new instances into the warm pool to maintain its minimum size" (WP), and an
  instance launched into the warm pool runs its first boot before it is stopped: "As soon as an
  instance finishes launching into the warm pool, Amazon EC2 Auto Scaling stops or hibernates the
  instance" (WPL). The model prepares each replacement for a cold launch's time, billed as running,
  and a scale-out can take it only once it is prepared.
- The program renders `MaxGroupPreparedCapacity` = `MinSize` = `warmPool.minSize` ("only when
  MaxGroupPreparedCapacity and MinSize are set to the same value does the warm pool have an absolute
  size", WPA), so the pool holds that many instances whatever the desired capacity.
- `ReuseOnScaleIn` is false as rendered: scale-in terminates (and drains) as without a warm pool.
- "With stopped instances, you pay only for the volumes that you use" (WP); Hibernated likewise (the
  RAM is kept on the root volume); Running warm instances are billed as running instances.

How long a warm instance takes from the scale-out to its worker consuming tasks is not documented:
`ModelAssumptions.warm_launch_seconds`, default WARM_LAUNCH_SECONDS per state, shown in the
sensitivity table of `make bench`.

Sources:
- WP:  https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html
- WPL: https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html
- WPA: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutWarmPool.html
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from infra.scaling.assumptions import ModelAssumptions

WarmPoolState = Literal["Stopped", "Hibernated", "Running"]

WARM_LAUNCH_SECONDS: Final[Mapping[WarmPoolState, float]] = {"Stopped": 30.0, "Hibernated": 20.0, "Running": 10.0}
"""ASSUMPTIONS: seconds from a scale-out to the worker of an instance taken from the warm pool
consuming tasks. AWS publishes no number; its launch announcement reports that "pre-initialized
instances in a Warm Pool can be launched to serve traffic in as low as 30 seconds"
(https://www.infoq.com/news/2021/05/aws-warm-pools/), which is the Stopped value (the worker is
installed at the instance's first boot, so no image mode installs anything here). Hibernated resumes
the kernel from the root volume instead of booting it, Running only passes the lifecycle change and
starts the worker unit: shorter, with no published figure either."""

GP3_USD_PER_GB_MONTH: Final = 0.08
"""us-east-1 list price of gp3 storage (https://aws.amazon.com/ebs/pricing/): what a stopped or
hibernated warm instance costs."""

HOURS_PER_MONTH: Final = 730.0
"""AWS's own monthly hours in its pricing examples and calculator (24 x 365 / 12)."""


@dataclass(frozen=True)
class WarmPoolSpec:
    """A pool's warm pool (`pools.<name>.warmPool`)."""

    size: int
    """Instances kept in the warm pool (`warmPool.minSize`, also its MaxGroupPreparedCapacity)."""
    state: WarmPoolState = "Stopped"
    volume_gb: int = 20
    """Root volume of each instance (`volumeSizeGb`): what a stopped warm instance is billed for."""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"warm pool size must be >= 0, got {self.size}")


@dataclass(frozen=True)
class WarmCharges:
    """What the warm pool adds to a run's bill."""

    instance_hours: float = 0.0
    """Running warm instances: replacements being prepared, and every warm instance in state Running."""
    storage_usd: float = 0.0
    """Volumes of stopped or hibernated warm instances."""


class WarmPool:
    """The warm pool's instances: when each is prepared (can be taken), oldest first."""

    def __init__(self, spec: WarmPoolSpec, launch_seconds: float, prepare_seconds: float, now: float = 0.0) -> None:
        self.spec = spec
        self.launch_seconds = launch_seconds
        """Scale-out to consuming, for a prepared instance (`ModelAssumptions.warm_launch_seconds`)."""
        self.prepare_seconds = prepare_seconds
        """A replacement's first boot before it is stopped: a cold launch's time (WPL)."""
        # Instances present at the start are prepared already.
        self._prepared_at: deque[float] = deque([now] * spec.size)
        self.taken = 0
        self._started = now

    def available(self, now: float) -> int:
        return sum(1 for at in self._prepared_at if at <= now)

    def take(self, now: float, cold_seconds: float) -> float:
        """Launch-to-ready of one instance a scale-out adds at `now`: a prepared warm instance's, while
        there is one (and a replacement is launched into the pool, WP), else a cold launch's."""
        if not self._prepared_at or self._prepared_at[0] > now:
            return cold_seconds
        self._prepared_at.popleft()
        self._prepared_at.append(now + self.prepare_seconds)
        self.taken += 1
        return self.launch_seconds

    def charges(self, end: float) -> WarmCharges:
        """The pool's bill from its start to `end`: prepared replacements ran for `prepare_seconds`
        each; in state Running every warm instance runs all along; stopped ones cost their volumes."""
        hours = (end - self._started) / 3600
        if self.spec.state == "Running":
            return WarmCharges(instance_hours=self.spec.size * hours)
        storage = self.spec.size * self.spec.volume_gb * GP3_USD_PER_GB_MONTH * hours / HOURS_PER_MONTH
        return WarmCharges(instance_hours=self.taken * self.prepare_seconds / 3600, storage_usd=storage)


def warm_pool_for(spec: WarmPoolSpec | None, assumptions: ModelAssumptions) -> WarmPool | None:
    """The model of a pool's warm pool under `assumptions`; None without one."""
    if spec is None or spec.size == 0:
        return None
    launch = assumptions.warm_launch_seconds
    return WarmPool(
        spec, WARM_LAUNCH_SECONDS[spec.state] if launch is None else launch, prepare_seconds=assumptions.boot_seconds
    )
