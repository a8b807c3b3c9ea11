"""`make local`'s job, run as the Makefile runs it: exit 0 and a summary with 0 lost, the simulator's table
and plot, plain lines when stdout is not a terminal; a task that did not run is counted as what it is; a
worker that cannot start stops the run at once, with the error from its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from infra.local.workers import REPO_ROOT
from tests.support.local_runs import PIPE_ENV, SCRIPTS_LOCAL, run_local, summary_rows


@pytest.mark.redis
@pytest.mark.slow
def test_scripts_local_replays_a_window_with_nothing_lost(tmp_path: Path) -> None:
    plot = tmp_path / "local.png"
    # Minutes 19-25 of the burst trace (the burst starts at 20) at x10: about 40 s of wall time.
    done = run_local("--window", "19:25", "--out", str(plot), logs=tmp_path / "logs", timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "time-scaled x10: 1 model minute = 6.0 s wall" in out
    assert re.search(r"^\[\d\d:\d\d/06:00\] waiting \d+ in flight \d+", out, re.MULTILINE), out  # headless lines
    rows = summary_rows(out)
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
def test_scripts_local_exits_1_when_a_task_does_not_run_and_says_it_never_left_the_queue(tmp_path: Path) -> None:
    # One task far longer than the wait for the last tasks (1 s): the run ends before it completes.
    trace = tmp_path / "one-long-task.csv"
    trace.write_text("arrival_seconds,task_seconds\n0,6000\n")
    done = run_local(
        *("--trace", str(trace), "--drain-timeout", "1", "--out", str(tmp_path / "local.png")),
        logs=tmp_path / "logs",
        timeout=240,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    rows = summary_rows(done.stdout)
    held = int(rows["never delivered (still queued)"]) + int(rows["unfinished (with a worker)"])
    assert (rows["sent"], rows["completed"], held, rows["lost"]) == ("1", "0", 1, "0"), done.stdout
    # The p95 of no task is no verdict: the twin's SLO cell says "unknown", never "met".
    assert re.search(r"│ local twin +│.*│ +unknown │", done.stdout), done.stdout


BROKEN_TASKS = "import no_such_package_celery_cluster  # what a missing dependency or a typo does\n"


@pytest.mark.redis
@pytest.mark.parametrize(
    ("imports", "error"),
    [
        # A task module that fails to import: Celery imports it as the worker starts, and the worker exits.
        ("broken_tasks", "ModuleNotFoundError: No module named 'no_such_package_celery_cluster'"),
        # A typo in the module name: the worker's settings check refuses it before Celery starts.
        ("worker.tasks.invoicez", "invalid setting CELERY_IMPORTS: module 'worker.tasks.invoicez' cannot be imported"),
    ],
    ids=["module-fails-to-import", "no-such-module"],
)
def test_make_local_stops_at_once_when_no_worker_can_start_and_shows_why(
    imports: str, error: str, tmp_path: Path
) -> None:
    # The bad task module reaches the workers the way an extra include does (CELERY_IMPORTS), without
    # touching worker/app.py; the module itself sits in a scratch directory on PYTHONPATH.
    (tmp_path / "broken_tasks.py").write_text(BROKEN_TASKS)
    env = {**PIPE_ENV, "PYTHONPATH": str(tmp_path), "CELERY_IMPORTS": imports}
    args = f"--log-dir {tmp_path / 'logs'} --out {tmp_path / 'local.png'}"
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), "local", f"ARGS={args}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # the bound: a newcomer learns why within a minute, not after a 5-minute run
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert re.search(r"\] Error 3$", done.stderr, re.MULTILINE), out  # make passes on scripts/local's exit 3
    assert error in done.stdout, out
    assert re.search(r"instance #\d+'s worker exited while booting \(exit code \d+\)", done.stdout), out
    if imports == "broken_tasks":
        assert f'File "{tmp_path / "broken_tasks.py"}", line 1' in done.stdout, out
    assert "stopped: no worker could start" in done.stdout, out
    rows = summary_rows(done.stdout)
    assert rows["completed"] == "0", out
    assert rows["never delivered (still queued)"] == rows["sent"], out  # not "lost": they never left the queue
    assert rows["lost"] == "0", out
    assert "met" not in re.findall(r"\b(met|missed)\b", done.stdout), out
    assert "Exception ignored" not in out, out  # no AsyncResult.__del__ noise as the broker goes


@pytest.mark.redis
def test_ctrl_c_drains_and_prints_the_counts_so_far(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            str(SCRIPTS_LOCAL),
            *("--window", "19:25", "--log-dir", str(tmp_path / "logs"), "--out", str(tmp_path / "local.png")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=PIPE_ENV,
        start_new_session=True,  # the foreground process group of a terminal, with whatever it started there
    )
    assert process.stdout is not None
    seen = []
    for seen_line in process.stdout:  # wait for a worker in service: tasks were sent, and the drain has work
        seen.append(seen_line)
        if re.search(r"workers [1-9]\d* in service", seen_line):
            break
    # Ctrl-C in a terminal signals the whole foreground group: the twin's redis-server got it too and shut
    # down under the drain (a redis ConnectionError traceback, no counts, exit 1) until it had its own session.
    os.killpg(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    text = "".join(seen) + out
    assert process.returncode == 130, text
    rows = summary_rows(out)
    assert int(rows["sent"]) > 0, text
    assert int(rows["completed"]) + int(rows["never delivered (still queued)"]) + int(
        rows["unfinished (with a worker)"]
    ) + int(rows["lost"]) == int(rows["sent"]), text
    assert "interrupted: the counts so far" in out, text
    assert "Exception ignored" not in text
