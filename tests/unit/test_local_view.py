"""The live view of `make local` fits an 80x24 terminal whole, and headless lines carry units."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console

from infra.cli.fit import print_fitted
from infra.local.fleet import Failure, LocalInstance
from infra.local.view import LEGEND, Status, alarms_line, event_line, line, render
from infra.local.workers import WorkerProcess, log_excerpt
from infra.scaling.aws_model import AlarmState, ScalingEvent
from infra.scaling.simulator import SimulationResult, Timeline
from infra.simulation.report import COLUMNS, NARROW_DROP_ORDER, results_table


def _status(instances: int, now: float = 95.0) -> Status:
    fleet = tuple(
        LocalInstance(
            id=i,
            worker=WorkerProcess(f"i-{i}", ["default"], "redis://127.0.0.1:1/0", Path("/dev/null")),
            launched_at=10.0 * i,
            in_service_at=10.0 * i + 60,
            state="in service" if i % 3 else "booting",
        )
        for i in range(instances)
    )
    events = tuple(
        ScalingEvent(at=30.0 * i, policy="step-fast-out", old_desired=i, new_desired=i + 2, metric=9.0, reason="r")
        for i in range(8)
    )
    return Status(
        now=now, duration=90.0, speed=10.0, waiting=120, in_flight=14, oldest_age=75.0, slo_seconds=60.0,
        target_backlog=24.0, desired=instances, sent=300, total=320, completed=180, p50_wait=12.0, p95_wait=70.0,
        instances=fleet, alarms=(AlarmState("latency", True, 75.0), AlarmState("scale-in", False, None)),
        events=events, header="dev/default -> local (2 processes per instance); SLO 60 s; boot 60 s (model)",
    )  # fmt: skip


def _screen(status: Status, width: int, height: int) -> list[str]:
    console = Console(width=width, height=height, record=True, force_terminal=True, color_system=None)
    console.print(render(status, height))
    return console.export_text().rstrip("\n").splitlines()


def test_the_live_view_fits_80x24_with_every_panel_and_nothing_cut() -> None:
    rows = _screen(_status(instances=20), 80, 24)
    assert len(rows) <= 24, "\n".join(rows)
    text = "\n".join(rows)
    assert "…" not in text
    for panel in (
        "make local: the local twin",
        "waiting",
        "workers: desired 20",
        "alarms in ALARM",
        "recent scale",
        LEGEND,
    ):
        assert panel in text, panel
    assert "trace over" in text  # now (95 s) is past the 90 s trace


def test_a_taller_terminal_shows_more_instances() -> None:
    assert len(_screen(_status(instances=20), 80, 40)) > len(_screen(_status(instances=20), 80, 24))


def test_headless_lines_and_events_state_their_units() -> None:
    status = _status(instances=3)
    text = line(status)
    assert "\n" not in text
    assert "oldest 75s" in text
    assert "0->2 instances" in event_line(status.events[0])


def test_the_results_table_at_80_columns_keeps_the_verdict_drops_columns_and_says_which() -> None:
    empty = np.zeros(1)
    timeline = Timeline(empty, empty, empty, empty, empty, empty)
    results = [
        SimulationResult(
            policy=name,
            trace="burst",
            tasks=900,
            p50_wait=36.9,
            p95_wait=221.4,
            p99_wait=240.0,
            max_wait=250.0,
            max_backlog=230,
            minutes_over_slo=4.5,
            scale_outs=5,
            scale_ins=3,
            instance_hours=0.29,
            cost_usd=0.01,
            peak_instances=3,
            first_scale_out_after_burst=30.0,
            simulated_seconds=1200.0,
            wall_seconds=160.0,
            events=(),
            timeline=timeline,
            slo_seconds=120.0,
            interrupted_tasks=0,
            work_lost_seconds=0.0,
        )
        for name in ("local twin x10", "simulator (ours)")
    ]
    table = results_table(results, 0.21, "dev/default on burst, local twin x10 vs simulator", 120.0)
    console = Console(width=80, record=True, force_terminal=True, color_system=None)
    dropped = print_fitted(console, table, NARROW_DROP_ORDER)
    text = console.export_text()
    assert "…" not in text
    assert all(len(row) <= 80 for row in text.splitlines())
    assert dropped == list(NARROW_DROP_ORDER[: len(dropped)])  # the least useful first
    kept = [c for c in COLUMNS if c not in dropped]
    assert {"policy", "p95 s", "SLO"} <= set(kept), kept
    for value in ("221.4", "missed", "local twin x10"):
        assert value in text
    assert f"left out to fit 80 columns: {', '.join(dropped)}" in text.replace("\n", " ")


TRACEBACK = """\
Traceback (most recent call last):
  File "/repo/.venv/bin/celery", line 8, in <module>
    sys.exit(main())
  File "/repo/.venv/lib/python3.11/site-packages/celery/loaders/base.py", line 85, in import_task_module
    return self.import_from_cwd(module)
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "/repo/worker/tasks/invoices.py", line 3, in <module>
    import stripe
  File "/repo/.venv/lib/python3.11/site-packages/stripe/__init__.py", line 1, in <module>
    import missing_dependency
