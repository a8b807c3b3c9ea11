"""The deploy's smoke test, as rendered: it runs where the broker is, and its report comes back without a
connection held open. Each rule runs over every rendered stack (and every generated config:
tests/support/generated_stacks.py) and cites its source."""

from __future__ import annotations

import json
from typing import Any

import yaml
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data

from infra.cli.account_setup import POWER_USER
from infra.cli.deploy_steps import plan as deploy_plan
from infra.cli.remote_smoke import result_deadline
from infra.components.smoke_function import (
    HANDLER,
    MAX_EVENT_AGE_SECONDS,
    RESULTS_RETENTION_SECONDS,
    TIMEOUT_SECONDS,
    WAIT_SECONDS,
    smoke_results_queue_name,
)
from infra.config import ROOT
from infra.outputs import SMOKE_FUNCTION_NAME, SMOKE_RESULTS_QUEUE_URL
from tests.support.rendered import Rendered

ACCOUNT = "123456789012"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"


def _allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    # moto's evaluator of identity policies: action and resource wildcards as IAM matches them.
    return IAMPolicy(json.dumps(document)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


def _queue_arn(stack: Rendered) -> str:
    """The results queue's ARN as the program passes it on (arn:aws:sqs:<region>:<account>:<name>)."""
    name = smoke_results_queue_name(stack.config.stack)
    (arn,) = {s["Resource"] for d in _role_policies(stack).values() for s in d["Statement"] if "sqs:" in str(s)}
    assert arn.startswith("arn:aws:sqs:"), arn
    assert arn.endswith(f":{name}"), arn
    return str(arn)


def _key_arn(stack: Rendered) -> str:
    """The stack's KMS key: the one the alarm topic is encrypted with."""
    (topic,) = stack.inputs("aws:sns/topic:Topic")
    return str(topic["kmsMasterKeyId"])


def _role_policies(stack: Rendered) -> dict[str, dict[str, Any]]:
    """{role resource name: its inline policy document}."""
    return {
        str(policy["role"]).removesuffix("-id"): json.loads(policy["policy"])
        for policy in stack.inputs(ROLE_POLICY)
        if str(policy["role"]).endswith("-id")
    }


def _grants(stack: Rendered, role: str) -> set[str]:
    return {
        r.name
        for r in stack.render.resources
        if r.type in (ROLE_POLICY, ATTACHMENT) and str(r.inputs.get("role")).removesuffix("-id") == role
    }


def test_the_smoke_test_runs_inside_the_vpc(stack: Rendered) -> None:
    """A broker in private subnets is out of reach of a GitHub-hosted runner: the deploy workflow's
    smoke test invokes the stack's smoke function, which runs in the private subnets with the
    publisher's security group (the one the broker admits). Lambda's timeout is at most 900 s
    (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html)."""
    functions = stack.named(FUNCTION)
    smoke = functions["publisher-smoke"]
    publisher = functions["publisher-fn"]
    assert smoke["name"] == stack.document["outputs"][SMOKE_FUNCTION_NAME]
    assert smoke["handler"] == HANDLER
    assert smoke["vpcConfig"] == publisher["vpcConfig"]
    assert smoke["role"] != publisher["role"], "its own role: the publisher may not send smoke results"
    assert smoke["loggingConfig"] == publisher["loggingConfig"]
    assert smoke["environment"]["variables"]["POOLS_JSON"] == publisher["environment"]["variables"]["POOLS_JSON"]
    assert smoke["timeout"] == TIMEOUT_SECONDS <= 900
    (group,) = smoke["vpcConfig"]["securityGroupIds"]
    broker_port_sources = {
        rule.get("referencedSecurityGroupId")
        for rule in stack.inputs("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if rule["securityGroupId"] == "broker-sg-id"
    }
    assert group in broker_port_sources
    # The workflow's smoke test is the deploy's last step (after the canary refresh), run from the job.
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy-stack.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["deploy"]["steps"] if "scripts/deploy" in s.get("run", "")]
    assert step["run"].split()[:3] == ["scripts/deploy", '"${STACK}"', "--after-up"]
    (smoke_step,) = [s for s in deploy_plan(stack.config.stack) if s.name == "smoke"]
    command = list(smoke_step.argv)
    assert command[0].endswith("scripts/smoke")
    assert command[1:3] == ["--stack", stack.config.stack]
    assert "--direct" not in command
    assert "--broker-url" not in command
    assert float(command[command.index("--timeout") + 1]) == WAIT_SECONDS < TIMEOUT_SECONDS


def test_the_smoke_report_comes_back_through_the_stacks_encrypted_queue(stack: Rendered) -> None:
    """The deploy invokes the function asynchronously and polls for its record (infra.cli.remote_smoke, no
    connection held open): Lambda sends the record of each run, success or failure, to the results queue,
    the asynchronous invocation's destination
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html; a standard queue, as
    destinations require). The queue is encrypted with the stack's key; a failed run is never retried (a
    retry would send a second set of canaries); a record outlives the deploy's deadline; and the destination
    is configured after the role may send to it, or Lambda refuses it (elastic/beats #13963)."""
    name = smoke_results_queue_name(stack.config.stack)
    queue = stack.one(QUEUE, "publisher-smoke-results")
    assert queue["name"] == name
    assert not queue.get("fifoQueue"), "destinations take standard queues only"
    assert queue["kmsMasterKeyId"] == _key_arn(stack)
    assert queue["messageRetentionSeconds"] == RESULTS_RETENTION_SECONDS > result_deadline(WAIT_SECONDS)
    assert stack.document["outputs"][SMOKE_RESULTS_QUEUE_URL].endswith(f"/{name}")
    smoke = stack.one(FUNCTION, "publisher-smoke")
    (invoke,) = [i for i in stack.inputs(INVOKE_CONFIG) if i["functionName"] == smoke["name"]]
    assert invoke["maximumRetryAttempts"] == 0
    assert invoke["maximumEventAgeInSeconds"] == MAX_EVENT_AGE_SECONDS
    arn = _queue_arn(stack)
    assert invoke["destinationConfig"] == {"onSuccess": {"destination": arn}, "onFailure": {"destination": arn}}
    (resource,) = [r for r in stack.render.resources if r.type == INVOKE_CONFIG and r.name == "publisher-smoke-invoke"]
    role = str(smoke["role"]).rsplit("/", 1)[-1]  # the mock's role ARN ends with its resource name
    grants = _grants(stack, role)
    assert len(grants) == 2, "the VPC access attachment and the runtime policy"
    assert grants <= set(resource.dependencies)


def test_the_smoke_role_may_only_send_to_the_results_queue(stack: Rendered) -> None:
    """The function's execution role sends the record (sqs:SendMessage), and as the producer of a queue
    encrypted with a customer managed key it needs kms:GenerateDataKey and kms:Decrypt on that key
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html#send-to-encrypted-queue).
    It may not read, delete or purge, and no other role of the stack may send results."""
    queue, key = _queue_arn(stack), _key_arn(stack)
    policies = _role_policies(stack)
    smoke = policies.pop("publisher-smoke-role")
    assert _allowed(smoke, "sqs:SendMessage", queue)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:PurgeQueue", "sqs:SetQueueAttributes"):
        assert not _allowed(smoke, action, queue), action
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert _allowed(smoke, action, key), action
    assert not _allowed(smoke, "cloudwatch:PutMetricData", "*"), "the publisher's right, not the smoke test's"
    for role, document in policies.items():
        assert not _allowed(document, "sqs:SendMessage", queue), f"{role} may send smoke results"


def test_the_deploy_role_may_start_the_smoke_function_and_read_its_report(stack: Rendered) -> None:
    """The deploy role (infra.cli.account_setup) has PowerUserAccess, everything but IAM, Organizations and
    Account (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/PowerUserAccess.html; evaluated
    here from moto's copy): it invokes the function, receives and deletes its record, and decrypts it with
    the stack's key (a consumer needs kms:Decrypt: the SQS key management page). The key policy's account
    statement lets IAM policies grant those key actions
    (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam)."""
    assert POWER_USER == "arn:aws:iam::aws:policy/PowerUserAccess"
    power_user = json.loads(aws_managed_policies_data)["PowerUserAccess"]["Document"]
    queue, key = _queue_arn(stack), _key_arn(stack)
    function = (
        f"arn:aws:lambda:{stack.config.region}:{ACCOUNT}:function:{stack.one(FUNCTION, 'publisher-smoke')['name']}"
    )
    for action, resource in (
        ("lambda:InvokeFunction", function),
        ("sqs:ReceiveMessage", queue),
        ("sqs:DeleteMessage", queue),
        ("kms:Decrypt", key),
    ):
        assert _allowed(power_user, action, resource), action
    key_policy = json.loads(stack.one("aws:kms/key:Key", "monitoring-key")["policy"])
    (account,) = [s for s in key_policy["Statement"] if str(s.get("Principal", {}).get("AWS", "")).endswith(":root")]
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(account["Action"])
    assert account["Effect"] == "Allow"
    assert "Condition" not in account
