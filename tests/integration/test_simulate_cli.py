"""`scripts/simulate` as a user runs it: exit status, the table, the plot, --compare-config, errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from infra.config import ROOT
from infra.scaling.traces import Trace, write_csv
from infra.simulation.report import COLUMNS
from tests.support.terminal import run_in_terminal

SIMULATE = ROOT / "scripts" / "simulate"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide console, so the table's last column (the SLO verdict) is never cut.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(SIMULATE), *args], capture_output=True, text=True, timeout=240, check=False, env=env)


def _verdict(out: str, policy: str = "ours") -> str:
    """The SLO cell ("met" or "missed") of a policy's row in the table."""
    (row,) = [line for line in out.splitlines() if line.startswith(f"│ {policy} ")]
    return row.strip("│ ").split("│")[-1].strip()


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
    # The exit status is the table's verdict on our policy: 0 when it met the SLO, 1 when it missed.
    assert result.returncode == {"met": 0, "missed": 1}[_verdict(result.stdout)], result.stdout + result.stderr
    out = result.stdout
    for row in ("ours ", "ours@Pulumi.prod.yaml", "cpu-50", "cdk-steps", "copilot-1m", "perfect foresight"):
        assert row in out, out
    assert "SLO p95 wait <= 30 s (alarm threshold 60 s)" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 20_000


def test_exit_status_is_1_when_the_slo_is_missed_and_0_when_met(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    # Light: one short task a minute, far under the two instances prod/default keeps at its minimum.
    light = tmp_path / "light.csv"
    write_csv(Trace("light", np.arange(0.0, 1200.0, 60.0), np.full(20, 1.0), 1200), light)
    # Overload: 20 minutes of work for the pool at its maximum, all arriving in the first minute.
    heavy = tmp_path / "heavy.csv"
    arrivals = np.sort(rng.uniform(0, 60, 20_000))
    write_csv(Trace("heavy", arrivals, np.full(arrivals.size, 5.0), 1200), heavy)

    met = _run(
        "--stack",
        "prod",
        "--pool",
        "default",
        "--trace",
        str(light),
        "--no-references",
        "--out",
        str(tmp_path / "a.png"),
    )
    missed = _run(
        "--stack",
        "prod",
        "--pool",
        "default",
        "--trace",
        str(heavy),
        "--no-references",
        "--out",
        str(tmp_path / "b.png"),
    )

    assert (met.returncode, _verdict(met.stdout)) == (0, "met"), met.stdout + met.stderr
    assert (missed.returncode, _verdict(missed.stdout)) == (1, "missed"), missed.stdout + missed.stderr


def test_json_is_the_same_table(tmp_path: Path) -> None:
    trace = _small_trace(tmp_path / "small.csv")
    args = ("--stack", "prod", "--trace", str(trace), "--out", str(tmp_path / "p.png"))
    table, as_json = _run(*args), _run(*args, "--json")
    assert as_json.returncode == table.returncode, as_json.stderr
    document = json.loads(as_json.stdout)  # stdout holds the JSON and nothing else
    assert (document["stack"], document["pool"], document["slo_seconds"]) == ("prod", "default", 30.0)
    rows = {row["policy"]: row for row in document["rows"]}
    assert list(rows) == ["ours", "cpu-50", "cdk-steps", "copilot-1m", "perfect foresight"]
    assert set(rows["ours"]) == set(COLUMNS)
    for policy in ("ours", "cpu-50", "cdk-steps", "copilot-1m"):
        assert rows[policy]["SLO"] == _verdict(table.stdout, policy)
        (line,) = [line for line in table.stdout.splitlines() if line.startswith(f"│ {policy} ")]
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        assert cells[COLUMNS.index("p95 s")] == f"{rows[policy]['p95 s']}"
        assert cells[COLUMNS.index("interrupted")] == str(rows[policy]["interrupted"])
    assert rows["perfect foresight"]["inst-h"] == document["bound_instance_hours"]


def test_unknown_pool_is_named() -> None:
    result = _run("--stack", "prod", "--pool", "nosuch", "--trace", "burst")
    assert result.returncode == 2
    assert "stack 'prod' has no pool 'nosuch'; its pools: default, reports" in result.stderr


def test_unknown_trace_is_named() -> None:
    result = _run("--stack", "prod", "--pool", "default", "--trace", "tsunami")
    assert result.returncode == 2
    assert "unknown trace 'tsunami'" in result.stderr


def test_git_ref_without_the_stack_file_is_named() -> None:
    result = _run("--stack", "prod", "--trace", "burst", "--compare-ref", "refs/heads/no-such-branch")
    assert result.returncode == 2
    assert "git ref 'refs/heads/no-such-branch' has no Pulumi.prod.yaml" in result.stderr


@pytest.mark.parametrize("where", ["pipe", "terminal"])
def test_at_80_columns_the_table_drops_columns_and_says_so_and_cuts_no_value(where: str, tmp_path: Path) -> None:
    argv = [str(SIMULATE), "--stack", "prod", "--pool", "default", "--trace", "burst", "--out", str(tmp_path / "p.png")]
    if where == "pipe":
        env = {**os.environ, "COLUMNS": "80"}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False, env=env)
        returncode, text = done.returncode, done.stdout + done.stderr
    else:
        screen = run_in_terminal(argv, columns=80, rows=24)
        # From the table on: the progress bars before it redraw their line in place (cursor moves).
        returncode, text = screen.returncode, screen.text[screen.text.index("prod/default on burst") :]
    assert returncode in (0, 1), text  # met or missed; 2 would be a bad input
    assert "…" not in text, text
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert too_wide == [], too_wide
    dropped = re.search(r"\((\d+) of the table's columns left out to fit 80 columns: ([^;]+);", " ".join(text.split()))
    assert dropped, text
    names = dropped.group(2).split(", ")
    assert len(names) == int(dropped.group(1)), names
    assert set(names) <= set(COLUMNS), names
    header = next(line for line in text.splitlines() if "policy" in line and "SLO" in line)
    kept = [c.strip() for c in header.strip("┃│ ").split("┃" if "┃" in header else "│")]
    assert kept == [c for c in COLUMNS if c not in names], (kept, names)
    for policy in ("ours", "perfect"):  # every row is there, its name whole (wrapped between words at most)
        assert re.search(rf"^[│┃] {policy}\b", text, re.MULTILINE), text


