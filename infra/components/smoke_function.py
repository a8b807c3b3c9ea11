"""The smoke function: the smoke test (`worker.smoke.handler.handler`) as a Lambda inside the stack's VPC,
and the encrypted queue its report comes back through.

The deploy workflow runs `scripts/smoke --stack <stack>` after `pulumi up`; a GitHub-hosted runner
cannot reach a broker in private subnets, so the script invokes this function, which can. It shares
the publisher's code bundle, subnets, security group (admitted to the broker) and log group, and has a
role of its own: the publisher's rights minus PutMetricData, plus sending to the results queue.

The script invokes it asynchronously and never holds a connection open while it runs (up to 15 minutes,
while a pool at zero scales out; a CI runner's NAT drops a connection idle for 4 minutes). Lambda itself
sends the invocation record, with the function's report or its error, to the results queue: the on-success
and on-failure destinations of the asynchronous invocation
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html). So a crash or a
timeout comes back as promptly as a report, the handler needs no code for it, and nothing in the private
subnets needs a route to SQS (Lambda, not the function's code, delivers the record). The script polls the
queue for the record of its own run (`infra.cli.remote_smoke`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.targets import LAMBDA_ARCH, LAMBDA_RUNTIME
from infra.components import iam
from infra.components.roles import attach_managed, inline_policy, service_role

HANDLER: Final = "worker.smoke.handler.handler"
TIMEOUT_SECONDS: Final = 900
"""Lambda's maximum (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html): room for a
pool at zero to scale out on the canaries' backlog (alarm, launch, boot) before they are answered."""
WAIT_SECONDS: Final = TIMEOUT_SECONDS - 60
"""How long a deploy's smoke test waits for its canaries (`scripts/smoke --timeout`): within the function's
timeout, with room to connect and report."""
MEMORY_MB: Final = 256
MAX_EVENT_AGE_SECONDS: Final = 300
"""How long an invocation may wait in Lambda's asynchronous queue (throttled) before Lambda gives it up and
sends an EventAgeExceeded record instead (60 s to 6 hours:
https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html). A smoke test that starts
later than this is a deploy waiting on someone else's load; it fails with that reason."""
RESULTS_RETENTION_SECONDS: Final = 3600
"""A record nobody took (its deploy gave up or was cancelled) expires after an hour, longer than any run's
deadline (`infra.cli.remote_smoke.result_deadline`); SQS allows 60 s to 14 days
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html)."""


def smoke_function_name(stack: str) -> str:
    return f"celery-cluster-{stack}-smoke"


def smoke_results_queue_name(stack: str) -> str:
    return f"celery-cluster-{stack}-smoke-results"


@dataclass(frozen=True)
class SmokeFunctionArgs:
    stack: str
    code: pulumi.Archive
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    broker_secret_arn: pulumi.Input[str]
    pools_json: pulumi.Input[str]
    """POOLS_JSON, the publisher's: [{"name", "queues", "asg"}]."""
    queue_type: str
    """CELERY_QUEUE_TYPE of the workers: RabbitMQ refuses a queue declared with another type."""
    log_group: aws.cloudwatch.LogGroup
    """The publisher's; the function writes its logs there."""
    key_arn: pulumi.Input[str]
    """The stack's KMS key (infra.components.monitoring), which encrypts the results queue."""


@dataclass(frozen=True)
class SmokeFunction:
    function: aws.lambda_.Function
    results_queue: aws.sqs.Queue


def create_smoke_function(name: str, args: SmokeFunctionArgs, parent: pulumi.Resource) -> SmokeFunction:
    child = pulumi.ResourceOptions(parent=parent)
    queue = aws.sqs.Queue(
        f"{name}-smoke-results",
        aws.sqs.QueueArgs(
            name=smoke_results_queue_name(args.stack),
            kms_master_key_id=args.key_arn,
            message_retention_seconds=RESULTS_RETENTION_SECONDS,
        ),
        opts=child,
    )
    role, grants = _create_role(name, args, queue, child)
    function = aws.lambda_.Function(
        f"{name}-smoke",
        aws.lambda_.FunctionArgs(
            name=smoke_function_name(args.stack),
            description="Smoke test from inside the VPC: cluster.ping and cluster.canary to every pool",
            role=role.arn,
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
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=args.log_group.name),
        ),
        # The role's policies are needed from the first invocation (IAM is eventually consistent).
        opts=pulumi.ResourceOptions(parent=parent, depends_on=grants),
    )
    destination = aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
        on_success=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnSuccessArgs(destination=queue.arn),
        on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(destination=queue.arn),
    )
    aws.lambda_.FunctionEventInvokeConfig(
        f"{name}-smoke-invoke",
        aws.lambda_.FunctionEventInvokeConfigArgs(
            function_name=function.name,
            # Never retried: a retry would send a second set of canaries (and a failed run's record comes
            # back at once instead of after two more runs).
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config=destination,
        ),
        # Lambda refuses a destination the execution role may not send to ("The function execution role does
        # not have permissions to call SendMessage": elastic/beats #13963; created before the role's policy,
        # aws-amplify/amplify-js #9869), so the grant comes first.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=grants),
    )
    return SmokeFunction(function, queue)


def _create_role(
    name: str, args: SmokeFunctionArgs, queue: aws.sqs.Queue, child: pulumi.ResourceOptions
) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    role = service_role(
        f"{name}-smoke-role", "lambda.amazonaws.com", f"celery-cluster {args.stack} smoke function", child
    )
    vpc_access = attach_managed(f"{name}-smoke-vpc", role, iam.LAMBDA_VPC_ACCESS_POLICY, child)
    policy = pulumi.Output.all(args.broker_secret_arn, args.log_group.arn, queue.arn, args.key_arn).apply(
        lambda v: json.dumps(iam.smoke_policy(v[0], v[1], v[2], v[3]))
    )
    runtime = inline_policy(f"{name}-smoke-runtime", role, policy, child)
    return role, [vpc_access, runtime]
