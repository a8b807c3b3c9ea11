"""Monitoring: an encrypted alarm topic, the alarms on-call reads, and one dashboard per stack.

The topic's KMS key is the stack's key: it also encrypts the smoke results queue (`smoke_function`).

Every alarm here notifies the topic on ALARM and on OK. The alarms themselves are pure functions in
`pool_alarms`, `canary` and `broker_alarms`; the dashboard's body is in `dashboard`. Each pool's
canary alarms and its latency alarm are the AlarmSpecification of its canary refresh
(`refresh_alarm_names`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components import iam
from infra.components.alarm_args import AlarmArgs
from infra.components.broker_alarms import cache_alarms, mq_alarms
from infra.components.canary import canary_alarms, unknown_task_alarm
from infra.components.dashboard import dashboard_body, dashboard_name, dashboard_url
from infra.components.pool_alarms import MonitoredPool, latency_alarm_suffix, pool_alarms
from infra.config import StackConfig

TYPE = "celery-cluster:monitoring:Monitoring"

__all__ = ["MonitoredPool", "Monitoring", "MonitoringArgs", "dashboard_name", "dashboard_url"]


@dataclass(frozen=True)
class MonitoringArgs:
    config: StackConfig
    pools: Mapping[str, MonitoredPool]
    cache_cluster_ids: Sequence[pulumi.Input[str]]
    mq_broker_name: pulumi.Input[str] | None


class Monitoring(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    refresh_alarm_names: dict[str, list[pulumi.Output[str]]]
    """{pool: the alarms that fail (and roll back) its canary refresh}."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._config = args.config
        self._topic = self._create_topic(args.config)
        self.topic_arn = self._topic.arn
        alarms: list[tuple[str, AlarmArgs]] = []
        judges: dict[str, str] = {}  # alarm suffix -> the pool whose refresh it judges
        for pool_name, pool in sorted(args.pools.items()):
            alarms += pool_alarms(args.config.metric_namespace, pool_name, pool)
            canary = canary_alarms(args.config, pool_name, pool.code_version)
            alarms += [*canary, unknown_task_alarm(args.config, pool_name)]
            judges |= {suffix: pool_name for suffix, _ in canary} | {latency_alarm_suffix(pool_name): pool_name}
        if args.config.is_redis:
            for index, cluster_id in enumerate(args.cache_cluster_ids, start=1):
                alarms += cache_alarms(args.config, f"node{index}", cluster_id)
        elif args.mq_broker_name is not None:
            alarms += mq_alarms(args.config, args.mq_broker_name)
        self.refresh_alarm_names = {name: [] for name in args.pools}
        for suffix, alarm_args in alarms:
            created = self._alarm(suffix, alarm_args)
            if suffix in judges:
                self.refresh_alarm_names[judges[suffix]].append(created.name)
        self._create_dashboard(args)
        self.dashboard_url = pulumi.Output.from_input(dashboard_url(args.config.region, args.config.stack))
        self.register_outputs({"topicArn": self.topic_arn, "dashboardUrl": self.dashboard_url, "keyArn": self.key_arn})

    def _create_topic(self, config: StackConfig) -> aws.sns.Topic:
        identity = aws.get_caller_identity_output()
        partition = aws.get_partition_output()
        key = aws.kms.Key(
            f"{self._name}-key",
            aws.kms.KeyArgs(
                description=f"celery-cluster {config.stack}: alarm topic and smoke results encryption",
                enable_key_rotation=True,
                deletion_window_in_days=config.kms_deletion_window_days,
                policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                    lambda v: json.dumps(iam.alarm_key_policy(v[0], v[1]))
                ),
            ),
            opts=self._child,
        )
        aws.kms.Alias(
            f"{self._name}-key",
            aws.kms.AliasArgs(name=f"alias/celery-cluster-{config.stack}", target_key_id=key.key_id),
            opts=self._child,
        )
        self.key_arn = key.arn
        topic = aws.sns.Topic(
            f"{self._name}-alarms",
            aws.sns.TopicArgs(display_name=f"celery-cluster {config.stack} alarms", kms_master_key_id=key.arn),
            opts=self._child,
        )
        for index, address in enumerate(config.alarm_emails):
            aws.sns.TopicSubscription(
                f"{self._name}-email-{index}",
                aws.sns.TopicSubscriptionArgs(topic=topic.arn, protocol="email", endpoint=address),
                opts=self._child,
            )
        return topic

    def _alarm(self, suffix: str, args: AlarmArgs) -> aws.cloudwatch.MetricAlarm:
        """An alarm that notifies the topic when it fires and when it clears."""
        args.alarm_actions = [self._topic.arn]
        args.ok_actions = [self._topic.arn]
        return aws.cloudwatch.MetricAlarm(f"{self._name}-{suffix}", args, opts=self._child)

    def _create_dashboard(self, args: MonitoringArgs) -> None:
        config = args.config
        names = sorted(args.pools)
        inputs: list[pulumi.Input[str]] = [args.pools[n].asg_name for n in names]
        broker_ids: list[pulumi.Input[str]] = list(args.cache_cluster_ids) if config.is_redis else []
        if not config.is_redis and args.mq_broker_name is not None:
            broker_ids = [args.mq_broker_name]
        body = pulumi.Output.all(*inputs, *broker_ids).apply(
            lambda values: json.dumps(
                dashboard_body(
                    config,
                    {n: args.pools[n].config for n in names},
                    dict(zip(names, [str(v) for v in values[: len(names)]], strict=True)),
                    [str(v) for v in values[len(names) :]],
                )
            )
        )
        aws.cloudwatch.Dashboard(
            f"{self._name}-dashboard",
            aws.cloudwatch.DashboardArgs(dashboard_name=dashboard_name(config.stack), dashboard_body=body),
            opts=self._child,
        )
