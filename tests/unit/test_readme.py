"""The README cannot drift from the code it documents."""

from __future__ import annotations

import re
from pathlib import Path

from worker.settings import ENV_PREFIX, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _table_rows(start: str, end: str) -> list[str]:
    block = README.split(start, 1)[1].split(end, 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", block, re.M)


def test_worker_environment_table_matches_settings() -> None:
    documented = _table_rows("<!-- worker-env:start -->", "<!-- worker-env:end -->")
    expected = [f"{ENV_PREFIX}{name.upper()}" for name in WorkerSettings.model_fields]
    assert sorted(documented) == sorted(expected)


def test_make_targets_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)", README)):
        assert re.search(rf"^{target}:", makefile, re.M), f"README mentions make {target}, not in the Makefile"


def test_scripts_in_the_readme_exist() -> None:
    for script in set(re.findall(r"scripts/[a-z-]+", README)):
        assert (ROOT / script).is_file(), f"README mentions {script}, which does not exist"
