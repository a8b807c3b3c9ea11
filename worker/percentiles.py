"""Percentiles of measured seconds: the one definition the smoke test, the local cluster's task accounting
and the simulator use, so their p95s are the same statistic."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def percentiles(values: Iterable[float], pcts: Sequence[int]) -> list[float] | None:
    """The `pcts`-th percentiles (each 1..99) of `values`, None for no values; one value is its own percentile.

    `inclusive` treats the values as the whole population (linear interpolation between the closest
    ranks), so p95 of a small run stays within its measured range rather than extrapolating past the
    slowest task.
    """
    data = sorted(values)
    if not data:
        return None
    if len(data) == 1:
        return [data[0]] * len(pcts)
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return [cuts[pct - 1] for pct in pcts]


def percentile(values: Iterable[float], pct: int) -> float | None:
    """The `pct`-th percentile (1..99) of `values`, None for no values."""
    found = percentiles(values, (pct,))
    return None if found is None else found[0]
