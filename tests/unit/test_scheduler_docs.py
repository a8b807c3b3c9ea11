"""The scheduler's docs and start paths cannot drift: its settings table is its settings model, and
nothing that starts a worker in production embeds beat (`-B`)."""

from __future__ import annotations

import re
from pathlib import Path

from worker.scheduler.settings import SchedulerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_scheduler_environment_table_matches_its_settings() -> None:
    block = README.split("<!-- scheduler-env:start -->", 1)[1].split("<!-- scheduler-env:end -->", 1)[0]
    documented = re.findall(r"^\| `([A-Z_]+)` \|", block, re.M)
    assert sorted(documented) == sorted(f"SCHEDULER_{name.upper()}" for name in SchedulerSettings.model_fields)


def test_no_worker_start_path_embeds_beat() -> None:
    paths = [*(ROOT / "image" / "bin").iterdir(), *(ROOT / "image" / "systemd").iterdir()]
    for path in paths:
        text = path.read_text()
        assert not re.search(r"(^|\s)(-B|--beat)(\s|$)", text, re.M), f"{path.name} runs beat inside a worker"
    assert "worker.scheduler.beat:LeasedScheduler" in (ROOT / "image" / "bin" / "start-scheduler").read_text()
