"""docs/architecture.md's security baseline, one test per item, on every stack's render."""

from __future__ import annotations

import base64
import json
from typing import Any

from infra import outputs
from infra.cli.offline_render import SECRET
from infra.components import iam
from tests.support.rendered import Rendered

LT = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG = "aws:ec2/securityGroup:SecurityGroup"
RG = "aws:elasticache/replicationGroup:ReplicationGroup"
MQ = "aws:mq/broker:Broker"


def _policies(stack: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """Every IAM/KMS policy document in the render, with the resource it belongs to."""
    found: list[tuple[str, dict[str, Any]]] = []
    for resource in stack.document["resources"]:
        inputs = resource["inputs"]
        for key in ("policy", "assumeRolePolicy"):
            if isinstance(inputs.get(key), str) and resource["type"].startswith(("aws:iam/", "aws:kms/")):
                found.append((f"{resource['name']}.{key}", json.loads(inputs[key])))
    return found


def test_private_subnets_only_and_no_public_ips(stack: Rendered) -> None:
    for subnet in stack.inputs(SUBNET):
        assert subnet["mapPublicIpOnLaunch"] is False
    for template in stack.inputs(LT):
        assert [ni["associatePublicIpAddress"] for ni in template["networkInterfaces"]] == ["false"]
    for broker in stack.inputs(MQ):
        assert broker["publiclyAccessible"] is False
    # Instances and the publisher live in the private subnets only (never the NAT subnets).
    private = {name + "-id" for name in stack.named(SUBNET) if "-private-" in name}
    for group in stack.inputs("aws:autoscaling/group:Group"):
        assert set(group["vpcZoneIdentifiers"]) == private or stack.config.vpc_id
    for function in stack.inputs("aws:lambda/function:Function"):
        assert set(function["vpcConfig"]["subnetIds"]) == private or stack.config.vpc_id


def test_broker_reachable_only_from_workers_and_publisher(stack: Rendered) -> None:
    broker_rules = [r for r in stack.inputs(INGRESS) if r["securityGroupId"] == "broker-sg-id"]
    assert broker_rules, "the broker security group has ingress rules"
    sources = {r["referencedSecurityGroupId"] for r in broker_rules}
    assert sources == {"network-workers-id", "network-publisher-id"}
    for rule in broker_rules:
        assert "cidrIpv4" not in rule
        assert "cidrIpv6" not in rule
    # No security group anywhere admits SSH or the whole internet.
    for rule in stack.inputs(INGRESS):
        assert rule.get("fromPort") != 22
        assert rule.get("cidrIpv4") != "0.0.0.0/0"


def test_clients_call_out_only_to_https_and_the_broker(stack: Rendered) -> None:
    port = 6379 if stack.config.is_redis else 5671
    by_group: dict[str, set[tuple[int, int, str]]] = {}
    for rule in stack.inputs("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"):
        target = rule.get("referencedSecurityGroupId") or rule["cidrIpv4"]
        by_group.setdefault(rule["securityGroupId"], set()).add((rule["fromPort"], rule["toPort"], target))
        assert rule["ipProtocol"] == "tcp"
    for client in ("network-workers-id", "network-publisher-id"):
        assert by_group[client] == {(443, 443, "0.0.0.0/0"), (port, port, "broker-sg-id")}


def test_tls_to_broker_and_encryption_at_rest(stack: Rendered) -> None:
    if stack.config.is_redis:
        (group,) = stack.inputs(RG)
        assert group["transitEncryptionEnabled"] is True
        assert group["transitEncryptionMode"] == "required"
        assert group["atRestEncryptionEnabled"] is True
    else:
        (broker,) = stack.inputs(MQ)
        assert broker["encryptionOptions"]["useAwsOwnedKey"] is True  # RabbitMQ is always encrypted at rest
    (topic,) = stack.inputs("aws:sns/topic:Topic")
    assert topic["kmsMasterKeyId"].startswith("arn:aws:kms:")


def test_broker_credentials_only_in_secrets_manager(stack: Rendered) -> None:
    versions = stack.inputs("aws:secretsmanager/secretVersion:SecretVersion")
    assert len(versions) == 3  # the workers' environment, the publisher's URL, the producers' secret
    assert all(v["secretString"] == SECRET for v in versions)
    if stack.config.is_redis:
        assert stack.one(RG, "broker-cache")["authToken"] == SECRET
    else:
        assert [u["password"] for u in stack.one(MQ, "broker-mq")["users"]] == [SECRET]
    # The mocked random passwords end in this suffix: it appears nowhere in plain text.
    assert "0123456789abcdef" not in stack.text.replace("ami-0123456789abcdef0", "")


def test_secrets_never_in_outputs_or_user_data(stack: Rendered) -> None:
    assert stack.document["outputs"][outputs.BROKER_ENDPOINT] == SECRET
    for name in outputs.SECRET:
        assert stack.document["outputs"][name] == SECRET
    for template in stack.inputs(LT):
        user_data = base64.b64decode(template["userData"]).decode()
        assert "CELERY_BROKER_URL" not in user_data
        assert "rediss://" not in user_data
        assert "amqps://" not in user_data
        assert "mock-" not in user_data
        assert "WORKER_SECRET_ID=arn:aws:secretsmanager:" in user_data


def test_imdsv2_required_with_hop_limit_one(stack: Rendered) -> None:
    for template in stack.inputs(LT):
        options = template["metadataOptions"]
        assert options["httpTokens"] == "required"
        assert options["httpPutResponseHopLimit"] == 1


def test_ebs_encrypted(stack: Rendered) -> None:
    for template in stack.inputs(LT):
        assert template["blockDeviceMappings"]
        for mapping in template["blockDeviceMappings"]:
            assert mapping["ebs"]["encrypted"] == "true"


def test_no_ssh_and_no_key_pair(stack: Rendered) -> None:
    for template in stack.inputs(LT):
        assert "keyName" not in template
    assert "aws:ec2/keyPair:KeyPair" not in {r["type"] for r in stack.document["resources"]}
    # Session Manager instead: every worker role carries the SSM core policy.
    attachments = stack.named("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    on_pools = [a["policyArn"] for name, a in attachments.items() if name.startswith("pool-")]
    assert on_pools.count("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore") == len(stack.config.pools)


def test_no_wildcard_iam_action(stack: Rendered) -> None:
    policies = _policies(stack)
    assert len(policies) >= 2 * len(stack.config.pools) + 3
    for where, document in policies:
        for action in iam.actions_of(document):
            assert action != "*", where
            assert not action.endswith(":*"), where


def test_each_role_reads_only_its_own_secret(stack: Rendered) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secretsmanager/"
    for where, document in _policies(stack):
        for statement in document["Statement"]:
            if "secretsmanager:GetSecretValue" in statement.get("Action", []):
                expected = (
                    "broker-publisher-url"
                    if where.startswith("publisher-")
                    else "producers-secret"
                    if where.startswith("producers-")
                    else "broker-url"
                )
                assert statement["Resource"] == arn + expected, where


def test_iam_resources_scoped_to_the_stack(stack: Rendered) -> None:
    # Resource "*" only where AWS offers no resource-level permission, and a condition where it can.
    allowed_star = {"cloudwatch:PutMetricData", "autoscaling:DescribeAutoScalingGroups"}
    for where, document in _policies(stack):
        if where.endswith("assumeRolePolicy") or where.startswith("monitoring-key"):
            continue  # trust policies have no Resource; in a key policy "*" means this key
        for statement in document["Statement"]:
            if statement["Resource"] == "*":
                assert set(statement["Action"]) <= allowed_star, where
            if "cloudwatch:PutMetricData" in statement["Action"]:
                assert statement["Condition"] == {
                    "StringEquals": {"cloudwatch:namespace": stack.config.metric_namespace}
                }


def test_log_groups_have_retention(stack: Rendered) -> None:
    groups = stack.inputs("aws:cloudwatch/logGroup:LogGroup")
    assert len(groups) >= len(stack.config.pools) + 1
    for group in groups:
        assert group["retentionInDays"] == stack.config.log_retention_days
    # The publisher logs to its own (retained) group, not an auto-created one that keeps logs forever;
    # the smoke function logs to the publisher's.
    publisher = stack.one("aws:lambda/function:Function", "publisher-fn")
    for function in stack.inputs("aws:lambda/function:Function"):
        assert function["loggingConfig"]["logGroup"] == f"/aws/lambda/{publisher['name']}"
