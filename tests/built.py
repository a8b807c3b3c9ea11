"""One `make build` per test process, shared by the tests that need real artefacts."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from infra.artefacts.pipeline import BuildPlan, build


@functools.cache
def dist(epoch: int = 1_700_000_000) -> Path:
    out = Path(tempfile.mkdtemp(prefix="celery-cluster-dist-")) / "dist"
    return build(BuildPlan(out=out, epoch=epoch), report=lambda _: None).out
