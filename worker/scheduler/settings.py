"""The scheduler's settings (`SCHEDULER_*`), its entries and its CloudWatch metrics."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import boto3
from celery import Celery
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.scheduler.periodic import Periodic


class SchedulerSettings(BaseSettings):
    """The scheduler's settings, from `SCHEDULER_*` variables (README "Periodic tasks")."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", frozen=True, extra="ignore")

    # Where the lease and state live: redis://... (default: the broker, when it is Redis) or dynamodb://<table>.
    lease_url: str | None = None
    # Seconds a lease lasts without renewal: a dead holder is replaced within two of these.
    lease_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    # Redis keys of the lease and state (several stacks or tests may share one Redis).
    key_prefix: str = Field(default="celery-cluster:scheduler", pattern=r"^[A-Za-z0-9_.:-]+$")
    # The module attribute holding the entries.
    schedule: str = Field(default="worker.scheduler.schedule:ENTRIES", pattern=r"^[\w.]+:\w+$")
    # Queues the stack's pools consume (written by the Pulumi program): an entry routed elsewhere stops the start.
    queues: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # CloudWatch namespace for the heartbeat and lateness metrics; unset publishes nothing.
    metrics_namespace: str | None = None
    region: str | None = Field(default=None, validation_alias=AliasChoices("SCHEDULER_REGION", "AWS_REGION"))
    stack: str | None = Field(default=None, validation_alias=AliasChoices("SCHEDULER_STACK", "CELERY_CLUSTER_STACK"))

    @field_validator("queues", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def load_entries(reference: str) -> tuple[Periodic, ...]:
    module, _, attribute = reference.partition(":")
    entries = getattr(importlib.import_module(module), attribute)
    return tuple(entries)


def registered_tasks(app: Celery) -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


class CloudWatchMetrics:
    def __init__(self, namespace: str, region: str | None, client: Any = None) -> None:
        if client is None:
            client = boto3.client("cloudwatch", region_name=region)
        self._client = client
        self._namespace = namespace

    def publish(self, lateness: dict[str, float]) -> None:
        data: list[dict[str, Any]] = [
            {"MetricName": METRIC_SCHEDULER_HEARTBEAT, "Value": 1.0, "Unit": "Count", "StorageResolution": 1}
        ]
        data += [
            {
                "MetricName": METRIC_ENTRY_LATENESS,
                "Dimensions": [{"Name": "Entry", "Value": name}],
                "Value": seconds,
                "Unit": "Seconds",
                "StorageResolution": 1,
            }
            for name, seconds in sorted(lateness.items())
        ]
        # PutMetricData takes at most 1000 metrics per call.
        for start in range(0, len(data), 1000):
            self._client.put_metric_data(Namespace=self._namespace, MetricData=data[start : start + 1000])
