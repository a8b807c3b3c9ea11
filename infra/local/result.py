"""What a local twin run reports: its result next to the simulator's, and the parts the run loop derives it from."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from infra.local.accounting import FINAL_STATES, Tally
from infra.local.fleet import Failure, Fleet
from infra.local.upgrade import UpgradeVerdict
from infra.scaling.aws_model import GroupModel, PoolSample, ScalingEvent
from infra.scaling.simulator import PoolSpec, SimulationResult, summarise_run
from infra.scaling.traces import Trace

PERIODIC_PREFIX = "periodic:"
# Why a run stopped before its trace and its last tasks were done (`TwinResult.stopped`).
NO_WORKER_STARTS = "no worker could start"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TwinResult:
    local: SimulationResult
    simulated: SimulationResult
    tally: Tally
    speed: float
    wall_seconds: float
    late_boots: int
    problems: tuple[str, ...]
    producer_lag: float
    canaries_sent: int = 0
    canaries_returned: int = 0
    samples: tuple[PoolSample, ...] = ()
    """Every sample the model was fed, in order (replaying them through a fresh model must give `decisions`)."""
    decisions: tuple[ScalingEvent, ...] = ()
    """Every scaling event the model made."""
    launched: tuple[int, ...] = ()
    """Model instance ids the fleet started a worker process for (min size at the start, then each launch)."""
    drained: tuple[int, ...] = ()
    """Model instance ids whose worker process the fleet drained (SIGTERM) on a scale-in."""
    worst_sample_lag: float = 0.0
    """Most wall seconds a sample was read after its 10 s boundary (the queue as it was that much later)."""
    periodic: tuple[int, int] | None = None
    """With the schedulers (`--scheduler`): periodic runs journalled, and how many of them ran twice."""
    stopped: str | None = None
    """None when the run went to its end; else why it stopped early (NO_WORKER_STARTS, INTERRUPTED, a timeout)."""
    failures: tuple[Failure, ...] = ()
    """Worker processes that exited without being told to, with what their logs say."""
    upgrade: UpgradeVerdict | None = None
    """With `--upgrade-to`: the refresh's verdict (Successful, RolledBack or Failed) and the alarms that fired."""
    dead_letters: int = 0
    """Messages in the dead-letter queue when the run ended (a failed task run writes one)."""
    versions: tuple[tuple[str, int, int], ...] = ()
    """(version, task runs, failed runs) of the sent tasks, from the journal: which code ran what."""

    @property
    def ok(self) -> bool:
        return (
            self.stopped is None
            and self.tally.lost == 0
            and self.tally.sent == self.local.tasks
            and self.canaries_returned == self.canaries_sent
            and (self.periodic is None or self.periodic[1] == 0)
        )


def runs_by_version(entries: list[dict[str, str]], sent: frozenset[str]) -> tuple[tuple[str, int, int], ...]:
    """(version, runs, failed runs) of the sent tasks' final runs in the journal, by version."""
    runs: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for entry in entries:
        if entry["task_id"] in sent and entry.get("state") in FINAL_STATES:
            runs[entry.get("version", "")] += 1
            failed[entry.get("version", "")] += entry.get("state") == "FAILURE"
    return tuple((version, runs[version], failed[version]) for version in sorted(runs))


def periodic_runs(entries: list[dict[str, str]]) -> tuple[int, int]:
    """Periodic runs in the journal (task ids from worker.scheduler.periodic.run_id), and how many ran twice."""
    ids = [e["task_id"] for e in entries if e["task_id"].startswith(PERIODIC_PREFIX)]
    return len(set(ids)), len(ids) - len(set(ids))


def local_result(
    spec: PoolSpec,
    trace: Trace,
    model: GroupModel,
    fleet: Fleet,
    rows: list[tuple[float, float, float, float, float, float]],
    final: Tally,
    speed: float,
    end: float,
    peak: int,
) -> SimulationResult:
    hours = sum(
        ((i.exited_at if i.exited_at is not None else end) - max(i.launched_at, 0.0)) / 3600
        for i in fleet.instances.values()
    )
    return summarise_run(
        policy="local twin",
        spec=spec,
        trace=trace,
        model=model,
        waits=np.asarray(final.waits, dtype=np.float64) * speed,
        rows=rows,
        instance_hours=hours,
        peak=peak,
        simulated_seconds=end,
        wall_seconds=0.0,
    )
