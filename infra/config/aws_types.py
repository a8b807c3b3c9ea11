"""Names AWS accepts, checked before anything is registered: instance types, cache node types,
engine versions, AZ names, and an instance type's CPU architecture.

The lists come from botocore's service models (the AWS SDK's own API definitions, installed with
the project), so they move with the pinned botocore instead of being copied here.
"""

from __future__ import annotations

import re
from functools import cache

import botocore.session

# EC2's API model enumerates every instance type (shape `InstanceType`, used by RunInstances and
# launch templates): https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_RunInstances.html
_EC2_SHAPE = "InstanceType"
# ElastiCache's model has no enum for node types; its `CacheNode` shape documents the supported
# types in prose (the same list as https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheNodes.SupportedTypes.html).
_CACHE_SHAPE = "CacheNode"
# Supported by ElastiCache but missing from that prose: data tiering (r6gd,
# https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/data-tiering.html) and network-optimised
# c7gn (listed on the supported node types page above).
_CACHE_EXTRA = tuple(
    f"cache.r6gd.{size}" for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
)
_CACHE_EXTRA += tuple(
    f"cache.c7gn.{size}" for size in ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")
)
_CACHE_TYPE = re.compile(r"cache\.[a-z0-9]+\.[a-z0-9]+")

# Graviton families: a generation digit followed by "g" (t4g, m7g, c7gn, r8gd, ...), plus the first
# Graviton family a1 (https://aws.amazon.com/ec2/instance-types/a1/), whose name breaks the pattern.
_ARM_FAMILY = re.compile(r"^(?:[a-z]+[0-9]+g[a-z]*|a1)$")

# An engine version is numbers: "8.0", "7.1", "3.13" (ElastiCache and Amazon MQ take major.minor and
# apply patch releases themselves). Words such as "latest" are not versions and fail in AWS.
ENGINE_VERSION = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?$")


@cache
def _model(service: str) -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model(service)


@cache
def ec2_instance_types() -> frozenset[str]:
    return frozenset(_model("ec2").shape_for(_EC2_SHAPE).enum)


@cache
def cache_node_types() -> frozenset[str]:
    documented = _CACHE_TYPE.findall(_model("elasticache").shape_for(_CACHE_SHAPE).documentation)
    return frozenset((*documented, *_CACHE_EXTRA))


def architecture_of(instance_type: str) -> str:
    """x86_64 or arm64, from the family name (the part before the dot)."""
    return "arm64" if _ARM_FAMILY.match(instance_type.split(".", maxsplit=1)[0]) else "x86_64"


def availability_zone_pattern(region: str) -> re.Pattern[str]:
    """An AZ name is its region followed by one letter (us-east-1a); the region alone is not an AZ.
    https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-regions-availability-zones.html"""
    return re.compile(rf"^{re.escape(region)}[a-z]$")
