"""`scripts/simulate` as a user runs it: exit status, the table, the plot, --compare-config, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from infra.config import ROOT
from infra.scaling.traces import Trace, write_csv

SIMULATE = ROOT / "scripts" / "simulate"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SIMULATE), *args], capture_output=True, text=True, timeout=240, check=False)


def _small_trace(path: Path) -> Path:
    rng = np.random.default_rng(3)
    arrivals = np.sort(rng.uniform(0, 1200, 6000))
    write_csv(Trace("small", arrivals, rng.exponential(2.0, arrivals.size), 1200), path)
    return path


def test_csv_trace_with_compare_config_writes_table_and_plot(tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "small.csv")
    other = tmp_path / "Pulumi.prod.yaml"
    # The compared config: the same stack with a looser SLO (a larger target backlog per instance).
    other.write_text(
        (ROOT / "Pulumi.prod.yaml")
        .read_text()
        .replace("acceptableLatencySeconds: 30", "acceptableLatencySeconds: 120", 1)
    )
    plot = tmp_path / "plot.png"
    result = _run(
        "--stack",
        "prod",
        "--pool",
        "default",
        "--trace",
        str(trace),
        "--compare-config",
        str(other),
        "--out",
        str(plot),
    )
    assert result.returncode in (0, 1), result.stderr
    out = result.stdout
    for row in ("ours ", "ours@Pulumi.prod.yaml", "cpu-50", "cdk-steps", "copilot-1m", "perfect foresight"):
        assert row in out, out
    assert "target 60 backlog/instance" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 20_000


def test_unknown_pool_is_named() -> None:
    result = _run("--stack", "prod", "--pool", "nosuch", "--trace", "burst")
    assert result.returncode == 2
    assert "stack 'prod' has no pool 'nosuch'; its pools: default, reports" in result.stdout


def test_unknown_trace_is_named() -> None:
    result = _run("--stack", "prod", "--pool", "default", "--trace", "tsunami")
    assert result.returncode == 2
    assert "unknown trace 'tsunami'" in result.stdout


def test_git_ref_without_the_stack_file_is_named() -> None:
    result = _run("--stack", "prod", "--trace", "burst", "--compare-ref", "refs/heads/no-such-branch")
    assert result.returncode == 2
    assert "git ref 'refs/heads/no-such-branch' has no Pulumi.prod.yaml" in result.stdout
