"""Example application task: build a report, idempotently.

The idioms to copy: the task takes an id, not an object; the work is a plain function that
returns plain data; running it twice (at-least-once delivery) yields the same file, because
the output is written to a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from worker.app import app

OUTPUT_DIR_ENV = "WORKER_REPORTS_DIR"


@dataclass(frozen=True)
class ReportResult:
    report_id: str
    path: str
    created: bool  # False when an earlier run already wrote it (a redelivery)
    digest: str


def build_report(report_id: str, output_dir: Path) -> ReportResult:
    if not report_id.isalnum():
        raise ValueError(f"report_id must be alphanumeric, got {report_id!r}")
    target = output_dir / f"{report_id}.json"
    if target.exists():
        return ReportResult(report_id, str(target), False, hashlib.sha256(target.read_bytes()).hexdigest())
    content = json.dumps({"report_id": report_id, "rows": [report_id] * 3}, sort_keys=True).encode()
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(content)
    partial.replace(target)  # atomic: readers never see half a report
    return ReportResult(report_id, str(target), True, hashlib.sha256(content).hexdigest())


@app.task(name="reports.build")
def build(report_id: str) -> dict[str, object]:
    output_dir = Path(os.environ.get(OUTPUT_DIR_ENV, "/var/lib/celery-cluster/reports"))
    return asdict(build_report(report_id, output_dir))
