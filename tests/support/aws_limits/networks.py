"""VPC limits on a rendered stack: rules per security group, subnet sizes and overlaps."""

from __future__ import annotations

import ipaddress
from collections import Counter

from tests.support.aws_limits.registry import Resources, limit, of_type


@limit(
    "At most 60 inbound and 60 outbound rules per security group "
    "(https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups)"
)
def security_group_rules(resources: Resources) -> list[str]:
    problems = []
    for type_, direction in (
        ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "inbound"),
        ("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", "outbound"),
    ):
        counts = Counter(r["inputs"]["securityGroupId"] for r in of_type(resources, type_))
        problems += [f"{group}: {n} {direction} rules (at most 60)" for group, n in counts.items() if n > 60]
    return problems


@limit(
    "A subnet's CIDR lies within its VPC's and overlaps no other subnet's; a subnet is /16 to /28 "
    "(https://docs.aws.amazon.com/vpc/latest/userguide/subnet-sizing.html)"
)
def subnets(resources: Resources) -> list[str]:
    vpcs = [ipaddress.IPv4Network(v["inputs"]["cidrBlock"]) for v in of_type(resources, "aws:ec2/vpc:Vpc")]
    found = [
        (s["name"], ipaddress.IPv4Network(s["inputs"]["cidrBlock"]))
        for s in of_type(resources, "aws:ec2/subnet:Subnet")
    ]
    problems = []
    for name, network in found:
        if not 16 <= network.prefixlen <= 28:
            problems.append(f"{name}: {network} is not /16 to /28")
        if vpcs and not any(network.subnet_of(vpc) for vpc in vpcs):
            problems.append(f"{name}: {network} is outside the VPC")
    for index, (name, network) in enumerate(found):
        for other, second in found[index + 1 :]:
            if network.overlaps(second):
                problems.append(f"{name} and {other} overlap")
    return problems
