"""User data for a pool's launch template, per image mode.

- `bake` and `ami`: the image already holds the worker; user data writes the pool's environment
  file, the stop timeout and the CloudWatch agent config, then starts the units.
- `boot`: a stock Amazon Linux 2023 image; user data also fetches the wheelhouse and the image
  files from the stack's own S3 bucket, checks their sha256 and installs them (no package index).

Secrets never appear here: the worker unit fetches them from Secrets Manager at every start.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template
from typing import Final, Literal

from infra.vm import files
from worker.instance.fetchenv import quote

ImageMode = Literal["bake", "boot", "ami"]
IMAGE_MODES: Final[tuple[ImageMode, ...]] = ("bake", "boot", "ami")

# EC2 refuses user data over 16 KB.
USER_DATA_LIMIT: Final = 16 * 1024
# Celery's soft shutdown sleeps its whole timeout, then needs a moment to requeue and exit.
STOP_MARGIN_S: Final = 15
SPOT_NOTICE_S: Final = 120
SPOT_MARGIN_S: Final = 10


class UserDataError(ValueError):
    """A pool's settings cannot make working user data; the message names the pool and setting."""


@dataclass(frozen=True)
class PoolRuntime:
    """What an instance of one pool needs to know at boot."""

    stack: str
    pool: str
    region: str
    queues: tuple[str, ...]
    concurrency: int
    soft_shutdown_timeout: int  # the stack's soft shutdown: the drain window less its margin
    drain_window: int  # the lifecycle hook's heartbeat timeout
    lifecycle_hook_name: str
    secret_id: str
    log_group: str
    metrics_namespace: str
    spot: bool = False
    asg_name: str | None = None  # else the drain agent reads the aws:autoscaling:groupName tag
    ssm_path: str | None = None  # SSM parameters under this path join the worker's environment
    extra_env: Mapping[str, str] = field(default_factory=dict)
    longest_task: int | None = None
    """The longest a task of this pool may run (its time limit); None: the drain window alone decides."""
    code_version: str = ""
    """WORKER_CODE_VERSION: the build these instances run, the `Version` its canary alarms judge."""

    @property
    def drain_soft_seconds(self) -> int:
        """CELERY_SOFT_SHUTDOWN_TIMEOUT: running tasks get this long to end. Never shorter than the longest
        task may run, so a scale-in never cuts a task off: the drain agent heartbeats the hook for as long
        (docs/image.md), and the worker leaves as soon as its tasks end (worker.runtime.shutdown)."""
        return max(self.soft_shutdown_timeout, self.longest_task or 0)

    @property
    def drain_timeout(self) -> int:
        """DRAIN_TIMEOUT and the unit's TimeoutStopSec: the soft window plus the stop margin."""
        return max(self.drain_window, self.drain_soft_seconds + STOP_MARGIN_S)

    def warnings(self) -> list[str]:
        """Settings that work but lose something; the program shows them at `pulumi up`."""
        found = []
        if self.spot and self.soft_shutdown_timeout + STOP_MARGIN_S > SPOT_NOTICE_S - SPOT_MARGIN_S:
            found.append(
                f"pool {self.pool!r}: soft shutdown timeout {self.soft_shutdown_timeout} s does not fit a Spot notice "
                f"(at most {SPOT_NOTICE_S - SPOT_MARGIN_S - STOP_MARGIN_S} s): tasks still running when a Spot "
                "instance is reclaimed are not drained: the drain agent requeues them just before the interruption "
                "(Celery's cold shutdown, worker.drain.agent) and they run again from the start"
            )
        return found

    def check(self) -> None:
        name = f"pool {self.pool!r}"
        if not self.queues:
            raise UserDataError(f"{name}: queues is empty")
        if self.concurrency < 1:
            raise UserDataError(f"{name}: concurrency must be at least 1")
        if self.drain_window < self.soft_shutdown_timeout + STOP_MARGIN_S:
            raise UserDataError(
                f"{name}: drain window {self.drain_window} s must exceed the soft shutdown timeout "
                f"({self.soft_shutdown_timeout} s) by {STOP_MARGIN_S} s, or the worker is killed mid-drain"
            )
        if self.drain_timeout > max_wait(self.drain_window):
            raise UserDataError(
                f"{name}: its tasks may run {self.drain_soft_seconds} s, but a lifecycle hook with a "
                f"{self.drain_window} s heartbeat timeout holds an instance at most {max_wait(self.drain_window)} s: "
                "raise drainWindowSeconds or lower the task time limit"
            )


