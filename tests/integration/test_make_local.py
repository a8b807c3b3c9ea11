"""`make local`'s job, run as the Makefile runs it: exit 0 and a summary with 0 lost."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from infra.local.workers import REPO_ROOT


@pytest.mark.redis
@pytest.mark.slow
def test_scripts_local_drains_the_burst_with_nothing_lost(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO_ROOT / "scripts" / "local"), "--sleep-tasks", "10", "--canaries", "5", "--log-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = dict(re.findall(r"│ (\w[\w ]*?) +│ (.+?) +│", done.stdout))
    assert rows["sent"] == "15"
    assert rows["completed"] == "15"
    assert rows["lost"] == "0"
    assert rows["canaries returned"] == "5/5"
