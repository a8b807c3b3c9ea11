"""Schedules as code: every bad entry is refused with one line naming it; slots fall where cron says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.scheduler.periodic import Periodic, ScheduleError, Slots, check_entries, resolve_queue, run_id
from worker.scheduler.schedule import ENTRIES

TASKS = {"cluster.ping", "cluster.sleep", "cluster.canary", "cluster.fan_out", "reports.build"}


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_project_schedule_passes_with_the_registered_tasks() -> None:
    assert check_entries(ENTRIES, tasks=TASKS, consumed_queues={"default"}) == list(ENTRIES)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([Periodic("a", "cluster.pnig", 60)], "periodic entry 'a': task 'cluster.pnig' is not registered"),
        ([Periodic("a", "cluster.ping", 0.5)], "periodic entry 'a': interval 0.5 s is under 1 s"),
        ([Periodic("a", "cluster.ping", "61 * * * *")], "periodic entry 'a': crontab '61 * * * *' does not parse"),
        ([Periodic("a", "cluster.ping", "* * *")], "periodic entry 'a': crontab '* * *' must have 5 fields"),
        (
            [Periodic("a", "cluster.ping", 60), Periodic("a", "cluster.sleep", 60)],
            "periodic entry 'a': declared twice",
        ),
        (
            [Periodic("a", "cluster.ping", 60, queue="nobody")],
            "periodic entry 'a': its runs go to queue 'nobody', which no pool consumes",
        ),
        (
            [Periodic("a", "cluster.ping", "*/15 * * * *", expect_tasks=10, lead_seconds=900)],
            "periodic entry 'a': lead_seconds 900 is not shorter than the gap between runs (900 s)",
        ),
        (
            [Periodic("a", "cluster.ping", 600, expect_tasks=10)],
            "periodic entry 'a': expect_tasks/capacity needs lead_seconds",
        ),
        (
            [Periodic("a", "cluster.ping", 600, expect_tasks=10, capacity=2, lead_seconds=60)],
            "periodic entry 'a': set expect_tasks or capacity, not both",
        ),
        ([Periodic("A b", "cluster.ping", 60)], "periodic entry 'A b': name must be lowercase"),
        ([Periodic("a", "cluster.ping", 60, catch_up="all")], "periodic entry 'a': catch_up must be one of once, skip"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_entry_is_one_line_naming_it(entries: list[Periodic], message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        check_entries(entries, tasks=TASKS, consumed_queues={"default"})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_routes_decide_the_queue_when_the_entry_names_none() -> None:
    entry = Periodic("a", "reports.build", 60)
    assert resolve_queue(entry, {"reports.*": "reports"}, "default") == "reports"
    assert resolve_queue(entry, {}, "default") == "default"
    with pytest.raises(ScheduleError, match="queue 'reports', which no pool consumes"):
        check_entries([entry], routes={"reports.*": "reports"}, consumed_queues={"default"})


def test_interval_slots_are_multiples_of_the_interval() -> None:
    slots = Slots.of(Periodic("a", "t", 900))
    t = _epoch("2026-03-01T10:07:00")
    assert slots.next_after(t) == _epoch("2026-03-01T10:15:00")
    assert slots.latest_at_or_before(t) == _epoch("2026-03-01T10:00:00")
    assert slots.next_after(_epoch("2026-03-01T10:15:00")) == _epoch("2026-03-01T10:30:00")


def test_crontab_slots_follow_celery_field_order_and_sunday_zero() -> None:
    # 02:30 on Sundays (day of week 0): 2026-03-01 is a Sunday.
    slots = Slots.of(Periodic("a", "t", "30 2 * * 0"))
    assert slots.next_after(_epoch("2026-02-27T12:00:00")) == _epoch("2026-03-01T02:30:00")
    assert slots.next_after(_epoch("2026-03-01T02:30:00")) == _epoch("2026-03-08T02:30:00")
    assert slots.latest_at_or_before(_epoch("2026-03-04T00:00:00")) == _epoch("2026-03-01T02:30:00")
    assert Slots.of(Periodic("b", "t", "*/15 * * * *")).shortest_gap() == 900
    assert Slots.of(Periodic("c", "t", "0 9,17 * * *")).shortest_gap() == 8 * 3600


def test_run_ids_name_the_entry_and_slot() -> None:
    assert run_id("nightly", 1.5) == "periodic:nightly@1.500"
