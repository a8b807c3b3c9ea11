"""Read a deployed stack's outputs through the Pulumi CLI (used by scripts/smoke and scripts/deploy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from infra.config import load_stack_config
from infra.outputs import BROKER_SECRET_ARN, POOL_ASG_NAMES

__all__ = ["POOL_ASG_NAMES", "StackOutputsError", "smoke_target", "stack_outputs"]

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


def smoke_target(stack: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The workers' broker settings (CELERY_BROKER_URL, CELERY_QUEUE_TYPE, from the stack's Secrets
    Manager secret) and each pool's queues (from its config)."""
    import boto3  # noqa: PLC0415 - only this path talks to AWS

    outputs = stack_outputs(stack)
    if BROKER_SECRET_ARN not in outputs:
        raise StackOutputsError(f"stack {stack} has no output {BROKER_SECRET_ARN}; was it deployed?")
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=outputs[BROKER_SECRET_ARN])
    settings = {str(k): str(v) for k, v in json.loads(secret["SecretString"]).items()}
    if "CELERY_BROKER_URL" not in settings:
        raise StackOutputsError(f"secret {outputs[BROKER_SECRET_ARN]} has no CELERY_BROKER_URL")
    pools = {name: list(pool.queues) for name, pool in load_stack_config(stack).pools.items()}
    return settings, pools
