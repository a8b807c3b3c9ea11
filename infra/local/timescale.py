"""Model time for the local cluster, and traces cut down to a window that fits a few minutes of wall time.

The scaling model counts in minutes (3 one-minute-equivalent datapoints to scale out, 15 to scale in, a
60 s boot), so the local cluster runs time-scaled: at speed S one model second lasts 1/S wall seconds.
Everything that has a duration is scaled by the same factor: arrival times, task run times (the
`cluster.sleep` argument), the 10 s sampling interval, the boot delay. Queue ages and waits measured
on the wall clock are multiplied by S to read as model seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final

from infra.scaling.traces import Trace, TraceError

# Minutes of each built-in trace that the local cluster replays by default (model time). The burst
# window keeps 5 minutes of base load, the whole 15-minute burst and 10 minutes after it, so the pool
# scales out and back in; at speed 10 it lasts 3 minutes of wall time.
DEFAULT_WINDOWS: Final[Mapping[str, tuple[float, float]]] = {
    "burst": (18.0, 40.0),
    "spike-to-zero": (3.0, 30.0),
    "steady": (0.0, 20.0),
    "heavy-tailed": (0.0, 20.0),
    "diurnal": (9 * 60.0, 9 * 60.0 + 30.0),
}


@dataclass
class ModelClock:
    """Wall clock -> model seconds, from `start()`."""

    speed: float
    _started: float | None = field(default=None, repr=False)
    _started_epoch: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")

    def start(self) -> None:
        self._started = time.monotonic()
        self._started_epoch = time.time()

    def at_epoch(self, epoch: float) -> float:
        """Model seconds at a Unix time (a log line's timestamp)."""
        return (epoch - self._started_epoch) * self.speed

    def now(self) -> float:
        """Model seconds since start()."""
        if self._started is None:
            return 0.0
        return (time.monotonic() - self._started) * self.speed

    def wall(self, model_seconds: float) -> float:
        """Wall seconds that `model_seconds` of model time take."""
        return model_seconds / self.speed

    def wall_at(self, model_at: float) -> float:
        """The monotonic wall time at which model time reaches `model_at`."""
        assert self._started is not None, "clock not started"
        return self._started + model_at / self.speed


def parse_window(text: str) -> tuple[float, float]:
    """`START:END` in minutes of the trace, e.g. `15:45`."""
    try:
        start_text, end_text = text.split(":")
        start, end = float(start_text), float(end_text)
    except ValueError:
        raise TraceError(f"--window must be START:END in minutes (e.g. 15:45), got {text!r}") from None
    if not 0 <= start < end:
        raise TraceError(f"--window {text!r}: need 0 <= START < END")
    return start, end


def window(trace: Trace, start_minutes: float, end_minutes: float) -> Trace:
    """The tasks that arrive in [start, end) minutes, shifted to start at 0."""
    start, end = start_minutes * 60, min(end_minutes * 60, trace.duration)
    if start >= trace.duration:
        raise TraceError(f"trace {trace.name} lasts {trace.duration / 60:.0f} min; window starts at {start_minutes:g}")
    keep = (trace.arrivals >= start) & (trace.arrivals < end)
    burst = None
    if trace.burst_start is not None and start <= trace.burst_start < end:
        burst = trace.burst_start - start
    return replace(
        trace,
        arrivals=trace.arrivals[keep] - start,
        task_seconds=trace.task_seconds[keep],
        duration=end - start,
        burst_start=burst,
        description=f"{trace.description}; minutes {start_minutes:g}-{end / 60:g} only",
    )
