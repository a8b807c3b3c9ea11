"""CloudWatch: metric alarms and dashboards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import (
    Builder,
    Call,
    dimensions,
    metric,
    metric_query,
    name_of,
    optional,
    required,
    tags,
)


def _metric_stat(given: Mapping[str, Any]) -> dict[str, Any]:
    return {"Metric": metric(given), **required(given, "Period", "Stat"), **optional(given, "Unit")}


def _alarm(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    queries = [
        metric_query(q, _metric_stat(q["metric"]) if q.get("metric") else None) for q in i.get("metricQueries", [])
    ]
    yield (
        "cloudwatch",
        "PutMetricAlarm",
        {
            "AlarmName": name_of(i, name),
            **optional(
                i,
                "AlarmDescription",
                "ActionsEnabled",
                "AlarmActions",
                "InsufficientDataActions",
                "MetricName",
                "Namespace",
                "Statistic",
                "ExtendedStatistic",
                "Period",
                "Unit",
                "DatapointsToAlarm",
                "TreatMissingData",
                "ThresholdMetricId",
            ),
            **required(i, "EvaluationPeriods", "ComparisonOperator"),
            "OKActions": i.get("okActions"),
            "Dimensions": dimensions(i.get("dimensions")),
            "Threshold": float(i["threshold"]) if "threshold" in i else None,
            "EvaluateLowSampleCountPercentile": i.get("evaluateLowSampleCountPercentiles"),
            "Metrics": queries or None,
            "Tags": tags(i.get("tags")),
        },
    )


def _dashboard(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "cloudwatch",
        "PutDashboard",
        {"DashboardName": name_of(i, name, "dashboardName"), "DashboardBody": i["dashboardBody"]},
    )


BUILDERS: dict[str, Builder] = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
}
