"""Broker: an ElastiCache Valkey/Redis replication group or an Amazon MQ RabbitMQ broker, by config.

Both variants: private subnets only, TLS in transit, encryption at rest, a random credential that
lives only in Secrets Manager (and, encrypted, in the Pulumi state), and a security group that
admits exactly the workers' and the publisher's security groups, plus the producers' groups and
ranges from config (`broker_clients`), on the broker port only. Workers and the publisher read
the broker URL from the secret at start; it is never in user data, config or outputs in plain text.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.components.broker_clients import client_ingress_rules
from infra.components.security_rules import tcp_egress, tcp_ingress
from infra.config import StackConfig

TYPE = "celery-cluster:broker:Broker"
REDIS_PORT = 6379
AMQPS_PORT = 5671
MANAGEMENT_PORT = 443
PARAMETER_FAMILIES = {"valkey": "valkey", "redis": "redis"}
MQ_USER = "celery"
# RandomPassword's special characters unless override_special is given (terraform-provider-random,
# docs/resources/password.md, `special`).
RANDOM_DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


@dataclass(frozen=True)
class PasswordRule:
    """How a broker credential is generated: the RandomPassword settings, and the characters they
    can produce (the TLS tests build their credentials from the same rule)."""

    length: int
    special: bool = False

    def args(self) -> random.RandomPasswordArgs:
        return random.RandomPasswordArgs(length=self.length, special=self.special)

    @property
    def classes(self) -> tuple[str, ...]:
        """RandomPassword's character classes under these settings (upper, lower, numeric on by default)."""
        letters_and_digits = (string.ascii_uppercase, string.ascii_lowercase, string.digits)
        return (*letters_and_digits, RANDOM_DEFAULT_SPECIAL) if self.special else letters_and_digits


# ElastiCache AUTH: 16-128 printable characters; alphanumeric, so the URL needs no escaping.
REDIS_AUTH_TOKEN = PasswordRule(length=64)
# Amazon MQ: 12+ characters, none of , : =; alphanumeric, so the URL needs no escaping.
MQ_PASSWORD = PasswordRule(length=40)


@dataclass(frozen=True)
class BrokerArgs:
    config: StackConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    worker_security_group_id: pulumi.Input[str]
    publisher_security_group_id: pulumi.Input[str]
    log_group_kms_key_arn: pulumi.Input[str] | None = None


def parameter_family(engine: str, version: str) -> str:
    """ElastiCache parameter group family: valkey8, redis7, ..."""
    return f"{PARAMETER_FAMILIES[engine]}{version.split('.', maxsplit=1)[0]}"


BROKER_CA_IN_SYSTEM_STORE: Final = True
"""Named assumption: the CA that signs ElastiCache's and Amazon MQ's server certificates is one the
image's system trust store (Amazon Linux 2023's ca-certificates) holds, so no client carries a CA file
and no URL below names one: redis-py, py-amqp and httpx verify against the system store. AWS documents
that both serve TLS but not which CA signs them; if a stack's broker sits behind a private CA, that CA
goes into the image's store (this stays True), not into these URLs. The TLS tests model it by putting
their throwaway CA in the system store (SSL_CERT_FILE, tests/support/tls_brokers.py)."""


def redis_url(token: str, host: str, port: int) -> str:
    # rediss:// is TLS; Celery refuses a rediss URL without ssl_cert_reqs, and `required` verifies
    # the server certificate (against the system store: BROKER_CA_IN_SYSTEM_STORE). The token is
    # alphanumeric, so it needs no URL escaping.
    return f"rediss://:{token}@{host}:{port}/0?ssl_cert_reqs=required"


def worker_secret_document(url: str, queue_type: str) -> str:
    """The workers' secret: a JSON object of environment variables (what `worker.instance.fetchenv` reads)."""
    return json.dumps({"CELERY_BROKER_URL": url, "CELERY_QUEUE_TYPE": queue_type})


def member_cluster_id(number: int) -> Callable[[str], str]:
    """Member clusters are named <replication group id>-001, -002, ... (ElastiCache convention)."""
    return lambda group_id: f"{group_id}-{number:03d}"


def amqp_url(user: str, password: str, endpoint: str) -> str:
    host = endpoint.removeprefix("amqps://")
    return f"amqps://{user}:{password}@{host}//"


