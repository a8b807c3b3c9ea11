"""`worker.app:app`, the Celery application. It holds the app and its configuration only;
tasks live in `worker.tasks.*` by domain.

Run a worker the way a VM does: `image/bin/start-worker` (or `celery -A worker.app worker -Q q1,q2`).
"""

from __future__ import annotations

import sys

from celery import Celery

from worker.runtime import (
    busy,
    dead_letters,
    journal,
    logs,
    periodic_fence,
    rabbit_task_stats,
    rotation,
    shutdown,
    stamping,
    task_stats,
)
from worker.runtime.celeryconfig import build_config
from worker.runtime.request import BaseTask
from worker.runtime.settings import (
    SETTINGS_EXIT_CODE,
    SettingsError,
    check_imports,
    load_process_settings,
    load_settings,
)

try:
    settings = load_settings()
    check_imports(settings)
    # WORKER_POOL and WORKER_CONCURRENCY reach Celery as configuration (below), not as command-line
    # flags: Celery imports a pool named on its command line (e.g. gevent) before this module runs.
    process = load_process_settings()
except SettingsError as exc:
    # One line naming the variable, then exit 64 (docs/worker.md): the worker never starts half-configured.
    sys.stderr.write(f"celery-cluster worker: invalid setting {exc}\n")
    raise SystemExit(SETTINGS_EXIT_CODE) from None

app = Celery(
    "worker",
    task_cls=BaseTask,
    # One module a line: add yours here (the trailing comma keeps the formatter from joining them).
    include=[
        "worker.tasks.cluster",
        "worker.tasks.fanout",
        "worker.tasks.reports",
        "worker.tasks.webhooks",
    ],
)
app.config_from_object(build_config(settings))
# CONF#worker-pool and CONF#worker-concurrency (celeryconfig.CONF): what `--pool`/`--concurrency` would
# set; an explicit flag on the command line still wins.
app.conf.worker_pool = process.pool
app.conf.worker_concurrency = process.concurrency
# Messages that cannot be decoded, or name no known task, go to the dead-letter queue instead
# of being dropped (Celery's default acks and forgets them); a broker that refuses the credentials
# stops the worker instead of a retry with the same password (worker.runtime.broker_errors).
app.conf.worker_consumer = "worker.runtime.consumer:WorkerConsumer"

logs.install(settings, process)
stamping.install()
dead_letters.install(settings.dead_letter_queue)
journal.install(settings.journal_url, process.code_version)
shutdown.install(settings.soft_shutdown_timeout)
task_stats.install(settings.broker_url, settings.is_redis)
rabbit_task_stats.install(settings.broker_url, settings.is_redis)
busy.install(settings.busy_dir)
# A second copy of a periodic run is acknowledged without running (worker.runtime.periodic_fence).
periodic_fence.install(settings.periodic_fence)
# A rotated broker password: drain and exit 75 for systemd to restart with the new secret (worker.runtime.rotation).
rotation.install()
