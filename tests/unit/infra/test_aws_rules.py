"""AWS rules the program depends on, each checked over every rendered stack and citing its source.

Nobody can run `pulumi up` here, so what AWS would reject at deploy time, or accept and then
silently not do, is checked against the render: one test per rule, with the document or provider
issue that states the rule. The render's requests are also validated against botocore's service
models (`tests/support/aws_requests/`): shapes, required members, enums, ranges and patterns.

Add a rule here as a test named for the rule, with its source in the docstring.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from moto.iam.access_control import IAMPolicy, PermissionResult

from infra.artefacts.targets import LAMBDA_RUNTIME
from infra.cli.account_setup import DEPLOY_SESSION_SECONDS, iam_for_stack_policy
from infra.cli.offline_render import Render, Resource, render_config
from infra.components import iam
from infra.components.artefact_bucket import BUCKET_PREFIX_MAX, bucket_prefix
from infra.components.image_builder import IMAGE_CREATE_TIMEOUT_MINUTES, content_digest
from infra.components.image_retention import IMAGES_KEPT
from infra.config import ROOT, merged_raw, parse_config, read_stack_file
from infra.outputs import POOL_REFRESH
from infra.program import longest_task_seconds
from infra.vm import files
from infra.vm.component import download_folder_problems
from infra.vm.user_data import max_wait
from tests.support.aws_requests import AUTONAME_SUFFIX, requests_of, validate
from tests.support.rendered import STACKS, Rendered, rendered
from tests.support.units import restart_prevented, unit_settings
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_BUSY_PROCESSES,
    METRIC_CAPACITY_NEEDED,
    METRIC_ENTRY_LATENESS,
    METRIC_IN_FLIGHT,
    METRIC_IN_SERVICE,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_SCHEDULER_HEARTBEAT,
    METRIC_TASK_SECONDS,
    METRIC_WAITING,
)
from worker.runtime.settings import SETTINGS_EXIT_CODE

ACCOUNT = "123456789012"
ROLE = "aws:iam/role:Role"
PROFILE = "aws:iam/instanceProfile:InstanceProfile"
MANAGED_POLICY = "aws:iam/policy:Policy"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
GROUP = "aws:autoscaling/group:Group"
HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
COMPONENT = "aws:imagebuilder/component:Component"
RECIPE = "aws:imagebuilder/imageRecipe:ImageRecipe"
IMAGE = "aws:imagebuilder/image:Image"
LIFECYCLE = "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy"
FUNCTION = "aws:lambda/function:Function"
BUCKET = "aws:s3/bucket:Bucket"


def _resources(stack: Rendered, type_: str) -> list[Resource]:
    return stack.render.of_type(type_)


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


def _variant(stack: str, changes: dict[str, Any]) -> Render:
    values = {**read_stack_file(stack), **changes}
    return render_config(parse_config(stack, merged_raw(values)), values)


# --- Would fail at deploy ----------------------------------------------------------------------


def test_s3_download_folders_exist_before_the_download(stack: Rendered) -> None:
    """Image Builder S3Download: "All folders in the destination path must exist prior to download,
    or the download fails." https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-action-modules.html"""
    for component in stack.inputs(COMPONENT):
        assert download_folder_problems(yaml.safe_load(component["data"])) == []


def _iam_arn(kind: str, inputs: dict[str, Any], name: str) -> str:
    """The ARN AWS gives the resource: <kind>/<path><name>, the name Pulumi's auto-name when not set.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns"""
    path = inputs.get("path") or "/"
    return f"arn:aws:iam::{ACCOUNT}:{kind}{path}{inputs.get('name') or name + AUTONAME_SUFFIX}"


def _allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    # moto's evaluator of identity policies: action and resource wildcards as IAM matches them.
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


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
        for resource in _resources(stack, type_):
            arn = _iam_arn(kind, resource.inputs, resource.name)
            for action in actions:
                assert _allowed(policy, action, arn), f"{resource.name}: the deploy role may not {action} on {arn}"
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
        for resource in _resources(stack, type_):
            if type_ == ROLE:
                assert resource.inputs.get("description"), f"{resource.name}: has a description to update"
            arn = _iam_arn(kind, resource.inputs, resource.name)
            for action in actions:
                assert _allowed(policy, action, arn), f"{resource.name}: the deploy role may not {action}"


