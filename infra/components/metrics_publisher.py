"""Metrics publisher: one Lambda per stack, in the VPC, that samples every queue every 10 seconds.

EventBridge invokes it once a minute (its finest schedule) and each run takes
`publisherSamplesPerMinute` samples spaced evenly over the minute, so 10-second metrics exist even
while every pool is at zero instances: that is what lets a pool scale out from zero. Reserved
concurrency 1 (`publisherReserveConcurrency`) and no retries keep two runs from overlapping and
double-publishing; without the reservation a run that overruns its minute overlaps the next one
for its last samples (the run stops early rather than outlive its timeout).

The handler code lives in `worker` (`worker.publisher.handler.handler`), next to the queue inspection the
local cluster uses too; this component only deploys it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.artefacts.targets import LAMBDA_ARCH, LAMBDA_HANDLER, LAMBDA_RUNTIME
from infra.components import iam
from infra.components.roles import attach_managed, inline_policy, service_role
from infra.components.smoke_function import SmokeFunctionArgs, create_smoke_function
from infra.config import StackConfig
from worker.publisher.capacity import PoolSignal
from worker.publisher.handler import PoolQueues, pools_json

TYPE = "celery-cluster:publisher:MetricsPublisher"
HANDLER = LAMBDA_HANDLER
RUNTIME = LAMBDA_RUNTIME  # what `make build` packs build/dist/publisher.zip for
SCHEDULE = "rate(1 minute)"
PUBLISHER_CONCURRENCY = 1

# Environment the handler reads (worker.publisher.handler.load_config; a unit test feeds it this render's).
ENV_NAMESPACE = "METRIC_NAMESPACE"
ENV_POOLS = "POOLS_JSON"
ENV_SAMPLES = "SAMPLES"
ENV_INTERVAL = "SAMPLE_INTERVAL_SECONDS"
ENV_BROKER_SECRET = "BROKER_SECRET_ARN"  # noqa: S105 - a variable name


@dataclass(frozen=True)
class PublishedPool:
    """What the publisher needs of one pool: its queues, its group and its capacity-rule constants."""

    queues: tuple[str, ...]
    asg_name: pulumi.Input[str]
    signal: PoolSignal


@dataclass(frozen=True)
class MetricsPublisherArgs:
    config: StackConfig
    code: pulumi.Archive
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    broker_secret_arn: pulumi.Input[str]
    pools: Mapping[str, PublishedPool]
    key_arn: pulumi.Input[str]
    """The stack's KMS key (infra.components.monitoring): it encrypts the smoke results queue."""
    queue_type: str = "classic"
    """The workers' CELERY_QUEUE_TYPE (the smoke function declares the pools' queues as they do)."""


def function_name(stack: str) -> str:
    return f"celery-cluster-{stack}-publisher"


def pools_document(pools: Mapping[str, PublishedPool], asg_names: Mapping[str, str]) -> str:
    """POOLS_JSON: [{"name", "queues", "asg", "signal"}, ...] in pool-name order (worker.publisher.handler)."""
    return pools_json(
        [
            PoolQueues(name=name, queues=pool.queues, asg=asg_names[name], signal=pool.signal)
            for name, pool in sorted(pools.items())
        ]
    )