def replication_group_args(
    config: StackConfig,
    *,
    auth_token: pulumi.Input[str],
    subnet_group_name: pulumi.Input[str],
    security_group_id: pulumi.Input[str],
    parameter_group_name: pulumi.Input[str],
    slow_log_group_name: pulumi.Input[str],
) -> aws.elasticache.ReplicationGroupArgs:
    """The Redis/Valkey broker as the stack config asks for it, given the resources it sits on."""
    return aws.elasticache.ReplicationGroupArgs(
        description=f"celery-cluster {config.stack} broker",
        engine=config.broker_engine,
        engine_version=config.engine_version,
        node_type=config.cache_node_type,
        num_cache_clusters=config.cache_nodes,
        port=REDIS_PORT,
        automatic_failover_enabled=config.broker_ha,
        multi_az_enabled=config.broker_ha,
        transit_encryption_enabled=True,
        transit_encryption_mode="required",
        at_rest_encryption_enabled=True,
        auth_token=auth_token,
        auth_token_update_strategy="ROTATE",  # noqa: S106 - a strategy name
        subnet_group_name=subnet_group_name,
        security_group_ids=[security_group_id],
        parameter_group_name=parameter_group_name,
        auto_minor_version_upgrade=True,
        snapshot_retention_limit=config.broker_snapshot_retention_days,
        apply_immediately=not config.broker_ha,
        log_delivery_configurations=[
            aws.elasticache.ReplicationGroupLogDeliveryConfigurationArgs(
                destination=slow_log_group_name,
                destination_type="cloudwatch-logs",
                log_format="json",
                log_type="slow-log",
            )
        ],
    )


