"""The text artefacts under `image/` and where they land on an instance."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
IMAGE_DIR: Final = REPO_ROOT / "image"

WORKER_UNIT: Final = "celery-worker.service"
DRAIN_UNIT: Final = "celery-drain.service"
UNIT_FILES: Final = (IMAGE_DIR / "systemd" / WORKER_UNIT, IMAGE_DIR / "systemd" / DRAIN_UNIT)
COMPONENT_DOCUMENT: Final = IMAGE_DIR / "imagebuilder" / "component.yaml"
CLOUDWATCH_TEMPLATE: Final = IMAGE_DIR / "cloudwatch" / "amazon-cloudwatch-agent.json"
USER_DATA_BAKED: Final = IMAGE_DIR / "cloud-init" / "baked.yaml"
USER_DATA_BOOT: Final = IMAGE_DIR / "cloud-init" / "boot.yaml"

# On the instance.
PREFIX: Final = "/opt/celery-cluster"
POOL_ENV: Final = "/etc/celery-cluster/pool.env"
WORKER_DROPIN: Final = "/etc/systemd/system/celery-worker.service.d/pool.conf"
