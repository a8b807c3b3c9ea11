"""IAM as AWS evaluates it, for rules checked on a render: the ARN AWS gives a rendered role, profile or
policy, and whether an identity policy allows an action on a resource (moto's evaluator)."""

from __future__ import annotations

import json
from typing import Any

from moto.iam.access_control import IAMPolicy, PermissionResult

from tests.support.aws_requests import AUTONAME_SUFFIX

ACCOUNT = "123456789012"


def iam_arn(kind: str, inputs: dict[str, Any], name: str) -> str:
    """The ARN AWS gives the resource: <kind>/<path><name>, the name Pulumi's auto-name when not set.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns"""
    path = inputs.get("path") or "/"
    return f"arn:aws:iam::{ACCOUNT}:{kind}{path}{inputs.get('name') or name + AUTONAME_SUFFIX}"


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    # moto's evaluator of identity policies: action and resource wildcards as IAM matches them.
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource) == PermissionResult.PERMITTED
