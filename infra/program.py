"""The whole stack: config in, components built, outputs out. No module-level side effects.

`infra/__main__.py` calls `build` under the Pulumi engine; `infra.cli.offline_render` calls it under mocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi

from infra import outputs
from infra.artefacts.manifest import (
    ArtefactsError,
    BuildArtefacts,
    check_built_from,
    load_artefacts,
    placeholder_artefacts,
    source_digest,
)
from infra.components.broker import Broker, BrokerArgs
from infra.components.image import WorkerImage, WorkerImageArgs, base_image_id
from infra.components.metrics_publisher import MetricsPublisher, MetricsPublisherArgs, PublishedPool
from infra.components.monitoring import MonitoredPool, Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.producer_access import ProducerAccess, ProducerAccessArgs
from infra.components.scheduler import Scheduler, SchedulerArgs, lease_table_arn, scheduler_log_group
from infra.components.worker_pool import DRAIN_HOOK, WorkerPool, WorkerPoolArgs, log_group_name
from infra.config import ROOT, PoolConfig, StackConfig
from infra.config.periodic_capacity import check_tasks
from infra.vm.scheduler_data import SchedulerRuntime, render_scheduler_user_data
from infra.vm.user_data import PoolRuntime, render_user_data
from worker.runtime.settings import check_environment
from worker.scheduler.schedule import ENTRIES as SCHEDULE


class BundleMissingError(FileNotFoundError):
    """The publisher bundle or the wheelhouses were not built, or not from this source."""


def publisher_code(config: StackConfig, *, placeholder: bool = False) -> pulumi.Archive:
    """The publisher's zip as `make build` wrote it (`pulumi up`), or a placeholder for it (render).

    The render never reads build/dist, whose content depends on what was run in this checkout, not
    on the commit: the placeholder names the bundle and the digest of the source it is built from
    (`infra.artefacts.manifest.source_digest`, which `make build` records in manifest.json). So a
    render diff shows the Lambda code as changed exactly when that source changed, and `pulumi up`
    deploys a bundle whose manifest holds the digest the render showed (a stale one is refused).
    """
    if placeholder:
        return placeholder_publisher_code(config.publisher_bundle, source_digest())
    bundle = ROOT / config.publisher_bundle
    if not bundle.is_file():
        raise BundleMissingError(
            f"celery-cluster:publisherBundle: {bundle} does not exist; run `make build` to create it before `pulumi up`"
        )
    try:
        check_built_from(bundle)
    except ArtefactsError as exc:
        raise BundleMissingError(f"celery-cluster:publisherBundle: {exc}") from None
    return pulumi.FileArchive(str(bundle))


def placeholder_publisher_code(bundle: str, digest: str) -> pulumi.Archive:
    """What the render shows for the Lambda code: {bundle path: "built from source <digest>"}. Never deployed."""
    return pulumi.AssetArchive({bundle: pulumi.StringAsset(f"built from source {digest}")})


def own_ami_id(config: StackConfig, pool: PoolConfig) -> pulumi.Input[str]:
    """imageMode ami: the configured AMI id, or the SSM public parameter resolved at deploy time.

    A concrete id (not `resolve:ssm:` in the template) means a new AMI makes a new template
    version, which rolls the pool through an instance refresh on the next `pulumi up`.
    """
    if config.image_ami_id:
        return config.image_ami_id
    return base_image_id(config, pool.architecture)


def worker_artefacts(config: StackConfig, *, placeholder: bool = False) -> BuildArtefacts | None:
    """`make build`'s wheelhouses and image files (bake, boot); under render, placeholders."""
    if config.image_mode == "ami":
        return None
    if placeholder:
        return placeholder_artefacts()
    try:
        return load_artefacts()
    except ArtefactsError as exc:
        raise BundleMissingError(f"celery-cluster:imageMode {config.image_mode}: {exc}") from None


def code_version(artefacts: BuildArtefacts | None, image_id: pulumi.Input[str]) -> pulumi.Input[str]:
    """Which build a pool's instances run (WORKER_CODE_VERSION, the `Version` its canary alarms judge):
    the digest of the source `make build` built (bake, boot), or in imageMode ami the AMI itself, whose
    code the program cannot see. A new build is a new version; the same source is the same version."""
    if artefacts is not None:
        return f"src-{artefacts.source_digest[:12]}"
    return image_id


def pool_runtime(config: StackConfig, name: str, pool: PoolConfig, secret_arn: str, version: str = "") -> PoolRuntime:
    return PoolRuntime(
        stack=config.stack,
        pool=name,
        region=config.region,
        queues=pool.queues,
        concurrency=pool.concurrency,
        soft_shutdown_timeout=config.soft_shutdown_seconds,
        drain_window=config.drain_window_seconds,
        lifecycle_hook_name=DRAIN_HOOK,
        secret_id=secret_arn,
        log_group=log_group_name(config.stack, name),
        metrics_namespace=config.metric_namespace,
        spot=pool.spot.enabled,
        extra_env=config.worker_environment(name),
        longest_task=longest_task_seconds(config.worker_environment(name)),
        code_version=version,
    )


