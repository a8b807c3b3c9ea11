"""Count every task: what was sent against what the execution journal says ran."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis

from worker.percentiles import percentile
from worker.runtime.journal import read_after

FINAL_STATES = frozenset({"SUCCESS", "FAILURE"})


@dataclass(frozen=True)
class Tally:
    sent: int
    completed: int  # distinct sent ids that reached a final state at least once
    lost: int  # sent ids never completed
    duplicates: int  # extra final executions of an id beyond its first
    waits: tuple[float, ...]  # seconds from publish to start, first execution of each id

    @property
    def p50_wait(self) -> float | None:
        return percentile(self.waits, 50)

    @property
    def p95_wait(self) -> float | None:
        return percentile(self.waits, 95)


def tally(sent_ids: Iterable[str], journal: Iterable[Mapping[str, str]]) -> Tally:
    sent = set(sent_ids)
    runs: Counter[str] = Counter()
    waits: dict[str, float] = {}
    for entry in journal:
        task_id = entry["task_id"]
        if task_id not in sent or entry.get("state") not in FINAL_STATES:
            continue
        runs[task_id] += 1
        if task_id not in waits and entry.get("published_at") and entry.get("started_at"):
            waits[task_id] = max(0.0, float(entry["started_at"]) - float(entry["published_at"]))
    completed = len(runs)
    return Tally(
        sent=len(sent),
        completed=completed,
        lost=len(sent) - completed,
        duplicates=sum(count - 1 for count in runs.values()),
        waits=tuple(waits.values()),
    )


@dataclass
class JournalTracker:
    """Reads the execution journal incrementally (exclusive XRANGE from the last id seen)."""

    client: redis.Redis
    entries: list[dict[str, str]] = field(default_factory=list)
    _last: str | None = None

    def update(self) -> None:
        fresh, self._last = read_after(self.client, self._last)
        self.entries.extend(fresh)

    def tally(self, sent: list[str]) -> Tally:
        return tally(sent, self.entries)
