"""Monitoring: an encrypted alarm topic, the alarms on-call reads, and one dashboard per stack.

Every alarm here notifies the topic on ALARM and on OK. Pools get four alarms (latency over the
SLO, backlog while at max capacity, backlog with no instance in service, publisher stale); the
broker gets CPU, memory, evictions (ElastiCache) and connections alarms.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components import iam
from infra.components.metrics import (
    ASG_DIMENSION,
    ASG_IN_SERVICE,
    ASG_NAMESPACE,
    DIMENSION_POOL,
    DIMENSION_QUEUE,
)
from infra.config import PoolConfig, StackConfig
from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_WAITING,
)

TYPE = "celery-cluster:monitoring:Monitoring"
MINUTE = 60

_Args = aws.cloudwatch.MetricAlarmArgs
_Query = aws.cloudwatch.MetricAlarmMetricQueryArgs
_Metric = aws.cloudwatch.MetricAlarmMetricQueryMetricArgs


@dataclass(frozen=True)
class MonitoredPool:
    config: PoolConfig
    asg_name: pulumi.Input[str]
    target_backlog_per_instance: float


@dataclass(frozen=True)
class MonitoringArgs:
    config: StackConfig
    pools: Mapping[str, MonitoredPool]
    cache_cluster_ids: Sequence[pulumi.Input[str]]
    mq_broker_name: pulumi.Input[str] | None


def dashboard_name(stack: str) -> str:
    return f"celery-cluster-{stack}"


def dashboard_url(region: str, stack: str) -> str:
    return f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards:name={dashboard_name(stack)}"


class Monitoring(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._config = args.config
        self._topic = self._create_topic(args.config)
        self.topic_arn = self._topic.arn
        for pool_name, pool in sorted(args.pools.items()):
            self._pool_alarms(pool_name, pool)
        if args.config.is_redis:
            for index, cluster_id in enumerate(args.cache_cluster_ids, start=1):
                self._cache_alarms(f"node{index}", cluster_id)
        elif args.mq_broker_name is not None:
            self._mq_alarms(args.mq_broker_name)
        self._create_dashboard(args)
        self.dashboard_url = pulumi.Output.from_input(dashboard_url(args.config.region, args.config.stack))
        self.register_outputs({"topicArn": self.topic_arn, "dashboardUrl": self.dashboard_url, "keyArn": self.key_arn})

    def _create_topic(self, config: StackConfig) -> aws.sns.Topic:
        identity = aws.get_caller_identity_output()
        partition = aws.get_partition_output()
        key = aws.kms.Key(
            f"{self._name}-key",
            aws.kms.KeyArgs(
                description=f"celery-cluster {config.stack}: alarm topic encryption",
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

    def _alarm(self, suffix: str, args: _Args) -> aws.cloudwatch.MetricAlarm:
        """An alarm that notifies the topic when it fires and when it clears."""
        args.alarm_actions = [self._topic.arn]
        args.ok_actions = [self._topic.arn]
        return aws.cloudwatch.MetricAlarm(f"{self._name}-{suffix}", args, opts=self._child)

    def _pool_metric(self, metric_id: str, metric_name: str, pool: str, stat: str) -> _Query:
        return _Query(
            id=metric_id,
            return_data=False,
            metric=_Metric(
                namespace=self._config.metric_namespace,
                metric_name=metric_name,
                dimensions={DIMENSION_POOL: pool},
                stat=stat,
                period=MINUTE,
            ),
        )

    def _in_service(self, asg_name: pulumi.Input[str]) -> _Query:
        return _Query(
            id="ins",
            return_data=False,
            metric=_Metric(
                namespace=ASG_NAMESPACE,
                metric_name=ASG_IN_SERVICE,
                dimensions={ASG_DIMENSION: asg_name},
                stat="Average",
                period=MINUTE,
            ),
        )

    def _pool_alarms(self, name: str, pool: MonitoredPool) -> None:
        slo = pool.config.latency_slo_seconds
        self._alarm(
            f"{name}-latency-slo",
            _Args(
                alarm_description=f"Pool {name}: oldest waiting task older than the {slo:g} s SLO for 5 minutes "
                "(scaling is not keeping up)",
                namespace=self._config.metric_namespace,
                metric_name=METRIC_OLDEST_AGE,
                dimensions={DIMENSION_POOL: name},
                statistic="Maximum",
                period=MINUTE,
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=slo,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                treat_missing_data="notBreaching",
            ),
        )
        target = pool.target_backlog_per_instance
        self._alarm(
            f"{name}-backlog-at-max",
            _Args(
                alarm_description=f"Pool {name}: at max size ({pool.config.max_size}) with backlog per instance "
                f"over target ({target:g}) "
                "for 10 minutes; raise maxSize or look for slow tasks",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=10,
                datapoints_to_alarm=10,
                treat_missing_data="notBreaching",
                metric_queries=[
                    self._in_service(pool.asg_name),
                    self._pool_metric("bpi", METRIC_BACKLOG_PER_INSTANCE, name, "Average"),
                    _Query(
                        id="at_max",
                        return_data=True,
                        label="At max with backlog",
                        expression=f"IF(ins >= {pool.config.max_size} AND bpi > {target:g}, 1, 0)",
                    ),
                ],
            ),
        )
        self._alarm(
            f"{name}-backlog-no-instances",
            _Args(
                alarm_description=f"Pool {name}: tasks waiting and no instance in service for 10 minutes "
                "(cannot launch? capacity? AMI?)",
                comparison_operator="GreaterThanOrEqualToThreshold",
                threshold=1,
                evaluation_periods=10,
                datapoints_to_alarm=10,
                treat_missing_data="notBreaching",
                metric_queries=[
                    self._in_service(pool.asg_name),
                    self._pool_metric("backlog", METRIC_BACKLOG, name, "Maximum"),
                    _Query(
                        id="stuck",
                        return_data=True,
                        label="Backlog with none in service",
                        expression="IF(backlog > 0 AND FILL(ins, 0) == 0, 1, 0)",
                    ),
                ],
            ),
        )
        self._alarm(
            f"{name}-publisher-stale",
            _Args(
                alarm_description=f"Pool {name}: no publisher heartbeat for 3 minutes; "
                "the metrics publisher is down, so scaling is blind",
                namespace=self._config.metric_namespace,
                metric_name=METRIC_PUBLISHER_HEARTBEAT,
                dimensions={DIMENSION_POOL: name},
                statistic="SampleCount",
                period=MINUTE,
                comparison_operator="LessThanThreshold",
                threshold=1,
                evaluation_periods=3,
                datapoints_to_alarm=3,
                # Missing data is exactly the failure this alarm exists for.
                treat_missing_data="breaching",
            ),
        )

    def _cache_alarms(self, node: str, cluster_id: pulumi.Input[str]) -> None:
        config = self._config
        checks = (
            ("cpu", "CPUUtilization", "Average", config.broker_cpu_alarm_percent, "host CPU"),
            (
                "engine-cpu",
                "EngineCPUUtilization",
                "Average",
                config.broker_cpu_alarm_percent,
                "engine (main thread) CPU",
            ),
            ("memory", "DatabaseMemoryUsagePercentage", "Maximum", config.broker_memory_alarm_percent, "memory use"),
            ("connections", "CurrConnections", "Maximum", config.broker_connections_alarm, "client connections"),
        )
        for suffix, metric, stat, threshold, what in checks:
            self._sustained_alarm(
                f"broker-{node}-{suffix}",
                f"Broker {node}: {what}",
                "AWS/ElastiCache",
                metric,
                {"CacheClusterId": cluster_id},
                stat,
                threshold,
            )
        self._alarm(
            f"broker-{node}-evictions",
            _Args(
                alarm_description=f"Broker {node}: keys evicted; with noeviction this should never happen, "
                "and an evicted key is a lost task",
                namespace="AWS/ElastiCache",
                metric_name="Evictions",
                dimensions={"CacheClusterId": cluster_id},
                statistic="Sum",
                period=MINUTE,
                comparison_operator="GreaterThanThreshold",
                threshold=0,
                evaluation_periods=1,
                treat_missing_data="notBreaching",
            ),
        )

    def _sustained_alarm(
        self,
        name: str,
        what: str,
        namespace: str,
        metric: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        stat: str,
        threshold: float,
    ) -> None:
        """A broker metric over its threshold for five consecutive minutes."""
        self._alarm(
            name,
            _Args(
                alarm_description=f"{what} over {threshold} for 5 minutes",
                namespace=namespace,
                metric_name=metric,
                dimensions=dimensions,
                statistic=stat,
                period=MINUTE,
                comparison_operator="GreaterThanThreshold",
                threshold=threshold,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                treat_missing_data="missing",
            ),
        )

    def _mq_alarms(self, broker_name: pulumi.Input[str]) -> None:
        config = self._config

        def metric(metric_id: str, name: str, stat: str) -> _Query:
            return _Query(
                id=metric_id,
                return_data=False,
                metric=_Metric(
                    namespace="AWS/AmazonMQ",
                    metric_name=name,
                    dimensions={"Broker": broker_name},
                    stat=stat,
                    period=MINUTE,
                ),
            )

        for suffix, name, stat, threshold, what in (
            ("cpu", "SystemCpuUtilization", "Average", config.broker_cpu_alarm_percent, "CPU"),
            ("connections", "ConnectionCount", "Maximum", config.broker_connections_alarm, "client connections"),
        ):
            self._sustained_alarm(
                f"broker-{suffix}", f"Broker: {what}", "AWS/AmazonMQ", name, {"Broker": broker_name}, stat, threshold
            )
        # RabbitMQ blocks publishers at its memory high watermark instead of evicting: alarm before it.
        self._alarm(
            "broker-memory",
            _Args(
                alarm_description=f"Broker: memory over {config.broker_memory_alarm_percent}% of the RabbitMQ limit "
                "(publishers block at 100%)",
                comparison_operator="GreaterThanThreshold",
                threshold=config.broker_memory_alarm_percent,
                evaluation_periods=5,
                datapoints_to_alarm=5,
                treat_missing_data="missing",
                metric_queries=[
                    metric("used", "RabbitMQMemUsed", "Maximum"),
                    metric("limit", "RabbitMQMemLimit", "Maximum"),
                    _Query(id="pct", return_data=True, label="Memory % of limit", expression="100 * used / limit"),
                ],
            ),
        )

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


def dashboard_body(
    config: StackConfig, pools: Mapping[str, PoolConfig], asg_names: Mapping[str, str], broker_ids: Sequence[str]
) -> dict[str, Any]:
    """The dashboard: per pool queues, latency, in-service instances; then broker health."""
    namespace, region = config.metric_namespace, config.region
    widgets: list[dict[str, Any]] = []

    def widget(title: str, metrics: list[list[Any]], y: int, x: int, stat: str = "Average", period: int = 10) -> None:
        widgets.append(
            {
                "type": "metric",
                "x": x,
                "y": y,
                "width": 8,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "stat": stat,
                    "period": period,
                    "view": "timeSeries",
                    "metrics": metrics,
                },
            }
        )

    for row, (name, pool) in enumerate(sorted(pools.items())):
        y = row * 6
        queue_metrics: list[list[Any]] = []
        for queue in pool.queues:
            queue_metrics.append([namespace, METRIC_WAITING, DIMENSION_POOL, name, DIMENSION_QUEUE, queue])
            queue_metrics.append([namespace, METRIC_IN_FLIGHT, DIMENSION_POOL, name, DIMENSION_QUEUE, queue])
        widget(f"{name}: queues (waiting, in flight)", queue_metrics, y, 0)
        latency = [[namespace, METRIC_OLDEST_AGE, DIMENSION_POOL, name, DIMENSION_QUEUE, q] for q in pool.queues]
        widget(f"{name}: oldest message age (s), SLO {pool.latency_slo_seconds:g}", latency, y, 8, stat="Maximum")
        widget(
            f"{name}: instances in service, backlog per instance",
            [
                [ASG_NAMESPACE, ASG_IN_SERVICE, ASG_DIMENSION, asg_names[name]],
                [namespace, METRIC_BACKLOG_PER_INSTANCE, DIMENSION_POOL, name, {"yAxis": "right"}],
            ],
            y,
            16,
            period=60,
        )
    y = len(pools) * 6
    if config.is_redis:
        for column, (metric, title) in enumerate(
            (
                ("EngineCPUUtilization", "engine CPU %"),
                ("DatabaseMemoryUsagePercentage", "memory %"),
                ("CurrConnections", "connections"),
            )
        ):
            widget(
                f"broker {title}",
                [["AWS/ElastiCache", metric, "CacheClusterId", cid] for cid in broker_ids],
                y,
                column * 8,
                period=60,
            )
    else:
        for column, (metric, title) in enumerate(
            (("SystemCpuUtilization", "CPU %"), ("RabbitMQMemUsed", "memory used"), ("ConnectionCount", "connections"))
        ):
            widget(
                f"broker {title}", [["AWS/AmazonMQ", metric, "Broker", b] for b in broker_ids], y, column * 8, period=60
            )
    return {"widgets": widgets}
