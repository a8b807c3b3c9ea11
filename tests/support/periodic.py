"""Counting a periodic entry's runs in the execution journal (the scheduler tests, both brokers).

Each run's task id names its entry and slot (`worker.scheduler.periodic.run_id`), so a run sent twice shows
as one slot journalled twice, and a run never sent as a hole in the slots.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from tests.support.cluster import Cluster
from worker.scheduler.periodic import run_id

ENTRY = "every-second"


def run_prefix(entry: str) -> str:
    return run_id(entry, 0.0).split("@")[0] + "@"


def slot_of(task_id: str) -> float:
    return float(task_id.rsplit("@", 1)[1])


def executions(cluster: Cluster, entry: str = ENTRY) -> list[dict[str, str]]:
    """Every journal entry of the entry's runs on this cluster's queue (the journal is shared by every
    test of the session), in slot order, duplicates kept."""
    prefix = run_prefix(entry)
    found = [i for i in cluster.journal() if i["task_id"].startswith(prefix) and i["queue"] == cluster.queue]
    return sorted(found, key=lambda item: slot_of(item["task_id"]))


def runs(cluster: Cluster, entry: str = ENTRY) -> list[tuple[float, float]]:
    """(slot, published_at) of every journalled run of the entry, in slot order, duplicates kept."""
    return [(slot_of(i["task_id"]), float(i["published_at"])) for i in executions(cluster, entry)]


def wait_runs(
    cluster: Cluster, until: float, timeout: float, describe: Callable[[], str], entry: str = ENTRY
) -> list[tuple[float, float]]:
    """Until a run of a slot at or after `until` is journalled; returns the runs (as `runs`) seen then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = runs(cluster, entry)
        if found and found[-1][0] >= until:
            return found
        time.sleep(0.25)
    raise AssertionError(f"no run of slot >= {until:.0f} within {timeout:.0f} s\n{describe()}\n{cluster.log_tail()}")


def wait_span(cluster: Cluster, seconds: float, timeout: float, describe: Callable[[], str]) -> None:
    """Until the journalled runs span `seconds` of slots, counted from the first run rather than from
    the test's clock: a scheduler that takes 20 s to start on a loaded machine still gets its window."""
    first_slot = wait_runs(cluster, 0.0, timeout=timeout, describe=describe)[0][0]
    wait_runs(cluster, first_slot + seconds, timeout=seconds + timeout, describe=describe)


def check_runs(found: list[tuple[float, float]], killed_at: float, lease: float) -> float:
    """Each slot once, every slot but the ones folded at the takeover, the takeover within two lease
    periods of the holder's death; returns the seconds from the kill to the successor's first send."""
    slots = [slot for slot, _ in found]
    before = {slot for slot, published in found if published <= killed_at}
    assert len(slots) == len(set(slots)), f"a run was sent twice: {sorted(s for s in slots if slots.count(s) > 1)}"
    # Slots that fell due while nobody held the lease (older than a lease period when the successor
    # took over) are folded into one run by catch_up "once": at most one hole, where the holder died.
    holes = [(a, b) for a, b in itertools.pairwise(slots) if b - a > 1]
    assert len(holes) <= 1, f"slots missing away from the takeover: {holes}"
    for a, b in holes:
        assert a in before, f"hole {a}..{b} is not at the takeover"
        assert b not in before, f"hole {a}..{b} is not at the takeover"
    first_after = min(published for slot, published in found if published > killed_at)
    takeover = first_after - killed_at
    assert takeover <= 2 * lease, f"the successor sent {takeover:.1f} s after the holder died, over two lease periods"
    return takeover
