"""Each baseline rule catches what it should and passes what it should (synthetic resources).
The same rules over every rendered stack are checked in test_policy_on_rendered_stacks.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from policy.rules import (
    ALARM,
    INGRESS_RULE,
    LAUNCH_TEMPLATE,
    LOG_GROUP,
    MQ_BROKER,
    REPLICATION_GROUP,
    RULES,
    SECURITY_GROUP,
    SNS_TOPIC,
    SUBNET,
    check_resource,
)

GOOD_TEMPLATE: dict[str, Any] = {
    "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1, "httpEndpoint": "enabled"},
    "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "volumeSize": 20}}],
    "networkInterfaces": [{"associatePublicIpAddress": "false", "securityGroups": ["sg-1"]}],
    "userData": base64.b64encode(b"#cloud-config\nruncmd: [[systemctl, start, celery-worker]]\n").decode(),
}


def _rules(resource_type: str, props: dict[str, Any]) -> set[str]:
    return {v.rule for v in check_resource(resource_type, "r", props)}


def test_a_compliant_launch_template_passes() -> None:
    assert _rules(LAUNCH_TEMPLATE, GOOD_TEMPLATE) == set()


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": 1}}, "imdsv2-required"),
        ({"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}, "imdsv2-required"),
        ({"keyName": "ops"}, "encrypted-ebs-no-key-pair"),
        (
            {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]},
            "encrypted-ebs-no-key-pair",
        ),
        ({"blockDeviceMappings": []}, "encrypted-ebs-no-key-pair"),
        ({"networkInterfaces": [{"associatePublicIpAddress": "true"}]}, "no-public-ip"),
        (
            {"userData": base64.b64encode(b"CELERY_BROKER_URL=rediss://:s3cretT0ken@host:6379/0").decode()},
            "no-secret-in-user-data",
        ),
    ],
)
def test_launch_template_violations(change: dict[str, Any], rule: str) -> None:
    assert rule in _rules(LAUNCH_TEMPLATE, {**GOOD_TEMPLATE, **change})


def test_public_subnet_and_open_ingress_are_refused() -> None:
    assert _rules(SUBNET, {"mapPublicIpOnLaunch": True}) == {"no-public-ip"}
    assert _rules(SUBNET, {"mapPublicIpOnLaunch": False}) == set()
    open_sg = {"ingress": [{"fromPort": 6379, "toPort": 6379, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}]}
    assert _rules(SECURITY_GROUP, open_sg) == {"no-open-ingress"}
    assert _rules(INGRESS_RULE, {"cidrIpv4": "0.0.0.0/0", "fromPort": 6379}) == {"no-open-ingress"}
    assert _rules(INGRESS_RULE, {"referencedSecurityGroupId": "sg-workers", "fromPort": 6379}) == set()
    # Producers' ranges: private of any size, public at most a /16.
    assert _rules(INGRESS_RULE, {"cidrIpv4": "10.0.0.0/8", "fromPort": 6379}) == set()
    assert _rules(INGRESS_RULE, {"cidrIpv4": "52.1.0.0/16", "fromPort": 6379}) == set()
    assert _rules(INGRESS_RULE, {"cidrIpv4": "52.0.0.0/8", "fromPort": 6379}) == {"no-open-ingress"}


def test_broker_rules() -> None:
    good = {"transitEncryptionEnabled": True, "atRestEncryptionEnabled": True, "authToken": "[secret]"}
    assert _rules(REPLICATION_GROUP, good) == set()
    assert _rules(REPLICATION_GROUP, {**good, "transitEncryptionEnabled": False}) == {"elasticache-encrypted"}
    assert _rules(REPLICATION_GROUP, {**good, "authToken": None}) == {"elasticache-encrypted"}
    assert _rules(MQ_BROKER, {"publiclyAccessible": False, "autoMinorVersionUpgrade": True}) == set()
    assert _rules(MQ_BROKER, {"publiclyAccessible": True, "autoMinorVersionUpgrade": True}) == {"mq-private"}


@pytest.mark.parametrize(
    ("action", "ok"),
    [("cloudwatch:PutMetricData", True), ("*", False), ("s3:*", False), (["sqs:SendMessage", "iam:*"], False)],
)
def test_iam_wildcard_actions(action: Any, ok: bool) -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "arn:x"}]}
    for resource_type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"):
        found = _rules(resource_type, {"policy": json.dumps(document)})
        assert found == (set() if ok else {"iam-no-wildcard-action"})


def test_logs_alarms_topics() -> None:
    assert _rules(LOG_GROUP, {"retentionInDays": 30}) == set()
    assert _rules(LOG_GROUP, {}) == {"log-group-retention"}
    assert _rules(ALARM, {"alarmActions": ["arn:aws:sns:x"]}) == set()
    assert _rules(ALARM, {"alarmActions": []}) == {"alarm-has-action"}
    assert _rules(SNS_TOPIC, {"kmsMasterKeyId": "alias/aws/sns"}) == set()
    assert _rules(SNS_TOPIC, {}) == {"sns-encrypted"}


def test_rule_names_are_unique_and_every_rule_is_exercised() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    source = Path(__file__).read_text()
    for name in names:
        assert f'"{name}"' in source, f"rule {name} has no test here"
