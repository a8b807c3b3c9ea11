"""Rules of the canary refresh keys (`refresh*`): what StartInstanceRefresh accepts, and the rule
that spans keys: each checkpoint waits long enough for the canary alarms to judge the new code.

RefreshPreferences (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html):
CheckpointPercentages are "threshold values for each checkpoint in ascending order. Each number must
be unique. To replace all instances in the Auto Scaling group, the last number in the array must be
100"; CheckpointDelay is 0 to 172800 seconds (and "defaults to 3600" when only percentages are set).
"""

from __future__ import annotations

from typing import Final

from infra.config.errors import KeyRuleError

CHECKPOINT_DELAY_MAX: Final = 172800
# The longest window of an alarm in a pool's AlarmSpecification: the latency alarm's 5 one-minute
# periods (infra.components.pool_alarms); infra.canary.rules keeps its judges within it.
ALARM_WINDOW_SECONDS: Final = 300
# Named assumption: from a task's end to its alarm's evaluation. The CloudWatch agent sends log
# batches every 5 s (force_flush_interval), metric filters publish as the events arrive, and an
# alarm evaluates once a minute; two minutes covers it with room for a slow batch.
LOG_TO_ALARM_SECONDS: Final = 120
JUDGEMENT_SECONDS: Final = ALARM_WINDOW_SECONDS + LOG_TO_ALARM_SECONDS
"""The shortest checkpoint delay that lets every canary alarm see the canaries' first full window."""


def check_checkpoints(value: tuple[int, ...]) -> tuple[int, ...]:
    """refreshCheckpointPercentages: empty (straight through), or ascending, unique, 1-100, ending at 100."""
    if not value:
        return value
    if any(not 1 <= item <= 100 for item in value):
        raise ValueError(f"each percentage must be within 1..100 (got {list(value)})")
    if list(value) != sorted(set(value)):
        raise ValueError(f"must be ascending without repeats, as AWS requires (got {list(value)})")
    if value[-1] != 100:
        # A refresh whose last checkpoint is below 100 stops there and leaves old instances running.
        raise ValueError(f"must end at 100, or the refresh leaves part of the pool on the old code (got {list(value)})")
    return value


def check_judgement(percentages: tuple[int, ...], delay_seconds: int) -> None:
    """A checkpoint shorter than the alarms' judgement lets a bad version through before they can fire."""
    if percentages and delay_seconds < JUDGEMENT_SECONDS:
        raise KeyRuleError(
            "refreshCheckpointDelaySeconds",
            f"must be >= {JUDGEMENT_SECONDS} when refreshCheckpointPercentages is set: the canary alarms "
            f"judge {ALARM_WINDOW_SECONDS} s of the new code, plus {LOG_TO_ALARM_SECONDS} s for its logs to "
            f"reach them (got {delay_seconds})",
        )