def test_the_ci_deploy_role_cannot_touch_the_pipelines_own_roles() -> None:
    """The pipeline's roles live at "/"; the stack's path excludes them, so a deploy cannot widen its own rights."""
    policy = iam_for_stack_policy(ACCOUNT)
    for name in ("celery-cluster-github-deploy-prod", "celery-cluster-github-preview"):
        assert not _allowed(policy, "iam:PutRolePolicy", f"arn:aws:iam::{ACCOUNT}:role/{name}")


# --- Deploys but does not work ------------------------------------------------------------------


def test_old_images_are_kept_for_the_lifecycle_policy_n_per_architecture(stack: Rendered) -> None:
    """DeleteImage "does not delete any EC2 AMIs"
    (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_DeleteImage.html): a replaced image
    must stay (retain_on_delete) for a lifecycle policy to delete it with its AMI and snapshots
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/image-lifecycle-rules.html), and the
    count must be per architecture, so each policy selects images of one architecture only."""
    images = _resources(stack, IMAGE)
    policies = stack.inputs(LIFECYCLE)
    if not images:
        assert not policies, "no bake, no retention policy"
        return
    assert len(policies) == len(images), "one lifecycle policy per architecture"
    for image in images:
        assert image.retain_on_delete, f"{image.name}: a replaced image must outlive its Pulumi resource"
        (selecting,) = [p for p in policies if p["resourceSelection"]["tagMap"].items() <= image.inputs["tags"].items()]
        others = [i for i in images if i is not image]
        assert not any(selecting["resourceSelection"]["tagMap"].items() <= o.inputs["tags"].items() for o in others)
        (detail,) = selecting["policyDetails"]
        assert detail["action"] == {"type": "DELETE", "includeResources": {"amis": True, "snapshots": True}}
        assert detail["filter"] == {"type": "COUNT", "value": IMAGES_KEPT}
        assert selecting["resourceType"] == "AMI_IMAGE"
    for kept in (RECIPE, COMPONENT):
        for resource in _resources(stack, kept):
            # A retained image keeps its recipe, and the recipe its component: deleting either while
            # something depends on it fails with ResourceDependencyException
            # (terraform-provider-aws #40037, #22127).
            assert resource.retain_on_delete, resource.name


# --- Risks to remove ----------------------------------------------------------------------------


