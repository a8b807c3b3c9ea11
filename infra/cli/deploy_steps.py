"""What `scripts/deploy <stack>` (and the pipeline) runs: build, preview, confirm, up, smoke.

Each step is a subprocess whose output streams to the terminal; the first failure stops the run.
A failed smoke test ends with how to roll back, using the stack's own outputs.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.cli.deployed_outputs import POOL_ASG_NAMES, StackOutputsError, stack_outputs
from infra.components.smoke_function import WAIT_SECONDS
from infra.config.messages import PROJECT

ROOT = Path(__file__).resolve().parents[1]


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
        Step("up", ("pulumi", "up", "--stack", stack, "--policy-pack", "policy", "--yes", "--skip-preview")),
        # Inside the VPC (the stack's smoke function), long enough for a pool at zero to scale out.
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


def run(
    stack: str,
    *,
    confirm: Callable[[str], bool],
    echo: Callable[[str], None],
    runner: Callable[[Sequence[str]], int] = lambda argv: subprocess.run(argv, cwd=ROOT, check=False).returncode,
    smoke_count: int = 20,
) -> int:
    if shutil.which("pulumi") is None:
        raise DeployError("the Pulumi CLI is not on PATH; see the README's 'Deploying' section")
    for step in plan(stack, smoke_count=smoke_count):
        if step.name == "up" and not confirm(f"Deploy the previewed changes to {stack!r}?"):
            echo("Not deployed.")
            return 1
        echo(f"==> {step.name}: {' '.join(step.argv)}")
        code = runner(step.argv)
        if code != 0:
            echo(f"{step.name} failed (exit {code}).")
            if step.name == "smoke":
                try:
                    outputs: dict[str, Any] | None = stack_outputs(stack)
                except StackOutputsError:
                    outputs = None
                echo(rollback_help(stack, outputs, smoke_failed=True))
            return code
    echo(f"{stack}: deployed and smoke-tested.")
    return 0
