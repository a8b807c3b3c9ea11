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

from infra.components.security_rules import IngressArgs, tcp_ingress
from infra.config import StackConfig


def _slug(text: str) -> str:
    return text.replace(".", "-").replace("/", "-")


def client_ingress_rules(
    config: StackConfig, port: int, broker_group_id: pulumi.Input[str]
) -> list[tuple[str, IngressArgs]]:
    """One ingress rule per configured producer security group and CIDR, named after it (so
    reordering the config list replaces nothing)."""
    by_group = "broker protocol from producers (brokerClientSecurityGroupIds)"
    by_cidr = "broker protocol from producers (brokerClientCidrs)"
    return [
        *(
            (f"from-client-{group}", tcp_ingress(broker_group_id, port, by_group, from_group=group))
            for group in config.broker_client_security_group_ids
        ),
        *(
            (f"from-client-{_slug(cidr)}", tcp_ingress(broker_group_id, port, by_cidr, from_cidr=cidr))
            for cidr in config.broker_client_cidrs
        ),
    ]