def test_the_drain_hook_is_its_own_resource(stack: Rendered) -> None:
    """`initial_lifecycle_hook` changes force replacement of the whole group
    (https://github.com/hashicorp/terraform-provider-aws/issues/34260): the drain hook is an
    aws.autoscaling.LifecycleHook, so a new drain window updates the hook only."""
    hooks = stack.inputs(HOOK)
    for group in _resources(stack, GROUP):
        assert "initialLifecycleHooks" not in group.inputs, group.name
        if not group.name.startswith("pool-"):
            continue  # the scheduler's group runs no tasks and has nothing to drain
        (hook,) = [h for h in hooks if h["autoscalingGroupName"] == group.inputs.get("name", group.name)]
        assert hook["lifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert hook["heartbeatTimeout"] == stack.config.drain_window_seconds
        assert hook["defaultResult"] == "CONTINUE"


def test_image_builder_names_change_with_every_replacing_input(stack: Rendered) -> None:
    """Components and recipes are immutable per name and version
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html): a
    replacement under the same name fails with "already exists". The name carries the digest of
    every other input as rendered, so no input can change without the name changing."""
    for type_, length in ((COMPONENT, 10), (RECIPE, 12)):
        for inputs in stack.inputs(type_):
            assert inputs["name"].endswith("-" + content_digest(inputs)[:length]), inputs["name"]


def test_publisher_concurrency_reservation_is_a_setting() -> None:
    """Lambda keeps 100 concurrent executions unreserved ("You can reserve up to the Unreserved account
    concurrency value that is shown, minus 100", https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html):
    on a new account (quota 10) any reservation is refused, so it must be possible to leave it out."""
    for stack in STACKS:
        function = rendered(stack).one(FUNCTION, "publisher-fn")
        reserve = rendered(stack).config.publisher_reserve_concurrency
        assert function.get("reservedConcurrentExecutions") == (1 if reserve else None)
    (function,) = [
        r.inputs
        for r in _variant("dev", {"publisherReserveConcurrency": False}).of_type(FUNCTION)
        if r.name == "publisher-fn"
    ]
    assert "reservedConcurrentExecutions" not in function


def test_bucket_prefixes_fit_in_37_characters(stack: Rendered) -> None:
    """bucket_prefix: "Must be lowercase and less than or equal to 37 characters in length."
    https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/s3_bucket#bucket_prefix-1"""
    for bucket in stack.inputs(BUCKET):
        prefix = bucket.get("bucketPrefix")
        if prefix is not None:
            assert len(prefix) <= BUCKET_PREFIX_MAX, prefix
            assert prefix == prefix.lower(), prefix


def test_the_longest_stack_name_the_config_admits_fits_the_bucket_prefix() -> None:
    """The same rule for every stack name the config allows, not only today's three."""
    longest = "a" + "b" * 15
    values = read_stack_file("dev")
    assert parse_config(longest, merged_raw(values)).stack == longest
    assert len(bucket_prefix(longest)) <= BUCKET_PREFIX_MAX
    with pytest.raises(ValueError, match="stack"):
        parse_config(longest + "c", merged_raw(values))


def test_the_deploy_job_and_its_role_session_outlast_an_image_build() -> None:
    """An image build may take IMAGE_CREATE_TIMEOUT_MINUTES; the deploy job's timeout
    (https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions#jobsjob_idtimeout-minutes)
    and the assumed role's session (configure-aws-credentials role-duration-seconds, default one hour;
    the role's MaxSessionDuration, https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html)
    must outlast it with room for the rest of `pulumi up`."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy-stack.yml").read_text())
    job = workflow["jobs"]["deploy"]
    assert job["timeout-minutes"] >= 2 * IMAGE_CREATE_TIMEOUT_MINUTES
    (credentials,) = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert int(credentials["with"]["role-duration-seconds"]) == DEPLOY_SESSION_SECONDS
    assert job["timeout-minutes"] * 60 <= DEPLOY_SESSION_SECONDS
    assert DEPLOY_SESSION_SECONDS <= 12 * 3600, "IAM's MaxSessionDuration is at most 12 hours"


def _grants_of(stack: Rendered, role_names: set[str]) -> set[str]:
    """Names of the inline policies and attachments on the given roles."""
    found = set()
    for type_ in (ROLE_POLICY, ATTACHMENT):
        for resource in _resources(stack, type_):
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
    roles = {r.name for r in _resources(stack, ROLE)}
    users = [
        *_resources(stack, IMAGE),
        *_resources(stack, GROUP),
        *_resources(stack, FUNCTION),
        *_resources(stack, LIFECYCLE),
    ]
    for user in users:
        waits_for = _closure(render, user.name)
        used_roles = roles & waits_for
        assert used_roles, f"{user.name} uses no role?"
        # The group's lifecycle-hook policy names the group's ARN, so it can only follow the group;
        # the hook acts at termination, long after launch.
        missing = {g for g in _grants_of(stack, used_roles) if not g.endswith("-lifecycle") or user.type == LIFECYCLE}
        assert missing <= waits_for, f"{user.name} may start before {sorted(missing - waits_for)}"


def test_lambda_runtime_is_a_supported_one(stack: Rendered) -> None:
    """python3.11 is deprecated on 2026-06-30; python3.13 is supported until 2029-06-30
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html). pulumi-aws lists both in its
    Runtime enum; the publisher's bundle is built for the runtime it deploys on."""
    deprecated = {"python3.8", "python3.9", "python3.10", "python3.11"}
    for function in stack.inputs(FUNCTION):
        assert function["runtime"] == LAMBDA_RUNTIME
        assert function["runtime"] not in deprecated


# --- Requests against botocore's models ---------------------------------------------------------


def _validated(stack: str) -> Iterator[tuple[str, list[str]]]:
    for request in requests_of(rendered(stack).document["resources"]):
        yield f"{request.resource} -> {request.service}:{request.operation}", validate(request)


