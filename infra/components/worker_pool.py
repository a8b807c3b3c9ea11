"""A worker pool: launch template, Auto Scaling group, drain hook, its scaling policies, and the
metric filters that count its task outcomes per code version (infra.components.canary).

The launch template takes the AMI and the user data as inputs (the image component or an AMI
lookup provides the first, `infra.vm.user_data` the second); a new build makes a new template version.
The group is created on the template's version *number* (`$Latest` or `$Default` would rule out a
rollback), and from then on `pulumi up` never moves it to a new version: the deploy step does, with
an instance refresh whose DesiredConfiguration is that version (`infra.cli.canary_rollout`, preferences from
`refresh_plan`). AWS saves a refresh's desired configuration on the group only once it succeeds, so
AutoRollback returns the instances to the version the group still holds. Had the provider moved the
group first (its `instance_refresh` block calls UpdateAutoScalingGroup, then StartInstanceRefresh),
the "previous configuration" would be the new version and a rollback would relaunch the bad code
(terraform-provider-aws #34189, open). Hence `ignore_changes` on the version, and `pulumi up --refresh`
in the deploy so that Pulumi's state holds the version AWS runs (a stale one in the state would be
sent back with any other change to the launch settings: https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import outputs
from infra.canary.rules import LOG_METRICS, refresh_preferences
from infra.components import iam
from infra.components.canary import metric_filter_args
from infra.components.instance import IdentityArgs, LaunchArgs, create_instance_identity, create_launch_template
from infra.components.metrics import (
    GROUP_METRICS,
)
from infra.components.pool_scaling import create_schedules, create_step_policy, create_target_tracking
from infra.components.roles import inline_policy
from infra.components.scheduler import fence_table_policy
from infra.config import PoolConfig, StackConfig
from infra.scaling.policy import PoolScaling

TYPE = "celery-cluster:pool:WorkerPool"
DRAIN_HOOK = "drain"

STEP_PURPOSE = {
    "latency": "adds instances (latency safety net)",
    "fast-out": "adds instances at the start of a burst",
    "from-zero": "adds what the backlog needs while no instance is in service",
    "scale-in": "removes instances (never the last one)",
    "to-zero": "removes the last instance of an idle pool",
}


@dataclass(frozen=True)
class WorkerPoolArgs:
    name: str
    """The pool's name in config (the `Pool` metric dimension and tag)."""
    pool: PoolConfig
    config: StackConfig
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str]
    image_id: pulumi.Input[str]
    user_data: pulumi.Input[str]
    """Plain-text user data (no secrets); the component base64-encodes it."""
    broker_secret_arn: pulumi.Input[str]
    artefact_bucket_arn: pulumi.Input[str] | None = None
    """imageMode boot: instances read the wheelhouse from the stack's bucket at boot."""
    fence_table_arn: pulumi.Input[str] | None = None
    """RabbitMQ stacks with the scheduler on: its table, where workers fence periodic runs."""


def fence_policy(table_arn: pulumi.Input[str] | None) -> dict[str, pulumi.Input[str]]:
    if table_arn is None:
        return {}
    return {"fence": pulumi.Output.from_input(table_arn).apply(lambda arn: json.dumps(fence_table_policy(arn)))}


def log_group_name(stack: str, pool: str) -> str:
    """The pool's log group; the CloudWatch agent on its instances ships the worker's JSON logs here."""
    return f"/celery-cluster/{stack}/workers/{pool}"


# Property paths of the group's launch template version (one per shape of group), left to the deploy
# step's instance refresh after creation (module docstring).
VERSION_PATHS = (
    "launchTemplate.version",
    "mixedInstancesPolicy.launchTemplate.launchTemplateSpecification.version",
)


