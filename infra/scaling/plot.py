"""The simulator's plot: arrivals, backlog, queue latency and instances over time, one line per policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display: CI and headless machines

import matplotlib.pyplot as plt
import numpy as np

from infra.scaling.simulator import SimulationResult

# Our policy (and a compared config) in strong colours; reference policies thinner and muted.
_STRONG = ("#0b5fa5", "#d1495b")
_MUTED = ("#8d8d8d", "#e0a458", "#6aa36f", "#9b72aa")


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or values.size < window:
        return values
    kernel = np.ones(window)
    # Divide by how many samples each window really covers, so the ends are not pulled towards zero.
    result: np.ndarray = np.convolve(values, kernel, mode="same") / np.convolve(
        np.ones_like(values), kernel, mode="same"
    )
    return result


def never_left_zero(result: SimulationResult) -> bool:
    """A policy that had no instance in service at any sample while tasks arrived."""
    return result.tasks > 0 and result.timeline.in_service.size > 0 and float(result.timeline.in_service.max()) == 0


def write_plot(
    results: Sequence[SimulationResult],
    path: Path,
    title: str,
    slo_seconds: float,
    highlighted: int = 1,
) -> Path:
    """Four stacked panels sharing the time axis. The first `highlighted` results are drawn bold."""
    if not results:
        raise ValueError("nothing to plot")
    path.parent.mkdir(parents=True, exist_ok=True)
    first = results[0].timeline
    span = float(first.t[-1]) if first.t.size else 1.0
    hours = span > 3 * 3600
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")

    fig, axes = plt.subplots(4, 1, figsize=(12, 11), sharex=True, constrained_layout=True)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    # Arrivals are the same trace for every policy; a moving mean reads better than 10 s counts.
    window, label = (60, "10 min mean") if hours else (6, "1 min mean")
    axes[0].plot(first.t / scale, _smooth(first.arrivals_per_second, window), color="#333333", linewidth=1.2)
    axes[0].set_ylabel(f"arrivals / s\n({label})")
    for index, result in enumerate(results):
        strong = index < highlighted
        palette, offset = (_STRONG, index) if strong else (_MUTED, index - highlighted)
        style: dict[str, Any] = {"color": palette[offset % len(palette)]}
        style.update({"linewidth": 2.0, "zorder": 3} if strong else {"linewidth": 1.1, "alpha": 0.9})
        _draw_result(axes, result, span, scale, unit, style)
    _label_axes(axes, slo_seconds, unit, span / scale)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_result(axes: Any, result: SimulationResult, span: float, scale: float, unit: str, style: Any) -> None:
    timeline = result.timeline
    keep = timeline.t <= span
    x = timeline.t[keep] / scale
    if never_left_zero(result):
        # Its queue only grows: drawn, it would flatten every other line. The legend says so instead.
        label = f"{result.policy}  never left 0 instances: backlog and latency not drawn (p95 {result.p95_wait:.0f} s)"
        axes[1].plot([], [], label=label, linestyle="--", **style)
        axes[3].step(x, timeline.in_service[keep], where="post", linestyle="--", **style)
        return
    label = f"{result.policy}  (p95 {result.p95_wait:.0f} s, {result.instance_hours:.1f} inst-h)"
    if timeline.t.size and timeline.t[-1] > span:
        label += f", tasks left waiting until {timeline.t[-1] / scale:.0f} {unit}: cut off"
    axes[1].plot(x, timeline.backlog[keep], label=label, **style)
    axes[2].plot(x, timeline.oldest_age[keep], **style)
    axes[3].step(x, timeline.in_service[keep], where="post", **style)


def _label_axes(axes: Any, slo_seconds: float, unit: str, x_max: float) -> None:
    axes[1].set_ylabel("backlog\n(waiting + in flight)")
    axes[1].legend(loc="upper right", fontsize=9, framealpha=0.9)
    axes[2].axhline(slo_seconds, color="#222222", linestyle="--", linewidth=1.2)
    axes[2].annotate(
        f"SLO: p95 wait <= {slo_seconds:.0f} s",
        xy=(0.005, slo_seconds),
        xycoords=("axes fraction", "data"),
        color="#222222",
        fontsize=9,
        va="bottom",
    )
    axes[2].set_ylabel("queue latency, s\n(oldest message)")
    axes[3].set_ylabel("instances\nin service")
    axes[3].set_xlabel(f"time, {unit}")
    axes[3].yaxis.get_major_locator().set_params(integer=True)
    for axis in axes:
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
        axis.margins(x=0)
        # The first (our) run sets the time axis: a reference that strands tasks does not stretch it.
        axis.set_xlim(0, x_max)
