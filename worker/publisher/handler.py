"""The metrics publisher: samples every pool's queues and publishes the scale signals to CloudWatch.

One publisher per stack, outside the pools, so a pool at zero instances still has a backlog metric
to scale out on (docs/architecture.md). On AWS it is a Lambda invoked once a minute (`handler`) that takes six
samples 10 s apart and publishes each at high resolution (StorageResolution=1), so target tracking
and the latency alarm can read 10-second periods.

Configuration, from the environment:
- BROKER_SECRET_ARN: Secrets Manager secret holding the broker URL, either as the whole string
  or as JSON with a "url" key (or BROKER_URL, the URL itself, for local runs and tests);
- RABBITMQ_MANAGEMENT_URL: optional; default: the broker's host, port 443 for amqps (Amazon MQ);
- METRIC_NAMESPACE: the stack's namespace, e.g. "CeleryCluster/prod";
- POOLS_JSON: [{"name": "default", "queues": ["default"], "asg": "celery-prod-default", "signal": {...}}, ...],
  `signal` holding the pool's capacity-rule constants (`worker.publisher.capacity.PoolSignal`);
- SAMPLES (6) and SAMPLE_INTERVAL_SECONDS (10): samples per invocation and the spacing.

Metrics (names in `worker.names`): per queue (dimensions Pool, Queue) QueueWaiting, QueueInFlight,
QueueOldestMessageAge; per pool (dimension Pool) PoolBacklog, PoolBacklogPerInstance,
QueueOldestMessageAge (worst of the pool's queues) and PublisherHeartbeat; and the pool's service
measurements PoolTaskSeconds, PoolBusyProcesses and PoolInServiceInstances (`worker.publisher.service_metrics`),
and from them the capacity signals the scaling policies read, PoolCapacityNeeded, PoolLoadWithOneFewer and
PoolInstancesNeededAtZero (`worker.publisher.capacity`);
per queue QueueUnstampedWaiting and per pool PoolQueuesWithoutAge (`worker.publisher.unstamped`).

`python -m worker.publisher --once --broker-url URL --queues a,b` prints one sample's metrics as
JSON without publishing them (`worker.publisher.cli`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.names import (
    METRIC_BACKLOG,
    METRIC_BACKLOG_PER_INSTANCE,
    METRIC_IN_FLIGHT,
    METRIC_OLDEST_AGE,
    METRIC_PUBLISHER_HEARTBEAT,
    METRIC_WAITING,
)
from worker.publisher.capacity import PoolSignal
from worker.publisher.queues import QueueInspector, Snapshot, backlog_per_instance, inspector_for
from worker.publisher.service_metrics import ServiceReader, pool_values, reader_for
from worker.publisher.unstamped import unstamped_data
from worker.runtime.task_stats import QueueService

logger = logging.getLogger(__name__)

# PutMetricData accepts up to 1000 datums per request; a smaller batch keeps each request well under
# the 1 MB payload limit even with long queue names.
PUT_BATCH = 500


class PublisherConfigError(ValueError):
    """The publisher's environment is missing or invalid; the message names the variable."""


