"""Worker user data: the pool's shape and where to find the broker, never the broker's credentials.

It writes `/etc/celery-cluster/pool.env` (the EnvironmentFile of the image's `celery-worker.service`),
whose `fetch-env` step reads the broker URL from the Secrets Manager secret named by
WORKER_SECRET_ID with the instance role at every start, and a systemd drop-in that sets the unit's
stop timeout to the pool's drain window. Pure code: the program renders it with resolved ARNs;
tests read it back from the render.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping

ENV_FILE = "/etc/celery-cluster/pool.env"
SERVICE = "celery-worker.service"
DROP_IN = f"/etc/systemd/system/{SERVICE}.d/pool.conf"


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
        "WORKER_SECRET_ID": broker_secret_arn,
        "CELERY_CLUSTER_STACK": stack,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def render_user_data(environment: Mapping[str, str], stop_timeout_seconds: int) -> str:
    """A cloud-init shell script: write the env file and the stop-timeout drop-in, start the worker."""
    lines = "\n".join(f"{key}={shlex.quote(value)}" for key, value in sorted(environment.items()))
    return (
        "#!/bin/bash\n"
        "set -o errexit -o pipefail -o nounset\n"
        "install -d -m 0755 /etc/celery-cluster\n"
        f"cat > {ENV_FILE} <<'ENV'\n{lines}\nENV\n"
        f"chmod 0644 {ENV_FILE}\n"
        f"install -d -m 0755 /etc/systemd/system/{SERVICE}.d\n"
        # systemd must not kill the worker before the drain window (the lifecycle hook's) is over.
        f"printf '[Service]\\nTimeoutStopSec=%s\\n' {stop_timeout_seconds} > {DROP_IN}\n"
        "systemctl daemon-reload\n"
        f"systemctl enable --now {SERVICE}\n"
    )


def encode(user_data: str) -> str:
    """Launch templates take user data base64-encoded."""
    return base64.b64encode(user_data.encode()).decode()
