"""CloudWatch limits on a rendered stack: metric queries and evaluation of alarms and target
tracking, dashboards, and where AWS services deliver their logs."""

from __future__ import annotations

import json
from typing import Any

from tests.support.aws_limits.registry import ALARM, POLICY, Resources, limit, of_type


def _query_counts(queries: list[dict[str, Any]]) -> tuple[int, int, int]:
    reads = sum(1 for q in queries if "metric" in q or "metricStat" in q)
    expressions = sum(1 for q in queries if "expression" in q)
    returned = sum(1 for q in queries if q.get("returnData") is True)
    return reads, expressions, returned


def _query_problems(where: str, queries: list[dict[str, Any]]) -> list[str]:
    reads, expressions, returned = _query_counts(queries)
    problems = []
    if len(queries) > 20:
        problems.append(f"{where}: {len(queries)} metric queries (at most 20)")
    if reads > 10:
        problems.append(f"{where}: {reads} metric reads (at most 10)")
    if expressions > 10:
        problems.append(f"{where}: {expressions} expressions (at most 10)")
    if returned != 1:
        problems.append(f"{where}: {returned} queries return data (exactly one must)")
    return problems


@limit(
    "PutMetricAlarm takes at most 20 MetricDataQuery structures, at most 10 reading a metric and at most "
    "10 expressions, one of them returning data: "
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html ; target "
    "tracking builds its alarms from the same queries: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-target-tracking-metric-math.html"
)
def metric_queries(resources: Resources) -> list[str]:
    problems = []
    for alarm in of_type(resources, ALARM):
        queries = alarm["inputs"].get("metricQueries")
        if queries:
            problems += _query_problems(alarm["name"], queries)
    for policy in of_type(resources, POLICY):
        tracking = policy["inputs"].get("targetTrackingConfiguration") or {}
        queries = (tracking.get("customizedMetricSpecification") or {}).get("metrics")
        if queries:
            problems += _query_problems(policy["name"], queries)
    return problems


def _alarm_periods(inputs: dict[str, Any]) -> list[int]:
    if "period" in inputs:
        return [int(inputs["period"])]
    return [int(q["metric"]["period"]) for q in inputs.get("metricQueries", []) if "metric" in q]


@limit(
    "PutMetricAlarm Period: 10, 20, 30 or a multiple of 60; Period x EvaluationPeriods at most 86,400 s "
    "(604,800 s for periods of an hour or more); DatapointsToAlarm at most EvaluationPeriods; at most 5 "
    "actions per state: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"
    " , https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
)
def alarm_evaluation(resources: Resources) -> list[str]:
    problems = []
    for alarm in of_type(resources, ALARM):
        inputs, name = alarm["inputs"], alarm["name"]
        periods = inputs["evaluationPeriods"]
        for period in _alarm_periods(inputs):
            if not (period in (10, 20, 30) or (period % 60 == 0 and 60 <= period <= 86400)):
                problems.append(f"{name}: period {period} s")
            longest = 604800 if period >= 3600 else 86400
            if period * periods > longest:
                problems.append(f"{name}: {periods} periods of {period} s exceed {longest} s")
        if inputs.get("datapointsToAlarm", periods) > periods:
            problems.append(f"{name}: datapointsToAlarm over evaluationPeriods")
        for key in ("alarmActions", "okActions", "insufficientDataActions"):
            if len(inputs.get(key, [])) > 5:
                problems.append(f"{name}: {len(inputs[key])} {key} (at most 5)")
    return problems


@limit(
    "A target-tracking customized metric's period is 10, 30 or 60 s: "
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html"
)
def target_tracking_period(resources: Resources) -> list[str]:
    problems = []
    for policy in of_type(resources, POLICY):
        spec = (policy["inputs"].get("targetTrackingConfiguration") or {}).get("customizedMetricSpecification")
        if spec is None:
            continue
        periods = [spec.get("period", 60)] + [
            q["metricStat"].get("period", 60) for q in spec.get("metrics", []) if "metricStat" in q
        ]
        problems += [f"{policy['name']}: period {p} s" for p in periods if p not in (10, 30, 60)]
    return problems


def _widget_metrics(widget: dict[str, Any]) -> int:
    return len((widget.get("properties") or {}).get("metrics") or [])


@limit(
    "A dashboard has at most 500 widgets, widths 1 to 24 and heights 1 to 1,000 "
    "(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html);"
    " at most 500 metrics per widget and 2,500 per dashboard "
    "(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html)"
)
def dashboards(resources: Resources) -> list[str]:
    problems = []
    for dashboard in of_type(resources, "aws:cloudwatch/dashboard:Dashboard"):
        widgets = json.loads(dashboard["inputs"]["dashboardBody"]).get("widgets", [])
        name = dashboard["name"]
        if len(widgets) > 500:
            problems.append(f"{name}: {len(widgets)} widgets")
        for widget in widgets:
            if not (1 <= widget.get("width", 6) <= 24 and 1 <= widget.get("height", 6) <= 1000):
                problems.append(f"{name}: widget of {widget.get('width')} x {widget.get('height')}")
            if _widget_metrics(widget) > 500:
                problems.append(f"{name}: a widget with {_widget_metrics(widget)} metrics")
        total = sum(_widget_metrics(w) for w in widgets)
        if total > 2500:
            problems.append(f"{name}: {total} metrics")
    return problems


@limit(
    "Logs that AWS services deliver to CloudWatch Logs go to log groups under /aws/vendedlogs/, so the "
    "account-wide resource policy (5,120 characters) does not grow with each stack: "
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-and-resource-policy.html"
)
def vended_log_groups(resources: Resources) -> list[str]:
    problems = []
    for group in of_type(resources, "aws:elasticache/replicationGroup:ReplicationGroup"):
        for delivery in group["inputs"].get("logDeliveryConfigurations") or []:
            if delivery.get("destinationType") != "cloudwatch-logs":
                continue
            destination = str(delivery.get("destination"))
            if not destination.startswith("/aws/vendedlogs/"):
                problems.append(f"{group['name']}: delivers {delivery.get('logType')} to {destination}")
    return problems
