"""AWS rules on the stack's IAM, checked over every rendered stack, each citing its source: what the CI deploy
role may create, pass and update; policies in place before their first use; the policy grammar; the
stack's IAM path; the alarm topic's key policy.

Nobody can run `pulumi up` here, so what AWS would reject at deploy time, or accept and then silently not
do, is checked against the render (docs/infra.md, "AWS rules checked offline"). Add a rule as a test
named for the rule, with its source in the docstring, in the module of its area."""

from __future__ import annotations

import fnmatch
import json

from infra.cli.account_setup import iam_for_stack_policy
from infra.cli.offline_render import Render
from infra.components import iam
from tests.support.iam_evaluation import ACCOUNT, allowed, iam_arn
from tests.support.rendered import Rendered

ROLE = "aws:iam/role:Role"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
MANAGED_POLICY = "aws:iam/policy:Policy"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
GROUP = "aws:autoscaling/group:Group"
IMAGE = "aws:imagebuilder/image:Image"
LIFECYCLE = "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy"
FUNCTION = "aws:lambda/function:Function"


def _closure(render: Render, name: str) -> set[str]:
    """Every resource `name` waits for, directly or through others."""
    by_name = {r.name: r for r in render.resources}
    seen: set[str] = set()
    pending = list(by_name[name].dependencies)
    while pending:
        current = pending.pop()
        if current not in seen and current in by_name:
            seen.add(current)
            pending.extend(by_name[current].dependencies)
    return seen


def test_the_ci_deploy_role_may_create_and_pass_every_role_and_profile(stack: Rendered) -> None:
    """The deploy role has PowerUserAccess (no IAM) plus IAM on the stack's own ARNs only
    (infra.cli.account_setup.iam_for_stack_policy); every role, instance profile and policy the program
    creates must be one of those, or `pulumi up` in the pipeline is denied iam:CreateRole/PassRole.
    PowerUserAccess: https://docs.aws.amazon.com/aws-managed-policy/latest/reference/PowerUserAccess.html"""
    policy = iam_for_stack_policy(ACCOUNT)
    checks = {
        ROLE: ("role", ("iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:PassRole", "iam:TagRole")),
        PROFILE: ("instance-profile", ("iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile")),
        MANAGED_POLICY: ("policy", ("iam:CreatePolicy", "iam:CreatePolicyVersion")),
    }
    seen = 0
    for type_, (kind, actions) in checks.items():
        for resource in stack.render.of_type(type_):
            arn = iam_arn(kind, resource.inputs, resource.name)
            for action in actions:
                assert allowed(policy, action, arn), f"{resource.name}: the deploy role may not {action} on {arn}"
            seen += 1
    assert seen >= 2, "every stack has at least a pool role and its instance profile"


def test_the_ci_deploy_role_may_update_what_the_provider_updates_in_place(stack: Rendered) -> None:
    """`pulumi up` after a change of a role's description calls iam:UpdateRoleDescription, of its session
    length iam:UpdateRole, and reads tags with iam:List*Tags to diff them (terraform-provider-aws
    internal/service/iam/role.go, resourceRoleUpdate and roleTags); every role here has a description, so
    rewording one would otherwise fail the pipeline."""
    policy = iam_for_stack_policy(ACCOUNT)
    checks = {
        ROLE: ("role", ("iam:UpdateRoleDescription", "iam:UpdateRole", "iam:ListRoleTags")),
        PROFILE: ("instance-profile", ("iam:ListInstanceProfileTags", "iam:UntagInstanceProfile")),
        MANAGED_POLICY: ("policy", ("iam:ListPolicyTags", "iam:TagPolicy", "iam:UntagPolicy")),
    }
    for type_, (kind, actions) in checks.items():
        for resource in stack.render.of_type(type_):
            if type_ == ROLE:
                assert resource.inputs.get("description"), f"{resource.name}: has a description to update"
            arn = iam_arn(kind, resource.inputs, resource.name)
            for action in actions:
                assert allowed(policy, action, arn), f"{resource.name}: the deploy role may not {action}"


