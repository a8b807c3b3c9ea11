"""What `scripts/deploy <stack>` (and the pipeline) runs: build, preview, confirm, up, roll, smoke.

Each step but `roll` is a subprocess whose output streams to the terminal; the first failure stops
the run. `roll` is the canary (infra.cli.canary_rollout): an instance refresh per pool to the version `up`
made, waited for, with one verdict per pool; a pool that did not succeed (rolled back, cancelled,
failed) stops the deploy before the smoke test, exit ROLL_FAILED. A failed smoke test ends with how
to roll back, using the stack's own outputs.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.cli import canary_rollout
from infra.cli.deployed_outputs import POOL_ASG_NAMES, StackOutputsError, stack_outputs
from infra.components.smoke_function import WAIT_SECONDS
from infra.config import load_stack_config
from infra.config.messages import PROJECT
from infra.outputs import POOL_REFRESH

ROOT = Path(__file__).resolve().parents[2]
ROLL_FAILED = 3
"""Exit status of a deploy whose canary refresh did not succeed on some pool (AWS rolled it back)."""
Clients = Callable[[str], tuple[Any, Any]]
"""region -> (autoscaling, cloudwatch) clients."""


def aws_clients(region: str) -> tuple[Any, Any]:
    import boto3  # noqa: PLC0415 - only the deploy talks to AWS

    return boto3.client("autoscaling", region_name=region), boto3.client("cloudwatch", region_name=region)


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


def plan(stack: str, *, smoke_count: int = 20) -> list[Step]:
    return [
        Step("build", ("make", "build")),
        Step("preview", ("pulumi", "preview", "--stack", stack, "--policy-pack", "policy", "--diff")),
        # --refresh: the state then holds the launch template version each group runs (the canary refresh
        # moves it, not Pulumi: infra.components.worker_pool), so no stale version is ever sent back.
        Step(
            "up",
            ("pulumi", "up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview", "--refresh"),
        ),
        # Inside the VPC (the stack's smoke function, invoked asynchronously: its report comes back through the
        # stack's smoke results queue), long enough for a pool at zero to scale out.
        Step(
            "smoke",
            (
                str(ROOT / "scripts" / "smoke"),
                "--stack",
                stack,
                "--count",
                str(smoke_count),
                "--timeout",
                str(WAIT_SECONDS),
            ),
        ),
    ]


def rollback_help(stack: str, outputs: dict[str, Any] | None, *, smoke_failed: bool = False) -> str:
    """How to roll `stack` back, with its own ASG names when its outputs could be read. The config
    keys named here are checked against the stack config by tests/unit/test_docs_commands.py."""
    head = (
        f"The smoke test failed on stack {stack!r}. To roll back:" if smoke_failed else f"To roll back stack {stack!r}:"
    )
    lines = [
        head,
        "  1. If an instance refresh is still running, roll it back (instances return to the previous",
        "     launch template version, draining through the same lifecycle hook):",
    ]
    asgs = sorted((outputs or {}).get(POOL_ASG_NAMES, {}).values())
    for asg in asgs or ["<pool ASG name: pulumi stack output " + POOL_ASG_NAMES + ">"]:
        lines.append(f"       aws autoscaling rollback-instance-refresh --auto-scaling-group-name {asg}")
    lines += [
        "  2. Or deploy the previous image: revert the merge (git revert <sha>) and run",
        f"       scripts/deploy {stack}",
        "     or pin the last good AMI (it must hold the worker, e.g. an earlier bake) and deploy:",
        f"       pulumi config set --stack {stack} {PROJECT}:imageMode ami",
        f"       pulumi config set --stack {stack} {PROJECT}:imageAmiId <ami-...>",
        f"       scripts/deploy {stack}",
        "  3. Find the failing pool in the smoke table and its logs in CloudWatch Logs Insights.",
    ]
    return "\n".join(lines)


def roll(
    stack: str,
    *,
    echo: Callable[[str], None],
    clients: Clients = aws_clients,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The canary step: roll every pool to its new version and wait; 0 when every pool succeeded."""
    try:
        outputs = stack_outputs(stack)
    except StackOutputsError as exc:
        echo(f"roll: {exc}")
        return 1
    plans = outputs.get(POOL_REFRESH)
    if not plans:
        echo(f"roll: stack {stack!r} has no output {POOL_REFRESH}; deploy it with this version of the program first")
        return 1
    autoscaling, cloudwatch = clients(load_stack_config(stack).region)
    echo(f"==> roll: an instance refresh per pool, waiting for each verdict ({len(plans)} pool(s))")
    verdicts = canary_rollout.roll(plans, autoscaling, cloudwatch, echo, sleep)
    echo("Verdicts:")
    for verdict in verdicts:
        echo(verdict.line())
    if all(v.ok for v in verdicts):
        return 0
    echo(
        f"The new version did not go out on every pool of {stack!r}; AWS returned the pools that rolled back "
        "to the version they ran before. The alarms above name what judged it; each pool's log group "
        "(CloudWatch Logs Insights, field `version`) and `python -m worker.deadletter` show why."
    )
    return ROLL_FAILED


def run(
    stack: str,
    *,
    confirm: Callable[[str], bool],
    echo: Callable[[str], None],
    runner: Callable[[Sequence[str]], int] = lambda argv: subprocess.run(argv, cwd=ROOT, check=False).returncode,
    smoke_count: int = 20,
    clients: Clients = aws_clients,
    sleep: Callable[[float], None] = time.sleep,
    after_up: bool = False,
) -> int:
    """The whole deploy; with `after_up` (the pipeline ran build, preview and up) only roll and smoke."""
    if not after_up and shutil.which("pulumi") is None:
        raise DeployError("the Pulumi CLI is not on PATH; see the README's 'Deploying' section")
    steps = plan(stack, smoke_count=smoke_count)
    if after_up:
        steps = [s for s in steps if s.name == "smoke"]
        code = roll(stack, echo=echo, clients=clients, sleep=sleep)
        if code != 0:
            return code
    for step in steps:
        if step.name == "up" and not confirm(f"Deploy the previewed changes to {stack!r}?"):
            echo("Not deployed.")
            return 1
        echo(f"==> {step.name}: {' '.join(step.argv)}")
        code = runner(step.argv)
        if code == 0 and step.name == "up":
            code = roll(stack, echo=echo, clients=clients, sleep=sleep)
            if code != 0:
                return code
            continue
        if code != 0:
            echo(f"{step.name} failed (exit {code}).")
            if step.name == "smoke":
                try:
                    outputs: dict[str, Any] | None = stack_outputs(stack)
                except StackOutputsError:
                    outputs = None
                echo(rollback_help(stack, outputs, smoke_failed=True))
            return code
    echo(f"{stack}: deployed, every pool's canary passed, and smoke-tested.")
    return 0
