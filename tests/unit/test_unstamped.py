"""Dating unstamped messages from first sight (worker.publisher.unstamped), on a model of a FIFO queue: every
estimate is at most one sample interval younger than the truth and never older."""

from __future__ import annotations

import random
from collections import deque

from worker.publisher.sightings import CounterSightings, ListSightings

INTERVAL = 10.0


def test_list_sightings_date_every_oldest_message_within_one_interval() -> None:
    rng = random.Random(7)
    sightings = ListSightings()
    queue: deque[tuple[bytes, float]] = deque()  # oldest first: (message, arrival)
    number = 0
    for sample in range(1, 400):
        now = sample * INTERVAL
        for _ in range(rng.choice([0, 0, 1, 3, 8])):  # arrivals since the last sample
            number += 1
            queue.append((f"m{number}".encode(), now - rng.uniform(0, INTERVAL)))
        for _ in range(min(len(queue), rng.choice([0, 1, 2, 5]))):  # consumed
            queue.popleft()
        newest = queue[-1][0] if queue else None
        sightings.observe("q", now, len(queue), newest, None)
        if not queue:
            continue
        oldest, arrived = queue[0]
        first = sightings.first_seen("q", oldest, lambda m: any(m == waiting for waiting, _ in queue))
        assert first is not None
        assert arrived <= first < arrived + INTERVAL, (sample, oldest, arrived, first)
    assert sightings.tracked("q") < 50, "consumed messages are forgotten"


def test_a_stamped_oldest_message_drops_older_sightings() -> None:
    sightings = ListSightings()
    sightings.observe("q", 10.0, 1, b"a", None)
    sightings.observe("q", 20.0, 2, b"b", None)
    sightings.observe("q", 30.0, 2, b"c", 15.0)  # the oldest now was stamped at 15: "a" is gone
    assert sightings.tracked("q") == 2
    sightings.observe("q", 40.0, 0, None, None)
    assert sightings.tracked("q") == 0


def test_counter_sightings_date_the_head_within_one_interval() -> None:
    rng = random.Random(11)
    sightings = CounterSightings()
    arrivals: list[float] = []  # arrival of message n at index n - 1
    consumed = 0
    for sample in range(1, 400):
        now = sample * INTERVAL
        for _ in range(rng.choice([0, 1, 4])):
            arrivals.append(now - rng.uniform(0, INTERVAL))
        consumed = min(len(arrivals), consumed + rng.choice([0, 1, 3]))
        ready = len(arrivals) - consumed
        first = sightings.first_seen("q", now, len(arrivals), ready)
        if ready == 0:
            assert first is None
            continue
        arrived = arrivals[consumed]
        assert first is not None
        assert arrived <= first < arrived + INTERVAL, (sample, arrived, first)


def test_counter_sightings_need_the_publish_counter() -> None:
    assert CounterSightings().first_seen("q", 10.0, None, 3) is None