ModuleNotFoundError: No module named 'missing_dependency'
"""


def test_the_excerpt_of_a_traceback_is_your_line_and_the_error(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text(" -------------- celery banner\n" + TRACEBACK)
    assert log_excerpt(log) == [
        'File "/repo/worker/tasks/invoices.py", line 3, in <module>',
        "import stripe",
        "ModuleNotFoundError: No module named 'missing_dependency'",
    ]


def test_the_excerpt_of_a_typo_in_the_include_list_is_the_error_alone(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    only_machinery = [
        line for line in TRACEBACK.splitlines() if "/repo/worker/" not in line and "import stripe" not in line
    ]
    log.write_text("\n".join([*only_machinery[:-1], "ModuleNotFoundError: No module named 'worker.tasks.invoicez'"]))
    assert log_excerpt(log) == ["ModuleNotFoundError: No module named 'worker.tasks.invoicez'"]


def test_the_excerpt_of_a_log_without_a_traceback_is_its_first_lines(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("\ncelery-cluster worker: invalid setting CELERY_IMPORTS: module 'x' cannot be imported\n")
    assert log_excerpt(log) == ["celery-cluster worker: invalid setting CELERY_IMPORTS: module 'x' cannot be imported"]
    assert log_excerpt(tmp_path / "missing.log") == ["(no log: No such file or directory)"]


def test_a_failed_worker_is_shown_with_its_error_and_the_view_still_fits_80x24() -> None:
    failure = Failure(
        1, "booting", 1, Path("build/local/i-001-abc123.log"), ("ModuleNotFoundError: No module named 'x'",)
    )
    status = replace(_status(instances=20), failures=(failure,))
    rows = _screen(status, 80, 24)
    text = "\n".join(rows)
    assert len(rows) <= 24, text
    assert "…" not in text
    assert "instance #1's worker exited while booting (exit code 1)" in text
    assert "ModuleNotFoundError: No module named 'x'" in text
    assert "i-001-abc123.log" in text
    assert LEGEND in text


def test_the_alarm_line_names_the_ok_alarms_and_one_that_acts_on_nothing() -> None:
    quiet = (AlarmState("step-latency", False, 3.0), AlarmState("target-tracking low", False, None, acts=False))
    assert alarms_line(quiet) == "alarms: none in ALARM; OK: step-latency, target-tracking low"
    firing = (AlarmState("step-latency", True, 75.0), AlarmState("target-tracking low", True, 0.352, acts=False))
    assert alarms_line(firing) == "alarms in ALARM: step-latency (75), target-tracking low (0.352, no action); 0 OK"
