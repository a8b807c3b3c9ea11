"""One `make build` per test run, shared by the tests that need real artefacts (the build's own tests,
the image's files): the pytest processes of a run share it, so it is built once, not once per process.

The pattern pytest-xdist documents for a session fixture that must run once: the first process to ask
builds under a lock in the run's shared temporary directory (the parent of each process's own), the
others wait for it and read the same files. pytest removes old runs' directories (it keeps three).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from infra.artefacts.pipeline import BuildPlan, build
from infra.artefacts.targets import MANIFEST

EPOCH = 1_700_000_000
"""SOURCE_DATE_EPOCH of the shared build (tests/integration/test_build.py builds again with it)."""


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """build/dist as `make build` writes it, built at EPOCH from this checkout."""
    own = tmp_path_factory.getbasetemp()
    run = own.parent if os.environ.get("PYTEST_XDIST_WORKER") else own
    out = run / "shared-build" / "dist"
    out.parent.mkdir(exist_ok=True)
    with (run / "shared-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (out / MANIFEST).is_file():  # the build writes dist.partial and renames it when complete
            build(BuildPlan(out=out, epoch=EPOCH), report=lambda _: None)
    return out