class WorkerPool(pulumi.ComponentResource):
    asg_name: pulumi.Output[str]
    asg_arn: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    launch_template_version: pulumi.Output[str]
    scaling: PoolScaling

    def __init__(self, name: str, args: WorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._pool_name = args.name
        pool, config = args.pool, args.config
        self._pool, self._config = pool, config
        self.scaling = pool.scaling(self._pool_name)
        profile, role, grants = self._create_identity(args)
        template = self._create_launch_template(args, profile)
        group = self._create_group(args, template, grants)
        self._create_drain_hook(config, group)
        self.asg_name = group.name
        self.asg_arn = group.arn
        self.launch_template_id = template.id
        self.launch_template_version = template.latest_version.apply(str)
        lifecycle = group.arn.apply(lambda arn: json.dumps(iam.worker_lifecycle_policy(arn)))
        inline_policy(f"{name}-lifecycle", role, lifecycle, self._child)
        create_target_tracking(name, self._pool_name, config, pool, group, self.scaling, self._child)
        # Target tracking only scales out (disable_scale_in); step policies add a one-datapoint burst
        # response, the latency safety net and the scale-in (infra.scaling.default_policy).
        for short, policy in self.scaling.step_policies:
            create_step_policy(
                name,
                self._pool_name,
                config,
                pool,
                group,
                self.scaling,
                short,
                policy,
                STEP_PURPOSE.get(short, "scaling step"),
                self._child,
            )
        create_schedules(name, self._pool_name, pool, group, self._child)
        self.register_outputs(
            {
                "asgName": self.asg_name,
                "asgArn": self.asg_arn,
                "launchTemplateId": self.launch_template_id,
                "launchTemplateVersion": self.launch_template_version,
            }
        )

    def refresh_plan(self, alarm_names: Sequence[pulumi.Input[str]]) -> pulumi.Output[dict[str, object]]:
        """What the deploy step needs to roll this pool to its new version (outputs.POOL_REFRESH)."""
        return pulumi.Output.all(
            self.asg_name, self.launch_template_id, self.launch_template_version, *alarm_names
        ).apply(
            lambda v: {
                outputs.PLAN_ASG_NAME: v[0],
                outputs.PLAN_TEMPLATE_ID: v[1],
                outputs.PLAN_TEMPLATE_VERSION: v[2],
                outputs.PLAN_PREFERENCES: refresh_preferences(self._config, self._pool, [str(a) for a in v[3:]]),
            }
        )

    def _create_metric_filters(self, logs: aws.cloudwatch.LogGroup) -> None:
        """Task outcomes per code version, counted from the pool's own log lines (infra.components.canary)."""
        for metric in LOG_METRICS:
            aws.cloudwatch.LogMetricFilter(
                f"{self._name}-{metric.key}",
                metric_filter_args(self._config.metric_namespace, logs.name, metric),
                opts=self._child,
            )

    def _create_identity(
        self, args: WorkerPoolArgs
    ) -> tuple[aws.iam.InstanceProfile, aws.iam.Role, list[pulumi.Resource]]:
        config = args.config
        identity = create_instance_identity(
            self._name,
            IdentityArgs(
                log_group=log_group_name(config.stack, self._pool_name),
                retention_days=config.log_retention_days,
                description=f"celery-cluster {config.stack} pool {self._pool_name} instances",
                broker_secret_arn=args.broker_secret_arn,
                metric_namespace=config.metric_namespace,
                artefact_bucket_arn=args.artefact_bucket_arn,
                extra_policies=fence_policy(args.fence_table_arn),
            ),
            self._child,
        )
        self._create_metric_filters(identity.log_group)
        return identity.profile, identity.role, identity.grants

    def _create_launch_template(self, args: WorkerPoolArgs, profile: aws.iam.InstanceProfile) -> aws.ec2.LaunchTemplate:
        pool, config = args.pool, args.config
        launch = LaunchArgs(
            description=f"celery-cluster {config.stack} pool {self._pool_name}",
            image_id=args.image_id,
            instance_type=pool.instance_types[0],
            user_data=args.user_data,
            security_group_id=args.security_group_id,
            volume_gb=pool.volume_size_gb,
            tags={"celery-cluster:stack": config.stack, "celery-cluster:pool": self._pool_name},
            metadata_tags=True,  # the drain agent reads its group name from tags
            detailed_monitoring=True,
        )
        return create_launch_template(self._name, launch, profile, self._child)

    def _create_drain_hook(self, config: StackConfig, group: aws.autoscaling.Group) -> aws.autoscaling.LifecycleHook:
        """The termination hook as its own resource: a changed drain window updates the hook in place,
        where `initial_lifecycle_hooks` would replace the whole group (terraform-provider-aws #34260)."""
        return aws.autoscaling.LifecycleHook(
            f"{self._name}-drain",
            aws.autoscaling.LifecycleHookArgs(
                name=DRAIN_HOOK,
                autoscaling_group_name=group.name,
                lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                # The drain window: the worker's soft shutdown plus the margin to complete the hook.
                heartbeat_timeout=config.drain_window_seconds,
                default_result="CONTINUE",
            ),
            opts=self._child,
        )

    # long function: one Auto Scaling group's arguments (its warm pool, mixed instances and refresh), each with why
    def _create_group(
        self, args: WorkerPoolArgs, template: aws.ec2.LaunchTemplate, grants: Sequence[pulumi.Resource]
    ) -> aws.autoscaling.Group:
        pool, config = args.pool, args.config
        version = template.latest_version.apply(str)
        launch_template: aws.autoscaling.GroupLaunchTemplateArgs | None = None
        mixed: aws.autoscaling.GroupMixedInstancesPolicyArgs | None = None
        warm_pool: aws.autoscaling.GroupWarmPoolArgs | None = None
        if pool.warm_pool.enabled:
            # EC2 Auto Scaling offers warm pools only to groups without a mixed instances policy.
            launch_template = aws.autoscaling.GroupLaunchTemplateArgs(id=template.id, version=version)
            warm_pool = aws.autoscaling.GroupWarmPoolArgs(
                pool_state=pool.warm_pool.state,
                min_size=pool.warm_pool.min_size,
                # The configured size, not max - desired: "Only when MaxGroupPreparedCapacity and
                # MinSize are set to the same value does the warm pool have an absolute size."
                # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutWarmPool.html
                max_group_prepared_capacity=pool.warm_pool.min_size,
                instance_reuse_policy=aws.autoscaling.GroupWarmPoolInstanceReusePolicyArgs(reuse_on_scale_in=False),
            )
        else:
            mixed = aws.autoscaling.GroupMixedInstancesPolicyArgs(
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                        launch_template_id=template.id, version=version
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=kind)
                        for kind in pool.instance_types
                    ],
                ),
                instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=pool.spot.on_demand_base_capacity if pool.spot.enabled else 0,
                    on_demand_percentage_above_base_capacity=pool.on_demand_percentage_above_base,
                    on_demand_allocation_strategy="prioritized",
                    spot_allocation_strategy=pool.spot.allocation_strategy,
                ),
            )
        return aws.autoscaling.Group(
            f"{self._name}-asg",
            aws.autoscaling.GroupArgs(
                min_size=pool.min_size,
                max_size=pool.max_size,
                desired_capacity=pool.initial_size,
                vpc_zone_identifiers=args.subnet_ids,
                launch_template=launch_template,
                mixed_instances_policy=mixed,
                warm_pool=warm_pool,
                capacity_rebalance=pool.spot.enabled,
                default_instance_warmup=pool.instance_warmup_seconds,
                health_check_type="EC2",
                health_check_grace_period=pool.instance_warmup_seconds,
                enabled_metrics=[aws.autoscaling.Metric(m) for m in GROUP_METRICS],
                metrics_granularity="1Minute",
                tags=[
                    aws.autoscaling.GroupTagArgs(
                        key="Name", value=f"celery-{config.stack}-{self._pool_name}", propagate_at_launch=True
                    ),
                    aws.autoscaling.GroupTagArgs(
                        key="celery-cluster:pool", value=self._pool_name, propagate_at_launch=True
                    ),
                ],
            ),
            # After creation the scaling policies own the desired capacity, and the deploy step's canary
            # refresh the launch template version (module docstring). No `instance_refresh` block: the
            # provider's would move the group to the new version before the refresh (no rollback).
            # The instances' first act is to read the broker secret: the role's policies exist before
            # the group launches any (IAM is eventually consistent,
            # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["desiredCapacity", *VERSION_PATHS], depends_on=list(grants)
            ),
        )
