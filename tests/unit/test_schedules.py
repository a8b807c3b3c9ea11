"""Scheduled capacity: cron and rate parsing, the end action's cron, the windows the model replays, and
the config shape (`pools.<name>.schedules`) with its errors named by key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.cli.offline_render import render_config
from infra.config import ConfigError, merged_raw, parse_config, read_stack_file
from infra.scaling.schedules import Cron, Schedule, ScheduleError, end_cron, min_size_at, rate_to_cron


@pytest.mark.parametrize(
    ("rate", "cron"),
    [("15 minutes", "*/15 * * * *"), ("1 minute", "* * * * *"), ("1 hour", "0 * * * *"), ("6 hours", "0 */6 * * *")],
)
def test_rates_become_the_cron_that_fires_at_the_same_times(rate: str, cron: str) -> None:
    assert rate_to_cron(rate) == cron


@pytest.mark.parametrize("rate", ["7 minutes", "90 minutes", "5 hours", "every 5 minutes", "0 minutes"])
def test_a_rate_without_a_cron_equivalent_is_refused(rate: str) -> None:
    with pytest.raises(ScheduleError, match="rate"):
        rate_to_cron(rate)


@pytest.mark.parametrize(
    ("cron", "seconds", "end"),
    [
        ("*/15 * * * *", 300, "5,20,35,50 * * * *"),
        ("0 9 * * 1-5", 7200, "0 11 * * 1-5"),
        ("50 23 * * *", 1200, "10 0 * * *"),
        ("0 */6 * * *", 90, "2 0,6,12,18 * * *"),
    ],
)
def test_the_end_action_fires_duration_after_each_start(cron: str, seconds: int, end: str) -> None:
    assert end_cron(Cron.parse(cron), seconds) == end


def test_an_end_past_midnight_on_a_restricted_day_is_refused() -> None:
    with pytest.raises(ScheduleError, match="midnight"):
        end_cron(Cron.parse("30 23 * * 1-5"), 3600)


@pytest.mark.parametrize("cron", ["* * * *", "61 * * * *", "a * * * *", "*/0 * * * *"])
def test_bad_cron_is_refused_by_name(cron: str) -> None:
    with pytest.raises(ScheduleError, match="cron"):
        Cron.parse(cron)


def test_windows_and_min_size_follow_the_schedule() -> None:
    schedule = Schedule("fan-out", Cron.parse("*/15 * * * *"), capacity=6, duration_seconds=300)
    windows = schedule.windows(start_weekday=1, horizon=3600)
    assert windows == [(0.0, 300.0), (900.0, 1200.0), (1800.0, 2100.0), (2700.0, 3000.0)]
    assert min_size_at((schedule,), 1, 100) == 6
    assert min_size_at((schedule,), 1, 400) == 1


def test_weekday_schedules_skip_the_weekend() -> None:
    schedule = Schedule("office", Cron.parse("0 9 * * 1-5"), capacity=4, duration_seconds=3600)
    # The run starts on a Saturday (6): the first window is Monday 09:00, two days later.
    windows = schedule.windows(start_weekday=6, horizon=3 * 86400)
    assert windows == [(2 * 86400 + 9 * 3600.0, 2 * 86400 + 10 * 3600.0)]


def _stack(schedules: list[dict[str, Any]]) -> dict[str, Any]:
    raw = merged_raw(read_stack_file("dev"))
    pool = {"queues": ["default"], "instanceTypes": ["m7g.large"], "architecture": "arm64", "maxSize": 10}
    raw["pools"] = {"default": {**pool, "schedules": schedules}}
    return raw


def test_config_reads_schedules_by_cron_or_rate() -> None:
    config = parse_config(
        "dev",
        _stack(
            [
                {"name": "fan-out", "rate": "15 minutes", "capacity": 6, "durationSeconds": 300},
                {"name": "office", "cron": "0 9 * * 1-5", "capacity": 2, "durationSeconds": 3600},
            ]
        ),
    )
    first, second = config.pools["default"].schedules
    assert first.cron_expression == "*/15 * * * *"
    assert first.schedule.capacity == 6
    assert second.schedule.cron.times_of_day() == [9 * 60]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"name": "x", "capacity": 1, "durationSeconds": 60}, "pools.default.schedules.0.cron: set exactly one"),
        (
            {"name": "x", "rate": "7 minutes", "capacity": 1, "durationSeconds": 60},
            "pools.default.schedules.0.rate: rate '7 minutes' has no cron equivalent",
        ),
        (
            {"name": "x", "cron": "0 9 * * *", "capacity": 11, "durationSeconds": 60},
            "pools.default.schedules.0.capacity: must be <= maxSize (10)",
        ),
        ({"name": "x", "cron": "0 9 * * *", "capacity": 1, "durationSeconds": 30}, "durationSeconds"),
    ],
)
def test_bad_schedules_are_refused_by_key(item: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match="schedules") as caught:
        parse_config("dev", _stack([item]))
    assert fragment in str(caught.value)


def test_each_schedule_renders_a_start_and_an_end_action_changing_only_min_size() -> None:
    values = read_stack_file("dev")
    pools = copy.deepcopy(values["pools"])
    name = next(iter(pools))
    pools[name]["schedules"] = [{"name": "fan-out", "rate": "15 minutes", "capacity": 1, "durationSeconds": 300}]
    values = {**values, "pools": pools}
    config = parse_config("dev", merged_raw(values))
    actions = {r.name: r.inputs for r in render_config(config, values).of_type("aws:autoscaling/schedule:Schedule")}
    start, end = actions[f"pool-{name}-fan-out-start"], actions[f"pool-{name}-fan-out-end"]
    assert (start["recurrence"], start["minSize"]) == ("*/15 * * * *", 1)
    assert (end["recurrence"], end["minSize"]) == ("5,20,35,50 * * * *", config.pools[name].min_size)
    for action in (start, end):
        # -1 is the provider's "leave unchanged"; its default 0 would empty the group.
        assert (action["maxSize"], action["desiredCapacity"]) == (-1, -1)
        assert action["scheduledActionName"].startswith(f"{name}-fan-out-")
