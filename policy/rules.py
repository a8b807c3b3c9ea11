"""Security-baseline rules over one resource's type and inputs (engine format: camelCase keys).

Each rule is a pure function returning violation messages, so the policy pack (`__main__.py`) and the
unit tests (over `build/render/<stack>.json`) run exactly the same code and can never disagree.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Props = Mapping[str, Any]

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
MQ_BROKER = "aws:mq/broker:Broker"
IAM_POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/role:Role",  # inline policies
)
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_TOPIC = "aws:sns/topic:Topic"

_OPEN_CIDRS = {"0.0.0.0/0", "::/0"}
# The widest public IPv4 range an ingress rule may admit (producers reached over peering, Transit
# Gateway or VPN have private ranges; a wider public one is someone else's addresses).
WIDEST_PUBLIC_INGRESS_PREFIX = 16
# scheme://user:password@ — a credential written into text that ends up on an instance or in state.
_URL_WITH_PASSWORD = re.compile(r"\b(?:rediss?|amqps?)://[^\s:/@]*:[^\s@/]+@")


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    resource_types: tuple[str, ...]
    check: Callable[[Props], Iterable[str]]


def _truthy(value: Any) -> bool:
    # Some pulumi-aws string-typed booleans (launch template EBS `encrypted`) arrive as "true".
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _items(value: Any) -> Sequence[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def no_public_ip(props: Props) -> Iterable[str]:
    if _truthy(props.get("mapPublicIpOnLaunch")):
        yield "subnet maps public IPs on launch; workers run in private subnets only"
    if _truthy(props.get("associatePublicIpAddress")):
        yield "instance asks for a public IP"
    for nic in _items(props.get("networkInterfaces")):
        if _truthy(nic.get("associatePublicIpAddress")):
            yield "launch template network interface asks for a public IP"


def imdsv2_required(props: Props) -> Iterable[str]:
    options = props.get("metadataOptions") or {}
    if options.get("httpTokens") != "required":
        yield "IMDSv2 must be required (metadataOptions.httpTokens = 'required')"
    if options.get("httpPutResponseHopLimit") not in (1, 1.0):
        yield "IMDS hop limit must be 1 so containers on the host cannot reach the instance role"


def ebs_encrypted_no_key_pair(props: Props) -> Iterable[str]:
    if props.get("keyName"):
        yield "no SSH key pair: use Session Manager"
    mappings = _items(props.get("blockDeviceMappings"))
    if not mappings:
        yield "declare the root volume so its encryption is explicit"
    for mapping in mappings:
        ebs = mapping.get("ebs") or {}
        if not _truthy(ebs.get("encrypted")):
            yield f"EBS volume {mapping.get('deviceName', '?')} is not encrypted"


def no_open_ingress(props: Props) -> Iterable[str]:
    for rule in _items(props.get("ingress")):
        if _OPEN_CIDRS & set(rule.get("cidrBlocks") or []) | _OPEN_CIDRS & set(rule.get("ipv6CidrBlocks") or []):
            yield f"ingress on port {rule.get('fromPort')} is open to the internet"
    if props.get("cidrIpv4") in _OPEN_CIDRS or props.get("cidrIpv6") in _OPEN_CIDRS:
        yield "ingress rule is open to the internet"
    elif isinstance(props.get("cidrIpv4"), str):
        try:
            network = ipaddress.IPv4Network(props["cidrIpv4"], strict=False)
        except ValueError:
            yield f"ingress rule CIDR {props['cidrIpv4']!r} is not an IPv4 network"
        else:
            if not network.is_private and network.prefixlen < WIDEST_PUBLIC_INGRESS_PREFIX:
                yield f"ingress rule admits {network}, a public range wider than /{WIDEST_PUBLIC_INGRESS_PREFIX}"
    if props.get("type") == "ingress" and _OPEN_CIDRS & set(props.get("cidrBlocks") or []):
        yield "ingress rule is open to the internet"


def elasticache_encrypted(props: Props) -> Iterable[str]:
    if not _truthy(props.get("transitEncryptionEnabled")):
        yield "ElastiCache must use TLS in transit (transitEncryptionEnabled)"
    if not _truthy(props.get("atRestEncryptionEnabled")):
        yield "ElastiCache must encrypt at rest (atRestEncryptionEnabled)"
    if not props.get("authToken") and not props.get("userGroupIds"):
        yield "ElastiCache must require authentication (authToken or user groups)"


def mq_private(props: Props) -> Iterable[str]:
    if _truthy(props.get("publiclyAccessible")):
        yield "Amazon MQ broker must not be publicly accessible"
    if not _truthy(props.get("autoMinorVersionUpgrade")):
        yield "Amazon MQ broker must take minor version upgrades"


def _policy_documents(props: Props) -> Iterable[Any]:
    for key in ("policy", "assumeRolePolicy"):
        if key in props:
            yield props[key]
    for inline in _items(props.get("inlinePolicies")):
        yield inline.get("policy")


def iam_no_wildcard_action(props: Props) -> Iterable[str]:
    for raw in _policy_documents(props):
        document = raw
        if isinstance(raw, str):
            try:
                document = json.loads(raw)
            except json.JSONDecodeError:
                yield "policy document is not valid JSON"
                continue
        if not isinstance(document, Mapping):
            continue
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                if action == "*" or str(action).endswith(":*"):
                    yield f"IAM statement allows wildcard action {action!r}; name the actions"


def log_group_retention(props: Props) -> Iterable[str]:
    if not props.get("retentionInDays"):
        yield "log group needs a retention period (retentionInDays)"


def alarm_has_action(props: Props) -> Iterable[str]:
    if not props.get("alarmActions"):
        yield f"alarm {props.get('name') or props.get('alarmDescription') or ''} has no alarm action".replace("  ", " ")


def topic_encrypted(props: Props) -> Iterable[str]:
    if not props.get("kmsMasterKeyId"):
        yield "SNS topic must be encrypted (kmsMasterKeyId)"


def no_secret_in_user_data(props: Props) -> Iterable[str]:
    raw = props.get("userData")
    if not isinstance(raw, str):
        return
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        text = raw
    if _URL_WITH_PASSWORD.search(text) or re.search(r"(?i)(auth_token|password)\s*[=:]\s*\S{8,}", text):
        yield "user data holds a credential; fetch it from Secrets Manager at start"


RULES: tuple[Rule, ...] = (
    Rule("no-public-ip", "Private subnets only, no public IPs.", (SUBNET, INSTANCE, LAUNCH_TEMPLATE), no_public_ip),
    Rule("imdsv2-required", "IMDSv2 required with hop limit 1.", (LAUNCH_TEMPLATE, INSTANCE), imdsv2_required),
    Rule("encrypted-ebs-no-key-pair", "Encrypted EBS; no SSH key pair.", (LAUNCH_TEMPLATE,), ebs_encrypted_no_key_pair),
    Rule(
        "no-open-ingress",
        "Nothing is reachable from the internet.",
        (SECURITY_GROUP, INGRESS_RULE, SG_RULE),
        no_open_ingress,
    ),
    Rule(
        "elasticache-encrypted",
        "TLS to the broker, encryption at rest, authentication.",
        (REPLICATION_GROUP,),
        elasticache_encrypted,
    ),
    Rule("mq-private", "Amazon MQ never public, minor upgrades on.", (MQ_BROKER,), mq_private),
    Rule("iam-no-wildcard-action", "IAM scoped to named actions, no '*'.", IAM_POLICY_TYPES, iam_no_wildcard_action),
    Rule("log-group-retention", "Log groups have a retention period.", (LOG_GROUP,), log_group_retention),
    Rule("alarm-has-action", "Every alarm notifies someone.", (ALARM,), alarm_has_action),
    Rule("sns-encrypted", "The alarm topic is encrypted.", (SNS_TOPIC,), topic_encrypted),
    Rule(
        "no-secret-in-user-data",
        "Broker credentials never in user data.",
        (LAUNCH_TEMPLATE, INSTANCE),
        no_secret_in_user_data,
    ),
)


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str


def check_resource(resource_type: str, name: str, props: Props) -> list[Violation]:
    return [
        Violation(rule.name, name, message)
        for rule in RULES
        if resource_type in rule.resource_types
        for message in rule.check(props)
    ]


def check_rendered(resources: Iterable[Mapping[str, Any]]) -> list[Violation]:
    """Every violation in a rendered stack (`build/render/<stack>.json`'s `resources`)."""
    return [v for r in resources for v in check_resource(r["type"], r["name"], r.get("inputs") or {})]
