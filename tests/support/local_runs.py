"""`scripts/local` (what `make local` runs) as a CI job runs it, and its summary table read back."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from infra.local.workers import REPO_ROOT

SCRIPTS_LOCAL = REPO_ROOT / "scripts" / "local"
PIPE_ENV = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES")}
"""A pipe without COLUMNS: every line whole, every column of the table (what a CI log gets)."""
ROWS = re.compile(r"│ (\w[\w /()>=.+-]*?) +│ (.+?) +│")


def run_local(*args: str, logs: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """`scripts/local ARGS --log-dir LOGS`, to its end (or the timeout), its output captured."""
    return subprocess.run(
        [str(SCRIPTS_LOCAL), *args, "--log-dir", str(logs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=PIPE_ENV,
    )


def summary_rows(stdout: str) -> dict[str, str]:
    """The summary table's rows: first column -> second (the local twin's figures)."""
    return dict(ROWS.findall(stdout))
