"""The rest of the stack as rendered: network, broker, publisher, monitoring, outputs, and dev vs prod."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from infra import outputs
from infra.artefacts.manifest import source_digest
from infra.cli.offline_render import SECRET, render_stack
from infra.components.broker import redis_url
from infra.components.metrics_publisher import HANDLER
from infra.config import load_stack_config
from infra.program import BundleMissingError, publisher_code
from tests.support.rendered import Rendered
from worker.publisher.handler import load_config

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
RG = "aws:elasticache/replicationGroup:ReplicationGroup"


def test_render_document_shape(stack: Rendered) -> None:
    document = stack.document
    assert set(document) == {"stack", "resources", "outputs"}
    assert document["stack"] == stack.config.stack
    names = {r["name"] for r in document["resources"]}
    for resource in document["resources"]:
        assert set(resource) == {"type", "name", "parent", "inputs"}
        assert resource["parent"] is None or resource["parent"] in names
        if resource["type"].startswith("aws:"):
            # Inputs as the engine receives them: camelCase property names, never Python's snake_case.
            assert not [key for key in resource["inputs"] if "_" in key], resource["name"]


def test_two_renders_are_the_same_file() -> None:
    # The engine's registration order varies between runs; the written render must not.
    first, second = (json.dumps(render_stack("dev").as_json()) for _ in range(2))
    assert first == second


def test_outputs_are_the_named_constants(stack: Rendered) -> None:
    rendered = stack.document["outputs"]
    assert set(rendered) == set(outputs.ALL)
    assert rendered[outputs.BROKER_ENDPOINT] == SECRET
    assert set(rendered[outputs.POOL_ASG_NAMES]) == set(stack.config.pools)
    assert rendered[outputs.DASHBOARD_URL].endswith(f"#dashboards:name=celery-cluster-{stack.config.stack}")
    assert rendered[outputs.ALARM_TOPIC_ARN].startswith("arn:aws:sns:")
    assert rendered[outputs.METRIC_NAMESPACE] == f"CeleryCluster/{stack.config.stack}"


def test_network_private_subnets_per_az(stack: Rendered) -> None:
    config = stack.config
    subnets = stack.named("aws:ec2/subnet:Subnet")
    private = {n: s for n, s in subnets.items() if "-private-" in n}
    assert sorted(s["availabilityZone"] for s in private.values()) == sorted(config.availability_zones)
    nats = stack.inputs("aws:ec2/natGateway:NatGateway")
    expected = {"nat-single": 1, "nat-per-az": len(config.availability_zones), "endpoints": 0}[config.egress]
    assert len(nats) == expected
    endpoints = [e["serviceName"] for e in stack.inputs("aws:ec2/vpcEndpoint:VpcEndpoint")]
    assert f"com.amazonaws.{config.region}.s3" in endpoints


def test_redis_broker_never_evicts_and_logs_slow_queries(stack: Rendered) -> None:
    if not stack.config.is_redis:
        (broker,) = stack.inputs("aws:mq/broker:Broker")
        assert broker["engineType"] == "RabbitMQ"
        assert broker["autoMinorVersionUpgrade"] is True
        assert broker["deploymentMode"] == ("CLUSTER_MULTI_AZ" if stack.config.broker_ha else "SINGLE_INSTANCE")
        return
    (params,) = stack.inputs("aws:elasticache/parameterGroup:ParameterGroup")
    assert {"name": "maxmemory-policy", "value": "noeviction"} in params["parameters"]
    assert params["family"] == "valkey8"
    (group,) = stack.inputs(RG)
    (delivery,) = group["logDeliveryConfigurations"]
    assert (delivery["logType"], delivery["destinationType"]) == ("slow-log", "cloudwatch-logs")
    assert group["subnetGroupName"] == "broker-subnets"
    assert group["parameterGroupName"] == "broker-params"


def test_publisher_runs_every_minute_in_the_vpc(stack: Rendered) -> None:
    function = stack.one("aws:lambda/function:Function", "publisher-fn")
    assert function["handler"] == HANDLER
    assert function["vpcConfig"]["securityGroupIds"] == ["network-publisher-id"]
    assert function["reservedConcurrentExecutions"] == 1
    (rule,) = stack.inputs("aws:cloudwatch/eventRule:EventRule")
    assert rule["scheduleExpression"] == "rate(1 minute)"
    invoke = stack.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", "publisher-invoke")
    assert invoke["functionName"] == function["name"]
    assert invoke["maximumRetryAttempts"] == 0


class _Secrets:
    """Stands in for the Secrets Manager client: returns the document the broker component stores."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.asked: list[str] = []

    def get_secret_value(self, SecretId: str) -> dict[str, str]:
        self.asked.append(SecretId)
        return {"SecretString": self.document}