def test_the_ci_deploy_role_cannot_touch_the_pipelines_own_roles() -> None:
    """The pipeline's roles live at "/"; the stack's path excludes them, so a deploy cannot widen its own rights."""
    policy = iam_for_stack_policy(ACCOUNT)
    for name in ("celery-cluster-github-deploy-prod", "celery-cluster-github-preview"):
        assert not allowed(policy, "iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{name}")


def _grants_of(stack: Rendered, role_names: set[str]) -> set[str]:
    """Names of the inline policies and attachments on the given roles."""
    found = set()
    for type_ in (ROLE_POLICY, ATTACHMENT):
        for resource in stack.render.of_type(type_):
            role = str(resource.inputs["role"]).removesuffix("-id")
            if role in role_names:
                found.add(resource.name)
    return found


def test_permissions_exist_before_their_first_use(stack: Rendered) -> None:
    """IAM is eventually consistent: a role's policies must be created before the thing that uses
    them starts (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
    Image builds read S3 with the build role first thing; a pool's instances read the broker secret at
    boot; the publisher and the image lifecycle policy run with their roles."""
    render = stack.render
    roles = {r.name for r in stack.render.of_type(ROLE)}
    users = [
        *stack.render.of_type(IMAGE),
        *stack.render.of_type(GROUP),
        *stack.render.of_type(FUNCTION),
        *stack.render.of_type(LIFECYCLE),
    ]
    for user in users:
        waits_for = _closure(render, user.name)
        used_roles = roles & waits_for
        assert used_roles, f"{user.name} uses no role?"
        # The group's lifecycle-hook policy names the group's ARN, so it can only follow the group;
        # the hook acts at termination, long after launch.
        missing = {g for g in _grants_of(stack, used_roles) if not g.endswith("-lifecycle") or user.type == LIFECYCLE}
        assert missing <= waits_for, f"{user.name} may start before {sorted(missing - waits_for)}"


def test_iam_documents_have_no_unknown_keys(stack: Rendered) -> None:
    """IAM policy grammar: a statement has Effect, Action/NotAction, Resource/NotResource (or Principal
    in trust policies), optional Sid and Condition. https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html"""
    allowed = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "Condition"}
    for type_, key in ((ROLE_POLICY, "policy"), (ROLE, "assumeRolePolicy"), (MANAGED_POLICY, "policy")):
        for inputs in stack.inputs(type_):
            document = json.loads(inputs[key])
            assert document["Version"] == "2012-10-17"
            for statement in document["Statement"]:
                assert set(statement) <= allowed, statement
                assert statement["Effect"] in ("Allow", "Deny")
                actions = statement.get("Action", [])
                for action in [actions] if isinstance(actions, str) else actions:
                    assert fnmatch.fnmatch(action, "*:*"), action


def test_every_role_and_profile_is_under_the_stack_path(stack: Rendered) -> None:
    """The path is what the deploy role's IAM rights are scoped to (see above)."""
    for type_ in (ROLE, PROFILE, MANAGED_POLICY):
        for inputs in stack.inputs(type_):
            assert inputs.get("path") == iam.IAM_PATH


def test_alarms_may_use_the_topic_key_in_the_form_aws_documents(stack: Rendered) -> None:
    """Alarms publish to a topic encrypted with the stack's key, so the key policy lets CloudWatch use it, as
    documented for a service that publishes to an encrypted topic: principal cloudwatch.amazonaws.com,
    kms:Decrypt and kms:GenerateDataKey*, no condition
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services,
    https://repost.aws/knowledge-center/cloudwatch-configure-alarm-sns). No document says CloudWatch's calls
    carry aws:SourceAccount; a condition on it may leave every page undelivered."""
    (topic,) = stack.inputs("aws:sns/topic:Topic")
    key = stack.one("aws:kms/key:Key", "monitoring-key")
    assert topic["kmsMasterKeyId"].endswith("monitoring-key")
    statements = [
        s for s in json.loads(key["policy"])["Statement"] if "cloudwatch.amazonaws.com" in str(s.get("Principal"))
    ]
    (statement,) = statements
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) >= {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "Condition" not in statement