def max_wait(heartbeat_timeout: int) -> int:
    """Longest an instance stays in a lifecycle wait state, heartbeats included: "48 hours or 100 times
    the heartbeat timeout, whichever is smaller"
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks-overview.html)."""
    return min(48 * 3600, 100 * heartbeat_timeout)


@dataclass(frozen=True)
class BootArtefacts:
    """`boot` mode: where the stack's bucket holds this architecture's build, and its sha256."""

    bucket: str
    wheelhouse_key: str
    wheelhouse_sha256: str
    image_files_key: str
    image_files_sha256: str

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def pool_env(pool: PoolRuntime) -> str:
    variables = {
        **pool.extra_env,
        "AWS_DEFAULT_REGION": pool.region,
        "WORKER_QUEUES": ",".join(pool.queues),
        "WORKER_CONCURRENCY": str(pool.concurrency),
        "AWS_REGION": pool.region,
        "CELERY_CLUSTER_STACK": pool.stack,
        "WORKER_NAME": pool.pool,
        "WORKER_POOL_NAME": pool.pool,
        "WORKER_SECRET_ID": pool.secret_id,
        "CELERY_SOFT_SHUTDOWN_TIMEOUT": str(pool.drain_soft_seconds),
        "DRAIN_LIFECYCLE_HOOK_NAME": pool.lifecycle_hook_name,
        "DRAIN_TIMEOUT": str(pool.drain_timeout),
        "DRAIN_WORKER_UNIT": files.WORKER_UNIT,
        "DRAIN_REGION": pool.region,
        "CELERY_BUSY_DIR": files.BUSY_DIR,
        "DRAIN_BUSY_DIR": files.BUSY_DIR,
    }
    if pool.asg_name:
        variables["DRAIN_ASG_NAME"] = pool.asg_name
    if pool.ssm_path:
        variables["WORKER_SSM_PATH"] = pool.ssm_path
    if pool.code_version:
        variables["WORKER_CODE_VERSION"] = pool.code_version
    header = f"# celery-cluster {pool.stack}/{pool.pool}: written by user data at boot\n"
    return header + "".join(quote(name, variables[name]) + "\n" for name in sorted(variables))


def worker_dropin(pool: PoolRuntime) -> str:
    return f"[Service]\n# The pool's drain timeout (DRAIN_TIMEOUT).\nTimeoutStopSec={pool.drain_timeout}\n"


def cloudwatch_config(pool: PoolRuntime) -> str:
    text = files.CLOUDWATCH_TEMPLATE.read_text()
    # Pool as a fixed dimension (not the group name): the agent then needs no ec2:DescribeTags.
    for placeholder, value in (
        ("@LOG_GROUP@", pool.log_group),
        ("@METRICS_NAMESPACE@", pool.metrics_namespace),
        ("@POOL@", pool.pool),
    ):
        text = text.replace(placeholder, value)
    return json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"


def render_user_data(mode: ImageMode, pool: PoolRuntime, artefacts: BootArtefacts | None = None) -> str:
    pool.check()
    values = {
        "pool_env": pool_env(pool),
        "worker_dropin": worker_dropin(pool),
        "cloudwatch_config": cloudwatch_config(pool),
    }
    if mode == "boot":
        if artefacts is None:
            raise UserDataError(f"pool {pool.pool!r}: image.mode boot needs the stack's artefact bucket and keys")
        values |= {
            "wheelhouse_uri": artefacts.uri(artefacts.wheelhouse_key),
            "image_files_uri": artefacts.uri(artefacts.image_files_key),
            "checksums": "".join(
                f"{sha}  {name}\n"
                for sha, name in (
                    (artefacts.wheelhouse_sha256, "wheelhouse.tar.gz"),
                    (artefacts.image_files_sha256, "image-files.tar.gz"),
                )
            ),
        }
        template = files.USER_DATA_BOOT
    elif mode in ("bake", "ami"):
        template = files.USER_DATA_BAKED
    else:
        raise UserDataError(f"image.mode must be one of {', '.join(IMAGE_MODES)}, got {mode!r}")
    # JSON strings are YAML scalars: any content (quotes, colons, newlines) stays intact.
    text = Template(template.read_text()).substitute({k: json.dumps(v) for k, v in values.items()})
    if len(text.encode()) > USER_DATA_LIMIT:
        raise UserDataError(f"pool {pool.pool!r}: user data is {len(text.encode())} bytes, over EC2's 16 KB")
    return text


def encode(user_data: str) -> str:
    """Launch templates take user data base64-encoded."""
    return base64.b64encode(user_data.encode()).decode()
