"""The smoke test: N `cluster.canary` tasks to each pool's queues, all N must come back in time.

It talks to a broker like any producer (worker/client.py), so the same code checks a deployed
stack (broker URL from the stack's secret) and the local cluster (a loopback Redis).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from celery import Celery
from celery.result import AsyncResult
from kombu.exceptions import OperationalError

from infra.local.accounting import percentile


@dataclass
class PoolSmoke:
    pool: str
    sent: int = 0
    returned: int = 0
    wrong: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.sent > 0 and self.returned == self.sent and self.wrong == 0

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies, 95)


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
            return f"cannot connect to the broker at {connection.as_uri()}: {exc}"
    return None


@dataclass(frozen=True)
class _Pending:
    pool: str
    token: str
    sent_at: float
    result: AsyncResult


def run_smoke(
    app: Celery,
    pools: Mapping[str, Sequence[str]],
    count: int,
    timeout: float,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, PoolSmoke]:
    """Send `count` canaries per pool (spread over its queues) and wait for each token to return."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    report = {pool: PoolSmoke(pool) for pool in pools}
    pending: list[_Pending] = []
    for pool, queues in pools.items():
        if not queues:
            raise ValueError(f"pool {pool!r} has no queues")
        for index in range(count):
            token = f"{pool}-{uuid.uuid4().hex}"
            queue = queues[index % len(queues)]
            result = app.send_task("cluster.canary", args=[token], queue=queue)
            pending.append(_Pending(pool, token, time.monotonic(), result))
            report[pool].sent += 1
    total = len(pending)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        still: list[_Pending] = []
        for item in pending:
            if item.result.ready():
                value = item.result.get(timeout=1, propagate=False)
                entry = report[item.pool]
                if value == item.token:
                    entry.returned += 1
                    entry.latencies.append(time.monotonic() - item.sent_at)
                else:
                    entry.wrong += 1
            else:
                still.append(item)
        pending = still
        on_progress(total - len(pending), total)
        if pending:
            time.sleep(0.1)
    return report
