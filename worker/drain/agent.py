"""`celery-cluster-drain`: drains this instance's worker before the instance goes away.

It polls IMDSv2 for two notices:

- `autoscaling/target-lifecycle-state` turning `Terminated` (scale-in, instance refresh): the
  Auto Scaling group holds the instance in `Terminating:Wait` on the pool's termination
  lifecycle hook. The agent stops the worker (SIGTERM: Celery's warm shutdown, which ends as soon
  as the running tasks end, `worker.runtime.shutdown`), sends `RecordLifecycleActionHeartbeat` while tasks
  drain, and sends `CompleteLifecycleAction` (CONTINUE) once the worker has stopped or the drain
  window (`DRAIN_TIMEOUT`) has run out, never earlier. `REQUEUE_LEAD_S` before that deadline it
  requeues whatever still runs (SIGQUIT, Celery's cold shutdown).
- `spot/instance-action` (a Spot interruption, two minutes ahead): the same, but the deadline is
  the interruption time less `DRAIN_SPOT_MARGIN`. A Spot notice that arrives during a scale-in
  drain shortens that drain's deadline.

While neither notice is set and the instance is InService, it keeps its instance protected from
scale-in while a task that has run `DRAIN_PROTECT_AFTER_SECONDS` runs on it (`worker.drain.protection`,
when `DRAIN_BUSY_DIR` is set), so scale-in takes another instance first. `--wait-in-service` and
`--mark-unhealthy` are the two boot-time modes the worker's units run (`worker.instance.state`).

Settings come from `DRAIN_*` variables (the pool's environment file, worker/drain/settings.py); the
instance id, the region and, when `DRAIN_ASG_NAME` is unset, the group name come from instance metadata.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

import boto3
import httpx
import structlog
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker.drain.protection import ScaleInProtection
from worker.drain.settings import (
    DEFAULT_WORKER_UNIT,
    ENV_PREFIX,
    SPOT_NOTICE_S,
    DrainSettings,
    DrainSettingsError,
    load_settings,
)
from worker.instance.imds import Imds, MetadataError, SpotAction
from worker.instance.state import IN_SERVICE, mark_unhealthy, wait_in_service
from worker.runtime.logs import configure as configure_logging
from worker.runtime.logs import identity
from worker.runtime.settings import SETTINGS_EXIT_CODE, SettingsError, load_process_settings

TERMINATED: Final = "Terminated"
LIFECYCLE_CONTINUE: Final = "CONTINUE"
# Named assumption: a worker's cold shutdown (cancel, requeue, exit) takes well under this; measured
# 2.0-2.5 s on this project's test machine (docs/worker.md). The agent asks for it this long before
# its deadline, so tasks go back to the queue at once instead of when the instance disappears
# (Redis would redeliver them only after the visibility timeout).
REQUEUE_LEAD_S: Final = 5.0

log = structlog.get_logger("worker.drain.agent")

Reason = Literal["scale-in", "spot"]


class WorkerControl(Protocol):
    """How the agent stops the worker. On a VM: the systemd unit; in tests: a real process."""

    def stop(self) -> None:
        """Begin a graceful stop (Celery warm shutdown, bounded by worker.runtime.shutdown) and return at once."""

    def requeue(self) -> None:
        """Cancel the tasks still running so they go back to the queue now (Celery cold shutdown)."""

    def stopped(self) -> bool:
        """True once the worker has exited."""


@dataclass(frozen=True)
class SystemdUnit:
    """The worker's systemd unit: `systemctl stop` sends SIGTERM and waits up to TimeoutStopSec."""

    unit: str = DEFAULT_WORKER_UNIT

    def stop(self) -> None:
        # --no-block: the agent keeps heartbeating while systemd waits for the worker.
        subprocess.run(["systemctl", "stop", "--no-block", self.unit], check=True)

    def requeue(self) -> None:
        # SIGQUIT to the main process: Celery's cold shutdown, which requeues late-acked running tasks.
        subprocess.run(["systemctl", "kill", "--kill-whom=main", "--signal=SIGQUIT", self.unit], check=True)

    def stopped(self) -> bool:
        state = subprocess.run(
            ["systemctl", "show", "--property=ActiveState", "--value", self.unit],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return state in {"inactive", "failed"}


@dataclass(frozen=True)
class LifecycleAction:
    """The Auto Scaling lifecycle action that holds this instance, addressed by instance id."""

    client: Any  # a boto3 autoscaling client (boto3 ships no types)
    hook_name: str
    asg_name: str
    instance_id: str

    def _ids(self) -> dict[str, str]:
        return {
            "LifecycleHookName": self.hook_name,
            "AutoScalingGroupName": self.asg_name,
            "InstanceId": self.instance_id,
        }

    def heartbeat(self) -> bool:
        return self._call("record_lifecycle_action_heartbeat", **self._ids())

    def complete(self) -> bool:
        return self._call("complete_lifecycle_action", LifecycleActionResult=LIFECYCLE_CONTINUE, **self._ids())

    def _call(self, operation: str, **params: str) -> bool:
        try:
            getattr(self.client, operation)(**params)
        except ClientError as exc:
            # ValidationError "No active Lifecycle Action found": a Spot interruption outside a
            # scale-in, or a hook that already timed out. Nothing waits on us; not an error.
            log.warning(
                "lifecycle.refused", operation=operation, error=exc.response.get("Error", {}).get("Message", str(exc))
            )
            return False
        except BotoCoreError as exc:
            log.error("lifecycle.failed", operation=operation, error=str(exc))
            return False
        return True


@dataclass(frozen=True)
class Notice:
    reason: Reason
    deadline: float  # on the agent's monotonic clock


@dataclass
class DrainOutcome:
    reason: Reason
    worker_stopped: bool
    heartbeats: int
    completed: bool
    seconds: float
    events: list[str] = field(default_factory=list)


@dataclass
class DrainAgent:
    settings: DrainSettings
    imds: Imds
    worker: WorkerControl
    lifecycle: LifecycleAction
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    protection: ScaleInProtection | None = None
    last_state: str | None = None

    def spot_deadline(self, action: SpotAction) -> float:
        left = min(action.seconds_left(self.wall_clock()), SPOT_NOTICE_S)
        return self.clock() + max(0.0, left - self.settings.spot_margin)

    def check(self) -> Notice | None:
        """One poll of both notices; None while neither is set."""
        state = self.last_state = self.imds.target_lifecycle_state()
        if state == TERMINATED:
            return Notice("scale-in", self.clock() + self.settings.timeout)
        action = self.imds.spot_action()
        if action is not None:
            return Notice("spot", self.spot_deadline(action))
        return None

    def wait_for_notice(self, should_stop: Callable[[], bool] = lambda: False) -> Notice | None:
        while not should_stop():
            try:
                notice = self.check()
            except (httpx.HTTPError, MetadataError) as exc:
                # IMDS hiccups are retried on the next poll; a notice is never missed for long.
                log.warning("imds.poll_failed", error=str(exc))
                notice = None
            if notice is not None:
                return notice
            if self.protection is not None and self.last_state == IN_SERVICE:
                self.protection.update(self.clock())
            self.sleep(self.settings.poll_interval)
        return None

    def drain(self, notice: Notice) -> DrainOutcome:
        started = self.clock()
        deadline = notice.deadline
        log.info("drain.start", reason=notice.reason, deadline_s=round(deadline - started, 1))
        outcome = DrainOutcome(reason=notice.reason, worker_stopped=False, heartbeats=0, completed=False, seconds=0)
        self.worker.stop()
        outcome.events.append("stop")
        next_heartbeat = started
        next_poll = started + self.settings.poll_interval
        requeued = False
        while True:
            now = self.clock()
            if self.worker.stopped():
                outcome.worker_stopped = True
                outcome.events.append("stopped")
                break
            if not requeued and now >= deadline - REQUEUE_LEAD_S:
                log.warning("drain.requeue", reason=notice.reason)
                self._requeue()
                outcome.events.append("requeue")
                requeued = True
            if now >= deadline:
                log.error("drain.window_ran_out", reason=notice.reason)
                outcome.events.append("deadline")
                break
            if now >= next_heartbeat:
                if self.lifecycle.heartbeat():
                    outcome.heartbeats += 1
                    outcome.events.append("heartbeat")
                next_heartbeat = now + self.settings.heartbeat_interval
            if notice.reason != "spot" and now >= next_poll:
                deadline = self._shorten_for_spot(deadline)
                next_poll = now + self.settings.poll_interval
            self.sleep(min(0.25, max(0.0, deadline - now)))
        outcome.completed = self.lifecycle.complete()
        outcome.events.append("complete")
        outcome.seconds = round(self.clock() - started, 3)
        log.info(
            "drain.finished",
            reason=notice.reason,
            worker_stopped=outcome.worker_stopped,
            heartbeats=outcome.heartbeats,
            completed=outcome.completed,
            seconds=outcome.seconds,
        )
        return outcome

    def _requeue(self) -> None:
        try:
            self.worker.requeue()
        except (OSError, subprocess.CalledProcessError) as exc:
            log.error("drain.requeue_failed", error=str(exc))

    def _shorten_for_spot(self, deadline: float) -> float:
        try:
            action = self.imds.spot_action()
        except (httpx.HTTPError, MetadataError) as exc:
            log.warning("imds.poll_failed", error=str(exc))
            return deadline
        if action is None:
            return deadline
        return min(deadline, self.spot_deadline(action))

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> DrainOutcome | None:
        notice = self.wait_for_notice(should_stop)
        return None if notice is None else self.drain(notice)


def build_agent(
    settings: DrainSettings,
    *,
    worker: WorkerControl | None = None,
    autoscaling: Any = None,
    imds: Imds | None = None,
) -> DrainAgent:
    """Resolve what the settings leave to instance metadata, and wire the agent."""
    imds = imds or Imds(endpoint=settings.imds_endpoint, token_ttl=settings.imds_token_ttl)
    instance_id = imds.instance_id()
    asg_name = settings.asg_name or imds.asg_name()
    if not asg_name:
        raise DrainSettingsError(
            f"{ENV_PREFIX}ASG_NAME: is not set and the instance metadata has no aws:autoscaling:groupName tag"
        )
    if autoscaling is None:
        autoscaling = boto3.client(
            "autoscaling",
            region_name=settings.region or imds.region(),
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10),
        )
    lifecycle = LifecycleAction(autoscaling, settings.lifecycle_hook_name, asg_name, instance_id)
    protection = None
    if settings.busy_dir is not None:
        protection = ScaleInProtection(
            autoscaling,
            asg_name,
            instance_id,
            settings.busy_dir,
            idle_seconds=settings.protect_idle_seconds,
            after_seconds=settings.protect_after_seconds,
        )
    return DrainAgent(settings, imds, worker or SystemdUnit(settings.worker_unit), lifecycle, protection=protection)


