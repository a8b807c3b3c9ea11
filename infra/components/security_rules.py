"""Security group rules as the stack writes every one: TCP on one port (or one port range), to or from
either another security group or an address range, with a description. Pure functions: the components
create the rules from these args."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

IngressArgs = aws.vpc.SecurityGroupIngressRuleArgs
EgressArgs = aws.vpc.SecurityGroupEgressRuleArgs


def tcp_ingress(
    group_id: pulumi.Input[str],
    port: int,
    description: str,
    *,
    from_group: pulumi.Input[str] | None = None,
    from_cidr: str | None = None,
) -> IngressArgs:
    """Admit TCP on `port` into `group_id` from the instances carrying `from_group`, or from `from_cidr`."""
    return IngressArgs(
        security_group_id=group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=from_group,
        cidr_ipv4=from_cidr,
        description=description,
    )


def tcp_egress(
    group_id: pulumi.Input[str],
    port: int,
    description: str,
    *,
    to_group: pulumi.Input[str] | None = None,
    to_cidr: str | None = None,
) -> EgressArgs:
    """Let `group_id` call out on TCP `port`, to the instances carrying `to_group`, or to `to_cidr`."""
    return EgressArgs(
        security_group_id=group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        referenced_security_group_id=to_group,
        cidr_ipv4=to_cidr,
        description=description,
    )
