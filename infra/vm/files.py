"""The text artefacts under `image/` and where they land on an instance."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
IMAGE_DIR: Final = REPO_ROOT / "image"

WORKER_UNIT: Final = "celery-worker.service"
DRAIN_UNIT: Final = "celery-drain.service"
IN_SERVICE_UNIT: Final = "celery-in-service.service"
WORKER_FAILED_UNIT: Final = "celery-worker-failed.service"
# Enabled only on the scheduler instance (infra/vm/scheduler_data.py).
SCHEDULER_UNIT: Final = "celery-scheduler.service"
UNITS: Final = (WORKER_UNIT, DRAIN_UNIT, IN_SERVICE_UNIT, WORKER_FAILED_UNIT, SCHEDULER_UNIT)
UNIT_FILES: Final = tuple(IMAGE_DIR / "systemd" / unit for unit in UNITS)
COMPONENT_DOCUMENT: Final = IMAGE_DIR / "imagebuilder" / "component.yaml"
CLOUDWATCH_TEMPLATE: Final = IMAGE_DIR / "cloudwatch" / "amazon-cloudwatch-agent.json"
USER_DATA_BAKED: Final = IMAGE_DIR / "cloud-init" / "baked.yaml"
USER_DATA_BOOT: Final = IMAGE_DIR / "cloud-init" / "boot.yaml"

# On the instance.
PREFIX: Final = "/opt/celery-cluster"
POOL_ENV: Final = "/etc/celery-cluster/pool.env"
WORKER_DROPIN: Final = "/etc/systemd/system/celery-worker.service.d/pool.conf"
# The worker unit's runtime directory: running tasks leave markers here (CELERY_BUSY_DIR), the
# drain agent reads them (DRAIN_BUSY_DIR) to protect a busy instance from scale-in.
BUSY_DIR: Final = "/run/celery-cluster/busy"
