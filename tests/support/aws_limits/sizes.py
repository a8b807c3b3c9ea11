"""Sizes and counts of one resource's documents: IAM policies, a KMS key policy, a Lambda function's
environment, EC2 user data, tags."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from typing import Any

from tests.support.aws_limits.registry import FUNCTION, Resources, limit, of_type, worst_case_length
from tests.support.aws_requests import AUTONAME_SUFFIX


def _compact(document: Any) -> str:
    """A policy document as IAM counts it: whitespace is not counted."""
    text = document if isinstance(document, str) else json.dumps(document)
    return json.dumps(json.loads(text), separators=(",", ":"))


@limit(
    "IAM character quotas, whitespace not counted: a managed policy 6,144; all inline policies of a role "
    "together 10,240; a role trust policy 2,048; at most 10 managed policies attached to a role: "
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html"
)
def iam_sizes(resources: Resources) -> list[str]:
    problems = []
    for policy in of_type(resources, "aws:iam/policy:Policy"):
        size = worst_case_length(_compact(policy["inputs"]["policy"]))
        if size > 6144:
            problems.append(f"{policy['name']}: managed policy of {size} characters (at most 6,144)")
    inline: dict[str, int] = defaultdict(int)
    for policy in of_type(resources, "aws:iam/rolePolicy:RolePolicy"):
        inline[str(policy["inputs"]["role"])] += worst_case_length(_compact(policy["inputs"]["policy"]))
    problems += [
        f"{role}: inline policies of {n} characters (at most 10,240)" for role, n in inline.items() if n > 10240
    ]
    for role in of_type(resources, "aws:iam/role:Role"):
        size = worst_case_length(_compact(role["inputs"]["assumeRolePolicy"]))
        if size > 2048:
            problems.append(f"{role['name']}: trust policy of {size} characters (at most 2,048)")
    attached = Counter(
        str(a["inputs"]["role"]) for a in of_type(resources, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )
    problems += [f"{role}: {n} managed policies attached (at most 10)" for role, n in attached.items() if n > 10]
    return problems


@limit(
    "A KMS key policy is at most 32,768 bytes "
    "(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html)"
)
def kms_key_policy(resources: Resources) -> list[str]:
    problems = []
    for key in of_type(resources, "aws:kms/key:Key"):
        size = worst_case_length(key["inputs"].get("policy", ""))
        if size > 32768:
            problems.append(f"{key['name']}: key policy of {size} bytes (at most 32,768)")
    return problems


def _environment_size(variables: dict[str, str]) -> int:
    size = 0
    for key, value in variables.items():
        size += len(key.encode()) + worst_case_length(str(value))
        if key == "POOLS_JSON":  # the groups' names in it are auto-names
            size += len(json.loads(value)) * len(AUTONAME_SUFFIX)
    return size


@limit(
    "Lambda: environment variables at most 4 KB in all, a function name at most 64 characters, a timeout "
    "at most 900 s: https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html , "
    "https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html"
)
def lambda_functions(resources: Resources) -> list[str]:
    problems = []
    for function in of_type(resources, FUNCTION):
        inputs, name = function["inputs"], function["name"]
        size = _environment_size((inputs.get("environment") or {}).get("variables") or {})
        if size > 4096:
            problems.append(f"{name}: environment of {size} bytes (at most 4,096)")
        if len(inputs.get("name") or name + AUTONAME_SUFFIX) > 64:
            problems.append(f"{name}: function name over 64 characters")
        if inputs.get("timeout", 3) > 900:
            problems.append(f"{name}: timeout {inputs['timeout']} s")
    return problems


@limit(
    "EC2 user data is at most 16 KB before base64 encoding "
    "(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html)"
)
def user_data(resources: Resources) -> list[str]:
    problems = []
    for template in of_type(resources, "aws:ec2/launchTemplate:LaunchTemplate"):
        raw = base64.b64decode(template["inputs"].get("userData", ""))
        size = worst_case_length(raw.decode(errors="replace"))
        if size > 16384:
            problems.append(f"{template['name']}: user data of {size} bytes (at most 16,384)")
    return problems


def _tags(inputs: dict[str, Any]) -> dict[str, str]:
    tags = inputs.get("tags")
    if isinstance(tags, list):  # an Auto Scaling group's tags: [{key, value, propagateAtLaunch}]
        return {t["key"]: t["value"] for t in tags}
    return dict(tags or {})


@limit(
    "At most 50 user tags per resource, keys at most 128 characters, values 256, no key starting aws: "
    "(https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html); an Image Builder build "
    "instance's resourceTags at most 30 (CreateInfrastructureConfiguration: "
    "https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_CreateInfrastructureConfiguration.html)"
)
def tags(resources: Resources) -> list[str]:
    problems = []
    for resource in resources:
        found = _tags(resource["inputs"])
        if len(found) > 50:
            problems.append(f"{resource['name']}: {len(found)} tags (at most 50)")
        for key, value in found.items():
            if len(key) > 128 or len(str(value)) > 256 or key.lower().startswith("aws:"):
                problems.append(f"{resource['name']}: tag {key!r}")
        build_tags = resource["inputs"].get("resourceTags") or {}
        if len(build_tags) > 30:
            problems.append(f"{resource['name']}: {len(build_tags)} build instance tags (at most 30)")
    return problems