@pytest.mark.parametrize("stack_name", STACKS)
def test_rendered_requests_are_valid_for_botocore(stack_name: str) -> None:
    """Every rendered resource that maps onto an AWS create request (Auto Scaling groups, policies and
    hooks, launch template data, alarms, ElastiCache, Amazon MQ, Lambda, Image Builder, IAM) builds a
    request that botocore's service model accepts: ParamValidator plus enums, maxima and patterns."""
    results = list(_validated(stack_name))
    failures = {where: errors for where, errors in results if errors}
    assert len(results) >= 30, f"only {len(results)} requests mapped"
    assert failures == {}


def test_the_request_check_catches_a_bad_value() -> None:
    """The validator is not vacuous: a runtime outside Lambda's enum and an over-long name are errors."""
    (function,) = [r for r in rendered("dev").document["resources"] if r["name"] == "publisher-fn"]
    bad = {**function, "inputs": {**function["inputs"], "runtime": "python2.6", "name": "x" * 200}}
    (request, *_) = requests_of([bad])
    errors = " ".join(validate(request))
    assert "Runtime" in errors
    assert "FunctionName" in errors


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


# What Image Builder's build instance calls, in a subnet without internet access (its own endpoint, and the
# SSM agent's); see infra/components/network.py for the sources.
BUILD_ENDPOINTS = ("imagebuilder", "ssm", "ec2messages", "ssmmessages", "logs")