def longest_task_seconds(environment: Mapping[str, str]) -> int:
    """The longest a task may run on workers with this environment: CELERY_TASK_TIME_LIMIT, or a
    longer per-task time_limit in CELERY_TASK_ANNOTATIONS."""
    settings, _ = check_environment({**environment, "CELERY_BROKER_URL": "redis://placeholder"})
    limits = [a.time_limit for a in settings.task_annotations.values() if a.time_limit is not None]
    return math.ceil(max([settings.task_time_limit, *limits]))


def _user_data(config: StackConfig, name: str, pool: PoolConfig) -> Callable[[list[Any]], str]:
    def render(values: list[Any]) -> str:
        secret_arn, version, boot = values[0], values[1], (values[2] if len(values) > 2 else None)
        return render_user_data(config.image_mode, pool_runtime(config, name, pool, secret_arn, version), boot)

    return render


def scheduler_arch(config: StackConfig) -> set[Literal["x86_64", "arm64"]]:
    return {config.scheduler_architecture} if config.scheduler_enabled else set()


def build_scheduler(
    config: StackConfig,
    network: Network,
    broker: Broker,
    image: WorkerImage | None,
    alarm_topic_arn: pulumi.Output[str],
) -> Scheduler:
    """The periodic task scheduler (infra.components.scheduler): the pools' image, its own unit."""
    check_tasks(config.stack, SCHEDULE)
    arch = config.scheduler_architecture
    runtime_of = scheduler_runtime(config)
    inputs: list[pulumi.Input[Any]] = [broker.secret_arn]
    if image is not None and config.image_mode == "boot":
        inputs.append(image.boot_artefacts[arch])
    user_data = pulumi.Output.all(*inputs).apply(
        lambda v: render_scheduler_user_data(config.image_mode, runtime_of(v[0]), v[1] if len(v) > 1 else None)
    )
    return Scheduler(
        "scheduler",
        SchedulerArgs(
            config=config,
            entries=[e for e in SCHEDULE if e.runs_on(config.stack)],
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.worker_security_group_id,
            image_id=image.image_ids[arch] if image is not None else own_scheduler_ami_id(config),
            user_data=user_data,
            broker_secret_arn=broker.secret_arn,
            alarm_topic_arn=alarm_topic_arn,
            artefact_bucket_arn=image.bucket_arn if image is not None and config.image_mode == "boot" else None,
        ),
    )


def scheduler_runtime(config: StackConfig) -> Callable[[str], SchedulerRuntime]:
    def runtime(secret_arn: str) -> SchedulerRuntime:
        return SchedulerRuntime(
            stack=config.stack,
            region=config.region,
            secret_id=secret_arn,
            log_group=scheduler_log_group(config.stack),
            metrics_namespace=config.metric_namespace,
            lease_seconds=config.scheduler_lease_seconds,
            queues=tuple(sorted({q for pool in config.pools.values() for q in pool.queues})),
            lease_url=None if config.scheduler_table is None else f"dynamodb://{config.scheduler_table}",
            task_routes=config.task_routes,
        )

    return runtime


def own_scheduler_ami_id(config: StackConfig) -> pulumi.Input[str]:
    return config.image_ami_id or base_image_id(config, config.scheduler_architecture)


def build(
    config: StackConfig, code: pulumi.Archive, artefacts: BuildArtefacts | None = None
) -> dict[str, pulumi.Output[object]]:
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
    producers = ProducerAccess(
        "producers", ProducerAccessArgs(config=config, broker_url=broker.url, queue_type=broker.queue_type)
    )
    image = _build_image(config, network, artefacts)
    fleet = _build_pools(config, network, broker, image, artefacts)
    # Before the publisher: its smoke results queue is encrypted with the stack's key, which this creates.
    monitoring = _build_monitoring(config, broker, fleet)
    publisher = _build_publisher(config, code, network, broker, fleet, monitoring.key_arn)
    if config.scheduler_enabled:
        build_scheduler(config, network, broker, image, monitoring.topic_arn)
    pools = fleet.pools
    asg_names: Mapping[str, pulumi.Output[str]] = {name: p.asg_name for name, p in pools.items()}
    return {
        outputs.BROKER_ENDPOINT: pulumi.Output.secret(broker.endpoint),
        outputs.BROKER_SECRET_ARN: broker.secret_arn,
        outputs.BROKER_ENGINE: pulumi.Output.from_input(config.broker_engine),
        outputs.POOL_ASG_NAMES: pulumi.Output.from_input(asg_names),
        outputs.POOL_REFRESH: pulumi.Output.from_input(
            {name: p.refresh_plan(monitoring.refresh_alarm_names[name]) for name, p in pools.items()}
        ),
        outputs.DASHBOARD_URL: monitoring.dashboard_url,
        outputs.ALARM_TOPIC_ARN: monitoring.topic_arn,
        outputs.METRIC_NAMESPACE: pulumi.Output.from_input(config.metric_namespace),
        outputs.VPC_ID: network.vpc_id,
        outputs.PUBLISHER_FUNCTION_NAME: publisher.function_name,
        outputs.SMOKE_FUNCTION_NAME: publisher.smoke_function_name,
        outputs.SMOKE_RESULTS_QUEUE_URL: publisher.smoke_results_queue_url,
        outputs.WORKER_IMAGE_IDS: pulumi.Output.from_input(fleet.image_ids),
        outputs.PRODUCER_SECRET_ARN: producers.secret_arn,
        outputs.PRODUCER_POLICY_ARN: producers.policy_arn,
        outputs.BROKER_SECURITY_GROUP_ID: broker.security_group_id,
    }


