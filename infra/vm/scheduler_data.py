"""User data for the scheduler instance: the same image as the pools, a different unit.

The image enables the worker and drain units (they serve pools); the scheduler instance disables
them and enables `celery-scheduler.service` (`image/bin/start-scheduler`) instead, with its
settings in /etc/celery-cluster/scheduler.env. The broker URL is fetched from Secrets Manager at
every start by the same `fetch-env`, never written here. In `boot` mode the wheelhouse is installed
first, exactly as a pool instance does it (`image/cloud-init/boot.yaml`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from infra.vm import files
from infra.vm.user_data import USER_DATA_LIMIT, BootArtefacts, ImageMode, UserDataError
from worker.instance.fetchenv import quote

SCHEDULER_ENV = "/etc/celery-cluster/scheduler.env"
SCHEDULER_UNIT = files.SCHEDULER_UNIT
CLOUDWATCH_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.json"
AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"


@dataclass(frozen=True)
class SchedulerRuntime:
    stack: str
    region: str
    secret_id: str
    log_group: str
    metrics_namespace: str
    lease_seconds: int
    queues: tuple[str, ...]
    """Every queue a pool of the stack consumes: an entry routed elsewhere stops the scheduler's start."""
    lease_url: str | None = None
    """None: the lease lives in the broker's Redis; `dynamodb://<table>` on RabbitMQ stacks."""
    task_routes: Mapping[str, str] = field(default_factory=dict)
    """The stack's routing table: an entry without a queue goes where its task's route says."""


def scheduler_env(runtime: SchedulerRuntime) -> str:
    variables = {
        "AWS_DEFAULT_REGION": runtime.region,
        "AWS_REGION": runtime.region,
        "CELERY_CLUSTER_STACK": runtime.stack,
        "WORKER_SECRET_ID": runtime.secret_id,
        "SCHEDULER_LEASE_SECONDS": str(runtime.lease_seconds),
        "SCHEDULER_QUEUES": ",".join(runtime.queues),
        "SCHEDULER_METRICS_NAMESPACE": runtime.metrics_namespace,
        "SCHEDULER_KEY_PREFIX": f"celery-cluster:{runtime.stack}:scheduler",
    }
    if runtime.task_routes:
        variables["CELERY_TASK_ROUTES"] = json.dumps(dict(runtime.task_routes), sort_keys=True)
    if runtime.lease_url:
        variables["SCHEDULER_LEASE_URL"] = runtime.lease_url
    header = f"# celery-cluster {runtime.stack}/scheduler: written by user data at boot\n"
    return header + "".join(quote(name, variables[name]) + "\n" for name in sorted(variables))


def cloudwatch_config(runtime: SchedulerRuntime) -> str:
    """The pools' agent config, shipping the scheduler's log instead of the worker's and drain agent's."""
    config = json.loads(
        files.CLOUDWATCH_TEMPLATE.read_text()
        .replace("@LOG_GROUP@", runtime.log_group)
        .replace("@METRICS_NAMESPACE@", runtime.metrics_namespace)
        .replace("@POOL@", "scheduler")
    )
    config["logs"]["logs_collected"]["files"]["collect_list"] = [
        {
            "file_path": "/var/log/celery-cluster/scheduler.log",
            "log_group_name": runtime.log_group,
            "log_stream_name": "{instance_id}/scheduler",
            "timezone": "UTC",
        }
    ]
    return json.dumps(config, indent=1, sort_keys=True) + "\n"


def render_scheduler_user_data(mode: ImageMode, runtime: SchedulerRuntime, artefacts: BootArtefacts | None) -> str:
    write_files = [
        {"path": SCHEDULER_ENV, "owner": "root:root", "permissions": "0644", "content": scheduler_env(runtime)},
        {"path": CLOUDWATCH_CONFIG, "owner": "root:root", "permissions": "0644", "content": cloudwatch_config(runtime)},
    ]
    runcmd: list[list[str]] = []
    document: dict[str, object] = {}
    if mode == "boot":
        if artefacts is None:
            raise UserDataError("scheduler: image.mode boot needs the stack's artefact bucket and keys")
        # The same install as a pool instance in boot mode (image/cloud-init/boot.yaml).
        document["packages"] = ["python3.11", "python3.11-pip", "amazon-cloudwatch-agent", "logrotate"]
        write_files.append(_checksums_file(artefacts))
        runcmd += _boot_install(artefacts)
    runcmd += [
        ["systemctl", "daemon-reload"],
        [AGENT_CTL, "-a", "fetch-config", "-m", "ec2", "-s", "-c", f"file:{CLOUDWATCH_CONFIG}"],
        # The image enables the pool's units; this instance runs the scheduler only.
        ["systemctl", "disable", "--now", files.WORKER_UNIT, files.DRAIN_UNIT],
        ["systemctl", "enable", "--now", SCHEDULER_UNIT],
    ]
    document["write_files"] = write_files
    document["runcmd"] = runcmd
    text = "#cloud-config\n# celery-cluster scheduler instance (infra/vm/scheduler_data.py)\n" + yaml.safe_dump(
        document, sort_keys=False, width=1000
    )
    if len(text.encode()) > USER_DATA_LIMIT:
        raise UserDataError(f"scheduler: user data is {len(text.encode())} bytes, over EC2's 16 KB")
    return text


_STATE = "/var/lib/celery-cluster"


def _checksums_file(artefacts: BootArtefacts) -> dict[str, str]:
    checksums = "".join(
        f"{sha}  {name}\n"
        for sha, name in (
            (artefacts.wheelhouse_sha256, "wheelhouse.tar.gz"),
            (artefacts.image_files_sha256, "image-files.tar.gz"),
        )
    )
    return {"path": f"{_STATE}/artefacts.sha256", "owner": "root:root", "permissions": "0644", "content": checksums}


def _boot_install(artefacts: BootArtefacts) -> list[list[str]]:
    """Download the wheelhouse and image files, check them, and install the worker (image/bin/install-worker)."""
    state = _STATE
    copy = ["aws", "s3", "cp", "--only-show-errors"]
    return [
        ["mkdir", "-p", state],
        [*copy, artefacts.uri(artefacts.wheelhouse_key), f"{state}/wheelhouse.tar.gz"],
        [*copy, artefacts.uri(artefacts.image_files_key), f"{state}/image-files.tar.gz"],
        ["sh", "-c", f"cd {state} && sha256sum --check --strict artefacts.sha256"],
        ["mkdir", "-p", f"{state}/files"],
        ["tar", "--extract", "--gzip", "--file", f"{state}/image-files.tar.gz", "--directory", f"{state}/files"],
        [f"{state}/files/image/bin/install-worker", state],
    ]
