"""What an EC2 instance of the stack is: its identity (log group, role, grants, instance profile) and its
launch template (IMDSv2 only, encrypted root volume, no public IP, no key pair).

The worker pools and the scheduler instance share it (one definition of the instance's rights and of its
hardening), and add their own grants beside it (the scheduler's lease table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.components import iam
from infra.components.artefact_bucket import read_artefacts_policy
from infra.components.roles import attach_managed, inline_policy, instance_profile, service_role
from infra.vm.user_data import encode

# Session Manager replaces SSH: no key pair, no port 22.
# https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html
SSM_CORE_POLICY: Final = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
ROOT_DEVICE: Final = "/dev/xvda"  # Amazon Linux 2023's root device name


@dataclass(frozen=True)
class IdentityArgs:
    log_group: str
    """The log group the instance's agent writes to (created here, with the stack's retention)."""
    retention_days: int
    description: str
    """The role's description."""
    broker_secret_arn: pulumi.Input[str]
    metric_namespace: str
    artefact_bucket_arn: pulumi.Input[str] | None = None
    """Where a boot-mode instance downloads the wheelhouse from; None: nothing to read."""
    extra_policies: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """More inline policies (JSON), by the suffix of their resource name."""


@dataclass(frozen=True)
class InstanceIdentity:
    profile: aws.iam.InstanceProfile
    role: aws.iam.Role
    grants: list[pulumi.Resource]
    """What the instance must not start before: its policies are attached."""
    log_group: aws.cloudwatch.LogGroup
    """Where the instance's agent ships its logs (a pool counts its task outcomes there)."""


def create_instance_identity(name: str, args: IdentityArgs, opts: pulumi.ResourceOptions) -> InstanceIdentity:
    """Children named `{name}-logs`, `-role`, `-ssm`, `-runtime`, `-<extra>`, `-artefacts`, `-profile`."""
    logs = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        aws.cloudwatch.LogGroupArgs(name=args.log_group, retention_in_days=args.retention_days),
        opts=opts,
    )
    role = service_role(f"{name}-role", "ec2.amazonaws.com", args.description, opts)
    ssm = attach_managed(f"{name}-ssm", role, SSM_CORE_POLICY, opts)
    namespace = args.metric_namespace
    runtime = pulumi.Output.all(args.broker_secret_arn, logs.arn).apply(
        lambda v: json.dumps(iam.worker_instance_policy(v[0], v[1], namespace))
    )
    policies: dict[str, pulumi.Input[str]] = {"runtime": runtime, **args.extra_policies}
    if args.artefact_bucket_arn is not None:
        policies["artefacts"] = pulumi.Output.from_input(args.artefact_bucket_arn).apply(
            lambda arn: json.dumps(read_artefacts_policy(arn))
        )
    grants: list[pulumi.Resource] = [ssm]
    grants += [inline_policy(f"{name}-{suffix}", role, policy, opts) for suffix, policy in policies.items()]
    profile = instance_profile(f"{name}-profile", role, opts)
    return InstanceIdentity(profile, role, grants, logs)


@dataclass(frozen=True)
class LaunchArgs:
    description: str
    image_id: pulumi.Input[str]
    instance_type: str
    user_data: pulumi.Input[str]
    """Cloud-init text; base64-encoded here, as launch templates take it."""
    security_group_id: pulumi.Input[str]
    volume_gb: int
    tags: dict[str, str]
    metadata_tags: bool = False
    """Instance tags readable through IMDS (the drain agent reads its group name from them)."""
    detailed_monitoring: bool = False


def create_launch_template(
    name: str, args: LaunchArgs, profile: aws.iam.InstanceProfile, opts: pulumi.ResourceOptions
) -> aws.ec2.LaunchTemplate:
    """`{name}-lt`: the instance hardened as the security baseline says (docs/architecture.md)."""
    return aws.ec2.LaunchTemplate(
        f"{name}-lt",
        aws.ec2.LaunchTemplateArgs(
            description=args.description,
            image_id=args.image_id,
            instance_type=args.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            user_data=pulumi.Output.from_input(args.user_data).apply(encode),
            update_default_version=True,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",  # IMDSv2 only
                http_put_response_hop_limit=1,  # no container or forwarded hop reaches IMDS
                instance_metadata_tags="enabled" if args.metadata_tags else None,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        encrypted="true", volume_size=args.volume_gb, volume_type="gp3", delete_on_termination="true"
                    ),
                )
            ],
            network_interfaces=[
                aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                    device_index=0,
                    associate_public_ip_address="false",
                    security_groups=[args.security_group_id],
                    delete_on_termination="true",
                )
            ],
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True) if args.detailed_monitoring else None,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=args.tags)
                for kind in ("instance", "volume")
            ],
            tags=args.tags,
        ),
        opts=opts,
    )
