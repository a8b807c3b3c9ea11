"""A worker pool: launch template, Auto Scaling group, drain hook, and its scaling policies.

The launch template takes the AMI and the user data as inputs (the image component or an AMI
lookup provides the first, `infra.vm.user_data` the second). The group references the template's
latest version *number*: a new template version changes the group's launch template spec, which
starts an instance refresh; `$Latest` would leave running instances on the old version silently.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import iam
from infra.components.instance import IdentityArgs, LaunchArgs, create_instance_identity, create_launch_template
from infra.components.metrics import (
    GROUP_METRICS,
)
from infra.components.pool_scaling import create_schedules, create_step_policy, create_target_tracking
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


def log_group_name(stack: str, pool: str) -> str:
    """The pool's log group; the CloudWatch agent on its instances ships the worker's JSON logs here."""
    return f"/celery-cluster/{stack}/workers/{pool}"


class WorkerPool(pulumi.ComponentResource):
    asg_name: pulumi.Output[str]
    asg_arn: pulumi.Output[str]
    launch_template_id: pulumi.Output[str]
    scaling: PoolScaling

    def __init__(self, name: str, args: WorkerPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._pool_name = args.name
        pool, config = args.pool, args.config
        self.scaling = pool.scaling(self._pool_name)
        profile, role, grants = self._create_identity(args)
        template = self._create_launch_template(args, profile)
        group = self._create_group(args, template, grants)
        self._create_drain_hook(config, group)
        self.asg_name = group.name
        self.asg_arn = group.arn
        self.launch_template_id = template.id
        aws.iam.RolePolicy(
            f"{name}-lifecycle",
            aws.iam.RolePolicyArgs(
                role=role.id, policy=group.arn.apply(lambda arn: json.dumps(iam.worker_lifecycle_policy(arn)))
            ),
            opts=self._child,
        )
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
            {"asgName": self.asg_name, "asgArn": self.asg_arn, "launchTemplateId": self.launch_template_id}
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
            ),
            self._child,
        )
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
                instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                    strategy="Rolling",
                    preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                        min_healthy_percentage=90,
                        instance_warmup=str(pool.instance_warmup_seconds),
                        skip_matching=True,
                        # Instances protect themselves while busy (worker.drain.protection); a refresh still
                        # replaces them, through the drain hook that waits for their tasks. The default
                        # (Wait) waits an hour for the protection to go, then fails the refresh.
                        # https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html
                        scale_in_protected_instances="Refresh",
                    ),
                ),
                tags=[
                    aws.autoscaling.GroupTagArgs(
                        key="Name", value=f"celery-{config.stack}-{self._pool_name}", propagate_at_launch=True
                    ),
                    aws.autoscaling.GroupTagArgs(
                        key="celery-cluster:pool", value=self._pool_name, propagate_at_launch=True
                    ),
                ],
            ),
            # After creation the scaling policies own the desired capacity. The instances' first act is to
            # read the broker secret: the role's policies exist before the group launches any (IAM is
            # eventually consistent, https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"], depends_on=list(grants)),
        )
