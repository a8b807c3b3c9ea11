"""The baseline: a bare Celery app with Celery's defaults and the same no-op task.

`celery -A infra.bench.bare_app worker` with BENCH_BROKER_URL set. Nothing from `worker` is
imported, so none of its settings, signals or consumer apply. BENCH_BARE_GUARANTEES=1 turns on
only our two delivery guarantees (late acks, prefetch 1), to separate their cost from the rest.
BENCH_BARE_TASK_STATS=1 adds only the RabbitMQ task time recorder (`worker.runtime.rabbit_task_stats`), to
measure what it costs a worker's throughput.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bare", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
if os.environ.get("BENCH_BARE_GUARANTEES") == "1":
    app.conf.task_acks_late = True
    app.conf.worker_prefetch_multiplier = 1
if os.environ.get("BENCH_BARE_TASK_STATS") == "1":
    from worker.runtime import rabbit_task_stats

    rabbit_task_stats.install(app.conf.broker_url, is_redis=False)


@app.task(name="bench.noop")
def noop() -> None:
    return None
