"""Network variants no stack file uses today: an existing VPC, and VPC endpoints instead of NAT."""

from __future__ import annotations

import json
import re
from typing import Any

from infra.cli.offline_render import Render, render_config
from infra.components.broker import amqp_url, worker_secret_document
from infra.config import merged_raw, parse_config, read_stack_file

ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def _render(changes: dict[str, Any]) -> Render:
    values = {**read_stack_file("dev"), **changes}
    return render_config(parse_config("dev", merged_raw(values)), values)


def _inputs(render: Render, type_: str) -> list[dict[str, Any]]:
    return [r.inputs for r in render.of_type(type_)]


def test_existing_vpc_is_used_not_created() -> None:
    subnets = ["subnet-0aaa1111", "subnet-0bbb2222"]
    render = _render({"vpcId": "vpc-0123abcd", "privateSubnetIds": subnets})
    types = {r.type for r in render.resources}
    assert not types & {"aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/natGateway:NatGateway"}
    for group in _inputs(render, "aws:ec2/securityGroup:SecurityGroup"):
        assert group["vpcId"] == "vpc-0123abcd"
    groups = _inputs(render, "aws:autoscaling/group:Group")
    assert len(groups) == 2  # the pool's and the scheduler's
    for asg in groups:
        assert asg["vpcZoneIdentifiers"] == subnets
    (cache_subnets,) = _inputs(render, "aws:elasticache/subnetGroup:SubnetGroup")
    assert cache_subnets["subnetIds"] == subnets
    assert render.outputs["vpcId"] == "vpc-0123abcd"


def test_endpoints_egress_has_no_nat_and_private_endpoints() -> None:
    render = _render({"egress": "endpoints"})
    assert not render.of_type("aws:ec2/natGateway:NatGateway")
    assert not render.of_type("aws:ec2/internetGateway:InternetGateway")
    interface = [e for e in _inputs(render, ENDPOINT) if e["vpcEndpointType"] == "Interface"]
    services = {e["serviceName"].rsplit(".", 1)[1] for e in interface}
    assert {"secretsmanager", "monitoring", "ssm", "autoscaling", "logs"} <= services
    assert all(e["privateDnsEnabled"] is True for e in interface)
    rules = [
        r.inputs
        for r in render.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == "network-endpoints-id"
    ]
    assert {r["referencedSecurityGroupId"] for r in rules} == {"network-workers-id", "network-publisher-id"}
    assert {(r["fromPort"], r["toPort"]) for r in rules} == {(443, 443)}


def test_rabbitmq_cluster_spans_every_private_subnet() -> None:
    render = _render(
        {
            "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"],
            "brokerEngine": "rabbitmq",
            "brokerHa": True,
            "mqInstanceType": "mq.m5.large",
        }
    )
    (broker,) = _inputs(render, "aws:mq/broker:Broker")
    assert broker["deploymentMode"] == "CLUSTER_MULTI_AZ"
    assert len(broker["subnetIds"]) == 3
    assert broker["publiclyAccessible"] is False
    assert [u["password"] for u in broker["users"]] == ["[secret]"]
    assert not render.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    ports = {
        (r.inputs["fromPort"], r.inputs["referencedSecurityGroupId"])
        for r in render.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == "broker-sg-id"
    }
    assert ports == {(5671, "network-workers-id"), (5671, "network-publisher-id"), (443, "network-publisher-id")}


def test_worker_secret_is_an_object_of_environment_variables() -> None:
    document = json.loads(worker_secret_document(amqp_url("celery", "pw", "amqps://b-1.mq.example:5671"), "quorum"))
    assert document == {"CELERY_BROKER_URL": "amqps://celery:pw@b-1.mq.example:5671//", "CELERY_QUEUE_TYPE": "quorum"}
    # worker.instance.fetchenv accepts only variable names (upper case) as keys.
    assert all(re.fullmatch(r"[A-Z_][A-Z0-9_]*", key) for key in document)
