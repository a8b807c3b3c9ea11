"""The periodic task scheduler: an Auto Scaling group of exactly one instance, booted from the
pools' image, running `celery beat` with a lease (`worker.scheduler.beat`) under systemd.

Exactly one sends, by two independent means:
- the lease: in the broker's Redis, or on RabbitMQ stacks in a DynamoDB table this component
  creates (Amazon MQ offers no lease primitive), so two schedulers alive at once (a replacement
  booting while the old one is still up, a partition) never both send;
- the group: min = max = 1, and its instance refresh keeps 0 % healthy, which terminates the old
  instance before launching the new one ("MinHealthyPercentage ... 0 ... replaces all instances at
  once", https://docs.aws.amazon.com/autoscaling/ec2/userguide/understand-instance-refresh-default-values.html),
  so a redeploy is stop-before-start. A clean stop releases the lease, the successor sends at once.
A lost instance is replaced by the group's health check; until then nobody sends, the
no-holder alarm fires after two lease periods, and missed runs follow each entry's `catch_up`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import iam
from infra.components.instance import IdentityArgs, LaunchArgs, create_instance_identity, create_launch_template
from infra.components.scheduler_alarms import scheduler_alarms
from infra.config import StackConfig
from worker.scheduler.periodic import Periodic

TYPE = "celery-cluster:scheduler:Scheduler"
# The scheduler sends a few messages a minute and holds no tasks: the smallest volume AL2023 boots.
VOLUME_GB = 8
# Boot plus `celery beat` start: the group's health check waits this long before judging.
WARMUP_SECONDS = 120


def scheduler_log_group(stack: str) -> str:
    return f"/celery-cluster/{stack}/scheduler"


def lease_table_name(config: StackConfig) -> str:
    """The table of a RabbitMQ stack's scheduler (StackConfig.scheduler_table)."""
    if config.scheduler_table is None:
        raise ValueError(f"stack {config.stack}: a scheduler table is a RabbitMQ stack's, with the scheduler on")
    return config.scheduler_table


def lease_table_arn(config: StackConfig) -> pulumi.Output[str]:
    """The table's ARN from its name, for the pools, which are created before the scheduler."""
    identity = aws.get_caller_identity_output()
    partition = aws.get_partition_output()
    return pulumi.Output.concat(
        "arn:", partition.partition, ":dynamodb:", config.region, ":", identity.account_id, ":table/",
        lease_table_name(config),
    )  # fmt: skip


def fence_table_policy(table_arn: str) -> iam.Document:
    """The workers' periodic fence: a conditional put of `started#<task id>` items, nothing else
    (dynamodb:LeadingKeys restricts the partition keys a request may touch:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html),
    so a worker can never overwrite the scheduler's lease or state."""
    return iam.document(
        {
            "Sid": "PeriodicFence",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem"],
            "Resource": table_arn,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["started#*"]}},
        }
    )


def lease_table_policy(table_arn: str) -> iam.Document:
    """The scheduler's lease and state items in its own table, nothing else."""
    return iam.document(
        {
            "Sid": "SchedulerLease",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:PutItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:Scan",
            ],
            "Resource": table_arn,
        }
    )


@dataclass(frozen=True)
class SchedulerArgs:
    config: StackConfig
    entries: Sequence[Periodic]
    """The entries this stack runs (worker.scheduler.schedule, filtered by stack): one lateness alarm each."""
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    """The workers' group: the broker admits it."""
    image_id: pulumi.Input[str]
    user_data: pulumi.Input[str]
    broker_secret_arn: pulumi.Input[str]
    alarm_topic_arn: pulumi.Input[str]
    artefact_bucket_arn: pulumi.Input[str] | None = None


