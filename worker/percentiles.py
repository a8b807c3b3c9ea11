"""Percentiles of measured seconds, shared by the smoke test and the local cluster's task accounting."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: int) -> float | None:
    """The `pct`-th percentile (1..99) of `values`, None for no values; one value is its own percentile.

    `inclusive` treats the values as the whole population, so p95 of a small run stays within its
    measured range rather than extrapolating past the slowest task.
    """
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    return statistics.quantiles(data, n=100, method="inclusive")[pct - 1]
