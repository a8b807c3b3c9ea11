"""A dead-letter replay never loses a letter, whenever it is killed, and `replay --all` replays each letter
once, on Redis and on RabbitMQ.

`python -m worker.deadletter replay --all` runs as an operator runs it (a process of its own) and is
SIGKILLed at random moments while it replays; after each kill every letter's task must still be in the
dead-letter queue or back in its source queue, read straight off the broker (tests/support/letter_census.py).
Then the replays run to the end and a worker runs every task: each one executes (the journal), none is
lost; a task that runs twice is a kill between its publish and its letter's delete (allowed: duplicates,
never losses).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from typing import IO

from tests.support.brokers import Broker
from tests.support.cluster import Cluster
from tests.support.fixtures import ClusterFactory
from tests.support.letter_census import add_letters, census

LETTERS = 200
KILLS = 50
# A kill lands this long at most after the replay printed its first letter: a few letters' worth (about
# 3 ms each on Redis here, more on RabbitMQ with publisher confirms), so kills fall on every step of a
# letter's replay (read, publish, delete), and the queue lasts for many kills.
KILL_WINDOW_S = 0.02
# A new batch of letters is added when the queue holds fewer than this.
REFILL_BELOW = 10
# Generous: the replay starts a Python with Celery (seconds on a loaded machine).
START_TIMEOUT_S = 120.0


def _replay(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",  # each "replayed" line as it happens
        "CELERY_BROKER_URL": cluster.broker.url,
        "CELERY_DEAD_LETTER_QUEUE": cluster.dead_letter_queue,
        "CELERY_DEFAULT_QUEUE": cluster.queue,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "worker.deadletter", "replay", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def _first_replayed(out: IO[str]) -> bool:
    """Blocks until the replay printed its first replayed letter (True) or ended without one (False)."""
    return any(line.startswith("replayed ") and " to " in line for line in iter(out.readline, ""))


def _kill_mid_replay(cluster: Cluster, rng: random.Random) -> bool:
    """One replay, SIGKILLed at a random moment after its first letter; False when it ended first."""
    process = _replay(cluster, "--all")
    assert process.stdout is not None
    started = time.monotonic()
    try:
        if not _first_replayed(process.stdout):
            return False
        time.sleep(rng.uniform(0, KILL_WINDOW_S))
        if process.poll() is not None:
            return False
        os.kill(process.pid, signal.SIGKILL)
        return True
    finally:
        process.stdout.close()
        process.wait(max(1.0, START_TIMEOUT_S - (time.monotonic() - started)))


def test_killed_replays_lose_no_letter(broker: Broker, cluster_factory: ClusterFactory) -> None:
    cluster = cluster_factory(broker)
    rng = random.Random()
    ids = add_letters(cluster, "cluster.canary", ["kill"], LETTERS)
    kills, runs, lost, hidden = 0, 0, set(), 0
    while kills < KILLS:
        runs += 1
        kills += _kill_mid_replay(cluster, rng)
        found = census(cluster, ids)
        lost |= set(found.lost(ids))
        hidden = sum(found.hidden[i] for i in ids)
        if sum(found.letters[i] for i in ids) < REFILL_BELOW:
            ids += add_letters(cluster, "cluster.canary", ["kill"], LETTERS)
    before = census(cluster, ids)
    summary = (
        f"{broker.kind}: {kills} kills in {runs} replays over {len(ids)} letters: lost {len(lost)}, "
        f"hidden in kombu's unacked hash {hidden}, copies {before.copies(ids)}"
    )
    assert not lost, f"{summary}: {sorted(lost)[:5]}"
    assert hidden == 0, summary

    # The rest replayed to the end, then every task runs: none lost, a duplicate per kill at most.
    while sum(census(cluster, ids).letters[i] for i in ids):
        finished = _replay(cluster, "--all")
        assert finished.wait(START_TIMEOUT_S) == 0
    cluster.start_worker()
    result = cluster.wait_all(ids, timeout=300)
    print(f"{summary}; executed {result.completed} of {result.sent}, ran twice {result.duplicates}")
    assert result.lost == 0, f"{summary}; {result}\n{cluster.log_tail()}"
    assert result.duplicates <= kills, result


def test_replay_all_replays_each_letter_once_while_a_worker_writes_them_back(
    broker: Broker, cluster_factory: ClusterFactory
) -> None:
    """Letters of a task that still fails: each replayed task fails again on the live worker and comes back
    as a new letter while the replay runs. The replay sends each letter it found once and stops."""
    cluster = cluster_factory(broker)
    cluster.start_worker()
    count = 50
    # `cluster.sleep` refuses a negative time: it fails each run and is dead-lettered again.
    ids = add_letters(cluster, "cluster.sleep", [-1], count)
    process = _replay(cluster, "--all")
    out, _ = process.communicate(timeout=START_TIMEOUT_S)
    assert process.returncode == 0, out
    replayed = [line for line in out.splitlines() if line.startswith("replayed ") and " to " in line]
    assert out.splitlines()[-1] == f"replayed {count} dead letter(s)", out[-500:]
    assert len(replayed) == count

    # Each ran once more (the journal) and is a letter again, once.
    deadline = time.monotonic() + 120
    while len(runs := [e for e in cluster.journal() if e["task_id"] in set(ids)]) < count:
        assert time.monotonic() < deadline, f"{len(runs)} of {count} ran\n{cluster.log_tail()}"
        time.sleep(0.2)
    cluster.wait_quiet(120)
    found = census(cluster, ids)
    print(f"{broker.kind}: replay --all over {count} letters replayed {len(replayed)}, ran {len(runs)}")
    assert sorted(e["task_id"] for e in cluster.journal() if e["task_id"] in set(ids)) == sorted(ids)
    assert [found.letters[i] for i in ids] == [1] * count, found
