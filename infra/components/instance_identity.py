"""What an EC2 instance of the stack runs as: its log group, role, grants and instance profile.

The worker pools and the scheduler instance share it (one definition of the instance's rights), and add
their own grants beside it (the scheduler's lease table).
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

# Session Manager replaces SSH: no key pair, no port 22.
# https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-instance-permissions.html
SSM_CORE_POLICY: Final = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


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


def create_instance_identity(name: str, args: IdentityArgs, opts: pulumi.ResourceOptions) -> InstanceIdentity:
    """Children named `{name}-logs`, `-role`, `-ssm`, `-runtime`, `-<extra>`, `-artefacts`, `-profile`."""
    logs = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        aws.cloudwatch.LogGroupArgs(name=args.log_group, retention_in_days=args.retention_days),
        opts=opts,
    )
    role = aws.iam.Role(
        f"{name}-role",
        aws.iam.RoleArgs(
            path=iam.IAM_PATH,
            assume_role_policy=json.dumps(iam.assume_role("ec2.amazonaws.com")),
            description=args.description,
        ),
        opts=opts,
    )
    ssm = aws.iam.RolePolicyAttachment(
        f"{name}-ssm", aws.iam.RolePolicyAttachmentArgs(role=role.name, policy_arn=SSM_CORE_POLICY), opts=opts
    )
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
    for suffix, policy in policies.items():
        grants.append(
            aws.iam.RolePolicy(f"{name}-{suffix}", aws.iam.RolePolicyArgs(role=role.id, policy=policy), opts=opts)
        )
    profile = aws.iam.InstanceProfile(
        f"{name}-profile", aws.iam.InstanceProfileArgs(path=iam.IAM_PATH, role=role.name), opts=opts
    )
    return InstanceIdentity(profile, role, grants)
