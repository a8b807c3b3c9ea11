"""IAM policy documents as pure functions: tests call them directly, components JSON-encode them.

Rules every document here follows (the security baseline): no `*` action and no `service:*`
action; resources are the stack's own ARNs, except for the few read-only or metric APIs that
support no resource-level permissions, which are narrowed by a condition where AWS offers one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Document = dict[str, Any]

IAM_PATH = "/celery-cluster/"
"""Every role and instance profile of a stack lives under this IAM path: the CI deploy role may create,
change and pass exactly these (`infra.cli.account_setup.iam_for_stack_policy`), whatever name Pulumi generates.
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-friendly-names"""


LAMBDA_VPC_ACCESS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
"""The managed policy a Lambda in a VPC needs for its network interfaces (the publisher's, the smoke function's)."""


def document(*statements: Mapping[str, Any]) -> Document:
    return {"Version": "2012-10-17", "Statement": [dict(s) for s in statements]}


def assume_role(service: str) -> Document:
    return document({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"})


def read_secret(secret_arn: str, sid: str = "ReadBrokerSecret") -> Mapping[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret_arn}


def put_metrics(namespace: str) -> Mapping[str, Any]:
    # PutMetricData has no resource-level permissions; the namespace condition is its scope.
    return {
        "Sid": "PutStackMetrics",
        "Effect": "Allow",
        "Action": ["cloudwatch:PutMetricData"],
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
    }


def write_logs(log_group_arn: str) -> Mapping[str, Any]:
    return {
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [log_group_arn, f"{log_group_arn}:log-stream:*"],
    }


def worker_instance_policy(secret_arn: str, log_group_arn: str, namespace: str) -> Document:
    """What a worker VM may do: read the broker secret, write its logs and metrics."""
    return document(read_secret(secret_arn), write_logs(log_group_arn), put_metrics(namespace))


# Actions an instance takes on its own group. All four accept the autoScalingGroup resource type, so
# each is scoped to the pool's group ARN (Service Authorization Reference, Amazon EC2 Auto Scaling:
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2autoscaling.html).
WORKER_GROUP_ACTIONS = (
    # The drain agent completes (or extends) the termination hook.
    "autoscaling:CompleteLifecycleAction",
    "autoscaling:RecordLifecycleActionHeartbeat",
    # It protects its instance from scale-in while tasks run (worker.drain.protection).
    "autoscaling:SetInstanceProtection",
    # A worker that cannot run marks its instance unhealthy (worker.instance.state).
    "autoscaling:SetInstanceHealth",
)


def worker_lifecycle_policy(asg_arn: str) -> Document:
    """The instance acts on its own group only: lifecycle hook, scale-in protection, health."""
    return document(
        {
            "Sid": "ActOnOwnGroup",
            "Effect": "Allow",
            "Action": list(WORKER_GROUP_ACTIONS),
            "Resource": asg_arn,
        }
    )


def count_in_service() -> Mapping[str, Any]:
    # Describe* calls support no resource-level permissions (Service Authorization Reference).
    return {
        "Sid": "CountInService",
        "Effect": "Allow",
        "Action": ["autoscaling:DescribeAutoScalingGroups"],
        "Resource": "*",
    }


def publisher_policy(secret_arn: str, log_group_arn: str, namespace: str) -> Document:
    """The metrics publisher: read the broker secret, count in-service instances, put metrics."""
    return document(read_secret(secret_arn), write_logs(log_group_arn), put_metrics(namespace), count_in_service())


SMOKE_RESULTS_SEND_ACTIONS = ("sqs:SendMessage",)
"""What Lambda needs to deliver an invocation record to an SQS destination, with the function's execution
role (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)."""
SMOKE_RESULTS_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
"""A producer of a queue encrypted with a customer managed key: SendMessage also calls kms:GenerateDataKey,
and kms:Decrypt to verify a new data key
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html#send-to-encrypted-queue);
for a destination the function's execution role makes those calls (the Lambda page above: "ensure that both
your function's execution role and the key's resource-based policy contains the relevant permissions")."""


def smoke_policy(secret_arn: str, log_group_arn: str, results_queue_arn: str, key_arn: str) -> Document:
    """The smoke function: what the test needs (the broker secret, in-service counts, its logs), and to
    send its invocation record to the stack's smoke results queue, which is all it may do with that queue."""
    return document(
        read_secret(secret_arn),
        write_logs(log_group_arn),
        count_in_service(),
        {
            "Sid": "SendSmokeResults",
            "Effect": "Allow",
            "Action": list(SMOKE_RESULTS_SEND_ACTIONS),
            "Resource": results_queue_arn,
        },
        {
            "Sid": "EncryptSmokeResults",
            "Effect": "Allow",
            "Action": list(SMOKE_RESULTS_KEY_ACTIONS),
            "Resource": key_arn,
        },
    )


def producer_policy(secret_arn: str) -> Document:
    """A producer application: read the producer secret (broker URL and task routes), nothing else."""
    return document(read_secret(secret_arn, sid="ReadProducerSecret"))


ALARMS_PRINCIPAL = "cloudwatch.amazonaws.com"
ALARMS_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey*")


def alarm_key_policy(account_id: str, partition: str = "aws") -> Document:
    """Key policy of the stack's KMS key: the account administers it; CloudWatch alarms may use it.

    Alarms cannot publish to a topic encrypted with the AWS-managed SNS key, so the topic uses this
    customer-managed key, and CloudWatch may use it in the form AWS documents for a service that publishes
    to an encrypted topic: the service principal, kms:Decrypt and kms:GenerateDataKey*, no condition
    (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services,
    https://repost.aws/knowledge-center/cloudwatch-configure-alarm-sns). No AWS document says that
    CloudWatch's calls to KMS carry aws:SourceAccount, and with a condition they do not match, the alarm
    history shows "CloudWatch Alarms does not have authorization to access the SNS topic encryption key"
    and no page is sent. SNS itself needs no grant here: the publisher (CloudWatch) does.

    The same key encrypts the smoke results queue. Its users there are IAM principals of the account (the
    smoke function's role sends, the deploy role receives), so the account statement, which lets IAM
    policies grant kms:GenerateDataKey and kms:Decrypt
    (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam),
    is all the key policy needs for them.
    """
    root = f"arn:{partition}:iam::{account_id}:root"
    admin_actions: Sequence[str] = (
        "kms:Create*",
        "kms:Describe*",
        "kms:Enable*",
        "kms:List*",
        "kms:Put*",
        "kms:Update*",
        "kms:Revoke*",
        "kms:Disable*",
        "kms:Get*",
        "kms:Delete*",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:ScheduleKeyDeletion",
        "kms:CancelKeyDeletion",
        "kms:RotateKeyOnDemand",
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncryptFrom",
        "kms:ReEncryptTo",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
    )
    return document(
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": root},
            "Action": list(admin_actions),
            "Resource": "*",
        },
        {
            "Sid": "AlarmsPublishEncrypted",
            "Effect": "Allow",
            "Principal": {"Service": ALARMS_PRINCIPAL},
            "Action": list(ALARMS_KEY_ACTIONS),
            "Resource": "*",
        },
    )


def actions_of(doc: Mapping[str, Any]) -> list[str]:
    """Every action a document grants (tests use this to check the no-wildcard rule)."""
    found: list[str] = []
    for statement in doc.get("Statement", []):
        action = statement.get("Action", [])
        found.extend([action] if isinstance(action, str) else action)
    return found
