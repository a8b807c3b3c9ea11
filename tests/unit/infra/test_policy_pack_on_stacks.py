"""The policy pack's rules, run on every rendered stack: the pipeline's `pulumi preview --policy-pack`
and these tests execute the same functions, so a stack that renders here passes there."""

from __future__ import annotations

from policy.rules import RULES, check_rendered
from tests.support.rendered import Rendered


def test_every_stack_passes_the_baseline(stack: Rendered) -> None:
    violations = check_rendered(stack.document["resources"])
    assert violations == [], "\n".join(f"{v.rule} {v.resource}: {v.message}" for v in violations)


def test_every_rule_applies_to_some_rendered_resource(stack: Rendered) -> None:
    present = {r["type"] for r in stack.document["resources"]}
    # Rules for resources a given stack does not create (e.g. Amazon MQ on a Valkey stack) are exempt.
    optional = {
        "aws:mq/broker:Broker",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:ec2/instance:Instance",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:iam/policy:Policy",
        "aws:ec2/subnet:Subnet",
    }
    for rule in RULES:
        types = set(rule.resource_types) - optional
        if types:
            assert types & present, f"rule {rule.name} checks {sorted(types)}, none of which {stack.config.stack} has"


def test_a_broken_render_fails_the_pack(stack: Rendered) -> None:
    resources = [dict(r) for r in stack.document["resources"]]
    template = next(r for r in resources if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate")
    template["inputs"] = {**template["inputs"], "metadataOptions": {"httpTokens": "optional"}}
    assert {v.rule for v in check_rendered(resources)} == {"imdsv2-required"}
