"""The live view of `make local` fits an 80x24 terminal whole, and headless lines carry units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from infra.local.fleet import LocalInstance
from infra.local.view import Status, event_line, line, render
from infra.local.workers import WorkerProcess
from infra.scaling.aws_model import AlarmState, ScalingEvent
from infra.scaling.simulator import SimulationResult, Timeline
from infra.simulation.report import NARROW_COLUMNS, results_table


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
    for panel in ("make local: the local twin", "waiting", "workers: desired 20", "alarms in ALARM", "recent scale"):
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


def test_the_narrow_results_table_fits_80_columns_uncut() -> None:
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
    table = results_table(results, 0.21, "dev/default on burst, local twin x10 vs simulator", 120.0, NARROW_COLUMNS)
    console = Console(width=80, record=True, force_terminal=True, color_system=None)
    console.print(table)
    text = console.export_text()
    assert "…" not in text
    assert all(len(row) <= 80 for row in text.splitlines())
    for header in NARROW_COLUMNS:
        assert header in text
