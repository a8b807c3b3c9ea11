"""What the instance tells Auto Scaling about itself, and what it waits for before the worker starts.

- `wait_in_service`: the worker starts only when the instance's target lifecycle state is
  InService. A warm-pool instance boots once to be prepared (state `Warmed:Stopped`,
  `Warmed:Running` or `Warmed:Hibernated`) and is then stopped or kept aside; a worker started
  then would take tasks and be stopped without a drain. Auto Scaling sets
  `autoscaling/target-lifecycle-state` before each transition
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html,
  https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
- `mark_unhealthy`: a worker that cannot start, or dies and cannot restart, leaves an instance
  that the EC2 status checks call healthy. SetInstanceHealth `Unhealthy` makes Auto Scaling
  terminate and replace it
  (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_SetInstanceHealth.html);
  `ShouldRespectGracePeriod=False` because a start that failed ten times may still be inside the
  group's health check grace period, which would otherwise ignore the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, Literal

import httpx
import structlog

from worker.instance.imds import Imds, MetadataError
from worker.names import EVENT_UNHEALTHY

IN_SERVICE: Final = "InService"

log = structlog.get_logger("worker.instance.state")

Marked = Literal["marked", "not-in-service"]


def wait_in_service(
    imds: Imds,
    poll_interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Block until the target lifecycle state is InService (or absent: not in an Auto Scaling group).

    Returns the state seen last. Metadata errors are retried: the worker must not start early.
    """
    while True:
        try:
            state = imds.target_lifecycle_state()
        except (httpx.HTTPError, MetadataError) as exc:
            log.warning("imds.poll_failed", error=str(exc))
        else:
            if state is None or state == IN_SERVICE:
                log.info("instance.in_service", state=state)
                return state
            log.info("instance.waiting", state=state)
        sleep(poll_interval)


def mark_unhealthy(imds: Imds, autoscaling: Any) -> Marked:
    """Tell Auto Scaling to replace this instance, unless it is not (or no longer) in service.

    A worker stopped by a scale-in drain, or on a warm-pool instance, is not a failure of the
    instance; its target state is then Terminated or Warmed:*, and nothing is called.
    """
    state = imds.target_lifecycle_state()
    if state != IN_SERVICE:
        log.info("health.skipped", state=state)
        return "not-in-service"
    instance_id = imds.instance_id()
    autoscaling.set_instance_health(InstanceId=instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=False)
    log.warning(EVENT_UNHEALTHY, instance_id=instance_id)
    return "marked"
