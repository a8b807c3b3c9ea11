"""The alarm shape the pool, broker and scheduler alarms share: one metric, or an expression over
metric queries, compared with a threshold in every one of a number of consecutive periods. Pure
functions returning pulumi-aws's typed args; each alarm module keeps its own thresholds,
descriptions and missing-data reasons.

Datapoints to alarm = evaluation periods throughout, so a single noisy minute never pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

MINUTE = 60

AlarmArgs = aws.cloudwatch.MetricAlarmArgs
Query = aws.cloudwatch.MetricAlarmMetricQueryArgs
QueryMetric = aws.cloudwatch.MetricAlarmMetricQueryMetricArgs

Comparison = Literal["GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold"]
MissingData = Literal["breaching", "notBreaching", "missing"]
"""CloudWatch's treatments of missing data (the fourth, `ignore`, is not used here):
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data"""


@dataclass(frozen=True)
class Metric:
    """One metric's statistic over `period` seconds, as an alarm reads it directly."""

    namespace: str
    name: str
    statistic: str
    dimensions: Mapping[str, pulumi.Input[str]] | None = None
    period: int = MINUTE


def alarm(
    description: str,
    source: Metric | list[Query],
    comparison: Comparison,
    threshold: float,
    periods: int,
    missing: MissingData,
) -> AlarmArgs:
    """`source` (a metric, or the one query of a list that returns data) compared with `threshold`
    in each of `periods` consecutive periods."""
    metric = source if isinstance(source, Metric) else None
    queries = None if isinstance(source, Metric) else source
    return AlarmArgs(
        alarm_description=description,
        namespace=metric.namespace if metric else None,
        metric_name=metric.name if metric else None,
        dimensions=metric.dimensions if metric else None,
        statistic=metric.statistic if metric else None,
        period=metric.period if metric else None,
        metric_queries=queries,
        comparison_operator=comparison,
        threshold=threshold,
        evaluation_periods=periods,
        datapoints_to_alarm=periods,
        treat_missing_data=missing,
    )


def queried_metric(
    metric_id: str, namespace: str, metric: str, dimensions: Mapping[str, pulumi.Input[str]], stat: str
) -> Query:
    """One metric of an expression alarm, over one-minute periods, that feeds the expression only."""
    return Query(
        id=metric_id,
        return_data=False,
        metric=QueryMetric(namespace=namespace, metric_name=metric, dimensions=dimensions, stat=stat, period=MINUTE),
    )
