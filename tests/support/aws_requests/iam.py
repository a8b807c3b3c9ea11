"""IAM: roles, their inline and attached policies, instance profiles and managed policies."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of, optional, required, tags


def _role(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "iam",
        "CreateRole",
        {
            "RoleName": name_of(i, name),
            "AssumeRolePolicyDocument": i["assumeRolePolicy"],
            **optional(i, "Path", "Description", "MaxSessionDuration", "PermissionsBoundary"),
            "Tags": tags(i.get("tags")),
        },
    )


def _role_policy(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "iam",
        "PutRolePolicy",
        {"RoleName": i["role"], "PolicyName": name_of(i, name), "PolicyDocument": i["policy"]},
    )


def _attachment(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield ("iam", "AttachRolePolicy", {"RoleName": i["role"], **required(i, "PolicyArn")})


def _instance_profile(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    profile = name_of(i, name)
    yield ("iam", "CreateInstanceProfile", {"InstanceProfileName": profile, "Path": i.get("path")})
    if i.get("role"):
        yield ("iam", "AddRoleToInstanceProfile", {"InstanceProfileName": profile, "RoleName": i["role"]})


def _managed_policy(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "iam",
        "CreatePolicy",
        {"PolicyName": name_of(i, name), "PolicyDocument": i["policy"], **optional(i, "Path", "Description")},
    )


BUILDERS: dict[str, Builder] = {
    "aws:iam/role:Role": _role,
    "aws:iam/rolePolicy:RolePolicy": _role_policy,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _attachment,
    "aws:iam/instanceProfile:InstanceProfile": _instance_profile,
    "aws:iam/policy:Policy": _managed_policy,
}
