"""`make local`'s job, run as the Makefile runs it: exit 0 and a summary with 0 lost, the simulator's table
and plot, plain lines when stdout is not a terminal."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.local.workers import REPO_ROOT


@pytest.mark.redis
@pytest.mark.slow
def test_scripts_local_replays_a_window_with_nothing_lost(tmp_path: Path) -> None:
    plot = tmp_path / "local.png"
    # Minutes 19-25 of the burst trace (the burst starts at 20) at x10: about 40 s of wall time.
    done = subprocess.run(
        [
            str(REPO_ROOT / "scripts" / "local"),
            *("--window", "19:25", "--log-dir", str(tmp_path / "logs"), "--out", str(plot)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "time-scaled x10: 1 model minute = 6.0 s wall" in out
    assert re.search(r"^\[\d\d:\d\d/06:00\] waiting \d+ in flight \d+", out, re.MULTILINE), out  # headless lines
    rows = dict(re.findall(r"│ (\w[\w /()>=-]*?) +│ (.+?) +│", out))
    sent = int(rows["sent"])
    assert sent > 50, out  # 6 model minutes of the dev pool's burst trace: a few hundred tasks
    assert rows["completed"] == str(sent)
    assert rows["lost"] == "0"
    # The burst on an empty dev pool (min 0) makes the model launch instances: at least one scale-out.
    scale_outs, _, scale_ins = rows["scale-outs / scale-ins"].partition(" / ")
    assert int(scale_outs) >= 1, out
    assert scale_ins.isdigit(), out  # the row holds two counts
    assert re.search(r"│ local twin +│", out)
    assert re.search(r"│ simulator +│", out)
    assert plot.stat().st_size > 10_000


@pytest.mark.redis
def test_scripts_local_exits_1_when_a_task_is_lost(tmp_path: Path) -> None:
    # One task far longer than the wait for the last tasks (1 s): it cannot complete, so it counts as lost.
    trace = tmp_path / "one-long-task.csv"
    trace.write_text("arrival_seconds,task_seconds\n0,6000\n")
    done = subprocess.run(
        [
            str(REPO_ROOT / "scripts" / "local"),
            *("--trace", str(trace), "--drain-timeout", "1"),
            *("--log-dir", str(tmp_path / "logs"), "--out", str(tmp_path / "local.png")),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    rows = dict(re.findall(r"│ (\w[\w /()>=-]*?) +│ (.+?) +│", done.stdout))
    assert (rows["sent"], rows["completed"], rows["lost"]) == ("1", "0", "1"), done.stdout
