"""The smoke function: the smoke test (`worker.smoke.handler.handler`) as a Lambda inside the stack's VPC.

The deploy workflow runs `scripts/smoke --stack <stack>` after `pulumi up`; a GitHub-hosted runner
cannot reach a broker in private subnets, so the script invokes this function, which can. It shares
the publisher's code bundle, subnets, security group (admitted to the broker), role (reads the
publisher's broker secret, counts in-service instances, writes the publisher's log group) and log
group, so it adds no new permission. It is invoked on demand only: no schedule, no reservation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.targets import LAMBDA_ARCH, LAMBDA_RUNTIME

HANDLER: Final = "worker.smoke.handler.handler"
TIMEOUT_SECONDS: Final = 900
"""Lambda's maximum (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html): room for a
pool at zero to scale out on the canaries' backlog (alarm, launch, boot) before they are answered."""
WAIT_SECONDS: Final = TIMEOUT_SECONDS - 60
"""How long a deploy's smoke test waits for its canaries (`scripts/smoke --timeout`): within the function's
timeout, with room to connect and report."""
MEMORY_MB: Final = 256


def smoke_function_name(stack: str) -> str:
    return f"celery-cluster-{stack}-smoke"


@dataclass(frozen=True)
class SmokeFunctionArgs:
    stack: str
    code: pulumi.Archive
    role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    broker_secret_arn: pulumi.Input[str]
    pools_json: pulumi.Input[str]
    """POOLS_JSON, the publisher's: [{"name", "queues", "asg"}]."""
    queue_type: str
    """CELERY_QUEUE_TYPE of the workers: RabbitMQ refuses a queue declared with another type."""
    log_group_name: pulumi.Input[str]
    grants: Sequence[pulumi.Resource]
    """The role's policies, which the function needs from its first invocation."""


def create_smoke_function(name: str, args: SmokeFunctionArgs, parent: pulumi.Resource) -> aws.lambda_.Function:
    return aws.lambda_.Function(
        f"{name}-smoke",
        aws.lambda_.FunctionArgs(
            name=smoke_function_name(args.stack),
            description="Smoke test from inside the VPC: cluster.ping and cluster.canary to every pool",
            role=args.role_arn,
            runtime=LAMBDA_RUNTIME,
            architectures=[LAMBDA_ARCH],
            handler=HANDLER,
            code=args.code,
            memory_size=MEMORY_MB,
            timeout=TIMEOUT_SECONDS,
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "BROKER_SECRET_ARN": args.broker_secret_arn,
                    "POOLS_JSON": args.pools_json,
                    "CELERY_QUEUE_TYPE": args.queue_type,
                }
            ),
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=args.subnet_ids, security_group_ids=[args.security_group_id]
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=args.log_group_name),
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(args.grants)),
    )