class MetricsPublisher(pulumi.ComponentResource):
    function_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    smoke_function_name: pulumi.Output[str]
    smoke_results_queue_url: pulumi.Output[str]

    def __init__(self, name: str, args: MetricsPublisherArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name, self._child = name, pulumi.ResourceOptions(parent=self)
        config = args.config
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            aws.cloudwatch.LogGroupArgs(
                name=f"/aws/lambda/{function_name(config.stack)}", retention_in_days=config.log_retention_days
            ),
            opts=self._child,
        )
        role, grants = self._create_role(args, logs)
        pool_names = sorted(args.pools)
        asg_names = pulumi.Output.all(*[args.pools[p].asg_name for p in pool_names])
        pools_json = asg_names.apply(
            lambda names: pools_document(args.pools, {p: str(n) for p, n in zip(pool_names, names, strict=True)})
        )
        function = self._create_function(args, role, logs, pools_json, grants)
        self._schedule(config, function)
        smoke = create_smoke_function(
            name,
            SmokeFunctionArgs(
                stack=config.stack,
                code=args.code,
                subnet_ids=args.subnet_ids,
                security_group_id=args.security_group_id,
                broker_secret_arn=args.broker_secret_arn,
                pools_json=pools_json,
                queue_type=args.queue_type,
                log_group=logs,
                key_arn=args.key_arn,
            ),
            parent=self,
        )
        self.function_name = function.name
        self.log_group_name = logs.name
        self.smoke_function_name = smoke.function.name
        self.smoke_results_queue_url = smoke.results_queue.url
        self.register_outputs(
            {
                "functionName": self.function_name,
                "logGroupName": self.log_group_name,
                "smokeFunctionName": self.smoke_function_name,
                "smokeResultsQueueUrl": self.smoke_results_queue_url,
            }
        )

    def _create_role(
        self, args: MetricsPublisherArgs, logs: aws.cloudwatch.LogGroup
    ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        name, child, config = self._name, self._child, args.config
        role = service_role(
            f"{name}-role", "lambda.amazonaws.com", f"celery-cluster {config.stack} metrics publisher", child
        )
        vpc_access = attach_managed(f"{name}-vpc", role, iam.LAMBDA_VPC_ACCESS_POLICY, child)
        policy = pulumi.Output.all(args.broker_secret_arn, logs.arn).apply(
            lambda v: json.dumps(iam.publisher_policy(v[0], v[1], config.metric_namespace))
        )
        runtime = inline_policy(f"{name}-runtime", role, policy, child)
        return role, [vpc_access, runtime]

    def _create_function(
        self,
        args: MetricsPublisherArgs,
        role: aws.iam.Role,
        logs: aws.cloudwatch.LogGroup,
        pools_json: pulumi.Output[str],
        grants: list[pulumi.Resource],
    ) -> aws.lambda_.Function:
        config = args.config
        interval = 60 // config.publisher_samples_per_minute
        return aws.lambda_.Function(
            f"{self._name}-fn",
            aws.lambda_.FunctionArgs(
                name=function_name(config.stack),
                description="Publishes queue depth, in-flight, oldest age and backlog per instance every 10 s",
                role=role.arn,
                runtime=RUNTIME,
                architectures=[LAMBDA_ARCH],
                handler=HANDLER,
                code=args.code,
                memory_size=config.publisher_memory_mb,
                # The run spans the minute it samples, plus time to connect and publish.
                timeout=interval * config.publisher_samples_per_minute + 20,
                # One run at a time. Lambda keeps 100 of the account's concurrency unreserved ("You can reserve
                # up to the Unreserved account concurrency value that is shown, minus 100",
                # https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html), so on an account
                # whose quota is 10 any reservation is refused: publisherReserveConcurrency false leaves it out.
                reserved_concurrent_executions=PUBLISHER_CONCURRENCY if config.publisher_reserve_concurrency else None,
                environment=aws.lambda_.FunctionEnvironmentArgs(
                    variables={
                        ENV_NAMESPACE: config.metric_namespace,
                        ENV_POOLS: pools_json,
                        ENV_SAMPLES: str(config.publisher_samples_per_minute),
                        ENV_INTERVAL: str(interval),
                        ENV_BROKER_SECRET: args.broker_secret_arn,
                    }
                ),
                vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                    subnet_ids=args.subnet_ids, security_group_ids=[args.security_group_id]
                ),
                logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=logs.name),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )

    def _schedule(self, config: StackConfig, function: aws.lambda_.Function) -> None:
        """Run every minute from an EventBridge rule; a missed minute is not retried."""
        name, child = self._name, self._child
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-invoke",
            aws.lambda_.FunctionEventInvokeConfigArgs(
                function_name=function.name,
                # A missed minute is better than two runs publishing the same minute late.
                maximum_retry_attempts=0,
                maximum_event_age_in_seconds=60,
            ),
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            aws.cloudwatch.EventRuleArgs(
                description=f"celery-cluster {config.stack}: run the metrics publisher every minute",
                schedule_expression=SCHEDULE,
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-schedule", aws.cloudwatch.EventTargetArgs(rule=rule.name, arn=function.arn), opts=child
        )
        aws.lambda_.Permission(
            f"{name}-schedule",
            aws.lambda_.PermissionArgs(
                action="lambda:InvokeFunction",
                function=function.name,
                principal="events.amazonaws.com",
                source_arn=rule.arn,
            ),
            opts=child,
        )
