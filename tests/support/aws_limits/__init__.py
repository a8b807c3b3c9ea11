"""AWS limits that span fields or resources, checked on a rendered stack; each with its source.

botocore's models (tests/support/aws_requests) check one request member at a time. The limits here
count across members or resources (metric queries per alarm, policy sizes per role, rules per security
group, resources per group), or are written only in AWS's documentation (name lengths the models type
as plain strings). Every check takes the render's resources (`{"type", "name", "inputs"}`, as
`make render` writes them) and returns its violations, one line each; `check_all` runs every one.
One module per service or kind of limit registers its checks (`registry.limit`) when imported here.

Outputs AWS computes are mocked in a render, so sizes are taken at their worst: each ARN as long as
AWS can make it (partition `aws-iso-b`, a 14-character region, an auto-name suffix) and each
auto-named resource with Pulumi's suffix ("-" and 7 hex digits).
"""

from __future__ import annotations

from tests.support.aws_limits import autoscaling, cloudwatch, names, networks, sizes
from tests.support.aws_limits.registry import LIMITS, Limit, check_all, limits_by_name, sources

__all__ = [
    "LIMITS",
    "Limit",
    "autoscaling",
    "check_all",
    "cloudwatch",
    "limits_by_name",
    "names",
    "networks",
    "sizes",
    "sources",
]
