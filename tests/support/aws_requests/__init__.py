"""A rendered stack as the AWS API requests its resources become, checked against botocore's models.

The render holds the inputs the Pulumi engine receives (the Terraform AWS provider's shapes, camelCase).
For each resource that maps onto one create request (and the few follow-up requests the provider makes
at create, such as PutWarmPool), `requests_of` builds the request the provider would send, with the
builders of its service (one module per botocore service; `members` holds what they share), and
`validate` (`validation`) checks it against botocore's service model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.aws_requests import (
    autoscaling,
    cloudwatch,
    dynamodb,
    ec2,
    elasticache,
    events,
    iam,
    imagebuilder,
    kms,
    lambda_,
    logs,
    mq,
    secretsmanager,
    sns,
    sqs,
)
from tests.support.aws_requests.members import AUTONAME_SUFFIX, Builder, drop_none, name_of
from tests.support.aws_requests.validation import validate

__all__ = ["AUTONAME_SUFFIX", "BUILDERS", "Request", "requests_of", "validate"]


@dataclass(frozen=True)
class Request:
    service: str
    operation: str
    params: dict[str, Any]
    resource: str
    """`type name` of the rendered resource the request comes from."""


BUILDERS: dict[str, Builder] = {
    **autoscaling.BUILDERS,
    **ec2.BUILDERS,
    **cloudwatch.BUILDERS,
    **elasticache.BUILDERS,
    **mq.BUILDERS,
    **lambda_.BUILDERS,
    **imagebuilder.BUILDERS,
    **iam.BUILDERS,
    **logs.BUILDERS,
    **secretsmanager.BUILDERS,
    **kms.BUILDERS,
    **sns.BUILDERS,
    **sqs.BUILDERS,
    **events.BUILDERS,
    **dynamodb.BUILDERS,
}
"""Rendered resource type -> the builder of the requests that create it; other types make none."""

# The render's mock cloud gives every resource the id "<name>-id"; AWS's ids have a shape per type.
ID_PREFIX = {
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/subnet:Subnet": "subnet-",
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt-",
}
# Resources whose id is their name (the Terraform provider's convention for these types).
ID_IS_NAME = ("aws:iam/role:Role", "aws:iam/instanceProfile:InstanceProfile", "aws:s3/bucket:Bucket")


def _stand_in_ids(resources: list[dict[str, Any]]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for resource in resources:
        name, type_ = resource["name"], resource["type"]
        if type_ in ID_PREFIX:
            digest = hashlib.sha256(name.encode()).hexdigest()[:17]
            ids[f"{name}-id"] = ID_PREFIX[type_] + digest
        elif type_ in ID_IS_NAME:
            ids[f"{name}-id"] = name_of(resource["inputs"], name, "bucket" if "s3" in type_ else "name")
    return ids


def _replace(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


def requests_of(resources: list[dict[str, Any]]) -> list[Request]:
    """Every request the rendered resources map onto, in render order."""
    ids = _stand_in_ids(resources)
    found: list[Request] = []
    for resource in resources:
        builder = BUILDERS.get(resource["type"])
        if builder is None:
            continue
        for service, operation, params in builder(resource["name"], _replace(resource["inputs"], ids)):
            found.append(Request(service, operation, drop_none(params), f"{resource['type']} {resource['name']}"))
    return found
