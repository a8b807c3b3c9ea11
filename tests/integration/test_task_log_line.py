"""README: "one JSON log line per task run with `task_id`, `task`, `queue`, `duration_s` and `outcome`", and
`reports.build` safe to run twice; with a real worker on both brokers, reading the worker's own log file.
The same lines carry the worker's code version and pool, which the pool's metric filters count per
version (infra.components.canary): the filters' conditions are applied here to the real lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.canary.rules import LOG_METRICS
from tests.support.cluster import Cluster

SLEEP_SECONDS = 0.3
# worker.tasks.reports.OUTPUT_DIR_ENV (that module needs a broker URL to import: it imports the app).
OUTPUT_DIR_ENV = "WORKER_REPORTS_DIR"


VERSION = "src-0123456789ab"
POOL = "reports"


def _json_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in log.read_text().splitlines() if raw.startswith("{")]


def _task_lines(log: Path) -> dict[str, list[dict[str, Any]]]:
    """The worker's `task.finished` lines by task id; every line of the log must be JSON."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for raw in log.read_text().splitlines():
        if not raw.startswith("{"):
            continue  # the start script's own lines before the worker configures logging
        line = json.loads(raw)
        if line.get("event") == "task.finished":
            lines.setdefault(line["task_id"], []).append(line)
    return lines


def test_one_json_line_per_task_run_and_reports_are_written_once(cluster: Cluster, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    worker = cluster.start_worker(
        env={
            OUTPUT_DIR_ENV: str(reports),
            "CELERY_LOG_FORMAT": "json",
            "WORKER_CODE_VERSION": VERSION,
            "WORKER_POOL_NAME": POOL,
        }
    )
    slept = cluster.send("cluster.sleep", [SLEEP_SECONDS])
    refused = cluster.send("reports.build", ["../etc"])
    # The same report three times (a redelivery, a retry, a duplicate send): written by the first run,
    # left alone by the others.
    built = cluster.send("reports.build", ["r42"])
    assert cluster.wait_all(built, timeout=60).lost == 0, cluster.log_tail()
    report = reports / "r42.json"
    written = report.stat().st_mtime_ns
    built += cluster.send("reports.build", ["r42"], count=2)
    sent = slept + built + refused
    assert cluster.wait_all(sent, timeout=60).lost == 0, cluster.log_tail()
    cluster.wait_quiet(timeout=30)
    assert report.stat().st_mtime_ns == written

    lines = _task_lines(worker.log_path)
    assert sorted(lines) == sorted(sent), cluster.log_tail(worker)
    assert all(len(runs) == 1 for runs in lines.values())
    by_id = {task_id: runs[0] for task_id, runs in lines.items()}
    for task_id in sent:
        line = by_id[task_id]
        assert line["queue"] == cluster.queue
        assert isinstance(line["duration_s"], float)
        assert line["level"] == "info"
    assert (by_id[slept[0]]["task"], by_id[slept[0]]["outcome"]) == ("cluster.sleep", "success")
    assert by_id[slept[0]]["duration_s"] >= SLEEP_SECONDS
    assert {(by_id[i]["task"], by_id[i]["outcome"]) for i in built} == {("reports.build", "success")}
    assert (by_id[refused[0]]["task"], by_id[refused[0]]["outcome"]) == ("reports.build", "failure")

    assert sorted(p.name for p in reports.iterdir()) == ["r42.json"]
    assert json.loads(report.read_text()) == {"report_id": "r42", "rows": ["r42"] * 3}

    # Every line says which code wrote it; the metric filters count exactly the runs and the failure.
    everything = _json_lines(worker.log_path)
    assert {(line.get("version"), line.get("pool")) for line in everything} == {(VERSION, POOL)}
    counted: dict[str, list[dict[str, Any]]] = {}
    for metric in LOG_METRICS:
        conditions = {"event": metric.event, **metric.fields}
        counted[metric.key] = [line for line in everything if all(line.get(k) == v for k, v in conditions.items())]
        assert all(line[field] for line in counted[metric.key] for field in metric.dimensions)
    assert len(counted["finished"]) == len(sent)
    assert [line["task_id"] for line in counted["failures"]] == refused
    assert [(line["task_id"], line["reason"]) for line in counted["dead-letters"]] == [(refused[0], "task_failed")]
    assert counted["retries"] == counted["unknown-tasks"] == []
