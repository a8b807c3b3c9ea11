"""AWS rules on the pools' Auto Scaling groups, checked over every rendered stack, each citing its source:
the drain hook, instances that cannot work are replaced, warm-pool instances take no tasks, refreshes
replace busy instances, and a drain may wait as long as a task runs."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from infra.cli.offline_render import Resource
from infra.outputs import POOL_REFRESH
from infra.program import longest_task_seconds
from infra.vm import files
from infra.vm.user_data import max_wait
from tests.support.iam_evaluation import allowed
from tests.support.rendered import Rendered
from tests.support.units import restart_prevented, unit_settings
from worker.runtime.settings import SETTINGS_EXIT_CODE

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
GROUP = "aws:autoscaling/group:Group"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"


def test_the_drain_hook_is_its_own_resource(stack: Rendered) -> None:
    """`initial_lifecycle_hook` changes force replacement of the whole group
    (https://github.com/hashicorp/terraform-provider-aws/issues/34260): the drain hook is an
    aws.autoscaling.LifecycleHook, so a new drain window updates the hook only."""
    hooks = stack.inputs(HOOK)
    for group in stack.render.of_type(GROUP):
        assert "initialLifecycleHooks" not in group.inputs, group.name
        if not group.name.startswith("pool-"):
            continue  # the scheduler's group runs no tasks and has nothing to drain
        (hook,) = [h for h in hooks if h["autoscalingGroupName"] == group.inputs.get("name", group.name)]
        assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert hook["heartbeatTimeout"] == stack.config.drain_window_seconds
        assert hook["defaultResult"] == "CONTINUE"


def _pool_groups(stack: Rendered) -> list[Resource]:
    """The worker pools' groups (`pool-<name>-...`); the scheduler's group of one runs no tasks."""
    return [g for g in stack.render.of_type(GROUP) if g.name.startswith("pool-")]


def _group_policies(stack: Rendered, group: Resource) -> list[dict[str, Any]]:
    """Role policies that name this group as their resource (the pool's instance role)."""
    found = []
    for inputs in stack.inputs(ROLE_POLICY):
        document = json.loads(inputs["policy"])
        resources = [s.get("Resource") for s in document["Statement"]]
        if any(isinstance(r, str) and r.endswith(f"/{group.name}") for r in resources):
            found.append(document)
    return found


def test_a_worker_that_cannot_run_gets_its_instance_replaced(stack: Rendered) -> None:
    """The groups use EC2 health checks, which a running instance passes with its worker dead, so the
    instance marks itself: SetInstanceHealth "Unhealthy ... Amazon EC2 Auto Scaling terminates and
    replaces the unhealthy instance" (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_SetInstanceHealth.html).
    The worker unit's OnFailure= (its restarts used up, or it cannot start) runs the unit that calls it,
    and the instance role may call it on its own group."""
    worker = unit_settings("celery-worker.service")
    assert worker["OnFailure"] == ["celery-worker-failed.service"]
    assert worker["Restart"] == ["on-failure"], "only a worker that cannot restart is given up on"
    # A bad setting is not restarted, so the unit enters "failed" at once and OnFailure= runs.
    assert str(SETTINGS_EXIT_CODE) in restart_prevented("celery-worker.service")
    marking = unit_settings("celery-worker-failed.service")
    assert marking["ExecStart"] == ["/opt/celery-cluster/venv/bin/celery-cluster-drain --mark-unhealthy"]
    for group in _pool_groups(stack):
        assert group.inputs["healthCheckType"] == "EC2", "with ELB checks this rule would need revisiting"
        (policy,) = _group_policies(stack, group)
        (arn,) = {s["Resource"] for s in policy["Statement"]}
        assert allowed(policy, "autoscaling:SetInstanceHealth", arn), group.name
        assert not allowed(policy, "autoscaling:SetInstanceHealth", arn + "-other"), "scoped to its own group"


def test_warm_pool_instances_start_no_worker(stack: Rendered) -> None:
    """A warm-pool instance boots once and is then stopped or kept aside (Warmed:*); "As soon as an
    instance finishes launching into the warm pool, Amazon EC2 Auto Scaling stops or hibernates the
    instance" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
    A worker started then takes tasks and is stopped without a drain. The worker requires the unit that
    waits for autoscaling/target-lifecycle-state = InService
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html),
    and user data starts the units without blocking on that wait."""
    if not any("warmPool" in g.inputs for g in _pool_groups(stack)):
        pytest.skip(f"{stack.config.stack} has no warm pool")
    worker = unit_settings("celery-worker.service")
    assert "celery-in-service.service" in " ".join(worker["Requires"])
    assert "celery-in-service.service" in " ".join(worker["After"])
    waiting = unit_settings("celery-in-service.service")
    assert waiting["ExecStart"] == ["/opt/celery-cluster/venv/bin/celery-cluster-drain --wait-in-service"]
    assert waiting["Type"] == ["oneshot"]
    assert waiting["RemainAfterExit"] == ["yes"]
    assert waiting["TimeoutStartSec"] == ["infinity"], "an instance may wait in the warm pool for hours"
    for launch in stack.render.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        if not launch.name.startswith("pool-"):
            continue  # the scheduler has no warm pool
        user_data = base64.b64decode(launch.inputs["userData"]).decode()
        assert "[systemctl, enable, --now, --no-block," in user_data


def test_warm_pool_has_the_configured_size(stack: Rendered) -> None:
    """Without MaxGroupPreparedCapacity the warm pool is max - desired; "Only when
    MaxGroupPreparedCapacity and MinSize are set to the same value does the warm pool have an absolute
    size." (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutWarmPool.html)"""
    pools = {f"pool-{name}-asg": pool for name, pool in stack.config.pools.items()}
    for group in _pool_groups(stack):
        warm = group.inputs.get("warmPool")
        if warm is None:
            continue
        configured = pools[group.name].warm_pool.min_size
        assert warm["minSize"] == configured
        assert warm["maxGroupPreparedCapacity"] == configured


def test_instance_refresh_replaces_instances_that_protect_themselves(stack: Rendered) -> None:
    """Busy instances protect themselves from scale-in (worker.drain.protection). An instance refresh by
    default waits one hour for that protection to go and then fails; Refresh replaces them, through
    the drain hook that waits for their tasks
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html). The deploy
    step starts each pool's refresh with these preferences (output poolRefresh, infra.cli.canary_rollout)."""
    plans = stack.document["outputs"][POOL_REFRESH]
    for group in _pool_groups(stack):
        pool = group.name.removeprefix("pool-").removesuffix("-asg")
        assert plans[pool]["preferences"]["ScaleInProtectedInstances"] == "Refresh", group.name
        (policy,) = _group_policies(stack, group)
        (arn,) = {s["Resource"] for s in policy["Statement"]}
        assert allowed(policy, "autoscaling:SetInstanceProtection", arn), group.name


def test_a_drain_can_wait_as_long_as_a_task_may_run(stack: Rendered) -> None:
    """Scale-in never cuts a task off: the drain (DRAIN_TIMEOUT, the worker's soft window) lasts at least
    the pool's longest task time limit, while the agent heartbeats the hook; AWS holds an instance in a
    wait state at most "48 hours or 100 times the heartbeat timeout, whichever is smaller"
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html)."""
    hooks = stack.inputs(HOOK)
    for name in stack.config.pools:
        launch = stack.one("aws:ec2/launchTemplate:LaunchTemplate", f"pool-{name}-lt")
        user_data = yaml.safe_load(base64.b64decode(launch["userData"]).decode())
        (pool_env,) = [f["content"] for f in user_data["write_files"] if f["path"] == files.POOL_ENV]
        env = dict(line.split("=", 1) for line in pool_env.splitlines() if "=" in line and not line.startswith("#"))
        (hook,) = [h for h in hooks if h["autoscalingGroupName"].startswith(f"pool-{name}-asg")]
        assert int(env["CELERY_SOFT_SHUTDOWN_TIMEOUT"]) >= longest_task_seconds(stack.config.worker_environment(name))
        assert int(env["DRAIN_TIMEOUT"]) <= max_wait(hook["heartbeatTimeout"])