def _mark_unhealthy(agent: DrainAgent) -> int:
    try:
        mark_unhealthy(agent.imds, agent.lifecycle.client)
    except (ClientError, BotoCoreError, MetadataError, httpx.HTTPError) as exc:
        print(f"celery-cluster-drain: could not mark the instance unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


def _identity() -> dict[str, str]:
    """The worker's version and pool on this agent's lines too: `health.unhealthy` (the worker cannot
    start) is counted per code version by the pool's metric filter (infra.components.canary). A
    WORKER_* value the worker refuses stops the worker, which reports it; the agent still drains."""
    try:
        return identity(load_process_settings())
    except SettingsError:
        return {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="celery-cluster-drain",
        description="Drain this instance's Celery worker on scale-in or a Spot notice (settings: DRAIN_* variables).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="validate the settings and instance metadata, then exit")
    mode.add_argument(
        "--wait-in-service",
        action="store_true",
        help="wait until Auto Scaling puts this instance in service (not in a warm pool), then exit",
    )
    mode.add_argument(
        "--mark-unhealthy",
        action="store_true",
        help="mark this instance unhealthy so Auto Scaling replaces it (the worker cannot start)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except DrainSettingsError as exc:
        # The worker's status for a bad setting: celery-drain.service does not restart on it.
        print(f"celery-cluster-drain: invalid setting {exc}", file=sys.stderr)
        return SETTINGS_EXIT_CODE
    configure_logging(settings.log_level, "json", fields=_identity())
    if args.wait_in_service:
        wait_in_service(
            Imds(endpoint=settings.imds_endpoint, token_ttl=settings.imds_token_ttl), settings.poll_interval
        )
        return 0
    try:
        agent = build_agent(settings)
    except (DrainSettingsError, MetadataError, httpx.HTTPError) as exc:
        # A setting the metadata does not supply is a bad setting (not restarted); instance metadata
        # can be briefly unreachable at boot (2: systemd retries it).
        bad_setting = isinstance(exc, DrainSettingsError)
        print(f"celery-cluster-drain: {'invalid setting ' if bad_setting else ''}{exc}", file=sys.stderr)
        return SETTINGS_EXIT_CODE if bad_setting else 2
    if args.check:
        return 0
    if args.mark_unhealthy:
        return _mark_unhealthy(agent)
    outcome = agent.run()
    # Done once the hook is completed or the worker is down; otherwise systemd restarts us to retry.
    return 0 if outcome is not None and (outcome.completed or outcome.worker_stopped) else 1


if __name__ == "__main__":
    sys.exit(main())
