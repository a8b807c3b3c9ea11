"""The canary: what judges a pool's new code while an instance refresh rolls it out. Pure functions.

1. Metric filters on the pool's log group count the workers' own log lines (worker.names EVENT_*) per
   code version: every line carries the process's `version` and `pool` (worker.runtime.logs), and a
   filter publishes those fields as the `Version` and `Pool` dimensions, "as many as three" per filter
   (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntaxForMetricFilters.html,
   "Publishing dimensions with metrics from values in JSON or space-delimited log events"). A version
   is low-cardinality (one value per deploy), as those dimensions must be.
2. Alarms on the *new* version's metrics (dimension Version = the build being deployed), so the old
   instances that still serve most of the pool during a canary cannot dilute its failures.
3. The refresh preferences (StartInstanceRefresh `Preferences`) that name those alarms in an
   AlarmSpecification, with the configured checkpoints and AutoRollback; `infra.cli.canary_rollout` starts the
   refresh with them after `pulumi up` (why not the group's own `instance_refresh`: that module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.components.alarm_args import MINUTE, AlarmArgs, Metric, Query, alarm, queried_metric
from infra.components.metrics import DIMENSION_POOL
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

DIMENSION_VERSION: Final = "Version"
# Failure and retry shares are judged minute by minute, in each of 3 consecutive minutes (the shared
# alarm shape: datapoints = periods), so one unlucky minute never rolls a deploy back.
RATE_PERIODS: Final = 3
DEAD_LETTER_WINDOW: Final = 5 * MINUTE
# AlarmSpecification: "You can specify up to 10 alarms."
# https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_AlarmSpecification.html
MAX_REFRESH_ALARMS: Final = 10


@dataclass(frozen=True)
class LogMetric:
    """A metric filter: log lines whose `event` (and other fields) match, counted as 1 each."""

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


DIMENSION_OF_FIELD: Final = {"pool": DIMENSION_POOL, "version": DIMENSION_VERSION}

UNKNOWN_TASK: Final = {"reason": REASON_UNKNOWN_TASK}
LOG_METRICS: Final = (
    LogMetric("finished", METRIC_TASKS_FINISHED, EVENT_TASK_FINISHED),
    LogMetric("failures", METRIC_TASK_FAILURES, EVENT_TASK_FINISHED, {"outcome": "failure"}),
    LogMetric("retries", METRIC_TASK_RETRIES, EVENT_TASK_FINISHED, {"outcome": "retry"}),
    LogMetric("dead-letters", METRIC_DEAD_LETTERS, EVENT_DEAD_LETTERED),
    # Version skew: a task name no worker knows. Per version (the new workers forgot a name that is
    # still sent: the canary judges it) and per pool alone (on-call's alarm counts every such letter,
    # whichever version wrote it; an alarm cannot add up the values of a dimension).
    LogMetric("unknown-tasks", METRIC_UNKNOWN_TASK_LETTERS, EVENT_DEAD_LETTERED, UNKNOWN_TASK),
    LogMetric("unknown-tasks-pool", METRIC_UNKNOWN_TASK_LETTERS, EVENT_DEAD_LETTERED, UNKNOWN_TASK, ("pool",)),
    LogMetric("unhealthy", METRIC_WORKERS_UNHEALTHY, EVENT_UNHEALTHY),
)
"""Log events are the worker's (worker.names). The `task.retry` line is not counted: the run that
retried also ends with a `task.finished` line whose outcome is `retry`."""


def metric_filter_args(
    namespace: str, log_group: pulumi.Input[str], metric: LogMetric
) -> aws.cloudwatch.LogMetricFilterArgs:
    return aws.cloudwatch.LogMetricFilterArgs(
        log_group_name=log_group,
        pattern=metric.pattern,
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=metric.metric,
            namespace=namespace,
            value="1",
            unit="Count",
            # No default value: a minute without such lines stays missing, which the alarms read as
            # no evidence (a zero would also be a datapoint per dimension set that AWS bills).
            dimensions={DIMENSION_OF_FIELD[f]: f"$.{f}" for f in metric.dimensions},
        ),
    )


def _share(namespace: str, numerator: str, dimensions: Mapping[str, pulumi.Input[str]], label: str) -> list[Query]:
    """Percent of the version's task runs that `numerator` counts, per minute (0 without runs)."""
    return [
        queried_metric("runs", namespace, METRIC_TASKS_FINISHED, dimensions, "Sum"),
        queried_metric("part", namespace, numerator, dimensions, "Sum"),
        Query(id="share", return_data=True, label=label, expression="100 * FILL(part, 0) / runs"),
    ]


