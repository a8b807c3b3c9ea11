"""Run a CPU-heavy block without coverage's tracer.

Under `make test` (coverage run, every subprocess traced too) a simulation takes three times the CPU it
takes alone: test_slo_promise.py's prod/default diurnal case used 64 s of CPU traced and 20.5 s untraced.
A test that repeats the code paths of another case (the same simulator over another pool's numbers)
runs them untraced; the cases it keeps traced cover the code.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import coverage
from coverage.exceptions import CoverageWarning


@contextmanager
def untraced() -> Iterator[None]:
    measuring = coverage.Coverage.current()
    if measuring is None:
        yield
        return
    measuring.stop()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            # Restarting names each measured module already imported ("already-imported"): they were, by
            # this process, while it was traced; nothing is lost.
            warnings.simplefilter("ignore", CoverageWarning)
            measuring.start()