class PoolQueues(BaseModel):
    """One pool as the publisher sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    queues: tuple[str, ...] = Field(min_length=1)
    asg: str = Field(min_length=1)
    signal: PoolSignal | None = None
    """The pool's capacity-rule constants; without them no capacity signal is published (a one-off
    `python -m worker.publisher --once`, the smoke function, which reads only the queues)."""


class _Pools(BaseModel):
    pools: tuple[PoolQueues, ...] = Field(min_length=1)


def pools_json(pools: Sequence[PoolQueues]) -> str:
    """POOLS_JSON as the publisher reads it: compact, in the order given (it lives in Lambda's environment,
    which holds 4 KB in all, https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)."""
    return json.dumps([pool.model_dump(mode="json") for pool in pools], separators=(",", ":"))


@dataclass(frozen=True)
class PublisherConfig:
    broker_url: str
    namespace: str
    pools: tuple[PoolQueues, ...]
    management_url: str | None = None
    samples: int = 6
    interval_seconds: float = 10.0


def _env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise PublisherConfigError(f"{name}: is required but not set")
    return value


def broker_url_from_secret(secret_string: str) -> str:
    text = secret_string.strip()
    if text.startswith("{"):
        try:
            url = json.loads(text).get("url")
        except ValueError:
            url = None
        if not isinstance(url, str) or not url:
            raise PublisherConfigError('BROKER_SECRET_ARN: the secret is JSON without a "url" string')
        return url
    return text


def load_config(environ: Mapping[str, str], secrets: Any | None = None) -> PublisherConfig:
    """Read the publisher's configuration; `secrets` is a Secrets Manager client (made when needed)."""
    if environ.get("BROKER_URL"):
        broker_url = environ["BROKER_URL"]
    else:
        arn = _env(environ, "BROKER_SECRET_ARN")
        client = secrets if secrets is not None else boto3.client("secretsmanager")
        broker_url = broker_url_from_secret(client.get_secret_value(SecretId=arn)["SecretString"])
    try:
        pools = _Pools(pools=json.loads(_env(environ, "POOLS_JSON"))).pools
    except (ValueError, ValidationError) as exc:
        detail = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise PublisherConfigError(f"POOLS_JSON: {detail}") from None
    try:
        samples = int(environ.get("SAMPLES", "6"))
        interval = float(environ.get("SAMPLE_INTERVAL_SECONDS", "10"))
    except ValueError as exc:
        raise PublisherConfigError(f"SAMPLES / SAMPLE_INTERVAL_SECONDS: {exc}") from None
    if samples < 1 or interval < 0:
        raise PublisherConfigError("SAMPLES must be >= 1 and SAMPLE_INTERVAL_SECONDS >= 0")
    return PublisherConfig(
        broker_url=broker_url,
        namespace=_env(environ, "METRIC_NAMESPACE"),
        pools=pools,
        management_url=environ.get("RABBITMQ_MANAGEMENT_URL") or None,
        samples=samples,
        interval_seconds=interval,
    )


def in_service_counts(autoscaling: Any, group_names: Sequence[str]) -> dict[str, int]:
    """InService instances per Auto Scaling group (Pending and warming-up ones are not serving yet)."""
    counts = dict.fromkeys(group_names, 0)
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    for page in paginator.paginate(AutoScalingGroupNames=list(group_names)):
        for group in page["AutoScalingGroups"]:
            counts[group["AutoScalingGroupName"]] = sum(
                1 for instance in group.get("Instances", []) if instance.get("LifecycleState") == "InService"
            )
    return counts


def _datum(name: str, value: float, unit: str, at: datetime, **dimensions: str) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": val} for key, val in dimensions.items()],
        "Timestamp": at,
        "Value": float(value),
        "Unit": unit,
        "StorageResolution": 1,  # high resolution: 10-second periods for target tracking and alarms
    }


def service_data(
    pools: Sequence[PoolQueues],
    snapshot: Snapshot,
    in_service: Mapping[str, int],
    service: Sequence[QueueService] | None,
) -> list[dict[str, Any]]:
    """Per pool: measured task seconds, busy processes, in-service instances, and the capacity signals
    computed from them (worker.publisher.service_metrics, worker.publisher.capacity)."""
    at = datetime.fromtimestamp(snapshot.taken_at, tz=UTC)
    by_queue = None if service is None else {s.queue: s for s in service}
    return [
        _datum(value.name, value.value, value.unit, at, Pool=pool.name)
        for pool in pools
        for value in pool_values(pool.queues, snapshot, in_service.get(pool.asg, 0), by_queue, pool.signal)
    ]


def metric_data(pools: Sequence[PoolQueues], snapshot: Snapshot, in_service: Mapping[str, int]) -> list[dict[str, Any]]:
    """Every datum of one sample. A queue whose oldest age is unknown gets no age datum (never a made-up 0)."""
    at = datetime.fromtimestamp(snapshot.taken_at, tz=UTC)
    data: list[dict[str, Any]] = []
    for pool in pools:
        part = snapshot.select(pool.queues)
        for queue in part.queues:
            data.append(_datum(METRIC_WAITING, queue.waiting, "Count", at, Pool=pool.name, Queue=queue.queue))
            data.append(_datum(METRIC_IN_FLIGHT, queue.in_flight, "Count", at, Pool=pool.name, Queue=queue.queue))
            age = queue.oldest_age(snapshot.taken_at)
            if age is not None:
                data.append(_datum(METRIC_OLDEST_AGE, age, "Seconds", at, Pool=pool.name, Queue=queue.queue))
        instances = in_service.get(pool.asg, 0)
        data.append(_datum(METRIC_BACKLOG, part.backlog, "Count", at, Pool=pool.name))
        data.append(
            _datum(
                METRIC_BACKLOG_PER_INSTANCE, backlog_per_instance(part.backlog, instances), "Count", at, Pool=pool.name
            )
        )
        pool_age = part.oldest_age
        if pool_age is not None:
            data.append(_datum(METRIC_OLDEST_AGE, pool_age, "Seconds", at, Pool=pool.name))
        data.append(_datum(METRIC_PUBLISHER_HEARTBEAT, 1, "Count", at, Pool=pool.name))
    return data


