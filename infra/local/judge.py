"""The canary judges (infra.canary.rules) run on the local twin's own workers, as CloudWatch runs them on a
pool: the workers' JSON log lines counted per code version (what the pool's metric filters count), in
periods of model time, and each judge in breach when each of its last `periods` closed periods is.

Each line's `timestamp` (UTC, worker.runtime.logs) is turned into model time, so at `--speed S` a judge's
one-minute period lasts 60/S wall seconds, as every other duration of the twin does. A worker that exits
on its own counts as one `unhealthy` line of its version: on AWS its instance marks itself unhealthy
(worker.instance.state), which no local process does.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from infra.canary.rules import LOG_METRICS, UNHEALTHY, Judge


@dataclass
class LogCounts:
    """The counted log lines so far: (model second, version, LogMetric key), read incrementally."""

    model_time: Callable[[float], float]
    """Epoch seconds -> model seconds."""
    seen: list[tuple[float, str, str]] = field(default_factory=list)
    _offsets: dict[Path, int] = field(default_factory=dict)

    def read(self, logs: Iterable[Path]) -> None:
        """The whole lines written to each log since the last read."""
        for path in logs:
            try:
                with path.open("rb") as handle:
                    handle.seek(self._offsets.get(path, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            whole = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next read
            self._offsets[path] = self._offsets.get(path, 0) + len(whole)
            for raw in whole.splitlines():
                self._count(raw)

    def _count(self, raw: bytes) -> None:
        try:
            line = json.loads(raw)
            at = self.model_time(datetime.fromisoformat(line["timestamp"]).timestamp())
        except (ValueError, KeyError, TypeError):
            return  # not a structured line (the start script's own output)
        if not isinstance(line, dict):
            return
        for metric in LOG_METRICS:
            if metric.matches(line):
                self.seen.append((at, str(line.get("version", "")), metric.key))

    def unhealthy(self, at: float, version: str) -> None:
        self.seen.append((at, version, UNHEALTHY.key))

    def period(self, version: str, start: float, end: float) -> Counter[str]:
        return Counter(key for at, v, key in self.seen if v == version and start <= at < end)


@dataclass(frozen=True)
class Finding:
    judge: Judge
    name: str
    """The alarm's name: `<pool>-<suffix>`."""
    values: tuple[float | None, ...]
    """The judged periods' values, oldest first."""

    @property
    def in_alarm(self) -> bool:
        return len(self.values) == self.judge.periods and all(self.judge.breaches(v) for v in self.values)

    def line(self) -> str:
        shown = ", ".join("no data" if v is None else f"{v:.3g}" for v in self.values)
        unit = "%" if self.judge.share_label else ""
        return f"{self.name} ({shown}{unit}; threshold {self.judge.threshold:g}{unit})"


def judge(judge: Judge, name: str, counts: LogCounts, version: str, now: float) -> Finding:
    """The judge on `version`'s closed periods up to `now` (periods aligned to model time 0, as CloudWatch
    aligns them to the clock)."""
    closed = math.floor(now / judge.period)
    first = max(closed - judge.periods, 0)
    values = tuple(
        judge.value(counts.period(version, index * judge.period, (index + 1) * judge.period))
        for index in range(first, closed)
    )
    return Finding(judge, name, values)
