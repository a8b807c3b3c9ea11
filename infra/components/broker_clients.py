"""Who besides the stack's own workers and publisher may reach the broker: producer applications.

Pure functions of the config: each rule is `(suffix, args)` for the broker component to create.
Producers get the broker port only (6379 ElastiCache, 5671 AMQPS) and never the RabbitMQ
management API, which only the publisher reads. A security group rule that references another
group admits the instances that carry it, in this VPC or a peered one in the same Region
(https://docs.aws.amazon.com/vpc/latest/peering/vpc-peering-security-groups.html); address ranges
cover producers behind Transit Gateway or VPN, where group references do not reach.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig

IngressArgs = aws.vpc.SecurityGroupIngressRuleArgs


def _slug(text: str) -> str:
    return text.replace(".", "-").replace("/", "-")


def client_ingress_rules(
    config: StackConfig, port: int, broker_group_id: pulumi.Input[str]
) -> list[tuple[str, IngressArgs]]:
    """One ingress rule per configured producer security group and CIDR, named after it (so
    reordering the config list replaces nothing)."""
    rules: list[tuple[str, IngressArgs]] = []
    for group in config.broker_client_security_group_ids:
        rules.append(
            (
                f"from-client-{group}",
                IngressArgs(
                    security_group_id=broker_group_id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    referenced_security_group_id=group,
                    description="broker protocol from producers (brokerClientSecurityGroupIds)",
                ),
            )
        )
    for cidr in config.broker_client_cidrs:
        rules.append(
            (
                f"from-client-{_slug(cidr)}",
                IngressArgs(
                    security_group_id=broker_group_id,
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_ipv4=cidr,
                    description="broker protocol from producers (brokerClientCidrs)",
                ),
            )
        )
    return rules
