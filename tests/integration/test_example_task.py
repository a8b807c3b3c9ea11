"""The test to copy when you add a task: a real worker on a real broker runs it (never eager mode).

Copy this file to `tests/integration/test_<domain>.py`, put your task's name where `reports.build`
is, and assert on what your task leaves behind (a file, a row, an HTTP call to a local server). The
`broker` fixture runs every test on Redis and on RabbitMQ; `cluster_factory` starts worker
processes exactly as a pool instance does (`image/bin/start-worker`), with the environment you give
it, and records every task in an execution journal so `wait_all` can tell completed from lost.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any


def test_reports_build_runs_on_a_real_worker_and_a_redelivery_changes_nothing(
    broker: Any, cluster_factory: Any, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    # Settings reach the worker as environment variables, the way a pool's instances get them.
    cluster = cluster_factory(broker, WORKER_REPORTS_DIR=str(reports))
    cluster.start_worker()
    task_id = str(uuid.uuid4())

    def deliver() -> None:
        # The same message each time: same task id, same arguments. A redelivery (at least once) is exactly
        # this, the broker handing the worker a message it already ran.
        cluster.client.send_task("reports.build", args=["r42"], task_id=task_id, queue=cluster.queue)

    deliver()
    first = cluster.wait_all([task_id], timeout=60)
    assert (first.completed, first.lost) == (1, 0), cluster.log_tail()
    report = reports / "r42.json"
    written = report.stat()
    assert json.loads(report.read_text())["report_id"] == "r42"

    deliver()
    again = cluster.wait_until([task_id], lambda t: t.duplicates == 1, timeout=60)
    assert (again.completed, again.duplicates) == (1, 1), cluster.log_tail()  # it did run a second time
    # ...and changed nothing: the same file, not rewritten, and no partial file left behind.
    assert (report.stat().st_ino, report.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert sorted(reports.iterdir()) == [report]
