"""The whole stack: config in, components built, outputs out. No module-level side effects.

`infra/__main__.py` calls `build` under the Pulumi engine; `infra.render` calls it under mocks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pulumi
import pulumi_aws as aws

from infra import outputs
from infra.components.broker import Broker, BrokerArgs
from infra.components.metrics_publisher import MetricsPublisher, MetricsPublisherArgs
from infra.components.monitoring import MonitoredPool, Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.worker_pool import WorkerPool, WorkerPoolArgs
from infra.config import ROOT, ConfigError, PoolConfig, StackConfig
from infra.userdata import pool_environment, render_user_data


class BundleMissingError(FileNotFoundError):
    """The publisher bundle was not built."""


def publisher_code(config: StackConfig, *, allow_placeholder: bool = False) -> pulumi.Archive:
    """The publisher's zip (`make build`); with allow_placeholder, the worker/ tree stands in (render)."""
    bundle = ROOT / config.publisher_bundle
    if bundle.is_file():
        return pulumi.FileArchive(str(bundle))
    if allow_placeholder:
        return pulumi.AssetArchive({"worker": pulumi.FileArchive(str(ROOT / "worker"))})
    raise BundleMissingError(
        f"celery-cluster:publisherBundle: {bundle} does not exist; run `make build` to create it before `pulumi up`"
    )


def image_id(config: StackConfig, pool: PoolConfig) -> pulumi.Input[str]:
    """The pool's AMI: the configured id, or the SSM public parameter resolved at deploy time.

    A concrete id (not `resolve:ssm:` in the template) means a new base AMI makes a new template
    version, which rolls the pool through an instance refresh on the next `pulumi up`.
    """
    if config.image_mode != "ami":
        # bake (EC2 Image Builder) and boot arrive with infra/components/image.py; until then a
        # worker booted from the bare base AMI would have no `worker` package, so refuse.
        raise ConfigError(
            f"celery-cluster:imageMode: {config.image_mode!r} needs the image component, "
            "which this version does not have yet; use ami"
        )
    if config.image_ami_id:
        return config.image_ami_id
    parameter = config.image_ssm_parameter.replace("{arch}", pool.architecture)
    return aws.ssm.get_parameter_output(name=parameter).value


def _user_data(config: StackConfig, name: str, pool: PoolConfig) -> Callable[[str], str]:
    def render(secret_arn: str) -> str:
        return render_user_data(
            pool_environment(
                pool=name,
                queues=pool.queues,
                concurrency=pool.concurrency,
                soft_shutdown_seconds=config.soft_shutdown_seconds,
                broker_secret_arn=secret_arn,
                region=config.region,
                stack=config.stack,
            ),
            stop_timeout_seconds=config.drain_window_seconds,
        )

    return render


def build(config: StackConfig, code: pulumi.Archive) -> dict[str, pulumi.Output[object]]:
    """Create every resource of the stack; return the stack outputs by name (see `infra.outputs`)."""
    network = Network("network", NetworkArgs(config=config))
    broker = Broker(
        "broker",
        BrokerArgs(
            config=config,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            worker_security_group_id=network.worker_security_group_id,
            publisher_security_group_id=network.publisher_security_group_id,
        ),
    )
    pools: dict[str, WorkerPool] = {}
    for name, pool in sorted(config.pools.items()):
        user_data = broker.secret_arn.apply(_user_data(config, name, pool))
        pools[name] = WorkerPool(
            f"pool-{name}",
            WorkerPoolArgs(
                pool=pool,
                config=config,
                subnet_ids=network.private_subnet_ids,
                security_group_id=network.worker_security_group_id,
                image_id=image_id(config, pool),
                user_data=user_data,
                broker_secret_arn=broker.secret_arn,
            ),
        )
    publisher = MetricsPublisher(
        "publisher",
        MetricsPublisherArgs(
            config=config,
            code=code,
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.publisher_security_group_id,
            broker_secret_arn=broker.secret_arn,
            pools={name: (config.pools[name].queues, p.asg_name) for name, p in pools.items()},
        ),
    )
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            config=config,
            pools={
                name: MonitoredPool(
                    config=config.pools[name],
                    asg_name=p.asg_name,
                    target_backlog_per_instance=p.scaling.target_tracking.target_value,
                )
                for name, p in pools.items()
            },
            cache_cluster_ids=broker.cache_cluster_ids,
            mq_broker_name=broker.mq_broker_name,
        ),
    )
    asg_names: Mapping[str, pulumi.Output[str]] = {name: p.asg_name for name, p in pools.items()}
    return {
        outputs.BROKER_ENDPOINT: pulumi.Output.secret(broker.endpoint),
        outputs.BROKER_SECRET_ARN: broker.secret_arn,
        outputs.BROKER_ENGINE: pulumi.Output.from_input(config.broker_engine),
        outputs.POOL_ASG_NAMES: pulumi.Output.from_input(asg_names),
        outputs.DASHBOARD_URL: monitoring.dashboard_url,
        outputs.ALARM_TOPIC_ARN: monitoring.topic_arn,
        outputs.METRIC_NAMESPACE: pulumi.Output.from_input(config.metric_namespace),
        outputs.VPC_ID: network.vpc_id,
        outputs.PUBLISHER_FUNCTION_NAME: publisher.function_name,
    }
