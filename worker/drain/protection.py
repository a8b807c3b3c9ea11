"""Scale-in protection set and cleared by the instance itself, so scale-in picks an idle instance.

EC2 Auto Scaling chooses which instance to terminate on scale-in by its termination policy (AZ
balance, launch template age), not by what the instance is doing. An instance protected from scale
in is not chosen; if every instance is protected, the desired capacity still drops and the group
terminates instances as their protection is removed
(https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-instance-protection.html).
So the drain agent protects its instance while a task on it (`worker.runtime.busy`) has run for at least
`DRAIN_PROTECT_AFTER_SECONDS`, and removes the protection once no such task has run for
`DRAIN_PROTECT_IDLE_SECONDS`: the hysteresis keeps a pool of long tasks from calling the API per
task, and lets a scale-in that waited on busy instances take them soon after their work ends.

Why only long tasks: a drain waits for the running tasks (up to the task time limit, heartbeating
the hook), so a short task on an instance chosen for scale-in finishes, it is not lost; protecting
for it gains nothing. And it costs the whole scale-in: with short tasks under moderate load every
instance gets a task every few seconds (Redis hands a task to the worker that has waited longest),
so none is ever idle for the hysteresis and the pool would never scale in (`make bench --only
protection`). A task that has already run the threshold is the one a drain would wait long for, or
requeue and lose the work of.

Protection does not stop a health-check replacement, a Spot interruption or an instance refresh
(the group's refresh preference `ScaleInProtectedInstances: Refresh` replaces protected instances
through the same drain hook); SetInstanceProtection cannot be called on warm-pool instances, so
the agent acts only while the target lifecycle state is InService
(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_SetInstanceProtection.html).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.runtime.busy import running_task_ages

log = structlog.get_logger("worker.drain.protection")


@dataclass
class ScaleInProtection:
    client: Any  # a boto3 autoscaling client
    asg_name: str
    instance_id: str
    busy_dir: str
    idle_seconds: float
    """Hysteresis: protection stays this long after the last long task was seen running."""
    after_seconds: float
    """A task protects the instance once it has run this long (0: any running task protects)."""
    wall_clock: Callable[[], float] = time.time
    """The clock the busy markers' mtimes are on (task start times)."""
    protected: bool | None = None
    """What we last set; None until the first call (a previous agent may have left it either way)."""
    idle_since: float | None = None
    changes: list[bool] = field(default_factory=list)

    def update(self, now: float) -> bool | None:
        """One look at the busy markers: protect once a task has run `after_seconds`, unprotect when
        no such task has run for `idle_seconds` (`now` is the agent's monotonic clock)."""
        ages = running_task_ages(self.busy_dir, self.wall_clock())
        if any(age >= self.after_seconds for age in ages):
            self.idle_since = None
            if self.protected is not True:
                self._set(True)
        else:
            if self.idle_since is None:
                self.idle_since = now
            if self.protected is not False and now - self.idle_since >= self.idle_seconds:
                self._set(False)
        return self.protected

    def _set(self, protect: bool) -> None:
        try:
            self.client.set_instance_protection(
                InstanceIds=[self.instance_id], AutoScalingGroupName=self.asg_name, ProtectedFromScaleIn=protect
            )
        except (ClientError, BotoCoreError) as exc:
            # Retried at the next poll: the state is left as it was.
            log.warning("protection.failed", protect=protect, error=str(exc))
            return
        self.protected = protect
        self.changes.append(protect)
        log.info("protection.set", protected=protect)