def test_tune_prints_a_config_change_that_the_simulator_confirms() -> None:
    # The command: prod/default misses its 30 s SLO on the burst today.
    result = _run("--stack", "prod", "--pool", "default", "--trace", "burst", "--tune", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(result.stdout)
    today, tuned = document["today"], document["tuned"]
    assert today["p95_wait_seconds"] > document["slo_seconds"] >= tuned["p95_wait_seconds"]
    assert tuned["changes"]
    assert document["yaml"].startswith("config:\n  celery-cluster:pools:\n    default:\n")
    # The rows keep scripts/simulate --json's shape: today's run, the confirmed run, the bound.
    rows = {row["policy"]: row for row in document["rows"]}
    assert set(rows) == {"ours (today)", "ours (tuned, confirmed)", "perfect foresight"}
    confirmed = rows["ours (tuned, confirmed)"]
    assert set(COLUMNS) <= set(confirmed)
    assert (confirmed["SLO"], confirmed["p95 s"]) == ("met", tuned["p95_wait_seconds"])
    assert confirmed["inst-h"] == tuned["instance_hours"]


def test_tune_says_when_no_configuration_can_meet_the_slo() -> None:
    # The flash crowd hits an idle minSize 0 pool: even all of maxSize at the first datapoint, from a
    # warm pool, leaves p95 over prod/default's 30 s SLO.
    result = _run("--stack", "prod", "--pool", "default", "--trace", "flash-crowd", "--tune")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "No configuration searched meets the 30 s SLO" in result.stdout
    assert "boot bound: p95" in result.stdout
    assert "No configuration that reacts to this traffic meets it: only capacity scheduled ahead" in result.stdout