@dataclass
class Publisher:
    config: PublisherConfig
    inspector: QueueInspector
    cloudwatch: Any
    autoscaling: Any
    service: ServiceReader | None = None
    """What the workers recorded in the broker (service_metrics); None: no task time, busy from in-flight."""

    def sample(self) -> list[dict[str, Any]]:
        """Inspect every pool's queues once and publish; returns what was published."""
        queues = sorted({q for pool in self.config.pools for q in pool.queues})
        snapshot = self.inspector.inspect(queues)
        in_service = in_service_counts(self.autoscaling, sorted({pool.asg for pool in self.config.pools}))
        data = metric_data(self.config.pools, snapshot, in_service)
        service = None if self.service is None else self.service.read(queues, snapshot.taken_at)
        data += service_data(self.config.pools, snapshot, in_service, service)
        data += unstamped_data(self.config.pools, snapshot)
        for start in range(0, len(data), PUT_BATCH):
            self.cloudwatch.put_metric_data(Namespace=self.config.namespace, MetricData=data[start : start + PUT_BATCH])
        return data

    def run(
        self,
        remaining_seconds: Callable[[], float] = lambda: float("inf"),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Take `samples` samples `interval_seconds` apart, stopping early rather than overrun the
        invocation; a failed sample is logged and the next one still runs. Returns samples published."""
        published = 0
        started = clock()
        for index in range(self.config.samples):
            due = started + index * self.config.interval_seconds
            wait = due - clock()
            if wait > 0:
                if remaining_seconds() < wait + 5:  # 5 s: room for the sample itself
                    break
                sleep(wait)
            try:
                self.sample()
                published += 1
            except Exception:
                logger.exception("sample %d of %d failed", index + 1, self.config.samples)
        return published


def publisher_from_env(environ: Mapping[str, str] | None = None) -> Publisher:
    return publisher_for(load_config(os.environ if environ is None else environ))


def publisher_for(config: PublisherConfig) -> Publisher:
    return Publisher(
        config=config,
        inspector=inspector_for(config.broker_url, config.management_url),
        cloudwatch=boto3.client("cloudwatch"),
        autoscaling=boto3.client("autoscaling"),
        service=reader_for(config.broker_url),
    )


def _close(old: Publisher) -> None:
    for part in (old.inspector, old.service):
        try:
            if part is not None:
                part.close()
        except Exception:  # the old broker connection may already be refused; the new one matters
            logger.warning("closing the previous broker connection failed", exc_info=True)


_cached: Publisher | None = None


def handler(event: Mapping[str, Any], context: Any) -> dict[str, int]:
    """Lambda entry point (a schedule invokes it every minute; its timeout must exceed 60 s)."""
    global _cached  # noqa: PLW0603 - one broker connection per warm Lambda container
    # The secret is read at every invocation (one GetSecretValue a minute): a rotated broker password
    # reaches the next invocation, and the warm container's connections are opened again with it
    # (docs/worker.md, "Rotating the broker password"). The same URL keeps them.
    config = load_config(os.environ)
    if _cached is None or _cached.config.broker_url != config.broker_url:
        if _cached is not None:
            logger.warning("the broker secret changed: reconnecting with the new credentials")
            _close(_cached)
        _cached = publisher_for(config)

    def remaining() -> float:
        return float(context.get_remaining_time_in_millis()) / 1000 if context is not None else float("inf")

    return {"samples": _cached.run(remaining_seconds=remaining)}
