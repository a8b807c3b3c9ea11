"""What judges a pool's new code while an instance refresh rolls it out: the counted log lines, the
judges (one canary alarm each), and the refresh preferences that name them. Pure data and functions.

1. The workers' own log lines (worker.names EVENT_*) are counted per code version: every line carries the
   process's `version` and `pool` (worker.runtime.logs). On AWS a metric filter per `LogMetric` publishes
   those fields as the `Version` and `Pool` dimensions (infra.components.canary); the local twin counts the
   same lines in its workers' logs (infra.local.judge).
2. Judges on the *new* version's counts alone, so the old instances that still serve most of the pool
   during a canary cannot dilute its failures. A judge breaches when its value is at or over its
   threshold in each of `periods` consecutive periods, and a period without data does not breach (no
   run of the new version is no evidence against it). infra.components.canary renders each as a
   CloudWatch alarm of exactly that shape; infra.local.judge evaluates them.
3. The refresh preferences (StartInstanceRefresh `Preferences`) with the configured checkpoints and
   AutoRollback, naming the judges' alarms in an AlarmSpecification.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from infra.config import PoolConfig, StackConfig
from worker.names import (
    EVENT_DEAD_LETTERED,
    EVENT_TASK_FINISHED,
    EVENT_UNHEALTHY,
    METRIC_DEAD_LETTERS,
    METRIC_TASK_FAILURES,
    METRIC_TASK_RETRIES,
    METRIC_TASKS_FINISHED,
    METRIC_UNKNOWN_TASK_LETTERS,
    METRIC_WORKERS_UNHEALTHY,
)
from worker.runtime.dead_letters import REASON_UNKNOWN_TASK

MINUTE: Final = 60
# Failure and retry shares are judged minute by minute, in each of 3 consecutive minutes (the shared
# alarm shape: datapoints = periods), so one unlucky minute never rolls a deploy back.
RATE_PERIODS: Final = 3
DEAD_LETTER_WINDOW: Final = 5 * MINUTE
# AlarmSpecification: "You can specify up to 10 alarms."
# https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AlarmSpecification.html
MAX_REFRESH_ALARMS: Final = 10


@dataclass(frozen=True)
class LogMetric:
    """Log lines whose `event` (and other fields) match, counted as 1 each."""

    key: str
    """The filter's resource name in the pool (metric and dimension set)."""
    metric: str
    event: str
    fields: Mapping[str, str] = field(default_factory=dict)
    """Further fields the line must hold, e.g. {"outcome": "failure"}."""
    dimensions: Sequence[str] = ("pool", "version")
    """Log fields published as dimensions (Pool, Version)."""

    @property
    def pattern(self) -> str:
        """The filter pattern, in CloudWatch Logs' JSON syntax: `{ $.event = "x" && $.f = "y" }`."""
        terms = [f'$.event = "{self.event}"', *(f'$.{key} = "{value}"' for key, value in self.fields.items())]
        return "{ " + " && ".join(terms) + " }"

    def matches(self, line: Mapping[str, Any]) -> bool:
        """Whether a decoded JSON log line is one this metric counts (what `pattern` selects)."""
        return line.get("event") == self.event and all(line.get(k) == v for k, v in self.fields.items())


UNKNOWN_TASK: Final = {"reason": REASON_UNKNOWN_TASK}
FINISHED: Final = LogMetric("finished", METRIC_TASKS_FINISHED, EVENT_TASK_FINISHED)
FAILURES: Final = LogMetric("failures", METRIC_TASK_FAILURES, EVENT_TASK_FINISHED, {"outcome": "failure"})
RETRIES: Final = LogMetric("retries", METRIC_TASK_RETRIES, EVENT_TASK_FINISHED, {"outcome": "retry"})
DEAD_LETTERS: Final = LogMetric("dead-letters", METRIC_DEAD_LETTERS, EVENT_DEAD_LETTERED)
# Version skew: a task name no worker knows. Per version (the new workers forgot a name that is still
# sent: the canary judges it) and per pool alone (on-call's alarm counts every such letter, whichever
# version wrote it; an alarm cannot add up the values of a dimension).
UNKNOWN_TASKS: Final = LogMetric("unknown-tasks", METRIC_UNKNOWN_TASK_LETTERS, EVENT_DEAD_LETTERED, UNKNOWN_TASK)
UNHEALTHY: Final = LogMetric("unhealthy", METRIC_WORKERS_UNHEALTHY, EVENT_UNHEALTHY)
LOG_METRICS: Final = (
    FINISHED,
    FAILURES,
    RETRIES,
    DEAD_LETTERS,
    UNKNOWN_TASKS,
    LogMetric("unknown-tasks-pool", METRIC_UNKNOWN_TASK_LETTERS, EVENT_DEAD_LETTERED, UNKNOWN_TASK, ("pool",)),
    UNHEALTHY,
)
"""Log events are the worker's (worker.names). The `task.retry` line is not counted: the run that
retried also ends with a `task.finished` line whose outcome is `retry`."""


