"""Read a deployed stack's outputs through the Pulumi CLI (used by scripts/smoke and scripts/deploy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

# Output names the Pulumi program exports (see infra/__main__.py).
BROKER_SECRET_ARN = "brokerSecretArn"  # noqa: S105 - an output name, not a secret
POOL_QUEUES = "poolQueues"
POOL_ASG_NAMES = "poolAsgNames"

PULUMI_INSTALL_HINT = "the Pulumi CLI is not on PATH; install it (see README, 'Deploying') and run `pulumi login`"


class StackOutputsError(RuntimeError):
    pass


def stack_outputs(stack: str) -> dict[str, Any]:
    if shutil.which("pulumi") is None:
        raise StackOutputsError(PULUMI_INSTALL_HINT)
    completed = subprocess.run(
        ["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise StackOutputsError(f"pulumi stack output --stack {stack} failed: {completed.stderr.strip()}")
    outputs: dict[str, Any] = json.loads(completed.stdout)
    return outputs


def smoke_target(stack: str) -> tuple[str, dict[str, list[str]]]:
    """The broker URL (from the stack's Secrets Manager secret) and each pool's queues."""
    import boto3  # noqa: PLC0415 - only this path talks to AWS

    outputs = stack_outputs(stack)
    missing = [name for name in (BROKER_SECRET_ARN, POOL_QUEUES) if name not in outputs]
    if missing:
        raise StackOutputsError(f"stack {stack} has no output(s) {', '.join(missing)}; was it deployed?")
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=outputs[BROKER_SECRET_ARN])
    url = json.loads(secret["SecretString"])["url"]
    pools = {str(name): [str(q) for q in queues] for name, queues in outputs[POOL_QUEUES].items()}
    return str(url), pools
