"""One `make build` per test process, shared by the tests that need real artefacts."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from infra.artefacts.pipeline import BuildPlan, build


@functools.cache
def dist(epoch: int = 1_700_000_000) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="celery-cluster-dist-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)  # about 70 MB
    return build(BuildPlan(out=scratch / "dist", epoch=epoch), report=lambda _: None).out
