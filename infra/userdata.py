"""Worker user data: the pool's shape and where to find the broker, never the broker's credentials.

The image's start script reads `/etc/celery-cluster/pool.env`, fetches CELERY_BROKER_URL from the
Secrets Manager secret named there (with the instance role), and execs `image/bin/start-worker`.
Pure code: the program renders it with resolved ARNs; tests read it back from the render.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping

ENV_FILE = "/etc/celery-cluster/pool.env"
SERVICE = "celery-worker.service"


def pool_environment(
    *,
    pool: str,
    queues: tuple[str, ...],
    concurrency: int,
    soft_shutdown_seconds: int,
    broker_secret_arn: str,
    region: str,
    stack: str,
) -> dict[str, str]:
    """The variables a worker VM starts with (CELERY_* and WORKER_*, as image/bin/start-worker reads them)."""
    return {
        "WORKER_POOL_NAME": pool,
        "WORKER_QUEUES": ",".join(queues),
        "WORKER_CONCURRENCY": str(concurrency),
        "CELERY_SOFT_SHUTDOWN_TIMEOUT": str(soft_shutdown_seconds),
        "CELERY_BROKER_SECRET_ARN": broker_secret_arn,
        "CELERY_CLUSTER_STACK": stack,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def render_user_data(environment: Mapping[str, str]) -> str:
    """A cloud-init shell script that writes the env file and starts the worker unit."""
    lines = "\n".join(f"{key}={shlex.quote(value)}" for key, value in sorted(environment.items()))
    return (
        "#!/bin/bash\n"
        "set -o errexit -o pipefail -o nounset\n"
        "install -d -m 0755 /etc/celery-cluster\n"
        f"cat > {ENV_FILE} <<'ENV'\n{lines}\nENV\n"
        f"chmod 0644 {ENV_FILE}\n"
        f"systemctl enable --now {SERVICE}\n"
    )


def encode(user_data: str) -> str:
    """Launch templates take user data base64-encoded."""
    return base64.b64encode(user_data.encode()).decode()
