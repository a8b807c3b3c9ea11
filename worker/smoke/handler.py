"""The smoke test: `cluster.ping` to every queue and N `cluster.canary` to every pool; all must come back.

It talks to a broker like any producer (`worker.sender`), wherever the broker is reachable:
- `scripts/smoke --broker-url ...` on this machine (the local cluster, a loopback Redis);
- inside the stack's VPC as the smoke function (`handler`, deployed by `infra.components.smoke_function`),
  which the deploy workflow invokes asynchronously after `pulumi up`: a GitHub-hosted runner cannot reach a
  broker in private subnets. The function waits long enough for a pool at zero instances to scale out
  (the canaries are its backlog) and returns a report per pool, with the pool's in-service count before
  and after; Lambda sends the report (or the function's error) to the stack's smoke results queue, where
  the deploy finds it by the event's `run_id`.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from worker.percentiles import percentile
from worker.publisher.handler import PoolQueues, broker_url_from_secret, in_service_counts
from worker.sender import sender_app

logger = logging.getLogger(__name__)
CANARY = "cluster.canary"
PING = "cluster.ping"
DEFAULT_COUNT = 20
MARGIN_SECONDS = 15.0
"""Left of a Lambda invocation after the wait, to read the last results and return the report."""


@dataclass
class PoolSmoke:
    pool: str
    sent: int = 0
    returned: int = 0
    wrong: int = 0
    latencies: list[float] = field(default_factory=list)
    pings_sent: int = 0
    answered_by: list[str] = field(default_factory=list)
    """`hostname` of each worker that answered a ping (one ping per queue)."""
    in_service_before: int | None = None
    in_service_after: int | None = None

    @property
    def ok(self) -> bool:
        canaries = self.sent > 0 and self.returned == self.sent and self.wrong == 0
        return canaries and len(self.answered_by) == self.pings_sent

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "ok": self.ok,
            "sent": self.sent,
            "returned": self.returned,
            "wrong": self.wrong,
            "pings_sent": self.pings_sent,
            "answered_by": sorted(set(self.answered_by)),
            "p50_seconds": self.p50,
            "p95_seconds": self.p95,
            "in_service_before": self.in_service_before,
            "in_service_after": self.in_service_after,
        }


def broker_problem(app: Celery, retries: int = 2) -> str | None:
    """None when the broker takes a connection; else one line saying why not (the URL with its
    password masked, and the client's reason: a refused login, an untrusted certificate, a reset).

    Without this, a bad URL surfaces as a traceback from the first publish or result read, after
    the publish retry policy has run out. A refused AMQP login is a channel error (AccessRefused).
    """
    with app.connection_for_write() as connection:
        try:
            connection.ensure_connection(max_retries=retries, interval_start=0.5, interval_step=0.5)
        except (OperationalError, *connection.connection_errors, *connection.channel_errors) as exc:
            # The configured URL, masked: as_uri() names the transport class where the worker swaps
            # in its own Redis transport (worker.runtime.redis_take), which means nothing to an operator.
            return f"cannot connect to the broker at {maybe_sanitize_url(app.conf.broker_url)}: {exc}"
    return None


@dataclass(frozen=True)
class _Pending:
    pool: str
    task: str
    token: str
    sent_at: float
    result: AsyncResult


def _record(entry: PoolSmoke, item: _Pending, value: Any, now: float) -> None:
    if item.task == PING:
        if isinstance(value, dict) and value.get("hostname"):
            entry.answered_by.append(str(value["hostname"]))
        else:
            entry.wrong += 1
    elif value == item.token:
        entry.returned += 1
        entry.latencies.append(now - item.sent_at)
    else:
        entry.wrong += 1


def run_smoke(
    app: Celery,
    pools: Mapping[str, Sequence[str]],
    count: int,
    timeout: float,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    *,
    ping: bool = True,
) -> dict[str, PoolSmoke]:
    """Send a ping to each queue and `count` canaries per pool (spread over its queues); wait until
    every one has returned or `timeout` seconds have passed."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    report = {pool: PoolSmoke(pool) for pool in pools}
    pending: list[_Pending] = []
    for pool, queues in pools.items():
        if not queues:
            raise ValueError(f"pool {pool!r} has no queues")
        if ping:
            for queue in queues:
                pending.append(_Pending(pool, PING, "", time.monotonic(), app.send_task(PING, queue=queue)))
                report[pool].pings_sent += 1
        for index in range(count):
            token = f"{pool}-{uuid.uuid4().hex}"
            result = app.send_task(CANARY, args=[token], queue=queues[index % len(queues)])
            pending.append(_Pending(pool, CANARY, token, time.monotonic(), result))
            report[pool].sent += 1
    total = len(pending)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still: list[_Pending] = []
        for item in pending:
            if item.result.ready():
                _record(report[item.pool], item, item.result.get(timeout=1, propagate=False), time.monotonic())
            else:
                still.append(item)
        pending = still
        on_progress(total - len(pending), total)
        if pending:
            time.sleep(0.1)
    return report


# --- The smoke function (Lambda, in the stack's VPC) --------------------------------------------


@dataclass(frozen=True)
class SmokeConfig:
    broker_url: str
    queue_type: str
    pools: tuple[PoolQueues, ...]


class SmokeConfigError(ValueError):
    """The smoke function's environment is missing or invalid; the message names the variable."""


def load_smoke_config(environ: Mapping[str, str], secrets: Any | None = None) -> SmokeConfig:
    """BROKER_SECRET_ARN (or BROKER_URL), POOLS_JSON and CELERY_QUEUE_TYPE: the publisher's contract."""
    if environ.get("BROKER_URL"):
        url = environ["BROKER_URL"]
    else:
        arn = environ.get("BROKER_SECRET_ARN", "").strip()
        if not arn:
            raise SmokeConfigError("BROKER_SECRET_ARN: is required but not set")
        client = secrets if secrets is not None else boto3.client("secretsmanager")
        url = broker_url_from_secret(client.get_secret_value(SecretId=arn)["SecretString"])
    try:
        pools = tuple(PoolQueues(**pool) for pool in json.loads(environ.get("POOLS_JSON", "")))
    except (TypeError, ValueError) as exc:
        raise SmokeConfigError(f"POOLS_JSON: {exc}") from None
    if not pools:
        raise SmokeConfigError("POOLS_JSON: lists no pool")
    return SmokeConfig(url, environ.get("CELERY_QUEUE_TYPE", "classic"), pools)


def smoke_report(
    config: SmokeConfig,
    count: int,
    timeout: float,
    autoscaling: Any | None,
    app: Celery | None = None,
) -> dict[str, Any]:
    """Run the smoke test and return the JSON report the function returns (and `scripts/smoke` prints)."""
    app = app if app is not None else sender_app(config.broker_url, queue_type=config.queue_type)
    problem = broker_problem(app)
    if problem is not None:
        return {"ok": False, "error": problem, "pools": []}
    asg_of = {pool.name: pool.asg for pool in config.pools}
    before = in_service_counts(autoscaling, sorted(asg_of.values())) if autoscaling is not None else {}
    report = run_smoke(app, {pool.name: pool.queues for pool in config.pools}, count, timeout)
    after = in_service_counts(autoscaling, sorted(asg_of.values())) if autoscaling is not None else {}
    for name, entry in report.items():
        entry.in_service_before = before.get(asg_of[name])
        entry.in_service_after = after.get(asg_of[name])
    return {
        "ok": all(entry.ok for entry in report.values()),
        "timeout_seconds": timeout,
        "pools": [entry.as_dict() for entry in report.values()],
    }


def handler(event: Mapping[str, Any] | None, context: Any) -> dict[str, Any]:
    """Lambda entry point: event {"count": N, "timeout": seconds, "run_id": the caller's id for this run};
    the wait ends before the invocation does. The report carries the run id back."""
    event = event or {}
    count = int(event.get("count", DEFAULT_COUNT))
    timeout = float(event.get("timeout", 600))
    run_id = str(event.get("run_id", ""))
    if context is not None:
        timeout = min(timeout, context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS)
    # The line an operator finds by the run id that `scripts/smoke --stack` prints.
    logger.info("smoke run %s: %d canaries per pool, waiting up to %.0f s", run_id or "(no run id)", count, timeout)
    config = load_smoke_config(os.environ)
    report = smoke_report(config, count, timeout, boto3.client("autoscaling"))
    return {**report, "run_id": run_id} if run_id else report