class Broker(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    """host:port (a secret output: it is half of the way in)."""
    secret_arn: pulumi.Output[str]
    """The workers' secret (WORKER_SECRET_ID): JSON {CELERY_BROKER_URL, CELERY_QUEUE_TYPE}."""
    publisher_secret_arn: pulumi.Output[str]
    """The publisher's secret (BROKER_SECRET_ARN): the URL itself."""
    security_group_id: pulumi.Output[str]
    url: pulumi.Output[str]
    """The broker URL with its credential (a secret output; the producer secret holds it too)."""
    queue_type: str
    """The RabbitMQ queue type every process declares: quorum on a cluster, else classic."""
    cache_cluster_ids: list[pulumi.Output[str]]
    """ElastiCache member cluster ids (the CacheClusterId alarm dimension); empty for RabbitMQ."""
    mq_broker_name: pulumi.Output[str] | None
    """Amazon MQ broker name (the Broker alarm dimension); None for ElastiCache."""

    def __init__(self, name: str, args: BrokerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        config = args.config
        self._stack = config.stack
        port = REDIS_PORT if config.is_redis else AMQPS_PORT
        self.security_group_id = self._security_group(args, port)
        self.cache_cluster_ids = []
        self.mq_broker_name = None
        if config.is_redis:
            url, queue_type = self._create_replication_group(config, args), "classic"
        else:
            url, queue_type = self._create_rabbitmq(config, args), "quorum" if config.broker_ha else "classic"
        self.url = pulumi.Output.secret(url)
        self.queue_type = queue_type
        # Two secrets, one URL: the workers' environment reader wants a JSON object of variables, the
        # publisher the bare URL; each role can read only its own.
        self.secret_arn = self._secret(
            "url", "worker environment (CELERY_BROKER_URL)", url.apply(lambda u: worker_secret_document(u, queue_type))
        )
        self.publisher_secret_arn = self._secret("publisher-url", "broker URL for the metrics publisher", url)
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "secretArn": self.secret_arn,
                "publisherSecretArn": self.publisher_secret_arn,
                "securityGroupId": self.security_group_id,
            }
        )

    def _secret(self, suffix: str, what: str, value: pulumi.Output[str]) -> pulumi.Output[str]:
        secret = aws.secretsmanager.Secret(
            f"{self._name}-{suffix}",
            aws.secretsmanager.SecretArgs(
                description=f"celery-cluster {self._stack}: {what}", recovery_window_in_days=7
            ),
            opts=self._child,
        )
        aws.secretsmanager.SecretVersion(
            f"{self._name}-{suffix}",
            aws.secretsmanager.SecretVersionArgs(secret_id=secret.id, secret_string=pulumi.Output.secret(value)),
            opts=self._child,
        )
        return secret.arn

    def _security_group(self, args: BrokerArgs, port: int) -> pulumi.Output[str]:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-sg",
            aws.ec2.SecurityGroupArgs(
                vpc_id=args.vpc_id, description="Celery broker: workers and publisher only", tags={"Name": "broker"}
            ),
            opts=self._child,
        )
        clients = {"workers": args.worker_security_group_id, "publisher": args.publisher_security_group_id}
        for role, client in clients.items():
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-from-{role}",
                tcp_ingress(group.id, port, f"broker protocol from {role}", from_group=client),
                opts=self._child,
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{self._name}-to-broker-from-{role}",
                tcp_egress(client, port, "to the broker", to_group=group.id),
                opts=self._child,
            )
        for suffix, rule in client_ingress_rules(args.config, port, group.id):
            aws.vpc.SecurityGroupIngressRule(f"{self._name}-{suffix}", rule, opts=self._child)
        if not args.config.is_redis:
            # The publisher reads queue depths from the RabbitMQ management API (HTTPS).
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-management-from-publisher",
                tcp_ingress(
                    group.id,
                    MANAGEMENT_PORT,
                    "RabbitMQ management API from publisher",
                    from_group=args.publisher_security_group_id,
                ),
                opts=self._child,
            )
        return group.id

    def _create_replication_group(self, config: StackConfig, args: BrokerArgs) -> pulumi.Output[str]:
        token = random.RandomPassword(
            f"{self._name}-auth-token",
            REDIS_AUTH_TOKEN.args(),
            opts=self._child,
        )
        subnets = aws.elasticache.SubnetGroup(
            f"{self._name}-subnets",
            aws.elasticache.SubnetGroupArgs(subnet_ids=args.subnet_ids, description="celery-cluster broker"),
            opts=self._child,
        )
        parameters = aws.elasticache.ParameterGroup(
            f"{self._name}-params",
            aws.elasticache.ParameterGroupArgs(
                family=parameter_family(config.broker_engine, config.engine_version),
                description="Celery broker: never evict (an evicted key is a lost task)",
                parameters=[aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy", value="noeviction")],
            ),
            opts=self._child,
        )
        slow_log = self._slow_log_group(config, args)
        group = aws.elasticache.ReplicationGroup(
            f"{self._name}-cache",
            replication_group_args(
                config,
                auth_token=token.result,
                subnet_group_name=subnets.name,
                security_group_id=self.security_group_id,
                parameter_group_name=parameters.name,
                slow_log_group_name=slow_log.name,
            ),
            opts=self._child,
        )
        host = group.primary_endpoint_address
        self.endpoint = pulumi.Output.secret(pulumi.Output.format("{0}:{1}", host, REDIS_PORT))
        self.cache_cluster_ids = [group.id.apply(member_cluster_id(n)) for n in range(1, config.cache_nodes + 1)]
        return pulumi.Output.all(token.result, host).apply(lambda values: redis_url(values[0], values[1], REDIS_PORT))

    def _slow_log_group(self, config: StackConfig, args: BrokerArgs) -> aws.cloudwatch.LogGroup:
        return aws.cloudwatch.LogGroup(
            f"{self._name}-slow-log",
            aws.cloudwatch.LogGroupArgs(
                # Under /aws/vendedlogs/: ElastiCache delivers through CloudWatch Logs' vended-log path, and
                # CloudWatch Logs documents this prefix as the one that keeps its account-wide resource
                # policy (5,120 characters) from growing with each delivery
                # (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-and-resource-policy.html).
                name=f"/aws/vendedlogs/celery-cluster/{config.stack}/broker/slow-log",
                retention_in_days=config.log_retention_days,
                kms_key_id=args.log_group_kms_key_arn,
            ),
            opts=self._child,
        )

    def _create_rabbitmq(self, config: StackConfig, args: BrokerArgs) -> pulumi.Output[str]:
        user = MQ_USER
        password = random.RandomPassword(
            f"{self._name}-password",
            MQ_PASSWORD.args(),
            opts=self._child,
        )
        subnet_ids = pulumi.Output.from_input(args.subnet_ids).apply(
            lambda ids: list(ids) if config.broker_ha else list(ids)[:1]
        )
        broker = aws.mq.Broker(
            f"{self._name}-mq",
            aws.mq.BrokerArgs(
                engine_type="RabbitMQ",
                engine_version=config.engine_version,
                auto_minor_version_upgrade=True,
                host_instance_type=config.mq_instance_type,
                deployment_mode="CLUSTER_MULTI_AZ" if config.broker_ha else "SINGLE_INSTANCE",
                publicly_accessible=False,
                subnet_ids=subnet_ids,
                security_groups=[self.security_group_id],
                # RabbitMQ brokers encrypt at rest with an AWS owned key (customer keys are ActiveMQ-only).
                encryption_options=aws.mq.BrokerEncryptionOptionsArgs(use_aws_owned_key=True),
                users=[aws.mq.BrokerUserArgs(username=user, password=password.result)],
                apply_immediately=not config.broker_ha,
            ),
            opts=self._child,
        )
        self.mq_broker_name = broker.broker_name
        endpoint = broker.instances.apply(lambda instances: (instances[0].endpoints or [""])[0] if instances else "")
        self.endpoint = pulumi.Output.secret(endpoint.apply(lambda e: e.removeprefix("amqps://")))
        return pulumi.Output.all(password.result, endpoint).apply(lambda values: amqp_url(user, values[0], values[1]))
