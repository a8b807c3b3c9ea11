"""IAM roles an AWS service assumes for the stack (EC2 instances, Lambda functions, Image Builder), with the
grants on them: every role of the stack is made here, so each is on the stack's IAM path, the one the CI
deploy role may create and pass (`iam.IAM_PATH`). The policy documents themselves are in `iam`."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.components import iam


def service_role(name: str, service: str, description: str, opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """`name`: a role only `service` (e.g. "lambda.amazonaws.com") may assume."""
    return aws.iam.Role(
        name,
        aws.iam.RoleArgs(
            path=iam.IAM_PATH, assume_role_policy=json.dumps(iam.assume_role(service)), description=description
        ),
        opts=opts,
    )


def attach_managed(
    name: str, role: aws.iam.Role, policy_arn: str, opts: pulumi.ResourceOptions
) -> aws.iam.RolePolicyAttachment:
    return aws.iam.RolePolicyAttachment(
        name, aws.iam.RolePolicyAttachmentArgs(role=role.name, policy_arn=policy_arn), opts=opts
    )


def inline_policy(
    name: str, role: aws.iam.Role, policy: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.iam.RolePolicy:
    """`policy`: the document as JSON (an output where it names the stack's resources)."""
    return aws.iam.RolePolicy(name, aws.iam.RolePolicyArgs(role=role.id, policy=policy), opts=opts)


def instance_profile(name: str, role: aws.iam.Role, opts: pulumi.ResourceOptions) -> aws.iam.InstanceProfile:
    return aws.iam.InstanceProfile(name, aws.iam.InstanceProfileArgs(path=iam.IAM_PATH, role=role.name), opts=opts)
