"""The deploy step's canary: roll each pool to its new launch template version and wait for the verdict.

`pulumi up` makes the new launch template version but leaves every group on the version it runs
(infra.components.worker_pool explains why). This step starts one instance refresh per pool whose
group is not on the new version, with the stack's preferences (output `poolRefresh`: checkpoints,
AutoRollback, the canary alarms), then polls DescribeInstanceRefreshes until each ends, printing
progress, and returns one verdict per pool with the alarms that fired.

The refresh's DesiredConfiguration is the group's own launch settings with the new version: "Once
the instance refresh succeeds, Amazon EC2 Auto Scaling updates the settings of the Auto Scaling group
to reflect the new desired configuration"; until then the group keeps the version it had, which is
what a rollback restores
(https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_StartInstanceRefresh.html,
https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import ClientError

from infra.outputs import PLAN_ASG_NAME, PLAN_PREFERENCES, PLAN_TEMPLATE_ID, PLAN_TEMPLATE_VERSION

# DescribeInstanceRefreshes statuses that end a refresh, and what the deploy calls each
# (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_InstanceRefresh.html).
OUTCOME: Final = {
    "Successful": "Successful",
    "Cancelled": "Cancelled",
    "Failed": "Failed",
    "RollbackSuccessful": "RolledBack",
    "RollbackFailed": "RollbackFailed",
}
UNCHANGED: Final = "Unchanged"
GOOD: Final = frozenset({"Successful", UNCHANGED})
POLL_SECONDS: Final = 15.0


@dataclass(frozen=True)
class Verdict:
    pool: str
    outcome: str
    """Successful, Unchanged (already on the new version), RolledBack, Cancelled, Failed or RollbackFailed."""
    reason: str = ""
    alarms: tuple[str, ...] = ()
    """The refresh's alarms that went to ALARM while it ran."""

    @property
    def ok(self) -> bool:
        return self.outcome in GOOD

    def line(self) -> str:
        fired = f"; alarm fired: {', '.join(self.alarms)}" if self.alarms else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"  {self.pool}: {self.outcome}{why}{fired}"


@dataclass
class Rollout:
    """One pool's refresh in flight."""

    pool: str
    asg: str
    refresh_id: str
    alarms: list[str]
    started: datetime | None = None
    seen: tuple[Any, ...] = field(default_factory=tuple)
    """The last (status, percent, reason) printed, so progress prints only what changed."""


def group_version(group: Mapping[str, Any]) -> str | None:
    """The launch template version a group launches (either shape of group)."""
    spec = group.get("LaunchTemplate")
    mixed = group.get("MixedInstancesPolicy")
    if mixed is not None:
        spec = mixed["LaunchTemplate"]["LaunchTemplateSpecification"]
    return None if spec is None else str(spec.get("Version"))


def desired_configuration(group: Mapping[str, Any], template_id: str, version: str) -> dict[str, Any]:
    """The group's launch settings with `version`: a mixed instances group keeps its overrides and
    distribution (DesiredConfiguration takes "either a LaunchTemplate or a MixedInstancesPolicy")."""
    spec = {"LaunchTemplateId": template_id, "Version": version}
    mixed = group.get("MixedInstancesPolicy")
    if mixed is None:
        return {"LaunchTemplate": spec}
    policy = copy.deepcopy(dict(mixed))
    policy["LaunchTemplate"]["LaunchTemplateSpecification"] = spec  # by id only: never id and name
    return {"MixedInstancesPolicy": policy}


def start_request(group: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """StartInstanceRefresh's parameters for one pool."""
    return {
        "AutoScalingGroupName": plan[PLAN_ASG_NAME],
        "Strategy": "Rolling",
        "DesiredConfiguration": desired_configuration(group, plan[PLAN_TEMPLATE_ID], plan[PLAN_TEMPLATE_VERSION]),
        "Preferences": plan[PLAN_PREFERENCES],
    }


def start(pool: str, plan: Mapping[str, Any], autoscaling: Any) -> Rollout | Verdict:
    """Start the pool's refresh, or say why none runs."""
    asg = plan[PLAN_ASG_NAME]
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])["AutoScalingGroups"]
    if not groups:
        return Verdict(pool, "Failed", f"no Auto Scaling group {asg}")
    if group_version(groups[0]) == str(plan[PLAN_TEMPLATE_VERSION]):
        return Verdict(pool, UNCHANGED, f"already on launch template version {plan[PLAN_TEMPLATE_VERSION]}")
    try:
        answer = autoscaling.start_instance_refresh(**start_request(groups[0], plan))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "InstanceRefreshInProgress":
            return Verdict(pool, "Failed", f"another instance refresh of {asg} is running; wait for it or cancel it")
        raise
    alarms = list(plan[PLAN_PREFERENCES].get("AlarmSpecification", {}).get("Alarms", []))
    return Rollout(pool, asg, answer["InstanceRefreshId"], alarms)


