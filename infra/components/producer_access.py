"""What a producer application needs from the stack: its own secret and a policy to read it.

The producer secret holds the broker URL, the stack's routing table and the queue type the workers
declare (`celery_cluster_client.secret` reads it), nothing of the workers' settings. It is a
separate secret from the workers', so the producer policy (an IAM managed policy the producer's
team attaches to its own role) grants `GetSecretValue` on exactly that one ARN. The secret uses
Secrets Manager's AWS managed key (aws/secretsmanager), whose key policy lets any principal of the
account that may call Secrets Manager decrypt through it, so no KMS statement is needed
(https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from celery_cluster_client.contract import KEY_BROKER_URL, KEY_QUEUE_TYPE, KEY_TASK_ROUTES
from infra.components import iam
from infra.config import StackConfig

TYPE = "celery-cluster:producers:ProducerAccess"


def producer_secret_document(url: str, queue_type: str, routes: Mapping[str, str]) -> str:
    """The producer secret: JSON of strings, like the workers' environment secret."""
    return json.dumps(
        {KEY_BROKER_URL: url, KEY_QUEUE_TYPE: queue_type, KEY_TASK_ROUTES: json.dumps(dict(routes), sort_keys=True)}
    )


def policy_name(stack: str) -> str:
    """Named under the stack's IAM prefix (the deploy role may only manage `celery-cluster*` policies)."""
    return f"celery-cluster-{stack}-producer"


@dataclass(frozen=True)
class ProducerAccessArgs:
    config: StackConfig
    broker_url: pulumi.Input[str]
    queue_type: str


class ProducerAccess(pulumi.ComponentResource):
    secret_arn: pulumi.Output[str]
    policy_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ProducerAccessArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        secret = aws.secretsmanager.Secret(
            f"{name}-secret",
            aws.secretsmanager.SecretArgs(
                description=f"celery-cluster {config.stack}: producers' broker URL and task routes",
                recovery_window_in_days=7,
            ),
            opts=child,
        )
        document = pulumi.Output.from_input(args.broker_url).apply(
            lambda url: producer_secret_document(url, args.queue_type, config.task_routes)
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-secret",
            aws.secretsmanager.SecretVersionArgs(secret_id=secret.id, secret_string=pulumi.Output.secret(document)),
            opts=child,
        )
        policy = aws.iam.Policy(
            f"{name}-policy",
            aws.iam.PolicyArgs(
                name=policy_name(config.stack),
                path=iam.IAM_PATH,  # the CI deploy role may create policies under this path only
                description=f"celery-cluster {config.stack}: read the producer secret (attach to producer roles)",
                policy=secret.arn.apply(lambda arn: json.dumps(iam.producer_policy(arn))),
            ),
            opts=child,
        )
        self.secret_arn = secret.arn
        self.policy_arn = policy.arn
        self.register_outputs({"secretArn": self.secret_arn, "policyArn": self.policy_arn})