def _build_image(config: StackConfig, network: Network, artefacts: BuildArtefacts | None) -> WorkerImage | None:
    """The image the pools boot from, when the stack bakes or installs the worker (not for imageMode ami)."""
    if config.image_mode == "ami":
        return None
    if artefacts is None:
        raise BundleMissingError(f"celery-cluster:imageMode {config.image_mode} needs `make build`'s artefacts")
    return WorkerImage(
        "image",
        WorkerImageArgs(
            config=config,
            artefacts=artefacts,
            architectures=sorted({pool.architecture for pool in config.pools.values()} | scheduler_arch(config)),
            subnet_id=network.private_subnet_ids.apply(lambda ids: ids[0]),
            security_group_id=network.worker_security_group_id,
        ),
    )


@dataclass(frozen=True)
class _Fleet:
    pools: dict[str, WorkerPool]
    image_ids: dict[str, pulumi.Input[str]]
    versions: dict[str, pulumi.Input[str]]
    """The code version each pool runs (what its canary alarms judge)."""


def _build_pools(
    config: StackConfig, network: Network, broker: Broker, image: WorkerImage | None, artefacts: BuildArtefacts | None
) -> _Fleet:
    fleet = _Fleet({}, {}, {})
    # One ARN for every pool (two data-source calls per stack, not per pool).
    fence_table_arn = lease_table_arn(config) if config.scheduler_table is not None else None
    for name, pool in sorted(config.pools.items()):
        for warning in pool_runtime(config, name, pool, "").warnings():
            pulumi.log.warn(warning)
        image_id = image.image_ids[pool.architecture] if image is not None else own_ami_id(config, pool)
        fleet.image_ids[name] = image_id
        fleet.versions[name] = code_version(artefacts if image is not None else None, image_id)
        inputs: list[pulumi.Input[Any]] = [broker.secret_arn, fleet.versions[name]]
        if image is not None and config.image_mode == "boot":
            inputs.append(image.boot_artefacts[pool.architecture])
        fleet.pools[name] = WorkerPool(
            f"pool-{name}",
            WorkerPoolArgs(
                name=name,
                pool=pool,
                config=config,
                subnet_ids=network.private_subnet_ids,
                security_group_id=network.worker_security_group_id,
                image_id=image_id,
                user_data=pulumi.Output.all(*inputs).apply(_user_data(config, name, pool)),
                broker_secret_arn=broker.secret_arn,
                artefact_bucket_arn=image.bucket_arn if image is not None and config.image_mode == "boot" else None,
                fence_table_arn=fence_table_arn,
            ),
        )
    return fleet


def _build_publisher(
    config: StackConfig,
    code: pulumi.Archive,
    network: Network,
    broker: Broker,
    fleet: _Fleet,
    key_arn: pulumi.Input[str],
) -> MetricsPublisher:
    """The metrics publisher and the smoke function (infra.components.metrics_publisher)."""
    return MetricsPublisher(
        "publisher",
        MetricsPublisherArgs(
            config=config,
            code=code,
            subnet_ids=network.private_subnet_ids,
            security_group_id=network.publisher_security_group_id,
            broker_secret_arn=broker.publisher_secret_arn,
            pools={
                name: PublishedPool(config.pools[name].queues, p.asg_name, p.scaling.signal)
                for name, p in fleet.pools.items()
            },
            key_arn=key_arn,
            queue_type=broker.queue_type,
        ),
    )


def _build_monitoring(config: StackConfig, broker: Broker, fleet: _Fleet) -> Monitoring:
    return Monitoring(
        "monitoring",
        MonitoringArgs(
            config=config,
            pools={
                name: MonitoredPool(
                    config=config.pools[name],
                    asg_name=p.asg_name,
                    target_backlog_per_instance=p.scaling.target_tracking.target_value,
                    code_version=fleet.versions[name],
                )
                for name, p in fleet.pools.items()
            },
            cache_cluster_ids=broker.cache_cluster_ids,
            mq_broker_name=broker.mq_broker_name,
        ),
    )