def test_publisher_reads_the_environment_the_stack_gives_it(stack: Rendered) -> None:
    function = stack.one("aws:lambda/function:Function", "publisher-fn")
    environment = function["environment"]["variables"]
    url = redis_url("token", "primary.example", 6379)
    secrets = _Secrets(url)  # the publisher's secret holds the bare URL
    config = load_config(environment, secrets=secrets)
    assert secrets.asked == ["arn:aws:secretsmanager:us-east-1:123456789012:secretsmanager/broker-publisher-url"]
    assert config.broker_url == url
    assert config.namespace == stack.config.metric_namespace
    assert config.samples * config.interval_seconds == 60
    assert {p.name: p.queues for p in config.pools} == {n: p.queues for n, p in stack.config.pools.items()}
    assert {p.name: p.asg for p in config.pools} == stack.document["outputs"][outputs.POOL_ASG_NAMES]


def test_every_alarm_has_an_action(stack: Rendered) -> None:
    alarms = stack.named(ALARM)
    assert alarms
    for name, alarm in alarms.items():
        assert alarm.get("alarmActions"), name


def test_pool_and_broker_alarms(stack: Rendered) -> None:
    alarms = stack.named(ALARM)
    for pool in stack.config.pools:
        for kind in ("latency-slo", "backlog-at-max", "backlog-no-instances", "publisher-stale"):
            assert f"monitoring-{pool}-{kind}" in alarms
        assert alarms[f"monitoring-{pool}-publisher-stale"]["treatMissingData"] == "breaching"
    broker = [n for n in alarms if n.startswith("monitoring-broker-")]
    if stack.config.is_redis:
        assert len(broker) == 5 * stack.config.cache_nodes
        evictions = [alarms[n] for n in broker if n.endswith("-evictions")]
        assert all(a["threshold"] == 0 and a["metricName"] == "Evictions" for a in evictions)
    else:
        assert sorted(broker) == ["monitoring-broker-connections", "monitoring-broker-cpu", "monitoring-broker-memory"]


def test_dashboard_covers_queues_latency_instances_broker(stack: Rendered) -> None:
    (dashboard,) = stack.inputs("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(dashboard["dashboardBody"])
    titles = " | ".join(w["properties"]["title"] for w in body["widgets"])
    for pool in stack.config.pools:
        assert f"{pool}: queues" in titles
        assert f"{pool}: oldest message age" in titles
        assert f"{pool}: instances in service" in titles
    assert "broker" in titles


def test_prod_differs_from_dev_where_it_should(dev: Rendered, prod: Rendered) -> None:
    (dev_group,), (prod_group,) = dev.inputs(RG), prod.inputs(RG)
    assert (dev_group["multiAzEnabled"], dev_group["automaticFailoverEnabled"]) == (False, False)
    assert (prod_group["multiAzEnabled"], prod_group["automaticFailoverEnabled"]) == (True, True)
    assert prod_group["numCacheClusters"] >= 2 > dev_group["numCacheClusters"]
    assert len(prod.inputs("aws:ec2/natGateway:NatGateway")) == 3 > len(dev.inputs("aws:ec2/natGateway:NatGateway"))
    assert len({s["availabilityZone"] for s in prod.inputs("aws:ec2/subnet:Subnet")}) == 3
    assert dev.one("aws:autoscaling/group:Group", "pool-default-asg")["minSize"] == 0
    prod_mixed = prod.one("aws:autoscaling/group:Group", "pool-default-asg")["mixedInstancesPolicy"]
    assert prod_mixed["instancesDistribution"]["onDemandBaseCapacity"] >= 1  # Spot above an on-demand base
    assert prod.inputs("aws:sns/topicSubscription:TopicSubscription")
    assert prod.config.log_retention_days > dev.config.log_retention_days


def test_publisher_code_is_the_built_bundle_and_the_render_never_reads_it(tmp_path: Path) -> None:
    config = load_stack_config("dev").model_copy(update={"publisher_bundle": str(tmp_path / "publisher.zip")})
    with pytest.raises(BundleMissingError, match=r"celery-cluster:publisherBundle: .* run `make build`"):
        publisher_code(config)
    without_bundle = publisher_code(config, placeholder=True)
    (tmp_path / "publisher.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    built = publisher_code(config)
    assert isinstance(built, pulumi.FileArchive)
    assert built.path == str(tmp_path / "publisher.zip")
    # The render's placeholder names the bundle and the source digest, bundle or not.
    with_bundle = publisher_code(config, placeholder=True)
    for placeholder in (without_bundle, with_bundle):
        assert isinstance(placeholder, pulumi.AssetArchive)
        (asset,) = placeholder.assets.values()
        assert isinstance(asset, pulumi.StringAsset)
        assert list(placeholder.assets) == [str(tmp_path / "publisher.zip")]
        assert asset.text == f"built from source {source_digest()}"
