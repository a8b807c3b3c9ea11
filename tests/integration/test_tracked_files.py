"""What git tracks in this repository (`git ls-files`): no file cites a design file kept outside it."""

from __future__ import annotations

import subprocess

from infra.config import ROOT


def test_nothing_cites_a_design_file_outside_the_repository() -> None:
    # The repository carries its own docs/architecture.md; the name is built so this file passes too.
    outside = "DESIGN" + ".md"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    citing = [
        name
        for name in tracked.stdout.splitlines()
        if (ROOT / name).is_file() and outside in (ROOT / name).read_text(errors="ignore")
    ]
    assert citing == [], f"cite docs/architecture.md instead in {citing}"
