"""Producers on a rendered stack: exactly the configured groups and ranges reach the broker port, the
producer secret and its policy exist and are exported, and bad access config fails in one line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import outputs
from infra.cli.offline_render import SECRET, Render, render_config
from infra.components.broker import AMQPS_PORT, REDIS_PORT
from infra.components.producer_access import policy_name, producer_secret_document
from infra.config import ConfigError, merged_raw, parse_config, read_stack_file
from policy.rules import check_rendered

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
POLICY_TYPES = ("aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy", "aws:iam/role:Role")
CLIENT_SG = "sg-0123456789abcdef0"
CLIENT_CIDR = "10.50.0.0/16"


def _render(changes: dict[str, Any]) -> Render:
    values = {**read_stack_file("dev"), **changes}
    return render_config(parse_config("dev", merged_raw(values)), values)


def _broker_ingress(render: Render) -> list[dict[str, Any]]:
    group = render.outputs[outputs.BROKER_SECURITY_GROUP_ID]
    return [r.inputs for r in render.of_type(INGRESS) if r.inputs["securityGroupId"] == group]


@pytest.fixture(scope="module")
def with_producers() -> Render:
    return _render({"brokerClientSecurityGroupIds": [CLIENT_SG], "brokerClientCidrs": [CLIENT_CIDR]})


def test_exactly_the_configured_producers_reach_the_broker_port(with_producers: Render) -> None:
    rules = _broker_ingress(with_producers)
    sources = sorted(str(r.get("referencedSecurityGroupId") or r.get("cidrIpv4")) for r in rules)
    assert sources == sorted([CLIENT_SG, CLIENT_CIDR, "network-publisher-id", "network-workers-id"]), (
        "the broker admits the workers, the publisher and the configured producers, nothing else"
    )
    assert all((r["fromPort"], r["toPort"], r["ipProtocol"]) == (REDIS_PORT, REDIS_PORT, "tcp") for r in rules)
    # Without producers configured, only the stack's own groups.
    assert len(_broker_ingress(_render({}))) == 2


def test_rabbitmq_producers_get_the_amqps_port_not_the_management_api() -> None:
    render = _render({"brokerEngine": "rabbitmq", "brokerClientCidrs": [CLIENT_CIDR]})
    client = [r for r in _broker_ingress(render) if r.get("cidrIpv4") == CLIENT_CIDR]
    assert [(r["fromPort"], r["toPort"]) for r in client] == [(AMQPS_PORT, AMQPS_PORT)]


def test_the_baseline_holds_with_producers(with_producers: Render) -> None:
    resources = [r.as_json() for r in with_producers.resources]
    violations = check_rendered(json.loads(json.dumps(resources)))
    assert violations == [], [f"{v.rule} {v.resource}: {v.message}" for v in violations]


def test_outputs_carry_what_a_producer_needs(with_producers: Render) -> None:
    out = with_producers.outputs
    for name in (
        outputs.PRODUCER_SECRET_ARN,
        outputs.PRODUCER_POLICY_ARN,
        outputs.BROKER_SECURITY_GROUP_ID,
        outputs.BROKER_ENDPOINT,
    ):
        assert out.get(name), name
    assert out[outputs.BROKER_ENDPOINT] == SECRET
    assert out[outputs.PRODUCER_SECRET_ARN] != out[outputs.BROKER_SECRET_ARN], "producers get their own secret"


def _documents(render: Render) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for resource in render.resources:
        if resource.type in POLICY_TYPES:
            for key in ("policy", "assumeRolePolicy"):
                if isinstance(resource.inputs.get(key), str):
                    found[f"{resource.name}.{key}"] = json.loads(resource.inputs[key])
    return found


def test_the_producer_policy_reads_the_producer_secret_and_nothing_else(with_producers: Render) -> None:
    secret_arn = with_producers.outputs[outputs.PRODUCER_SECRET_ARN]
    (policy,) = [r for r in with_producers.of_type("aws:iam/policy:Policy") if r.name.startswith("producers")]
    assert policy.inputs["name"] == policy_name("dev")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert statements == [
        {
            "Sid": "ReadProducerSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": secret_arn,
        }
    ]
    # No other policy in the stack names the producer secret (workers and publisher read their own).
    others = [name for name, doc in _documents(with_producers).items() if secret_arn in json.dumps(doc)]
    assert others == [f"{policy.name}.policy"]
    # The secret version is the producer secret's own.
    versions = [r.inputs for r in with_producers.of_type("aws:secretsmanager/secretVersion:SecretVersion")]
    assert any(v["secretId"] == "producers-secret-id" and v["secretString"] == SECRET for v in versions)


def test_the_producer_secret_holds_url_routes_and_queue_type_only() -> None:
    document = json.loads(producer_secret_document("rediss://:t@h:6379/0", "classic", {"invoices.*": "billing"}))
    assert document == {
        "CELERY_BROKER_URL": "rediss://:t@h:6379/0",
        "CELERY_QUEUE_TYPE": "classic",
        "CELERY_TASK_ROUTES": '{"invoices.*": "billing"}',
    }


@pytest.mark.parametrize(
    ("changes", "line"),
    [
        (
            {"brokerClientSecurityGroupIds": ["sg-12345"]},
            "celery-cluster:brokerClientSecurityGroupIds: 'sg-12345' is not a security group id",
        ),
        (
            {"brokerClientSecurityGroupIds": ["vpc-0123abcd"]},
            "celery-cluster:brokerClientSecurityGroupIds: 'vpc-0123abcd' is not a security group id",
        ),
        ({"brokerClientCidrs": ["10.50.1.7/16"]}, "celery-cluster:brokerClientCidrs: '10.50.1.7/16': "),
        ({"brokerClientCidrs": ["0.0.0.0/0"]}, "celery-cluster:brokerClientCidrs: '0.0.0.0/0' admits the whole"),
        ({"brokerClientCidrs": ["52.0.0.0/12"]}, "celery-cluster:brokerClientCidrs: '52.0.0.0/12' is a public range"),
        ({"brokerClientCidrs": ["not-a-cidr"]}, "celery-cluster:brokerClientCidrs: 'not-a-cidr' is not an IPv4 CIDR"),
        (
            {"taskRoutes": {"invoices.*": "billing"}},
            "celery-cluster:taskRoutes.invoices.*: routes to queue 'billing', which no pool consumes",
        ),
        ({"taskRoutes": {"invoices send": "default"}}, "celery-cluster:taskRoutes: route 'invoices send'"),
    ],
)
def test_bad_producer_config_is_one_line_naming_the_key(changes: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("dev", merged_raw({**read_stack_file("dev"), **changes}))
    problems = str(raised.value).splitlines()  # one line per bad key, each naming the stack
    assert len(problems) == 1, problems
    assert problems[0].removeprefix("invalid config for stack 'dev': ").startswith(line), problems


def test_private_ranges_of_any_size_and_small_public_ranges_are_admitted() -> None:
    config = parse_config(
        "dev", merged_raw({**read_stack_file("dev"), "brokerClientCidrs": ["10.0.0.0/8", "52.1.0.0/16"]})
    )
    assert config.broker_client_cidrs == ("10.0.0.0/8", "52.1.0.0/16")
