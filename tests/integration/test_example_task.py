"""The test to copy when you add a task: a real worker on a real broker runs it (never eager mode).

Copy this file to `tests/integration/test_<domain>.py`, put your task's name where `reports.build`
is, and assert on what your task leaves behind (a file, a row, an HTTP call to a local server). The
`broker` fixture runs every test on Redis and on RabbitMQ; `cluster_factory` starts worker
processes exactly as a pool instance does (`image/bin/start-worker`), with the environment you give
it, and records every task in an execution journal so `wait_all` can tell completed from lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def test_reports_build_runs_on_a_real_worker_and_a_redelivery_changes_nothing(
    broker: Any, cluster_factory: Any, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    # Settings reach the worker as environment variables, the way a pool's instances get them.
    cluster = cluster_factory(broker, WORKER_REPORTS_DIR=str(reports))
    cluster.start_worker()

    # The same report twice stands for a redelivery (delivery is at least once).
    sent = [cluster.client.send_task("reports.build", args=["r42"], queue=cluster.queue).id for _ in range(2)]
    result = cluster.wait_all(sent, timeout=60)

    assert (result.completed, result.lost) == (2, 0), cluster.log_tail()
    report = reports / "r42.json"
    assert json.loads(report.read_text())["report_id"] == "r42"
    assert sorted(reports.iterdir()) == [report]  # one report, no partial file left behind
