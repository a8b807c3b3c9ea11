"""A pool's boot settings and build artefacts as the Pulumi program hands them to the user data: one sample
shared by the user-data tests and the tests that boot an image's files."""

from __future__ import annotations

from infra.vm.user_data import BootArtefacts, PoolRuntime

BUCKET = "celery-cluster-dev-artefacts-0a1b2c"
POOL = PoolRuntime(
    stack="dev",
    pool="default",
    region="eu-west-1",
    queues=("default", "reports"),
    concurrency=4,
    soft_shutdown_timeout=90,
    drain_window=120,
    lifecycle_hook_name="celery-cluster-dev-default-drain",
    secret_id="arn:aws:secretsmanager:eu-west-1:123456789012:secret:celery-cluster/dev/broker-AbCdEf",
    log_group="/celery-cluster/dev/workers",
    metrics_namespace="CeleryCluster/dev/Instances",
)
ARTEFACTS = BootArtefacts(
    bucket=BUCKET,
    wheelhouse_key="builds/1f2e3d/wheelhouse-arm64.tar.gz",
    wheelhouse_sha256="a" * 64,
    image_files_key="builds/1f2e3d/image-files.tar.gz",
    image_files_sha256="b" * 64,
)