class Scheduler(pulumi.ComponentResource):
    asg_name: pulumi.Output[str]
    lease_table_name: pulumi.Output[str] | None

    def __init__(self, name: str, args: SchedulerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        config = args.config
        table = self._create_lease_table(config) if not config.is_redis else None
        self.lease_table_name = table.name if table is not None else None
        profile, grants = self._create_identity(args, table)
        template = self._create_launch_template(args, profile)
        group = self._create_group(args, template, grants)
        self.asg_name = group.name
        for suffix, alarm in scheduler_alarms(config.metric_namespace, config.scheduler_lease_seconds, args.entries):
            alarm.alarm_actions = [args.alarm_topic_arn]
            alarm.ok_actions = [args.alarm_topic_arn]
            aws.cloudwatch.MetricAlarm(f"{name}-{suffix}", alarm, opts=self._child)
        self.register_outputs({"asgName": self.asg_name, "leaseTable": self.lease_table_name or ""})

    def _create_lease_table(self, config: StackConfig) -> aws.dynamodb.Table:
        return aws.dynamodb.Table(
            f"{self._name}-lease",
            aws.dynamodb.TableArgs(
                name=lease_table_name(config),
                billing_mode="PAY_PER_REQUEST",  # a few requests a minute
                hash_key="pk",
                attributes=[aws.dynamodb.TableAttributeArgs(name="pk", type="S")],
                server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True),
                point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
                # The workers' fence items carry `purge_at`; lease and state items have none and stay.
                ttl=aws.dynamodb.TableTtlArgs(attribute_name="purge_at", enabled=True),
            ),
            opts=self._child,
        )

    def _create_identity(
        self, args: SchedulerArgs, table: aws.dynamodb.Table | None
    ) -> tuple[aws.iam.InstanceProfile, list[pulumi.Resource]]:
        config = args.config
        lease: dict[str, pulumi.Input[str]] = {}
        if table is not None:
            lease["lease"] = table.arn.apply(lambda arn: json.dumps(lease_table_policy(arn)))
        identity = create_instance_identity(
            self._name,
            IdentityArgs(
                log_group=scheduler_log_group(config.stack),
                retention_days=config.log_retention_days,
                description=f"celery-cluster {config.stack} periodic task scheduler",
                broker_secret_arn=args.broker_secret_arn,
                metric_namespace=config.metric_namespace,
                artefact_bucket_arn=args.artefact_bucket_arn,
                extra_policies=lease,
            ),
            self._child,
        )
        return identity.profile, identity.grants

    def _create_launch_template(self, args: SchedulerArgs, profile: aws.iam.InstanceProfile) -> aws.ec2.LaunchTemplate:
        config = args.config
        launch = LaunchArgs(
            description=f"celery-cluster {config.stack} periodic task scheduler",
            image_id=args.image_id,
            instance_type=config.scheduler_instance_type,
            user_data=args.user_data,
            security_group_id=args.security_group_id,
            volume_gb=VOLUME_GB,
            tags={"celery-cluster:stack": config.stack, "celery-cluster:role": "scheduler"},
        )
        return create_launch_template(self._name, launch, profile, self._child)

    def _create_group(
        self, args: SchedulerArgs, template: aws.ec2.LaunchTemplate, grants: Sequence[pulumi.Resource]
    ) -> aws.autoscaling.Group:
        config = args.config
        return aws.autoscaling.Group(
            f"{self._name}-asg",
            aws.autoscaling.GroupArgs(
                min_size=1,
                max_size=1,
                desired_capacity=1,
                vpc_zone_identifiers=args.subnet_ids,
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)
                ),
                health_check_type="EC2",
                health_check_grace_period=WARMUP_SECONDS,
                # Stop before start: the old scheduler goes (releasing its lease) before the new one boots.
                instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                    strategy="Rolling",
                    preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                        min_healthy_percentage=0, instance_warmup=str(WARMUP_SECONDS)
                    ),
                ),
                tags=[
                    aws.autoscaling.GroupTagArgs(
                        key="Name", value=f"celery-{config.stack}-scheduler", propagate_at_launch=True
                    ),
                    aws.autoscaling.GroupTagArgs(
                        key="celery-cluster:role", value="scheduler", propagate_at_launch=True
                    ),
                ],
            ),
            # An instance must not boot before its role can read the secret (as the pools' groups).
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(grants)),
        )
