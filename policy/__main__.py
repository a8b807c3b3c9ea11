"""celery-cluster's security baseline as a mandatory policy pack: `pulumi preview --policy-pack policy`."""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.rules import RULES, Rule


def _validator(rule: Rule):  # type: ignore[no-untyped-def]
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type in rule.resource_types:
            for message in rule.check(args.props):
                report_violation(message, None)

    return validate


PolicyPack(
    name="celery-cluster-baseline",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(name=rule.name, description=rule.description, validate=_validator(rule))
        for rule in RULES
    ],
)