def test_image_builds_reach_image_builder_without_internet(stack: Rendered) -> None:
    """With egress=endpoints and imageMode bake, the build instance has no NAT: every endpoint it calls
    exists in its subnets and admits its security group on 443
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/vpc-interface-endpoints.html,
    https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html)."""
    config = stack.config
    if config.egress != "endpoints" or config.vpc_id or config.image_mode != "bake":
        pytest.skip("the build reaches AWS through a NAT gateway, or there is no build")
    region = config.region
    services = {e["serviceName"]: e for e in stack.inputs("aws:ec2/vpcEndpoint:VpcEndpoint")}
    admitted = {
        rule["referencedSecurityGroupId"]
        for rule in stack.inputs("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if rule["securityGroupId"] == "network-endpoints-id" and rule["fromPort"] <= 443 <= rule["toPort"]
    }
    for infrastructure in stack.inputs("aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"):
        (group,) = infrastructure["securityGroupIds"]
        assert group in admitted
        for service in BUILD_ENDPOINTS:
            endpoint = services.get(f"com.amazonaws.{region}.{service}")
            assert endpoint is not None, f"no {service} endpoint for the image build"
            assert endpoint["vpcEndpointType"] == "Interface"
            assert endpoint["privateDnsEnabled"] is True
            assert infrastructure["subnetId"] in endpoint["subnetIds"]


def test_an_endpoints_stack_that_bakes_renders_every_endpoint_its_build_needs() -> None:
    """The rule above on a render that needs it (no stack file has egress endpoints with bake)."""
    values = {**read_stack_file("prod"), "egress": "endpoints", "imageMode": "bake"}
    config = parse_config("prod", merged_raw(values))
    test_image_builds_reach_image_builder_without_internet(Rendered(config, render_config(config, values)))


# --- Instances that cannot work are replaced; warm-pool instances take no tasks (issue 9, items 5, 6) --


def _pool_groups(stack: Rendered) -> list[Resource]:
    """The worker pools' groups (`pool-<name>-...`); the scheduler's group of one runs no tasks."""
    return [g for g in _resources(stack, GROUP) if g.name.startswith("pool-")]


def _group_policies(stack: Rendered, group: Resource) -> list[dict[str, Any]]:
    """Role policies that name this group as their resource (the pool's instance role)."""
    found = []
    for inputs in stack.inputs(ROLE_POLICY):
        document = json.loads(inputs["policy"])
        resources = [s.get("Resource") for s in document["Statement"]]
        if any(isinstance(r, str) and r.endswith(f"/{group.name}") for r in resources):
            found.append(document)
    return found


def test_a_worker_that_cannot_run_gets_its_instance_replaced(stack: Rendered) -> None:
    """The groups use EC2 health checks, which a running instance passes with its worker dead, so the
    instance marks itself: SetInstanceHealth "Unhealthy ... Amazon EC2 Auto Scaling terminates and
    replaces the unhealthy instance" (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_SetInstanceHealth.html).
    The worker unit's OnFailure= (its restarts used up, or it cannot start) runs the unit that calls it,
    and the instance role may call it on its own group."""
    worker = unit_settings("celery-worker.service")
    assert worker["OnFailure"] == ["celery-worker-failed.service"]
    assert worker["Restart"] == ["on-failure"], "only a worker that cannot restart is given up on"
    # A bad setting is not restarted, so the unit enters "failed" at once and OnFailure= runs.
    assert str(SETTINGS_EXIT_CODE) in restart_prevented("celery-worker.service")
    marking = unit_settings("celery-worker-failed.service")
    assert marking["ExecStart"] == ["/opt/celery-cluster/venv/bin/celery-cluster-drain --mark-unhealthy"]
    for group in _pool_groups(stack):
        assert group.inputs["healthCheckType"] == "EC2", "with ELB checks this rule would need revisiting"
        (policy,) = _group_policies(stack, group)
        (arn,) = {s["Resource"] for s in policy["Statement"]}
        assert _allowed(policy, "autoscaling:SetInstanceHealth", arn), group.name
        assert not _allowed(policy, "autoscaling:SetInstanceHealth", arn + "-other"), "scoped to its own group"


def test_warm_pool_instances_start_no_worker(stack: Rendered) -> None:
    """A warm-pool instance boots once and is then stopped or kept aside (Warmed:*); "As soon as an
    instance finishes launching into the warm pool, Amazon EC2 Auto Scaling stops or hibernates the
    instance" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
    A worker started then takes tasks and is stopped without a drain. The worker requires the unit that
    waits for autoscaling/target-lifecycle-state = InService
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html),
    and user data starts the units without blocking on that wait."""
    if not any("warmPool" in g.inputs for g in _pool_groups(stack)):
        pytest.skip(f"{stack.config.stack} has no warm pool")
    worker = unit_settings("celery-worker.service")
    assert "celery-in-service.service" in " ".join(worker["Requires"])
    assert "celery-in-service.service" in " ".join(worker["After"])
    waiting = unit_settings("celery-in-service.service")
    assert waiting["ExecStart"] == ["/opt/celery-cluster/venv/bin/celery-cluster-drain --wait-in-service"]
    assert waiting["Type"] == ["oneshot"]
    assert waiting["RemainAfterExit"] == ["yes"]
    assert waiting["TimeoutStartSec"] == ["infinity"], "an instance may wait in the warm pool for hours"
    for launch in _resources(stack, "aws:ec2/launchTemplate:LaunchTemplate"):
        if not launch.name.startswith("pool-"):
            continue  # the scheduler has no warm pool
        user_data = base64.b64decode(launch.inputs["userData"]).decode()
        assert "[systemctl, enable, --now, --no-block," in user_data


def test_warm_pool_has_the_configured_size(stack: Rendered) -> None:
    """Without MaxGroupPreparedCapacity the warm pool is max - desired; "Only when
    MaxGroupPreparedCapacity and MinSize are set to the same value does the warm pool have an absolute
    size." (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutWarmPool.html)"""
    pools = {f"pool-{name}-asg": pool for name, pool in stack.config.pools.items()}
    for group in _pool_groups(stack):
        warm = group.inputs.get("warmPool")
        if warm is None:
            continue
        configured = pools[group.name].warm_pool.min_size
        assert warm["minSize"] == configured
        assert warm["maxGroupPreparedCapacity"] == configured


def test_instance_refresh_replaces_instances_that_protect_themselves(stack: Rendered) -> None:
    """Busy instances protect themselves from scale-in (worker.drain.protection). An instance refresh by
    default waits one hour for that protection to go and then fails; Refresh replaces them, through
    the drain hook that waits for their tasks
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html). The deploy
    step starts each pool's refresh with these preferences (output poolRefresh, infra.cli.canary_rollout)."""
    plans = stack.document["outputs"][POOL_REFRESH]
    for group in _pool_groups(stack):
        pool = group.name.removeprefix("pool-").removesuffix("-asg")
        assert plans[pool]["preferences"]["ScaleInProtectedInstances"] == "Refresh", group.name
        (policy,) = _group_policies(stack, group)
        (arn,) = {s["Resource"] for s in policy["Statement"]}
        assert _allowed(policy, "autoscaling:SetInstanceProtection", arn), group.name


def test_a_drain_can_wait_as_long_as_a_task_may_run(stack: Rendered) -> None:
    """Scale-in never cuts a task off: the drain (DRAIN_TIMEOUT, the worker's soft window) lasts at least
    the pool's longest task time limit, while the agent heartbeats the hook; AWS holds an instance in a
    wait state at most "48 hours or 100 times the heartbeat timeout, whichever is smaller"
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html)."""
    hooks = stack.inputs(HOOK)
    for name in stack.config.pools:
        launch = stack.one("aws:ec2/launchTemplate:LaunchTemplate", f"pool-{name}-lt")
        user_data = yaml.safe_load(base64.b64decode(launch["userData"]).decode())
        (pool_env,) = [f["content"] for f in user_data["write_files"] if f["path"] == files.POOL_ENV]
        env = dict(line.split("=", 1) for line in pool_env.splitlines() if "=" in line and not line.startswith("#"))
        (hook,) = [h for h in hooks if h["autoscalingGroupName"].startswith(f"pool-{name}-asg")]
        assert int(env["CELERY_SOFT_SHUTDOWN_TIMEOUT"]) >= longest_task_seconds(stack.config.worker_environment(name))
        assert int(env["DRAIN_TIMEOUT"]) <= max_wait(hook["heartbeatTimeout"])


# --- Deploys but does not work ----------------------------------------------------------------

SCALING_POLICY = "aws:autoscaling/policy:Policy"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"

# What worker.publisher.handler writes with StorageResolution=1 (10 s samples) under the stack's namespace.
HIGH_RESOLUTION = {
    METRIC_WAITING,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_TASK_SECONDS,
    METRIC_BUSY_PROCESSES,
    METRIC_IN_SERVICE,
    METRIC_CAPACITY_NEEDED,
    METRIC_LOAD_WITH_ONE_FEWER,
    METRIC_NEEDED_AT_ZERO,
    # worker.scheduler.beat, StorageResolution=1 too.
    METRIC_SCHEDULER_HEARTBEAT,
    METRIC_ENTRY_LATENESS,
}


def _metric_reads(stack: Rendered) -> Iterator[tuple[str, str, str, int]]:
    """(resource, namespace, metric, period) of every metric an alarm or a target-tracking policy reads."""
    for name, alarm in stack.named(ALARM).items():
        if "metricName" in alarm:
            yield name, alarm["namespace"], alarm["metricName"], alarm["period"]
        for query in alarm.get("metricQueries", []):
            metric: dict[str, Any] | None = query.get("metric")
            if metric is not None:
                yield name, metric["namespace"], metric["metricName"], metric["period"]
    for name, policy in stack.named(SCALING_POLICY).items():
        spec = (policy.get("targetTrackingConfiguration") or {}).get("customizedMetricSpecification") or {}
        if "metricName" in spec:
            yield name, spec["namespace"], spec["metricName"], spec.get("period", 60)
        for query in spec.get("metrics", []):
            stat = query.get("metricStat")
            if stat is not None:
                yield name, stat["metric"]["namespace"], stat["metric"]["metricName"], stat["period"]


def test_no_period_under_60_s_on_a_metric_not_published_at_high_resolution(stack: Rendered) -> None:
    """PutMetricAlarm, Period: "If you specify 10 or 30 for a metric that does not have sub-minute
    resolution, the alarm still attempts to gather data at the period rate that you specify. In this
    case, it does not receive data for the attempts that do not correspond to a one-minute data
    resolution, and the alarm might often lapse into INSUFFICIENT_DATA."
    https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
    (target tracking's customized metrics accept 10, 30 and 60 s periods under the same rule:
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html)."""
    reads = list(_metric_reads(stack))
    assert reads
    namespace = stack.config.metric_namespace
    short = [(r, ns, m, p) for r, ns, m, p in reads if p < 60]
    assert short, "the pools' scaling reads the publisher's 10 s datapoints"
    for resource, metric_namespace, metric, period in short:
        assert (metric_namespace, metric in HIGH_RESOLUTION) == (namespace, True), (
            f"{resource} reads {metric_namespace}/{metric} at {period} s, which is not published at high resolution"
        )