def went_to_alarm(item: Mapping[str, Any]) -> bool:
    """A StateUpdate history item into ALARM. AlarmHistoryItem documents HistoryData only as "data about
    the alarm, in JSON format" (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_AlarmHistoryItem.html);
    named assumption: it holds `newState.stateValue`, as CloudWatch's state updates carry it, and the
    text summary ("Alarm updated from OK to ALARM") is read when it does not."""
    try:
        data = json.loads(item.get("HistoryData") or "{}")
    except json.JSONDecodeError:
        data = {}
    state = (data.get("newState") or {}).get("stateValue") if isinstance(data, dict) else None
    return state == "ALARM" if state else str(item.get("HistorySummary", "")).endswith("to ALARM")


def fired_alarms(cloudwatch: Any, alarms: list[str], since: datetime | None) -> tuple[str, ...]:
    """The alarms that went to ALARM since `since` (the refresh's start), from their history."""
    fired: list[str] = []
    for name in alarms:
        kwargs: dict[str, Any] = {"AlarmName": name, "HistoryItemType": "StateUpdate"}
        if since is not None:
            kwargs["StartDate"] = since
        items = cloudwatch.describe_alarm_history(**kwargs)["AlarmHistoryItems"]
        if any(went_to_alarm(item) for item in items):
            fired.append(name)
    return tuple(fired)


def _progress(rollout: Rollout, refresh: Mapping[str, Any], echo: Callable[[str], None]) -> None:
    seen = (refresh["Status"], refresh.get("PercentageComplete"), refresh.get("StatusReason", ""))
    if seen != rollout.seen:
        rollout.seen = seen
        status, percent, reason = seen
        left = refresh.get("InstancesToUpdate")
        detail = f" {percent}%" if percent is not None else ""
        detail += f", {left} instance(s) to update" if left is not None else ""
        echo(f"  {rollout.pool}: {status}{detail}{f' - {reason}' if reason else ''}")


def _verdict(rollout: Rollout, refresh: Mapping[str, Any], cloudwatch: Any) -> Verdict:
    outcome = OUTCOME[refresh["Status"]]
    reason = (refresh.get("RollbackDetails") or {}).get("RollbackReason") or refresh.get("StatusReason", "")
    fired = () if outcome == "Successful" else fired_alarms(cloudwatch, rollout.alarms, rollout.started)
    return Verdict(rollout.pool, outcome, reason, fired)


def wait(
    rollouts: list[Rollout],
    autoscaling: Any,
    cloudwatch: Any,
    echo: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[Verdict]:
    """Poll every refresh until it ends, printing what changes; one verdict per rollout."""
    verdicts: dict[str, Verdict] = {}
    while len(verdicts) < len(rollouts):
        for rollout in rollouts:
            if rollout.pool in verdicts:
                continue
            (refresh,) = autoscaling.describe_instance_refreshes(
                AutoScalingGroupName=rollout.asg, InstanceRefreshIds=[rollout.refresh_id]
            )["InstanceRefreshes"]
            rollout.started = rollout.started or refresh.get("StartTime")
            _progress(rollout, refresh, echo)
            if refresh["Status"] in OUTCOME:
                verdicts[rollout.pool] = _verdict(rollout, refresh, cloudwatch)
        if len(verdicts) < len(rollouts):
            sleep(POLL_SECONDS)
    return [verdicts[r.pool] for r in rollouts]


def roll(
    plans: Mapping[str, Mapping[str, Any]],
    autoscaling: Any,
    cloudwatch: Any,
    echo: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> list[Verdict]:
    """Start every pool's refresh at once (they are independent), then wait for all of them."""
    started: list[Rollout] = []
    verdicts: list[Verdict] = []
    for pool, plan in sorted(plans.items()):
        outcome = start(pool, plan, autoscaling)
        if isinstance(outcome, Verdict):
            verdicts.append(outcome)
            echo(outcome.line())
        else:
            started.append(outcome)
            checkpoints = plan[PLAN_PREFERENCES].get("CheckpointPercentages")
            how = f"canary: checkpoints at {checkpoints}%" if checkpoints else "straight through"
            echo(f"  {pool}: refreshing {outcome.asg} to version {plan[PLAN_TEMPLATE_VERSION]} ({how})")
    verdicts += wait(started, autoscaling, cloudwatch, echo, sleep)
    return sorted(verdicts, key=lambda v: v.pool)
