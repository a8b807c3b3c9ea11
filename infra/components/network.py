"""Network: private subnets across AZs and their way to the AWS APIs, plus the client security groups.

Either the stack creates a VPC (private subnets, and NAT gateways or VPC endpoints for egress), or
it takes an existing VPC and its private subnets from config. Either way it creates the security
groups of the broker's two clients (workers and the publisher), because the broker admits exactly
those groups and nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.security_rules import tcp_egress, tcp_ingress
from infra.config import StackConfig

TYPE = "celery-cluster:network:Network"

# Interface endpoints the workers and the publisher call when the VPC has no NAT (egress=endpoints):
# Session Manager (ssm, ssmmessages, ec2messages), the broker secret, metrics, logs, lifecycle hooks, STS.
INTERFACE_ENDPOINTS = (
    "ssm",
    "ssmmessages",
    "ec2messages",
    "secretsmanager",
    "monitoring",
    "logs",
    "autoscaling",
    "sts",
)
# With imageMode bake, Image Builder's build instances run in the same private subnets. Their SSM agent
# needs ssm, ec2messages and ssmmessages ("All build activity is orchestrated by Systems Manager
# Automation", https://docs.aws.amazon.com/imagebuilder/latest/userguide/image-builder-setting-up.html), and
# AWSTOE calls Image Builder itself (https://docs.aws.amazon.com/imagebuilder/latest/userguide/vpc-interface-endpoints.html);
# its downloads come through the S3 gateway endpoint, its logs through logs. The build instances use the
# workers' security group, which the endpoints admit.
BAKE_ENDPOINTS = ("imagebuilder",)


def interface_endpoints(config: StackConfig) -> tuple[str, ...]:
    """The interface endpoints a stack with egress=endpoints creates."""
    return INTERFACE_ENDPOINTS + (BAKE_ENDPOINTS if config.image_mode == "bake" else ())


@dataclass(frozen=True)
class NetworkArgs:
    config: StackConfig


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Private and NAT subnet CIDRs: the VPC split in 16; private from the bottom, NAT from the middle."""
    blocks = list(ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=4))
    return [str(b) for b in blocks[:zones]], [str(b) for b in blocks[8 : 8 + zones]]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: pulumi.Output[list[str]]
    worker_security_group_id: pulumi.Output[str]
    publisher_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._clients: list[tuple[str, aws.ec2.SecurityGroup]] = []
        config = args.config
        if config.vpc_id:
            self.vpc_id = pulumi.Output.from_input(config.vpc_id)
            self.private_subnet_ids = pulumi.Output.from_input(list(config.private_subnet_ids))
        else:
            self._create_vpc(config)
        self.worker_security_group_id = self._client_group("workers", "Celery worker instances").id
        self.publisher_security_group_id = self._client_group("publisher", "Queue metrics publisher Lambda").id
        if not config.vpc_id and config.egress == "endpoints":
            self._create_interface_endpoints(config)
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "workerSecurityGroupId": self.worker_security_group_id,
                "publisherSecurityGroupId": self.publisher_security_group_id,
            }
        )

    def _create_vpc(self, config: StackConfig) -> None:
        vpc = aws.ec2.Vpc(
            f"{self._name}-vpc",
            aws.ec2.VpcArgs(
                cidr_block=config.vpc_cidr,
                enable_dns_hostnames=True,  # interface endpoints and Session Manager need private DNS
                enable_dns_support=True,
                tags={"Name": f"celery-cluster-{config.stack}"},
            ),
            opts=self._child,
        )
        self.vpc_id = vpc.id
        private_cidrs, nat_cidrs = subnet_cidrs(config.vpc_cidr, len(config.availability_zones))
        nat_ids = self._create_nat(config, vpc, nat_cidrs) if config.egress != "endpoints" else []
        subnets, route_tables = self._create_private_subnets(config, vpc, private_cidrs, nat_ids)
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in subnets]).apply(list)
        # S3 is a free gateway endpoint: dnf repositories of Amazon Linux and bundles stay off the NAT.
        self._gateway_endpoint(config, vpc, "s3", route_tables)
        if config.scheduler_enabled and not config.is_redis:
            # The scheduler's lease table on RabbitMQ stacks (infra/components/scheduler.py): DynamoDB is
            # the other free gateway endpoint, so the lease works with egress: endpoints and stays off
            # the NAT (https://docs.aws.amazon.com/vpc/latest/privatelink/gateway-endpoints.html).
            self._gateway_endpoint(config, vpc, "dynamodb", route_tables)

    def _create_private_subnets(
        self, config: StackConfig, vpc: aws.ec2.Vpc, cidrs: list[str], nat_ids: list[pulumi.Output[str]]
    ) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.RouteTable]]:
        subnets: list[aws.ec2.Subnet] = []
        route_tables: list[aws.ec2.RouteTable] = []
        for index, (zone, cidr) in enumerate(zip(config.availability_zones, cidrs, strict=True)):
            subnet = self._subnet(config, vpc, "private", zone, cidr)
            routes: list[aws.ec2.RouteTableRouteArgs] = []
            if nat_ids:
                # nat-per-az keeps each AZ's egress in its AZ (no cross-AZ charge, no shared failure).
                nat_id = nat_ids[index] if config.egress == "nat-per-az" else nat_ids[0]
                routes.append(aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_id))
            table = aws.ec2.RouteTable(
                f"{self._name}-private-{zone}",
                aws.ec2.RouteTableArgs(vpc_id=vpc.id, routes=routes, tags={"Name": f"private-{zone}"}),
                opts=self._child,
            )
            self._associate(f"private-{zone}", subnet, table)
            subnets.append(subnet)
            route_tables.append(table)
        return subnets, route_tables

    def _subnet(self, config: StackConfig, vpc: aws.ec2.Vpc, tier: str, zone: str, cidr: str) -> aws.ec2.Subnet:
        # No subnet of either tier gives what is launched in it a public IP (the security baseline).
        return aws.ec2.Subnet(
            f"{self._name}-{tier}-{zone}",
            aws.ec2.SubnetArgs(
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={"Name": f"celery-cluster-{config.stack}-{tier}-{zone}", "Tier": tier},
            ),
            opts=self._child,
        )

    def _associate(self, suffix: str, subnet: aws.ec2.Subnet, table: aws.ec2.RouteTable) -> None:
        aws.ec2.RouteTableAssociation(
            f"{self._name}-{suffix}",
            aws.ec2.RouteTableAssociationArgs(subnet_id=subnet.id, route_table_id=table.id),
            opts=self._child,
        )

    def _gateway_endpoint(
        self, config: StackConfig, vpc: aws.ec2.Vpc, service: str, route_tables: list[aws.ec2.RouteTable]
    ) -> None:
        self._endpoint(config, service, vpc_endpoint_type="Gateway", route_table_ids=[t.id for t in route_tables])

    def _endpoint(self, config: StackConfig, service: str, **kind: Any) -> None:
        """The endpoint of `service` in this VPC; `kind`: its type and where it is reached from."""
        aws.ec2.VpcEndpoint(
            f"{self._name}-{service}",
            aws.ec2.VpcEndpointArgs(
                vpc_id=self.vpc_id, service_name=f"com.amazonaws.{config.region}.{service}", **kind
            ),
            opts=self._child,
        )

    def _create_nat(self, config: StackConfig, vpc: aws.ec2.Vpc, cidrs: list[str]) -> list[pulumi.Output[str]]:
        gateway = aws.ec2.InternetGateway(
            f"{self._name}-igw", aws.ec2.InternetGatewayArgs(vpc_id=vpc.id), opts=self._child
        )
        public_table = aws.ec2.RouteTable(
            f"{self._name}-nat",
            aws.ec2.RouteTableArgs(
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
                tags={"Name": "nat"},
            ),
            opts=self._child,
        )
        zones = config.availability_zones if config.egress == "nat-per-az" else config.availability_zones[:1]
        nat_ids: list[pulumi.Output[str]] = []
        for zone, cidr in zip(zones, cidrs, strict=False):
            # NAT subnets hold only NAT gateways: the gateway's Elastic IP is its public address.
            subnet = self._subnet(config, vpc, "nat", zone, cidr)
            self._associate(f"nat-{zone}", subnet, public_table)
            address = aws.ec2.Eip(f"{self._name}-nat-{zone}", aws.ec2.EipArgs(domain="vpc"), opts=self._child)
            nat = aws.ec2.NatGateway(
                f"{self._name}-nat-{zone}",
                aws.ec2.NatGatewayArgs(allocation_id=address.id, subnet_id=subnet.id, connectivity_type="public"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
            )
            nat_ids.append(nat.id)
        return nat_ids

    def _client_group(self, role: str, description: str) -> aws.ec2.SecurityGroup:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-{role}",
            aws.ec2.SecurityGroupArgs(vpc_id=self.vpc_id, description=description, tags={"Name": role}),
            opts=self._child,
        )
        # Clients only call out, and only HTTPS here (AWS APIs through NAT or endpoints, package mirrors via
        # the S3 endpoint); the broker component adds each client's one egress rule to the broker's port.
        # No ingress rule exists for them at all.
        aws.vpc.SecurityGroupEgressRule(
            f"{self._name}-{role}-https",
            tcp_egress(group.id, 443, "HTTPS: AWS APIs", to_cidr="0.0.0.0/0"),
            opts=self._child,
        )
        self._clients.append((role, group))
        return group

    def _create_interface_endpoints(self, config: StackConfig) -> None:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-endpoints",
            aws.ec2.SecurityGroupArgs(vpc_id=self.vpc_id, description="AWS API endpoints", tags={"Name": "endpoints"}),
            opts=self._child,
        )
        for role, client in self._clients:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-endpoints-from-{role}",
                tcp_ingress(group.id, 443, "HTTPS from the stack's clients", from_group=client.id),
                opts=self._child,
            )
        for service in interface_endpoints(config):
            self._endpoint(
                config,
                service,
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=self.private_subnet_ids,
                security_group_ids=[group.id],
            )
