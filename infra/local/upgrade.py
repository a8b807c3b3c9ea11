"""`scripts/local --upgrade-to PATH`: the twin's workers rolled from this checkout's worker package to another
version, as the deploy step's canary instance refresh rolls a pool on AWS (infra.cli.canary_rollout).

The same rules: the stack's refresh preferences (infra.canary.rules.refresh_preferences: checkpoints, their
delay, the instance warm-up, the minimum healthy percentage, AutoRollback), paced as Auto Scaling paces a
Rolling refresh (infra.canary.steps), and the same judges on the new version's own log lines
(infra.local.judge). Every duration is model time, so at `--speed S` a 600 s checkpoint lasts 600/S wall
seconds. A judge in breach fails the refresh; with AutoRollback the instances replaced so far are replaced
again with the old version (https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html),
each replaced instance drained as a scale-in drains it (SIGTERM: finish or requeue its tasks).

The refresh starts once the pool has an instance in service: on AWS a refresh of an empty group has nothing
to replace and the new code would reach every instance unjudged, which is nothing to watch here. Named
assumption: an instance the scaling model launches while a refresh runs gets the version the refresh moves
to (the new one, or the old one during a rollback).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from infra.canary.rules import Judge
from infra.canary.steps import next_batch
from infra.local.fleet import Fleet
from infra.local.judge import Finding, LogCounts, judge
from infra.local.versions import WorkerVersion
from infra.scaling.aws_model import GroupModel

IN_PROGRESS: Final = "InProgress"
ROLLING_BACK: Final = "RollbackInProgress"
# The verdicts, named as the deploy step names them (infra.cli.canary_rollout.OUTCOME).
SUCCESSFUL: Final = "Successful"
ROLLED_BACK: Final = "RolledBack"
FAILED: Final = "Failed"
# Wall seconds a replacement may take to come into service before the refresh fails (a worker that neither
# starts nor exits); generous, for a loaded machine.
BATCH_WALL_TIMEOUT: Final = 120.0


@dataclass(frozen=True)
class UpgradeVerdict:
    outcome: str
    old: str
    new: str
    reason: str = ""
    alarms: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome == SUCCESSFUL

    def line(self) -> str:
        """One line: what happened and why."""
        if self.ok:
            return f"upgrade {self.old} -> {self.new}: {self.outcome}; every instance runs {self.new}"
        fired = f"; alarm fired: {', '.join(self.alarms)}" if self.alarms else ""
        back = f"; every instance back on {self.old}" if self.outcome == ROLLED_BACK else ""
        return f"upgrade {self.old} -> {self.new}: {self.outcome} ({self.reason}){fired}{back}"


@dataclass
class Upgrade:
    pool: str
    old: WorkerVersion
    new: WorkerVersion
    preferences: Mapping[str, Any]
    judges: Sequence[Judge]
    counts: LogCounts
    status: str = IN_PROGRESS
    reason: str = ""
    fired: tuple[Finding, ...] = ()
    progress: list[str] = field(default_factory=list)
    """What happened, a line each (percent replaced, checkpoints, the verdict and the alarm that fired)."""
    percent: int = 0
    started: bool = False
    _checkpoints: list[int] = field(default_factory=list)
    _waiting_until: float | None = None
    _batch: list[int] = field(default_factory=list)
    _batch_started: float = 0.0
    _failures_seen: int = 0
    _old_template: int = 1

    @property
    def over(self) -> bool:
        return self.status not in (IN_PROGRESS, ROLLING_BACK)

    @property
    def target(self) -> WorkerVersion:
        return self.new if self.status == IN_PROGRESS else self.old

    def start(self, now: float, model: GroupModel, fleet: Fleet) -> None:
        self.started = True
        self._checkpoints = list(self.preferences.get("CheckpointPercentages", []))
        how = f"checkpoints at {self._checkpoints}%" if self._checkpoints else "straight through"
        serving = fleet.count("in service")
        self._say(now, f"upgrade {self.old.label} -> {self.new.label} started on {serving} instance(s) ({how})")
        self._old_template = model.template_version
        model.template_version += 1
        fleet.launch_version = self.new

    def tick(self, now: float, model: GroupModel, fleet: Fleet) -> None:
        """Judge, then move the refresh along: a batch warming up, a checkpoint's delay, or the next batch."""
        if self.over:
            return
        if not self.started:
            if fleet.count("in service") == 0:
                return
            self.start(now, model, fleet)
        self._observe(fleet)
        if self.status == IN_PROGRESS:
            findings = [judge(j, f"{self.pool}-{j.suffix}", self.counts, self.new.label, now) for j in self.judges]
            fired = tuple(f for f in findings if f.in_alarm)
            if fired:
                self._fail(now, model, fleet, "a canary alarm went to ALARM", fired)
                return
        if self._batch and not self._batch_ready(now, model, fleet):
            return
        if self._waiting_until is not None and now < self._waiting_until:
            return
        self._waiting_until = None
        self._step(now, model, fleet)

    def _observe(self, fleet: Fleet) -> None:
        self.counts.read(i.worker.log_path for i in fleet.instances.values())
        for failure in fleet.failures[self._failures_seen :]:
            self.counts.unhealthy(failure.at, failure.version)
        self._failures_seen = len(fleet.failures)

    def _batch_ready(self, now: float, model: GroupModel, fleet: Fleet) -> bool:
        warmup = float(self.preferences.get("InstanceWarmup", 0))
        pending = []
        for instance_id in self._batch:
            instance = fleet.instances[instance_id]
            if instance.state in ("draining", "gone"):
                continue  # scaled in meanwhile
            if instance.consuming_at is None or now < instance.consuming_at + warmup:
                pending.append(instance_id)
        if pending and time.monotonic() - self._batch_started > BATCH_WALL_TIMEOUT:
            who = ", ".join(f"#{i}" for i in pending)
            self._fail(
                now, model, fleet, f"instance {who} did not come into service in {BATCH_WALL_TIMEOUT:.0f} s wall"
            )
            return False
        if not pending:
            self._batch = []
        return not pending

    def _step(self, now: float, model: GroupModel, fleet: Fleet) -> None:
        live = [i.id for i in model.live()]
        target = self.target.label
        new = [i for i in live if fleet.instances[i].version == target]
        self.percent = 100 if not live else round(100 * len(new) / len(live))
        checkpoint = self._checkpoints[0] if self._checkpoints else 100
        count = next_batch(
            len(new), len(live), checkpoint, model.desired, int(self.preferences["MinHealthyPercentage"])
        )
        if count:
            self._replace(now, model, fleet, [i for i in live if i not in new][:count], len(new), len(live))
        elif checkpoint < 100 and live:
            self._checkpoints.pop(0)
            delay = float(self.preferences.get("CheckpointDelay", 0))
            self._waiting_until = now + delay
            self._say(
                now,
                f"checkpoint {checkpoint}% reached ({len(new)}/{len(live)} new): the judges watch for {delay:.0f} s",
            )
        else:
            self._finish(now)

    def _replace(self, now: float, model: GroupModel, fleet: Fleet, old: list[int], new: int, total: int) -> None:
        for launched in model.replace(old, now):
            fleet.launch(launched.id, now, launched.in_service_at)
            self._batch.append(launched.id)
        for instance_id in old:
            fleet.terminate(instance_id, now)  # drained: its tasks finish or go back to the queue
        self._batch_started = time.monotonic()
        names = ", ".join(f"#{i}" for i in old)
        verb = "replacing" if self.status == IN_PROGRESS else "rolling back"
        self._say(now, f"{verb} {names} with {self.target.label} ({new}/{total} replaced, {self.percent}%)")

    def _fail(self, now: float, model: GroupModel, fleet: Fleet, reason: str, fired: tuple[Finding, ...] = ()) -> None:
        self.reason, self.fired = reason, fired
        for finding in fired:
            self._say(now, f"ALARM {finding.line()}")
        # The group keeps its old configuration (the refresh's is saved only on success): launches run the old code.
        fleet.launch_version = self.old
        model.template_version = self._old_template
        self._batch, self._waiting_until, self._checkpoints = [], None, []
        if self.preferences.get("AutoRollback"):
            self.status = ROLLING_BACK
            self._say(now, f"refresh failed ({reason}): rolling back to {self.old.label}")
        else:
            self.status = FAILED
            self._say(now, f"refresh failed ({reason}); AutoRollback is off: instances stay as they are")

    def _finish(self, now: float) -> None:
        self.status = SUCCESSFUL if self.status == IN_PROGRESS else ROLLED_BACK
        self.percent = 100
        self._say(now, self.verdict().line())

    def _say(self, now: float, text: str) -> None:
        minutes, seconds = divmod(int(max(now, 0)), 60)
        self.progress.append(f"{minutes:02d}:{seconds:02d} {text}")

    def verdict(self) -> UpgradeVerdict:
        alarms = tuple(f.name for f in self.fired)
        return UpgradeVerdict(self.status, self.old.label, self.new.label, self.reason, alarms)

    def status_line(self) -> str:
        """For the live view and headless lines."""
        if not self.started:
            return f"upgrade {self.old.label} -> {self.new.label}: waiting for an instance in service"
        state = self.status if self.over else f"{self.status}, {self.percent}% on {self.target.label}"
        return f"upgrade {self.old.label} -> {self.new.label}: {state}"