def unknown_task_alarm(config: StackConfig, name: str) -> tuple[str, AlarmArgs]:
    """On-call's version-skew alarm: any worker of the pool dead-lettered a task name it does not know.
    Not a judge of a refresh: old workers that meet a new producer's task fire it, and the deploy that
    teaches the workers that name must not be rolled back for it."""
    return (
        f"{name}-unknown-tasks",
        alarm(
            f"Pool {name}: a message named a task no worker of the pool knows (version skew: deploy "
            "workers before producers, rename across two releases); it is in the dead-letter queue with "
            "its sender's version, and `python -m worker.deadletter replay` runs it once a worker knows it",
            Metric(config.metric_namespace, METRIC_UNKNOWN_TASK_LETTERS, "Sum", {DIMENSION_POOL: name}),
            "GreaterThanOrEqualToThreshold",
            1,
            periods=1,
            missing="notBreaching",
        ),
    )


# long function: the alarms that judge a version, as one table, an entry each
def canary_alarms(
    config: StackConfig, name: str, pool: PoolConfig, version: pulumi.Input[str]
) -> list[tuple[str, AlarmArgs]]:
    """The alarms that judge version `version` of pool `name` (with the pool's latency alarm)."""
    namespace = config.metric_namespace
    new = {DIMENSION_POOL: name, DIMENSION_VERSION: version}
    return [
        (
            f"{name}-canary-failures",
            alarm(
                f"Pool {name}: the version being deployed failed {config.refresh_failure_percent}% or more "
                f"of its task runs in each of {RATE_PERIODS} minutes; a canary refresh rolls it back",
                _share(namespace, METRIC_TASK_FAILURES, new, "Failed runs, % (new version)"),
                "GreaterThanOrEqualToThreshold",
                config.refresh_failure_percent,
                periods=RATE_PERIODS,
                # No run of the new version is no evidence against it (a pool at zero, a quiet minute).
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-canary-retries",
            alarm(
                f"Pool {name}: {config.refresh_retry_percent}% or more of the new version's task runs "
                f"ended in a retry in each of {RATE_PERIODS} minutes",
                _share(namespace, METRIC_TASK_RETRIES, new, "Retried runs, % (new version)"),
                "GreaterThanOrEqualToThreshold",
                config.refresh_retry_percent,
                periods=RATE_PERIODS,
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-canary-dead-letters",
            alarm(
                f"Pool {name}: the new version's workers wrote {config.refresh_dead_letters} dead letters "
                f"or more in {DEAD_LETTER_WINDOW // MINUTE} minutes (python -m worker.deadletter lists them)",
                Metric(namespace, METRIC_DEAD_LETTERS, "Sum", new, period=DEAD_LETTER_WINDOW),
                "GreaterThanOrEqualToThreshold",
                config.refresh_dead_letters,
                periods=1,
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-canary-unhealthy",
            alarm(
                f"Pool {name}: an instance of the new version marked itself unhealthy (its worker cannot "
                "start, or died for good); its worker.log says why",
                Metric(namespace, METRIC_WORKERS_UNHEALTHY, "Sum", new),
                "GreaterThanOrEqualToThreshold",
                1,
                periods=1,
                missing="notBreaching",
            ),
        ),
        (
            f"{name}-canary-unknown-tasks",
            alarm(
                f"Pool {name}: the new version's workers do not know a task name that is still sent "
                "(a task removed or renamed without an alias: docs/worker.md, 'Renaming a task')",
                Metric(namespace, METRIC_UNKNOWN_TASK_LETTERS, "Sum", new),
                "GreaterThanOrEqualToThreshold",
                1,
                periods=1,
                missing="notBreaching",
            ),
        ),
    ]


def refresh_preferences(config: StackConfig, pool: PoolConfig, alarm_names: Sequence[str]) -> dict[str, Any]:
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
