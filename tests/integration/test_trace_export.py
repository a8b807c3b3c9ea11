"""`scripts/status --export-trace`: a pool's traffic rebuilt from the publisher's CloudWatch metrics
(moto), written as a trace CSV that `scripts/simulate --trace` reads back.

The metrics come from a known queue: per 10 s sample, arrivals, a backlog, and processes that each
finish a 5 s task every 5 s. The export knows only what the publisher would have published."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pytest
from typer.testing import CliRunner

from infra.cli.entry import script_app
from infra.cli.status import main
from infra.cli.trace_export import ExportError, export_trace, parse_since, period_for
from infra.config import ROOT, StackConfig, load_stack_config
from infra.outputs import METRIC_NAMESPACE
from infra.scaling.bounds import fifo_waits
from infra.scaling.traces import read_csv
from tests.support.moto_metrics import moto_account
from worker.names import METRIC_BACKLOG, METRIC_BUSY_PROCESSES, METRIC_TASK_SECONDS

STACK = "dev"
POOL = "default"
TASK_SECONDS = 5.0
PROCESSES = 6
SAMPLES = 240  # 40 minutes of 10 s samples


@pytest.fixture
def config() -> StackConfig:
    return load_stack_config(STACK)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, config: StackConfig) -> Iterator[None]:
    with moto_account(monkeypatch, config.region):
        yield


def queue() -> tuple[np.ndarray, list[int], list[int]]:
    """A real FIFO queue on 6 processes with exponential 5 s tasks: a light load, then 10 minutes over the
    processes' rate. Returns the arrival times and, at each 10 s sample, the backlog (arrived, not
    ended) and the busy processes (started, not ended): what the publisher reads."""
    rng = np.random.default_rng(11)
    seconds = np.arange(SAMPLES * 10.0)
    rate = np.where((seconds >= 600) & (seconds < 1200), 1.6, 0.5)  # tasks a second
    starts_at = np.repeat(seconds, rng.poisson(rate))
    arrivals = np.sort(starts_at + rng.random(starts_at.size))
    service = rng.exponential(TASK_SECONDS, arrivals.size)
    starts = arrivals + np.asarray(fifo_waits(arrivals.tolist(), service.tolist(), [0.0] * PROCESSES))
    ends = starts + service
    at = np.arange(SAMPLES) * 10.0

    def by(times: np.ndarray) -> np.ndarray:
        """How many of `times` are at or before each sample."""
        return np.searchsorted(np.sort(times), at, side="right")

    return arrivals, (by(arrivals) - by(ends)).tolist(), (by(starts) - by(ends)).tolist()


def publish(config: StackConfig, end: datetime) -> tuple[np.ndarray, datetime]:
    """The samples as the publisher puts them (high resolution), ending at `end`; the true arrival times."""
    arrivals, backlog, busy = queue()
    first = datetime.fromtimestamp((end.timestamp() // 10) * 10 - SAMPLES * 10, tz=UTC)
    cloudwatch = boto3.client("cloudwatch", region_name=config.region)
    dims = [{"Name": "Pool", "Value": POOL}]
    for k in range(SAMPLES):
        at = first + timedelta(seconds=10 * k)
        data = [
            {"MetricName": METRIC_BACKLOG, "Value": float(backlog[k]), "StorageResolution": 1},
            {"MetricName": METRIC_BUSY_PROCESSES, "Value": float(busy[k]), "StorageResolution": 1},
            {"MetricName": METRIC_TASK_SECONDS, "Value": TASK_SECONDS, "StorageResolution": 1},
        ]
        cloudwatch.put_metric_data(
            Namespace=config.metric_namespace,
            MetricData=[{**d, "Dimensions": dims, "Timestamp": at, "Unit": "Count"} for d in data],
        )
    return arrivals, first


def test_the_export_rebuilds_the_arrivals_and_task_time(aws: None, config: StackConfig) -> None:
    end = datetime.now(UTC)
    arrivals, first = publish(config, end)
    trace = export_trace(
        boto3.client("cloudwatch", region_name=config.region),
        config.metric_namespace,
        POOL,
        configured_task_seconds=1.0,
        end=end,
        since=parse_since("40m"),
    )
    # The trace starts at the clock-aligned start of the window; the first sample is `offset` later.
    offset = first.timestamp() - (end - timedelta(minutes=40)).timestamp() // 10 * 10
    window = 300.0
    exported = np.bincount(((trace.arrivals - offset) // window).astype(int), minlength=8)[:8]
    true = np.bincount((arrivals // window).astype(int), minlength=8)[:8]
    # The tasks finished are estimated as busy processes x period / mean task time: in 5 minutes of 6
    # busy processes that is 360, and the real count varies by about its square root (19) with
    # exponential task times. So: per 5 minutes within 4 such deviations, the whole window within 2 %
    # (the estimates' errors cancel: the backlog at the ends is exact), the overload told apart.
    finished = 6 * 300 / TASK_SECONDS
    assert np.all(np.abs(exported - true) <= 4 * np.sqrt(finished)), f"{exported.tolist()} vs {true.tolist()}"
    assert exported.sum() == pytest.approx(true.sum(), rel=0.02)
    assert exported[2:4].sum() > 2.5 * exported[:2].sum()
    # Task times: exponential with the measured mean, not the configured 1 s.
    assert trace.task_seconds.mean() == pytest.approx(TASK_SECONDS, rel=0.1)
    assert trace.schedules is None  # real traffic: the pool's own schedules apply


def test_a_period_is_what_cloudwatch_still_keeps() -> None:
    assert [period_for(parse_since(s)) for s in ("30m", "3h", "4h", "15d", "16d")] == [10, 10, 60, 60, 300]
    for bad in ("7 days", "0h", "64d"):
        with pytest.raises(ExportError, match="--since"):
            parse_since(bad)


def test_no_metrics_is_said_in_one_line(aws: None, config: StackConfig) -> None:
    with pytest.raises(ExportError, match="no PoolBacklog datapoints for pool 'default'"):
        export_trace(
            boto3.client("cloudwatch"), config.metric_namespace, POOL, 1.0, datetime.now(UTC), parse_since("1h")
        )


def _status(args: list[str]) -> object:
    app = script_app("status", None)
    app.command()(main)
    return CliRunner().invoke(app, args)


def test_the_cli_writes_a_trace_that_simulate_reads_back(aws: None, config: StackConfig, tmp_path: Path) -> None:
    arrivals, _ = publish(config, datetime.now(UTC))
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({METRIC_NAMESPACE: config.metric_namespace}))
    path = tmp_path / "dev-default.csv"
    done = _status(["--stack", STACK, "--outputs", str(outputs), "--export-trace", str(path), "--since", "40m"])
    assert done.exit_code == 0, done.output  # type: ignore[attr-defined]
    assert f"scripts/simulate --stack {STACK} --pool {POOL} --trace {path}" in done.output  # type: ignore[attr-defined]
    trace = read_csv(path)
    assert trace.count == pytest.approx(arrivals.size, rel=0.05)
    replay = subprocess.run(
        [str(ROOT / "scripts" / "simulate"), "--stack", STACK, "--trace", str(path), "--no-references", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert replay.returncode in (0, 1), replay.stderr
    document = json.loads(replay.stdout)
    assert document["trace"] == path.stem
    assert [row["policy"] for row in document["rows"]] == ["ours", "perfect foresight"]
