"""The local upgrade's rules, without processes: Auto Scaling's pacing of a refresh (the user guide's own
example), and the canary judges evaluated on counted log lines as CloudWatch evaluates their alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from infra.canary.rules import DEAD_LETTER_WINDOW, RATE_PERIODS, canary_judges
from infra.canary.steps import batch_size, needed_for, next_batch
from infra.config import load_stack_config
from infra.local.judge import LogCounts, judge

NEW, OLD = "2.0+new", "1.0+old"


def test_pacing_follows_the_user_guides_checkpoint_example() -> None:
    # asg-adding-checkpoints-instance-refresh.html: 10 instances, checkpoints [20, 50, 100], minimum healthy
    # 80 %: "only two instances can be replaced at a time".
    assert batch_size(10, 80) == 2
    assert [needed_for(p, 10) for p in (20, 50, 100)] == [2, 5, 10]
    # Towards 50 % with 4 new: one more, fewer than a batch ("sometimes replace fewer but never more").
    assert next_batch(4, 10, 50, 10, 80) == 1
    assert next_batch(5, 10, 50, 10, 80) == 0
    # 90 % of 2 rounds up to 2: one at a time, never none; 10 % of 2 is reached by one new instance.
    assert batch_size(2, 90) == 1
    assert next_batch(0, 2, 10, 2, 90) == 1
    assert next_batch(1, 2, 10, 2, 90) == 0


def _line(at: float, version: str, event: str, **fields: str) -> str:
    stamp = datetime.fromtimestamp(at, UTC).isoformat()
    return json.dumps({"event": event, "version": version, "timestamp": stamp, **fields}) + "\n"


def _counts(tmp_path: Path, lines: list[str]) -> LogCounts:
    log = tmp_path / "i-000.log"
    log.write_text("start-worker: not a JSON line\n" + "".join(lines))
    counts = LogCounts(lambda epoch: epoch)  # model time = epoch seconds from 0
    counts.read([log])
    return counts


def test_failures_judge_breaches_only_in_each_of_its_minutes(tmp_path: Path) -> None:
    (failures, *_) = canary_judges(load_stack_config("prod"), "default")
    assert (failures.suffix, failures.periods) == ("canary-failures", RATE_PERIODS)
    failed = [_line(60 * m + 5, NEW, "task.finished", outcome="failure") for m in (0, 1, 2, 4)]
    ok = [_line(60 * m + 9, OLD, "task.finished", outcome="failure") for m in range(6)]  # the old version's
    counts = _counts(tmp_path, failed + ok)
    assert judge(failures, "default-canary-failures", counts, NEW, 180).in_alarm  # minutes 0, 1, 2: 100 %
    # Minute 3 had no run of the new version: no data, which does not breach, so 1..3 and 3..5 do not alarm.
    assert not judge(failures, "x", counts, NEW, 240).in_alarm
    assert not judge(failures, "x", counts, NEW, 300).in_alarm
    assert judge(failures, "x", counts, NEW, 240).values == (100.0, 100.0, None)
    # The old version's own failures never count against the new one.
    assert not judge(failures, "x", counts, OLD + "x", 180).in_alarm


def test_dead_letter_judge_sums_its_five_minutes(tmp_path: Path) -> None:
    config = load_stack_config("prod")
    dead = next(j for j in canary_judges(config, "default") if j.suffix == "canary-dead-letters")
    assert dead.period == DEAD_LETTER_WINDOW
    letters = [_line(10 + i, NEW, "task.dead_lettered") for i in range(config.refresh_dead_letters)]
    counts = _counts(tmp_path, letters)
    assert not judge(dead, "x", counts, NEW, DEAD_LETTER_WINDOW - 1).in_alarm  # the period has not closed
    assert judge(dead, "x", counts, NEW, DEAD_LETTER_WINDOW).in_alarm
    counts = _counts(tmp_path, letters[1:])
    assert not judge(dead, "x", counts, NEW, DEAD_LETTER_WINDOW).in_alarm  # one short of the threshold


def test_a_worker_that_exits_counts_as_unhealthy_and_a_partial_line_waits(tmp_path: Path) -> None:
    unhealthy = next(j for j in canary_judges(load_stack_config("prod"), "default") if j.suffix == "canary-unhealthy")
    log = tmp_path / "i-001.log"
    log.write_text(_line(1, NEW, "task.finished", outcome="success")[:-10])  # still being written
    counts = LogCounts(lambda epoch: epoch)
    counts.read([log, tmp_path / "not-yet.log"])
    assert counts.seen == []
    counts.unhealthy(30, NEW)
    assert judge(unhealthy, "x", counts, NEW, 60).in_alarm