@dataclass(frozen=True)
class Judge:
    """One canary alarm as a rule over the new version's counts (the module docstring says how it breaches)."""

    suffix: str
    """The alarm's name after the pool's: `<pool>-<suffix>`."""
    counted: LogMetric
    threshold: float
    periods: int
    description: str
    period: int = MINUTE
    """Seconds per period."""
    share_label: str | None = None
    """When set, the value is `counted` as a percent of the version's task runs (FINISHED) in the period,
    and the label names that percentage; otherwise it is the sum of `counted`."""

    def value(self, counts: Mapping[str, int]) -> float | None:
        """The judge's value for one period from that period's counts by LogMetric key; None = no data."""
        part = counts.get(self.counted.key, 0)
        if self.share_label is None:
            return float(part) if part else None  # a filter without matching lines publishes nothing
        runs = counts.get(FINISHED.key, 0)
        return 100 * part / runs if runs else None  # FILL(part, 0) / runs: no runs, no datapoint

    def breaches(self, value: float | None) -> bool:
        return value is not None and value >= self.threshold


# long function: the judges of a version, as one table, an entry each
def canary_judges(config: StackConfig, name: str) -> list[Judge]:
    """The judges of pool `name`'s new version, as its canary alarms (infra.components.canary) render them."""
    return [
        Judge(
            "canary-failures",
            FAILURES,
            config.refresh_failure_percent,
            RATE_PERIODS,
            f"Pool {name}: the version being deployed failed {config.refresh_failure_percent}% or more "
            f"of its task runs in each of {RATE_PERIODS} minutes; a canary refresh rolls it back",
            share_label="Failed runs, % (new version)",
        ),
        Judge(
            "canary-retries",
            RETRIES,
            config.refresh_retry_percent,
            RATE_PERIODS,
            f"Pool {name}: {config.refresh_retry_percent}% or more of the new version's task runs "
            f"ended in a retry in each of {RATE_PERIODS} minutes",
            share_label="Retried runs, % (new version)",
        ),
        Judge(
            "canary-dead-letters",
            DEAD_LETTERS,
            config.refresh_dead_letters,
            1,
            f"Pool {name}: the new version's workers wrote {config.refresh_dead_letters} dead letters "
            f"or more in {DEAD_LETTER_WINDOW // MINUTE} minutes (python -m worker.deadletter lists them)",
            period=DEAD_LETTER_WINDOW,
        ),
        Judge(
            "canary-unhealthy",
            UNHEALTHY,
            1,
            1,
            f"Pool {name}: an instance of the new version marked itself unhealthy (its worker cannot "
            "start, or died for good); its worker.log says why",
        ),
        Judge(
            "canary-unknown-tasks",
            UNKNOWN_TASKS,
            1,
            1,
            f"Pool {name}: the new version's workers do not know a task name that is still sent "
            "(a task removed or renamed without an alias: docs/worker.md, 'Renaming a task')",
        ),
    ]


def refresh_preferences(config: StackConfig, pool: PoolConfig, alarm_names: Sequence[str]) -> dict[str, Any]:
    """StartInstanceRefresh `Preferences` for one pool, as the API spells them (the deploy step passes
    them through). Each key: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html"""
    """StartInstanceRefresh `Preferences` for one pool, as the API spells them (the deploy step passes
    them through). Each key: https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html"""
    preferences: dict[str, Any] = {
        # Keep 90% of the pool in service while instances are replaced (AWS's default, stated).
        "MinHealthyPercentage": 90,
        # A new instance counts as ready once booted and its worker started (the pool's warm-up).
        "InstanceWarmup": pool.instance_warmup_seconds,
        # Instances already on the new configuration are left alone (a re-run after a partial refresh).
        "SkipMatching": True,
        # Busy instances protect themselves (worker.drain.protection); the refresh still replaces them,
        # through the drain hook that waits for their tasks. The default (Wait) waits an hour, then fails.
        "ScaleInProtectedInstances": "Refresh",
        # "roll back the Auto Scaling group to its previous configuration if the instance refresh fails
        # or a CloudWatch alarm threshold is met": the instances replaced so far are replaced again
        # with the launch template version the group had before the refresh (the refresh's desired
        # configuration is only saved on the group when it succeeds).
        # https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-rollback.html
        "AutoRollback": config.refresh_auto_rollback,
        # "CloudWatch alarms can be used to identify any issues and fail the operation if an alarm
        # threshold is met": any of these in ALARM fails the refresh (and so rolls it back).
        "AlarmSpecification": {"Alarms": list(alarm_names)},
    }
    if config.refresh_checkpoint_percentages:
        # The canary: replace the first share, wait CheckpointDelay while the alarms judge it, go on.
        preferences["CheckpointPercentages"] = list(config.refresh_checkpoint_percentages)
        preferences["CheckpointDelay"] = config.refresh_checkpoint_delay_seconds
    return preferences
